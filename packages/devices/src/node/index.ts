/**
 * Node.js host backends for @visor/devices: disk image files and socket networking.
 * Import from "@visor/devices/node"; the core package stays free of node: modules.
 */
export {
  type CreateOverlayOptions,
  createQcow2Overlay,
  type DiskFormat,
  type DiskImage,
  type DiskImageOptions,
  MAX_BACKING_CHAIN,
  openDiskImage,
  openOverlayOver,
  probeDiskFormat,
} from "./disk-image.ts";
export { FileBlockBackend, type FileBlockOptions } from "./file-block-backend.ts";
export { fileErrorReason } from "./file-error.ts";
export { NodeImageFile } from "./image-file.ts";
export { downgradeImageLock, ImageLockedError, type ImageLockMode, lockImage } from "./image-lock.ts";
export {
  openSocketNetBackend,
  SOCKET_NET_MAX_FRAME,
  SocketFrameDecoder,
  SocketNetBackend,
  type SocketNetEvent,
  type SocketNetOptions,
  type SocketNetStats,
} from "./socket-net-backend.ts";
