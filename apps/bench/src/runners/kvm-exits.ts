/**
 * The TypeScript side of the kvm suite's exit round trip: the guest and the counts of the
 * C baseline (fixtures/src/kvm-exits.c), the VMM in TypeScript through @visor/kvm.
 *
 *   node --conditions=source kvm-exits.ts sync|thread pio|mmio N
 *
 * sync:   KVM_RUN in a loop on this thread, each exit decoded through KvmRun (checked) and
 *         its value read: the TS loop, the same work as the C loop.
 * thread: the vCPU on a worker thread (VcpuThread), each exit handed to this thread
 *         through the SharedArrayBuffer handoff and answered there: the path
 *         `visor run --accel kvm` takes for every device access.
 * Prints "kvm-exits: kind=pio mode=sync exits=N ns=TOTAL".
 */
import { GuestMapping, KVM_EXIT, Kvm } from "@visor/kvm";
import { VcpuThread } from "@visor/kvm/node";

const [mode, kind, count] = process.argv.slice(2);
const n = Number(count);
if ((mode !== "sync" && mode !== "thread") || (kind !== "pio" && kind !== "mmio") || !(n > 0)) {
  process.stderr.write("usage: kvm-exits.ts sync|thread pio|mmio N\n");
  process.exit(2);
}
const mmio = kind === "mmio";
const kvm = Kvm.open();
const vm = kvm.createVm();
const mem = new GuestMapping(0x10000);
vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memorySize: mem.size, userspaceAddr: mem.address });
// mov dx, 0x80; L: out dx, al; jmp L   |   L: mov [0], al; jmp L (DS at 0x10000: past RAM)
const code = mmio ? [0xa2, 0x00, 0x00, 0xeb, 0xfb] : [0xba, 0x80, 0x00, 0xee, 0xeb, 0xfd];
new Uint8Array(mem.buffer).set(code, 0x1000);
const vcpu = vm.createVcpu(0);
const s = vcpu.getSregs();
s.cs.base = 0n;
s.cs.selector = 0;
s.ds.base = mmio ? 0x10000n : 0n;
s.ds.selector = mmio ? 0x1000 : 0;
vcpu.setSregs(s);
vcpu.setRegs({ ...vcpu.getRegs(), rip: 0x1000n, rflags: 2n });

let ns: number;
let sink = 0;
if (mode === "sync") {
  const run = vcpu.kvmRun;
  let t0 = 0n;
  for (let i = -1; i < n; i++) {
    if (i === 0) t0 = process.hrtime.bigint();
    const r = vcpu.run();
    if (r === KVM_EXIT.IO) sink += run.ioData(run.io(), 0);
    else if (r === KVM_EXIT.MMIO) sink += run.mmioData(run.mmio().len);
    else throw new Error(`unexpected exit ${r}`);
  }
  ns = Number(process.hrtime.bigint() - t0);
} else {
  let seen = -1; // the first exit is outside the timing, as in C
  let t0 = 0n;
  let t1 = 0n;
  const thread = new VcpuThread(vcpu, (exit) => {
    sink += exit.value;
    seen++;
    if (seen === 0) t0 = process.hrtime.bigint();
    if (seen === n) {
      t1 = process.hrtime.bigint();
      thread.requestStop();
    }
  });
  const end = await thread.done;
  if (!("stopped" in end)) throw new Error(`vCPU thread ended: ${JSON.stringify(end)}`);
  ns = Number(t1 - t0);
}
process.stdout.write(`kvm-exits: kind=${kind} mode=${mode} exits=${n} ns=${ns} sink=${sink & 0xff}\n`);
