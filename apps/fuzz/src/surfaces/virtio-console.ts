/**
 * virtio-console from a hostile driver and host input, over virtio-mmio and legacy
 * virtio-pci (see ../virtio.ts for the operations and the shared invariants). The sink
 * refuses output now and then (back-pressure). Also: no output call carries more than
 * VIRTIO_CONSOLE_MAX_CHUNK bytes, nothing is output while the sink is full, and after a
 * reset and a drain the device transmits and receives.
 */
import {
  VIRTIO_CONSOLE_MAX_CHUNK,
  VIRTIO_CONSOLE_RX,
  VIRTIO_CONSOLE_TX,
  VirtioConsole,
} from "@visor/devices";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";
import { type Op, opsArbitrary, Rig, type Transport, transportArbitrary } from "../virtio.ts";

const INPUT_CAPACITY = 256;

const surface: FuzzSurface<{ transport: Transport; ops: Op[]; room: number[] }> = {
  name: "virtio-console",
  description:
    "virtio-console under random descriptor chains, notifies, register and config accesses, host input and a sink that fills up (mmio and legacy pci): no host exception, no access outside RAM, output chunks bounded and held while full, works after reset",
  arbitrary: fc.record({
    transport: transportArbitrary,
    ops: opsArbitrary(2, 128),
    room: fc.array(fc.nat(3), { minLength: 1, maxLength: 8 }),
  }),
  check({ transport, ops, room }) {
    const out: Uint8Array[] = [];
    let largest = 0;
    let full = false;
    let calls = 0;
    // Recorded, not thrown: the transport would catch a throw from inside the device.
    let outputWhileFull = false;
    const con = new VirtioConsole({
      inputCapacity: INPUT_CAPACITY,
      output: (b) => {
        if (full) outputWhileFull = true;
        largest = Math.max(largest, b.length);
        out.push(b);
        // The sink's answers follow the input: it says "full" when its room runs out.
        full = room[calls++ % room.length] === 0;
        return !full;
      },
    });
    const rig = new Rig(con, transport);
    try {
      rig.apply(ops, (len) => {
        con.pushInput(new Uint8Array(len).fill(0x41));
        if (len % 3 === 0 && full) {
          full = false;
          con.outputDrained();
        }
      });
    } catch (e) {
      invariant(false, `host exception: ${e instanceof Error ? e.stack : String(e)}`);
    }
    rig.checkRam();
    invariant(!outputWhileFull, "output while the sink said it was full");
    invariant(largest <= VIRTIO_CONSOLE_MAX_CHUNK, `a ${largest}-byte output call`);
    invariant(con.inputFree >= 0 && con.inputFree <= INPUT_CAPACITY, "input buffer out of bounds");
    const { queues, kick } = rig.recover();
    full = false;
    room.fill(1);
    con.outputDrained();
    const before = out.length;
    queues[VIRTIO_CONSOLE_TX]!.post([{ out: new TextEncoder().encode("ok") }]);
    kick(VIRTIO_CONSOLE_TX);
    invariant(
      out.length > before && new TextDecoder().decode(out[out.length - 1]) === "ok",
      "no output after reset and drain",
    );
    queues[VIRTIO_CONSOLE_RX]!.post([{ in: 8 }]);
    kick(VIRTIO_CONSOLE_RX);
    con.pushInput(Uint8Array.of(0x42));
    const got = queues[VIRTIO_CONSOLE_RX]!.takeUsed();
    invariant(got.length >= 1 && got[0]!.len >= 1, "no input delivered after reset");
    rig.checkRam();
  },
  ciRuns: 800,
};

export default surface;
