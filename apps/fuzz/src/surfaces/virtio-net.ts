/**
 * virtio-net from a hostile driver and a hostile peer, over virtio-mmio and legacy
 * virtio-pci (see ../virtio.ts for the operations and the shared invariants). Also: no
 * frame handed to the backend is longer than VIRTIO_NET_MAX_FRAME, frames from the peer
 * waiting for receive buffers stay within the bounded queue, and after a reset a frame is
 * transmitted and one is received.
 */
import {
  type NetBackend,
  VIRTIO_NET_MAX_FRAME,
  VIRTIO_NET_RX,
  VIRTIO_NET_TX,
  VirtioNet,
} from "@visor/devices";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";
import { type Op, opsArbitrary, Rig, type Transport, transportArbitrary } from "../virtio.ts";

const RX_QUEUE_FRAMES = 8;
/** virtio_net_hdr_v1 with VIRTIO_F_VERSION_1 (mmio), the legacy 10-byte header on pci. */
const HDR = { mmio: 12, pci: 10 } as const;
const FRAME = 60;

class PeerBackend implements NetBackend {
  sent: number[] = [];
  deliver: (frame: Uint8Array) => void = () => {};
  send(frame: Uint8Array): void {
    this.sent.push(frame.length);
  }
  onReceive(cb: (frame: Uint8Array) => void): void {
    this.deliver = cb;
  }
}

const surface: FuzzSurface<{ transport: Transport; ops: Op[] }> = {
  name: "virtio-net",
  description:
    "virtio-net under random descriptor chains, notifies, register and config accesses and peer frames (mmio and legacy pci): no host exception, no access outside RAM, frames within the maximum, bounded receive queue, works after reset",
  arbitrary: fc.record({ transport: transportArbitrary, ops: opsArbitrary(2, 256) }),
  check({ transport, ops }) {
    const backend = new PeerBackend();
    const net = new VirtioNet({ backend, rxQueueFrames: RX_QUEUE_FRAMES });
    const rig = new Rig(net, transport);
    try {
      rig.apply(ops, (len) => backend.deliver(new Uint8Array(len)));
    } catch (e) {
      invariant(false, `host exception: ${e instanceof Error ? e.stack : String(e)}`);
    }
    rig.checkRam();
    const over = backend.sent.find((n) => n > VIRTIO_NET_MAX_FRAME);
    invariant(over === undefined, `a ${over}-byte frame reached the backend`);
    invariant(net.pendingFrames <= RX_QUEUE_FRAMES, `${net.pendingFrames} frames wait for the guest`);
    const { queues, kick } = rig.recover();
    const before = backend.sent.length;
    queues[VIRTIO_NET_TX]!.post([{ out: new Uint8Array(HDR[transport]) }, { out: new Uint8Array(FRAME) }]);
    kick(VIRTIO_NET_TX);
    invariant(
      backend.sent.length === before + 1 && backend.sent[before] === FRAME,
      "a frame sent after reset did not reach the backend",
    );
    queues[VIRTIO_NET_RX]!.post([{ in: HDR[transport] + 1514 }]);
    kick(VIRTIO_NET_RX);
    backend.deliver(new Uint8Array(FRAME));
    const got = queues[VIRTIO_NET_RX]!.takeUsed();
    invariant(got.length === 1 && got[0]!.len === HDR[transport] + FRAME, "no frame received after reset");
    rig.checkRam();
  },
  ciRuns: 800,
};

export default surface;
