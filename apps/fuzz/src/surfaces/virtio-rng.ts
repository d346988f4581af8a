/**
 * virtio-rng from a hostile driver, over virtio-mmio and legacy virtio-pci (see
 * ../virtio.ts for the operations and the shared invariants). Also: the entropy source is
 * never asked for more than VIRTIO_RNG_MAX_REQUEST bytes at once nor more than
 * VIRTIO_RNG_MAX_PER_KICK per operation, and after a reset a request is filled.
 */
import { VIRTIO_RNG_MAX_PER_KICK, VIRTIO_RNG_MAX_REQUEST, VirtioRng } from "@visor/devices";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";
import { type Op, opsArbitrary, Rig, type Transport, transportArbitrary } from "../virtio.ts";

const surface: FuzzSurface<{ transport: Transport; ops: Op[] }> = {
  name: "virtio-rng",
  description:
    "virtio-rng under random descriptor chains, notifies, register and config accesses (mmio and legacy pci): no host exception, no access outside RAM, entropy per request and per kick bounded, works after reset",
  arbitrary: fc.record({ transport: transportArbitrary, ops: opsArbitrary(1, 64) }),
  check({ transport, ops }) {
    let asked = 0;
    let largest = 0;
    const rng = new VirtioRng({
      entropy: (b) => {
        asked += b.length;
        largest = Math.max(largest, b.length);
        b.fill(0x5a);
      },
    });
    const rig = new Rig(rng, transport);
    for (const op of ops) {
      const before = asked;
      try {
        rig.apply([op], () => {});
      } catch (e) {
        invariant(false, `host exception: ${e instanceof Error ? e.stack : String(e)}`);
      }
      invariant(
        asked - before <= VIRTIO_RNG_MAX_PER_KICK,
        `${asked - before} bytes of entropy for one operation`,
      );
    }
    invariant(largest <= VIRTIO_RNG_MAX_REQUEST, `${largest} bytes of entropy for one request`);
    rig.checkRam();
    const { queues, kick } = rig.recover();
    queues[0]!.post([{ in: 16 }]);
    kick(0);
    const u = queues[0]!.takeUsed();
    invariant(
      u.length === 1 && u[0]!.len === 16 && u[0]!.data[0]!.every((b) => b === 0x5a),
      "no entropy after reset",
    );
    rig.checkRam();
  },
  ciRuns: 800,
};

export default surface;
