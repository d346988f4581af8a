/**
 * Tiny x86-64 guests in bzImage form, for testing the KVM machine without a Linux kernel:
 * a setup header (boot protocol 2.15, 64-bit entry) and hand-assembled 64-bit code at the
 * 64-bit entry point (load address + 0x200), which the machine enters in long mode with
 * rsi = the zero page, exactly as it enters Linux. Each program talks to the machine's
 * devices with real port and MMIO exits.
 */

/**
 * A bzImage whose 64-bit entry point (0x100200 once loaded) runs `code`; `data` blobs go
 * at their offsets from the load address (0x100000).
 */
export function tinyBzImage(
  code: number[],
  data: { at: number; bytes: Uint8Array | number[] }[] = [],
): Uint8Array {
  const SETUP_SECTS = 1;
  const pm = new Uint8Array(0x2000);
  pm.fill(0xf4, 0, 0x200); // startup_32: hlt (never entered)
  pm.set(code, 0x200);
  for (const d of data) pm.set(d.bytes, d.at);
  const img = new Uint8Array((SETUP_SECTS + 1) * 512 + pm.length);
  const dv = new DataView(img.buffer);
  img[0x1f1] = SETUP_SECTS;
  dv.setUint16(0x1fe, 0xaa55, true);
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, 0x20f, true);
  dv.setUint32(0x22c, 0x7fffffff, true); // initrd_addr_max
  dv.setUint16(0x236, 1, true); // XLF_KERNEL_64
  dv.setUint32(0x238, 2047, true); // cmdline_size
  dv.setUint32(0x260, 0x10000, true); // init_size
  img.set(pm, (SETUP_SECTS + 1) * 512);
  return img;
}

const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/** mov dx, 0x3f8 */
const DX_COM1 = [0x66, 0xba, 0xf8, 0x03];
/** out dx, al */
const OUT_DX_AL = [0xee];
/** mov al, imm8; out dx, al */
const putc = (c: string) => [0xb0, c.charCodeAt(0), ...OUT_DX_AL];
/** mov al, 0xfe; out 0x64, al (i8042: pulse reset); then hlt; jmp back to hlt */
const RESET = [0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd];

/**
 * Prints the kernel command line (found through boot_params.cmd_line_ptr, as Linux finds
 * it) to COM1, then a newline, then resets through the i8042.
 */
export function echoCmdlineGuest(): Uint8Array {
  const code = [
    ...DX_COM1,
    0x41,
    0x89,
    0xf0, // mov r8d, esi (boot_params)
    0x41,
    0x8b,
    0xb0,
    ...u32(0x228), // mov esi, [r8 + 0x228] (cmd_line_ptr)
    // loop:
    0x8a,
    0x06, // mov al, [rsi]
    0x84,
    0xc0, // test al, al
    0x74,
    0x06, // jz done (+6)
    0xee, // out dx, al
    0x48,
    0xff,
    0xc6, // inc rsi
    0xeb,
    0xf4, // jmp loop (-12)
    // done:
    ...putc("\n"),
    ...RESET,
  ];
  return tinyBzImage(code);
}

/**
 * Reads the 32-bit MMIO register at `addr` (below 4 GiB), prints its four bytes to COM1
 * (low byte first) and a newline, then resets.
 */
export function mmioReadGuest(addr: number): Uint8Array {
  const code = [
    ...DX_COM1,
    0xbb,
    ...u32(addr), // mov ebx, addr (zero-extended)
    0x8b,
    0x03, // mov eax, [rbx]
    0xee,
    0xc1,
    0xe8,
    0x08, // out dx, al; shr eax, 8
    0xee,
    0xc1,
    0xe8,
    0x08,
    0xee,
    0xc1,
    0xe8,
    0x08,
    0xee,
    ...putc("\n"),
    ...RESET,
  ];
  return tinyBzImage(code);
}

/** Spins forever without an exit (for Ctrl-A X and stop tests). */
export function spinGuest(): Uint8Array {
  return tinyBzImage([...DX_COM1, ...putc("."), 0xeb, 0xfe]);
}

/**
 * Two vCPUs: the boot vCPU copies a real-mode routine to 0x8000 and starts vCPU 1 there
 * with INIT and a startup IPI through its local APIC (the in-kernel one: no exit), as
 * Linux brings up its application processors. vCPU 1 prints "A" and sets a flag in
 * memory; the boot vCPU waits for the flag, prints "B" and a newline, and resets.
 */
export function smpGuest(): Uint8Array {
  const FLAG = 0x7f00;
  const ap = [
    0xba,
    0xf8,
    0x03, // mov dx, 0x3f8 (16-bit code)
    0xb0,
    0x41,
    0xee, // mov al, 'A'; out dx, al
    0xc6,
    0x06,
    FLAG & 0xff,
    FLAG >> 8,
    0x01, // mov byte [FLAG], 1
    0xfa,
    0xf4,
    0xeb,
    0xfd, // cli; hlt; jmp hlt
  ];
  const head = [
    0x48,
    0x8d,
    0x35,
    0,
    0,
    0,
    0, // lea rsi, [rip + ap] (patched below)
  ];
  const body = [
    0xbf,
    ...u32(0x8000), // mov edi, 0x8000
    0xb9,
    ...u32(ap.length), // mov ecx, len
    0xf3,
    0xa4, // rep movsb
    0xbb,
    ...u32(0xfee0_0000), // mov ebx, local APIC base
    0xc7,
    0x83,
    ...u32(0x310),
    ...u32(1 << 24), // ICR high: destination APIC id 1
    0xc7,
    0x83,
    ...u32(0x300),
    ...u32(0x4500), // ICR low: INIT, assert
    0xc7,
    0x83,
    ...u32(0x300),
    ...u32(0x4608), // ICR low: startup IPI, vector 8 (0x8000)
    // wait:
    0x80,
    0x3c,
    0x25,
    ...u32(FLAG),
    0x01, // cmp byte [FLAG], 1
    0x75,
    0xf6, // jne wait
    ...DX_COM1,
    ...putc("B"),
    ...putc("\n"),
    ...RESET,
  ];
  const disp = body.length; // ap starts right after body; rip-relative from the end of lea
  head.splice(3, 4, ...u32(disp));
  return tinyBzImage([...head, ...body, ...ap]);
}

/** `out dx, eax` and `in eax, dx` on COM1 (a 1-byte device), then a 2-byte and a 4-byte access to an unmapped port, then prints "ok" and resets. */
export function oddPortGuest(): Uint8Array {
  return tinyBzImage([
    ...DX_COM1,
    0xb8,
    ...u32(0x44434241), // mov eax, "ABCD"
    0xef, // out dx, eax
    0xed, // in eax, dx
    0x66,
    0xba,
    0x34,
    0x12, // mov dx, 0x1234
    0x66,
    0xed, // in ax, dx
    0xef, // out dx, eax
    ...DX_COM1,
    ...putc("o"),
    ...putc("k"),
    ...putc("\n"),
    ...RESET,
  ]);
}

/** ud2 with no IDT: a triple fault, which KVM reports as a shutdown exit. */
export function tripleFaultGuest(): Uint8Array {
  return tinyBzImage([0x0f, 0x0b]);
}

/**
 * Waits for console input in HLT, interrupt-driven like a kernel: it masks the 8259s,
 * routes IOAPIC pin 4 (COM1) to vector 0x24 on local APIC 0, enables that local APIC,
 * installs an IDT entry for the vector, turns on the UART's receive interrupt, prints ">"
 * and loops on `sti; hlt`. Its handler echoes every byte the UART holds, resets on "q",
 * and ends with an EOI to the local APIC. Only the UART accesses exit; the IOAPIC and the
 * local APIC are KVM's, in the kernel.
 */
export function hltEchoGuest(): Uint8Array {
  const IDT = 0x3000;
  const IDTR = 0x2ff0;
  const VECTOR = 0x24;
  const movAbs = (addr: number, v: number) => [0xc7, 0x04, 0x25, ...u32(addr), ...u32(v)];
  const handler = [
    0x50,
    0x52,
    0x53, // push rax; push rdx; push rbx
    // again:
    0x66,
    0xba,
    0xfd,
    0x03,
    0xec, // mov dx, 0x3fd; in al, dx (LSR)
    0xa8,
    0x01, // test al, 1 (data ready)
    0x74,
    0x12, // jz done (+18)
    0x66,
    0xba,
    0xf8,
    0x03,
    0xec, // mov dx, 0x3f8; in al, dx (RBR)
    0xee, // out dx, al (echo)
    0x3c,
    0x71, // cmp al, 'q'
    0x75,
    0xed, // jne again (-19)
    0xb0,
    0xfe,
    0xe6,
    0x64, // mov al, 0xfe; out 0x64, al (reset)
    0xeb,
    0xe7, // jmp again (-25)
    // done:
    0xbb,
    ...u32(0xfee0_0000), // mov ebx, local APIC
    0xc7,
    0x83,
    ...u32(0xb0),
    ...u32(0), // EOI
    0x5b,
    0x5a,
    0x58, // pop rbx; pop rdx; pop rax
    0x48,
    0xcf, // iretq
  ];
  const main = (handlerAddr: number) => [
    0xb0,
    0xff,
    0xe6,
    0x21,
    0xe6,
    0xa1, // mask both 8259s
    0xbb,
    ...u32(0xfee0_0000), // mov ebx, local APIC
    0xc7,
    0x83,
    ...u32(0xf0),
    ...u32(0x1ff), // spurious vector register: APIC enabled
    0xbb,
    ...u32(0xfec0_0000), // mov ebx, IOAPIC
    0xc7,
    0x03,
    ...u32(0x10 + 2 * 4), // IOREGSEL: redirection entry 4, low word
    0xc7,
    0x43,
    0x10,
    ...u32(VECTOR), // IOWIN: fixed, physical, edge, active high, unmasked
    0xc7,
    0x03,
    ...u32(0x10 + 2 * 4 + 1), // high word
    0xc7,
    0x43,
    0x10,
    ...u32(0), // destination APIC 0
    ...movAbs(IDT + VECTOR * 16, (handlerAddr & 0xffff) | (0x08 << 16)),
    ...movAbs(IDT + VECTOR * 16 + 4, (handlerAddr & 0xffff0000) | 0x8e00),
    ...movAbs(IDT + VECTOR * 16 + 8, 0),
    ...movAbs(IDT + VECTOR * 16 + 12, 0),
    ...movAbs(IDTR, 0x0fff | (IDT << 16)),
    ...movAbs(IDTR + 4, 0),
    0x0f,
    0x01,
    0x1c,
    0x25,
    ...u32(IDTR), // lidt [IDTR]
    0x66,
    0xba,
    0xf9,
    0x03,
    0xb0,
    0x01,
    0xee, // IER: receive data interrupt
    0x66,
    0xba,
    0xfc,
    0x03,
    0xb0,
    0x0b,
    0xee, // MCR: DTR, RTS, OUT2
    ...DX_COM1,
    ...putc(">"),
    // wait:
    0xfb,
    0xf4,
    0xeb,
    0xfc, // sti; hlt; jmp wait
  ];
  const mainLength = main(0).length;
  return tinyBzImage([...main(0x10_0200 + mainLength), ...handler]);
}

/**
 * A virtio-blk driver in a few dozen instructions, against the first virtio-mmio slot
 * (0xd0000000): it negotiates VERSION_1, sets up queue 0 (8 entries) on rings that come
 * prebuilt in the image, and submits two requests in one notify: write sector 1 with
 * 512 bytes of "KVMWROTE", and read sector 0. It then prints the first 8 bytes read, the
 * two status bytes as digits and the used index, and resets. Every register access is an
 * MMIO exit; the device DMAs into the guest's RAM from the main thread.
 */
export function virtioBlkGuest(): Uint8Array {
  const BASE = 0x10_0000;
  const DESC = 0x800;
  const AVAIL = 0x900;
  const USED = 0xa00;
  const HDR_W = 0xb00;
  const HDR_R = 0xb10;
  const STATUS = 0xb20;
  const WDATA = 0xc00;
  const RBUF = 0x1000;
  const NEXT = 1;
  const WRITE = 2;
  const desc = new Uint8Array(6 * 16);
  const dd = new DataView(desc.buffer);
  const chain = [
    [HDR_W, 16, NEXT, 1],
    [WDATA, 512, NEXT, 2],
    [STATUS, 1, WRITE, 0],
    [HDR_R, 16, NEXT, 4],
    [RBUF, 512, NEXT | WRITE, 5],
    [STATUS + 1, 1, WRITE, 0],
  ] as const;
  chain.forEach(([addr, len, flags, next], i) => {
    dd.setBigUint64(i * 16, BigInt(BASE + addr), true);
    dd.setUint32(i * 16 + 8, len, true);
    dd.setUint16(i * 16 + 12, flags, true);
    dd.setUint16(i * 16 + 14, next, true);
  });
  const avail = [0, 0, 2, 0, 0, 0, 3, 0]; // flags 0, idx 2, ring [0, 3]
  const hdrW = [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]; // OUT, sector 1
  const hdrR = new Array(16).fill(0); // IN, sector 0
  const wdata = new Uint8Array(512);
  for (let i = 0; i < 512; i++) wdata[i] = "KVMWROTE".charCodeAt(i % 8);
  const reg = (off: number, v: number) => [0xc7, 0x83, ...u32(off), ...u32(v)]; // mov dword [rbx+off], v
  const code = [
    0xbb,
    ...u32(0xd000_0000), // mov ebx, slot 0
    ...reg(0x70, 0), // Status: reset
    ...reg(0x70, 1), // ACKNOWLEDGE
    ...reg(0x70, 3), // DRIVER
    ...reg(0x24, 1), // DriverFeaturesSel 1
    ...reg(0x20, 1), // VIRTIO_F_VERSION_1 (bit 32)
    ...reg(0x24, 0),
    ...reg(0x20, 0),
    ...reg(0x70, 0xb), // FEATURES_OK
    ...reg(0x30, 0), // QueueSel 0
    ...reg(0x38, 8), // QueueNum
    ...reg(0x80, BASE + DESC), // QueueDesc
    ...reg(0x84, 0),
    ...reg(0x90, BASE + AVAIL), // QueueDriver (avail ring)
    ...reg(0x94, 0),
    ...reg(0xa0, BASE + USED), // QueueDevice (used ring)
    ...reg(0xa4, 0),
    ...reg(0x44, 1), // QueueReady
    ...reg(0x70, 0xf), // DRIVER_OK
    ...reg(0x50, 0), // QueueNotify 0: both requests
    ...DX_COM1,
    0xbe,
    ...u32(BASE + RBUF), // mov esi, read buffer
    0xb9,
    ...u32(8), // mov ecx, 8
    0xac,
    0xee,
    0xe2,
    0xfc, // L: lodsb; out dx, al; loop L
    0x8a,
    0x04,
    0x25,
    ...u32(BASE + STATUS),
    0x04,
    0x30,
    0xee, // status of the write, as a digit
    0x8a,
    0x04,
    0x25,
    ...u32(BASE + STATUS + 1),
    0x04,
    0x30,
    0xee, // status of the read
    0x0f,
    0xb7,
    0x04,
    0x25,
    ...u32(BASE + USED + 2),
    0x04,
    0x30,
    0xee, // used.idx, as a digit
    ...putc("\n"),
    ...RESET,
  ];
  return tinyBzImage(code, [
    { at: DESC, bytes: desc },
    { at: AVAIL, bytes: avail },
    { at: HDR_W, bytes: hdrW },
    { at: HDR_R, bytes: hdrR },
    { at: STATUS, bytes: [0xff, 0xff] },
    { at: WDATA, bytes: wdata },
  ]);
}

/** An 8-byte MMIO read (`mov rax, [rbx]`) at `addr`: prints the 8 bytes, then resets. */
export function mmio64Guest(addr: number): Uint8Array {
  return tinyBzImage([
    ...DX_COM1,
    0xbb,
    ...u32(addr), // mov ebx, addr
    0x48,
    0x8b,
    0x03, // mov rax, [rbx]
    ...Array.from({ length: 8 }, () => [0xee, 0x48, 0xc1, 0xe8, 0x08]).flat(), // out dx, al; shr rax, 8
    ...putc("\n"),
    ...RESET,
  ]);
}

/**
 * Finds the initrd through boot_params (ramdisk_image, ramdisk_size at 0x218 and 0x21c),
 * prints its first 6 bytes and its size's low byte as a character, then resets.
 */
export function initrdGuest(): Uint8Array {
  return tinyBzImage([
    ...DX_COM1,
    0x41,
    0x89,
    0xf0, // mov r8d, esi (boot_params)
    0x41,
    0x8b,
    0xb0,
    ...u32(0x218), // mov esi, [r8 + 0x218] (ramdisk_image)
    0xb9,
    ...u32(6), // mov ecx, 6
    0xac,
    0xee,
    0xe2,
    0xfc, // L: lodsb; out dx, al; loop L
    0x41,
    0x8a,
    0x80,
    ...u32(0x21c), // mov al, [r8 + 0x21c] (ramdisk_size, low byte)
    0xee,
    ...putc("\n"),
    ...RESET,
  ]);
}
