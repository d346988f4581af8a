import { defineConfig } from "tsup";

export default defineConfig({
  // The vCPU worker is an entry of its own: VcpuThread starts it by URL.
  entry: {
    index: "src/index.ts",
    "node/index": "src/node/index.ts",
    "node/vcpu-worker": "src/node/vcpu-worker.ts",
  },
  format: ["esm"],
  dts: { entry: { index: "src/index.ts", "node/index": "src/node/index.ts" } },
  clean: true,
  sourcemap: true,
  target: "es2023",
});
