/*
 * Visor warm-up guest. A small S-mode "kernel" that touches, in a few hundred thousand
 * instructions, the paths a Linux boot takes through the hart and the exit loop: every
 * integer, memory, compressed, FP and atomic instruction class, CSRs, SBI hypercalls,
 * MMIO exits, traps (illegal instruction, page faults, misaligned accesses), a timer and a
 * software interrupt, Sv39 paging with 4 KiB, 2 MiB and 1 GiB pages, and U-mode. It ends
 * with an SBI system reset. See README.md in this directory.
 */
#include <stdint.h>

typedef unsigned long ulong;

#define CSR_READ(name) ({ ulong v_; __asm__ volatile("csrr %0, " #name : "=r"(v_)); v_; })
#define CSR_WRITE(name, v) __asm__ volatile("csrw " #name ", %0" ::"r"((ulong)(v)))
#define CSR_SET(name, v) __asm__ volatile("csrs " #name ", %0" ::"r"((ulong)(v)))
#define CSR_CLEAR(name, v) __asm__ volatile("csrc " #name ", %0" ::"r"((ulong)(v)))

void run_user(void (*fn)(void), ulong sp);
void user_exit(void);

/* GCC may call these for block copies and clears. */
void *memset(void *d, int c, unsigned long n) {
  uint8_t *p = d;
  while (n--) *p++ = (uint8_t)c;
  return d;
}
void *memcpy(void *d, const void *s, unsigned long n) {
  uint8_t *p = d;
  const uint8_t *q = s;
  while (n--) *p++ = *q++;
  return d;
}

/* ------------------------------------------------------------------ SBI */

struct sbiret {
  long error;
  long value;
};

static struct sbiret sbi(ulong eid, ulong fid, ulong a0, ulong a1, ulong a2) {
  register ulong r0 __asm__("a0") = a0;
  register ulong r1 __asm__("a1") = a1;
  register ulong r2 __asm__("a2") = a2;
  register ulong r6 __asm__("a6") = fid;
  register ulong r7 __asm__("a7") = eid;
  __asm__ volatile("ecall" : "+r"(r0), "+r"(r1) : "r"(r2), "r"(r6), "r"(r7) : "memory");
  return (struct sbiret){(long)r0, (long)r1};
}

#define SBI_BASE 0x10
#define SBI_TIME 0x54494D45
#define SBI_IPI 0x735049
#define SBI_RFENCE 0x52464E43
#define SBI_SRST 0x53525354
#define SBI_DBCN 0x4442434E

/* ------------------------------------------------------------------ traps */

volatile ulong traps, timer_irqs, soft_irqs;

void trap_c(ulong *frame) {
  ulong cause = CSR_READ(scause);
  traps++;
  if ((long)cause < 0) {
    if ((cause & 0xff) == 5) {
      timer_irqs++;
      sbi(SBI_TIME, 0, ~0ul, 0, 0); /* no next timer: STIP falls */
    } else if ((cause & 0xff) == 1) {
      soft_irqs++;
      CSR_CLEAR(sip, 2);
    }
    return;
  }
  ulong epc = CSR_READ(sepc);
  if (cause == 12 || cause == 20) {
    /* Instruction page fault: the faulting call returns to its caller. */
    CSR_WRITE(sepc, frame[1]);
    return;
  }
  /* Skip the instruction that trapped (sstatus.SUM lets S-mode read U pages). */
  uint16_t low = *(volatile uint16_t *)epc;
  CSR_WRITE(sepc, epc + ((low & 3) == 3 ? 4 : 2));
}

/* ------------------------------------------------------------------ workloads */

static volatile uint64_t sink;

static uint64_t int_mix(uint64_t seed, int n) {
  uint64_t x = seed, acc = 0;
  uint32_t w = (uint32_t)seed;
  int64_t s = (int64_t)seed;
  for (int i = 1; i <= n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w = w * 1664525u + 1013904223u;
    acc += x * (uint64_t)i + (x / (uint64_t)(i + 3)) - (x % (uint64_t)(i + 5));
    acc ^= (uint64_t)((int64_t)w >> 3) + (w >> (i & 31)) + (w << (i & 15));
    s = s * 3 - (int64_t)(x >> 40) / (i | 1) + (s % 7);
    int32_t sw = (int32_t)w;
    acc += (uint64_t)(int64_t)(sw / (i | 1)) + (uint64_t)(sw % 13) + (uint64_t)((uint32_t)sw / 7u);
    acc += (uint64_t)(((__int128)s * (__int128)x) >> 64) + (uint64_t)(((unsigned __int128)x * acc) >> 64);
    if ((int64_t)x < s) acc += 1;
    if (x < acc) acc -= 3;
    if ((int32_t)w > sw >> 1) acc ^= 5;
    acc = (acc << 1 | acc >> 63) + (uint64_t)(x < (uint64_t)i) + (uint64_t)(s < 0);
  }
  return acc + (uint64_t)s + w;
}

static int8_t b8[256];
static uint8_t u8[256];
static int16_t b16[256];
static uint16_t u16[256];
static int32_t b32[256];
static uint32_t u32[256];
static uint64_t b64[256];

static uint64_t mem_mix(int n) {
  uint64_t acc = 0;
  for (int i = 0; i < 256; i++) {
    b8[i] = (int8_t)(i * 37);
    u8[i] = (uint8_t)(i * 91);
    b16[i] = (int16_t)(i * 4099);
    u16[i] = (uint16_t)(i * 40503);
    b32[i] = (int32_t)(i * 2654435761u);
    u32[i] = i * 2246822519u;
    b64[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
  }
  for (int r = 0; r < n; r++) {
    for (int i = 0; i < 256; i++) {
      int j = (i * 7 + r) & 255;
      acc += (uint64_t)(int64_t)b8[j] + u8[i] + (uint64_t)(int64_t)b16[j] + u16[i];
      acc += (uint64_t)(int64_t)b32[j] + u32[i] + b64[j];
      b64[i] ^= acc;
      u32[j] += (uint32_t)acc;
      u16[i] = (uint16_t)acc;
      b8[j] = (int8_t)acc;
    }
  }
  /* Misaligned loads and stores. */
  volatile uint8_t *p = (volatile uint8_t *)b64;
  for (int i = 1; i < 8; i++) {
    volatile uint64_t *q = (volatile uint64_t *)(p + i);
    volatile uint32_t *q4 = (volatile uint32_t *)(p + 8 * i + 1);
    volatile uint16_t *q2 = (volatile uint16_t *)(p + 16 * i + 3);
    *q += acc;
    *q4 += (uint32_t)acc;
    *q2 += (uint16_t)acc;
    acc += *q + *q4 + *q2;
  }
  return acc;
}

static double fmin_d(double a, double b) { double r; __asm__("fmin.d %0, %1, %2" : "=f"(r) : "f"(a), "f"(b)); return r; }
static double fmax_d(double a, double b) { double r; __asm__("fmax.d %0, %1, %2" : "=f"(r) : "f"(a), "f"(b)); return r; }
static float fmin_s(float a, float b) { float r; __asm__("fmin.s %0, %1, %2" : "=f"(r) : "f"(a), "f"(b)); return r; }
static float fmax_s(float a, float b) { float r; __asm__("fmax.s %0, %1, %2" : "=f"(r) : "f"(a), "f"(b)); return r; }

static double fd[64];
static float ff[64];

static uint64_t fp_mix(int n) {
  double a = 1.5, b = 0.25;
  float c = 2.5f, d = 0.75f;
  for (int i = 0; i < 64; i++) {
    fd[i] = (double)i * 0.5 + 1.0;
    ff[i] = (float)i * 0.25f + 1.0f;
  }
  for (int r = 0; r < n; r++) {
    for (int i = 1; i < 64; i++) {
      a = __builtin_fma(fd[i], b, a) / (fd[i - 1] + 1.0);
      b = __builtin_sqrt(a * a + fd[i]) - b * 0.5;
      c = __builtin_fmaf(ff[i], d, c) / (ff[i - 1] + 1.0f);
      d = __builtin_sqrtf(c * c + ff[i]) - d * 0.5f;
      fd[i] = a < b ? fmin_d(a, b) : fmax_d(a, -b);
      ff[i] = c <= d ? fmin_s(c, d) : fmax_s(c, -__builtin_fabsf(d));
      a += (double)(long)(b * 3.0) + (double)(unsigned)(i * 3) + (double)c;
      c += (float)(int)(d * 2.0f) + (float)(uint64_t)i - (float)b;
      if (a != a || a > 1e300) a = 1.0;
    }
  }
  uint64_t bits;
  __builtin_memcpy(&bits, &a, 8);
  return bits + (uint64_t)(long)b + (uint64_t)(int)c + (uint64_t)(long)(d * 100.0f);
}

static volatile uint64_t a64;
static volatile uint32_t a32;

static uint64_t amo_mix(int n) {
  uint64_t acc = 0;
  for (int i = 0; i < n; i++) {
    acc += __atomic_fetch_add(&a64, (uint64_t)i, __ATOMIC_SEQ_CST);
    acc += __atomic_fetch_add(&a32, (uint32_t)i, __ATOMIC_RELAXED);
    acc += __atomic_exchange_n(&a64, acc, __ATOMIC_ACQ_REL);
    acc += __atomic_fetch_or(&a32, 1u << (i & 31), __ATOMIC_SEQ_CST);
    acc += __atomic_fetch_and(&a64, ~(1ull << (i & 63)), __ATOMIC_SEQ_CST);
    acc += __atomic_fetch_xor(&a32, (uint32_t)acc, __ATOMIC_SEQ_CST);
    uint64_t expect = a64;
    __atomic_compare_exchange_n(&a64, &expect, expect + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    uint32_t e32 = a32;
    __atomic_compare_exchange_n(&a32, &e32, e32 * 3, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    uint64_t t;
    __asm__ volatile("amomax.d %0, %1, (%2)" : "=r"(t) : "r"(acc), "r"(&a64) : "memory");
    acc += t;
    __asm__ volatile("amominu.w %0, %1, (%2)" : "=r"(t) : "r"(acc), "r"(&a32) : "memory");
    acc += t;
    __asm__ volatile("amomin.d %0, %1, (%2)" : "=r"(t) : "r"(acc), "r"(&a64) : "memory");
    acc += t;
    __asm__ volatile("amomaxu.w %0, %1, (%2)" : "=r"(t) : "r"(acc), "r"(&a32) : "memory");
    acc += t;
  }
  return acc;
}

void exercise(void *scratch, ulong fault, ulong mmio);
static int paging, in_user;
static uint8_t xbuf[16384] __attribute__((aligned(4096)));

/* Work that U-mode and S-mode both run. */
static uint64_t work(int n) {
  exercise(xbuf, paging ? 0x7ff00000ul : 0, in_user ? 0 : 0x10000007ul);
  return int_mix(0x1234567 + n, 40 * n) + mem_mix(n) + fp_mix(n) + amo_mix(10 * n);
}

static void user_main(void) {
  sink += work(2);
  __asm__ volatile(".word 0"); /* illegal instruction in U-mode */
  sink += *(volatile uint64_t *)0x7ff00000ul; /* unmapped: load page fault */
  user_exit();
}

/* ------------------------------------------------------------------ S-mode only */

#define UART 0x10000000ul
#define PLIC 0x0c000000ul

static void mmio_mix(void) {
  volatile uint8_t *uart = (volatile uint8_t *)UART;
  for (int i = 0; i < 8; i++) {
    uart[7] = (uint8_t)i; /* scratch register */
    sink += uart[7] + uart[5];
  }
  volatile uint32_t *plic = (volatile uint32_t *)PLIC;
  sink += plic[10];
  volatile uint64_t *wide = (volatile uint64_t *)(PLIC + 0x200000);
  sink += *wide;
}

static void csr_mix(void) {
  ulong scratch = CSR_READ(sscratch); /* the trap stack: restored below */
  for (int i = 0; i < 8; i++) {
    CSR_WRITE(sscratch, CSR_READ(sscratch) + (ulong)i);
    sink += CSR_READ(sstatus) + CSR_READ(sie) + CSR_READ(sip) + CSR_READ(time) + CSR_READ(stvec);
    CSR_SET(sie, 0x222);
    CSR_CLEAR(sie, 0x222);
    sink += CSR_READ(satp) + CSR_READ(sepc) + CSR_READ(scause) + CSR_READ(stval);
    __asm__ volatile("csrrwi x0, sscratch, 5\n csrrsi x0, sscratch, 3\n csrrci x0, sscratch, 1");
    ulong f;
    __asm__ volatile("frflags %0\n fsflags x0\n frrm %0\n fsrm %0" : "=r"(f));
  }
  CSR_WRITE(sscratch, scratch);
  __asm__ volatile("fence\n fence.i\n fence rw, rw");
}

static void sbi_mix(void) {
  sink += (ulong)sbi(SBI_BASE, 0, 0, 0, 0).value;
  sink += (ulong)sbi(SBI_BASE, 1, 0, 0, 0).value;
  sink += (ulong)sbi(SBI_BASE, 3, SBI_TIME, 0, 0).value;
  sink += (ulong)sbi(SBI_BASE, 3, 0x12345678, 0, 0).value;
  sink += (ulong)sbi(SBI_RFENCE, 0, 1, 0, 0).error;    /* remote fence.i */
  sink += (ulong)sbi(0x87654321, 0, 0, 0, 0).error;    /* unknown extension */
}

static void trap_mix(int paging) {
  __asm__ volatile(".word 0");                /* illegal */
  __asm__ volatile("ebreak");                 /* breakpoint */
  /* A load and a fetch page fault (the handler returns to the caller). Without paging the
   * address is not RAM, which the hypervisor rightly treats as fatal. */
  if (paging) {
    sink += *(volatile uint64_t *)0x7ff00000ul;
    ((void (*)(void))0x7ff00000ul)();
  }
}

static void interrupts(void) {
  timer_irqs = 0;
  soft_irqs = 0;
  CSR_SET(sie, (1 << 5) | (1 << 1));
  sbi(SBI_TIME, 0, CSR_READ(time) + 50, 0, 0);
  CSR_SET(sstatus, 2);
  while (timer_irqs == 0) __asm__ volatile("wfi");
  sbi(SBI_IPI, 0, 1, 0, 0);
  while (soft_irqs == 0) __asm__ volatile("wfi");
  CSR_CLEAR(sstatus, 2);
  CSR_CLEAR(sie, (1 << 5) | (1 << 1));
}

/* ------------------------------------------------------------------ paging */

#define PTE_V 1ul
#define PTE_R 2ul
#define PTE_W 4ul
#define PTE_X 8ul
#define PTE_U 16ul
#define PTE_G 32ul
#define PTE_A 64ul
#define PTE_D 128ul
#define USER_OFF 0x40000000ul /* U-mode sees the image at its address minus this */

static uint64_t root[512] __attribute__((aligned(4096)));
static uint64_t l1k[512] __attribute__((aligned(4096)));
static uint64_t l0k[512] __attribute__((aligned(4096)));
static uint64_t l1u[512] __attribute__((aligned(4096)));
static uint64_t l0u[512] __attribute__((aligned(4096)));
static uint8_t ustack[8192] __attribute__((aligned(16)));

static uint64_t table(uint64_t *t) { return (((ulong)t >> 12) << 10) | PTE_V; }
static uint64_t leaf(ulong pa, ulong perm) { return ((pa >> 12) << 10) | perm | PTE_V; }

static void paging_on(void) {
  /* 0..1 GiB: one gigapage over the devices; A/D preset so only the kernel pages fault them in. */
  root[0] = leaf(0, PTE_R | PTE_W | PTE_A | PTE_D);
  /* 0x80000000..: 4 KiB pages over the image's 2 MiB, then 2 MiB pages. A and D clear, so
   * the hart sets them. */
  root[2] = table(l1k);
  l1k[0] = leaf(0x80000000ul, PTE_R | PTE_W | PTE_X);
  l1k[1] = table(l0k);
  for (int i = 0; i < 512; i++) l0k[i] = leaf(0x80200000ul + ((ulong)i << 12), PTE_R | PTE_W | PTE_X | PTE_G);
  for (int i = 2; i < 16; i++) l1k[i] = leaf(0x80000000ul + ((ulong)i << 21), PTE_R | PTE_W | PTE_X);
  /* 0x40200000..: the image again, for U-mode. */
  root[1] = table(l1u);
  l1u[1] = table(l0u);
  for (int i = 0; i < 512; i++)
    l0u[i] = leaf(0x80200000ul + ((ulong)i << 12), PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D);
  __asm__ volatile("sfence.vma" ::: "memory");
  CSR_WRITE(satp, (8ul << 60) | ((ulong)root >> 12));
  __asm__ volatile("sfence.vma" ::: "memory");
  CSR_SET(sstatus, 1ul << 18); /* SUM: the trap handler reads U-mode instructions */
}

/* A loop past the translator's hotness threshold (16 384 backward jumps to one target):
 * the interpreter's compile request and its first entries into translated code. */
static uint64_t hot_loop(void) {
  uint64_t acc = 0;
  for (uint32_t i = 0; i < 20000; i++) acc += i ^ (acc >> 3);
  return acc;
}

/* ------------------------------------------------------------------ main */

void kmain(ulong hartid, ulong fdt) {
  (void)hartid;
  (void)fdt;
  CSR_SET(sstatus, 1ul << 13); /* FS = Initial */
  for (int round = 0; round < 3; round++) {
    sink += work(2);
    sink += hot_loop();
    mmio_mix();
    csr_mix();
    sbi_mix();
    trap_mix(round > 0);
    interrupts();
    if (round == 0) {
      paging_on();
      paging = 1;
    } else {
      in_user = 1;
      run_user((void (*)(void))((ulong)user_main - USER_OFF), (ulong)(ustack + sizeof ustack) - USER_OFF);
      in_user = 0;
      __asm__ volatile("sfence.vma %0" ::"r"(0x40200000ul));
    }
  }
  sbi(SBI_DBCN, 2, 'w', 0, 0);
  sbi(SBI_SRST, 0, 0, 0, 0); /* shutdown */
  for (;;) __asm__ volatile("wfi");
}
