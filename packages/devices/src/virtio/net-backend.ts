/**
 * Where a virtio-net device's Ethernet frames go. `send` gets one frame (no virtio header,
 * no FCS); the backend calls the `onReceive` callback with each frame for the guest.
 * Frames are datagrams: a backend may drop them, as a network would.
 */
export interface NetBackend {
  send(frame: Uint8Array): void;
  /** Register the receiver (the device does this once, when it is constructed). */
  onReceive(cb: (frame: Uint8Array) => void): void;
}

/** A cable to nowhere: transmitted frames are counted and dropped; nothing is received. */
export class NullNetBackend implements NetBackend {
  framesSent = 0;
  send(_frame: Uint8Array): void {
    this.framesSent++;
  }
  onReceive(_cb: (frame: Uint8Array) => void): void {}
}
