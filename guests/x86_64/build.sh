#!/usr/bin/env bash
# Rebuild the bundled x86_64 guest (bzImage and initramfs.cpio.gz) from Debian 12
# packages: the kernel from linux-source-6.1, busybox from busybox-static (Debian's own
# static binary, /bin/busybox, is copied into the initramfs as is; nothing is compiled).
#
# usage: build.sh [--no-kernel] [--no-initramfs] [--new-config] [BUILD_DIR]
#
#   BUILD_DIR      where sources, objects and results go
#                  (default: ${TMPDIR:-/tmp}/visor-guest-x86_64)
#   --no-kernel    skip the kernel (its compile is the slow part, 10-40 minutes on 2 cores)
#   --no-initramfs skip the initramfs
#   --new-config   accept a kernel config that differs from the committed
#                  linux-6.1.config (after editing the option list below); the new
#                  config is written to BUILD_DIR/out/linux-6.1.config
#
# The kernel config is derived, not hand-edited: `make tinyconfig`, then the options in
# kernel_options below applied with scripts/config, then `make olddefconfig`. The result
# must equal the committed linux-6.1.config (the build stops otherwise), so the option
# list here and the committed config cannot drift apart.
#
# Results land in BUILD_DIR/out/. The script never writes into the repository; copy the
# results over the committed files yourself once you have compared them.
#
# Environment:
#   JOBS                   parallel make jobs (default: number of CPUs)
#   SOURCE_DATE_EPOCH      initramfs mtimes (default 1796515200 = 2026-12-06 00:00:00 UTC)
#   KBUILD_BUILD_TIMESTAMP, KBUILD_BUILD_USER, KBUILD_BUILD_HOST
#                          kernel version-string fields (defaults match the committed
#                          bzImage: "Sun Dec  6 00:00:00 UTC 2026", root, vm)
#
# Needs (Debian 12): gcc make flex bison bc xz-utils cpio gzip libelf-dev libssl-dev
# linux-source-6.1 busybox-static.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
do_kernel=1
do_initramfs=1
new_config=0
build_dir=""
for arg in "$@"; do
  case "$arg" in
    --no-kernel) do_kernel=0 ;;
    --no-initramfs) do_initramfs=0 ;;
    --new-config) new_config=1 ;;
    -h | --help)
      sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "build.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
    *)
      if [ -n "$build_dir" ]; then
        echo "build.sh: only one BUILD_DIR may be given (got '$build_dir' and '$arg')" >&2
        exit 2
      fi
      build_dir=$arg
      ;;
  esac
done
build_dir=${build_dir:-${TMPDIR:-/tmp}/visor-guest-x86_64}
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
out=$build_dir/out
mkdir -p "$out"

jobs=${JOBS:-$(nproc)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1796515200}
export KBUILD_BUILD_TIMESTAMP=${KBUILD_BUILD_TIMESTAMP:-Sun Dec  6 00:00:00 UTC 2026}
export KBUILD_BUILD_USER=${KBUILD_BUILD_USER:-root}
export KBUILD_BUILD_HOST=${KBUILD_BUILD_HOST:-vm}

kernel_tarball=/usr/src/linux-source-6.1.tar.xz
busybox_bin=/bin/busybox

die() {
  echo "build.sh: $*" >&2
  exit 1
}

log() {
  echo "== $*"
}

# ---- kernel options -------------------------------------------------------------------
# Applied in order on top of tinyconfig. "SYM" enables, "-SYM" disables, "SYM=VALUE" sets.
kernel_options=(
  # CPUs: 64-bit SMP, up to 8 vCPUs. Without ACPI the kernel finds the other CPUs and
  # the IO-APIC in the MP table (X86_MPPARSE, on by default when ACPI is off).
  64BIT SMP NR_CPUS=8 -ACPI -PCI X86_MPPARSE X86_X2APIC
  # Running under KVM: paravirtual clock (kvmclock) and the KVM CPUID/MSR interfaces.
  HYPERVISOR_GUEST PARAVIRT KVM_GUEST PARAVIRT_CLOCK
  # Relocatable, so a loader may place the kernel at any 2 MiB-aligned address (the
  # boot protocol's relocatable_kernel flag), but no KASLR: boots are repeatable.
  RELOCATABLE -RANDOMIZE_BASE
  # Kernel image compressed with gzip: it unpacks several times faster than the xz
  # tinyconfig picks, for a somewhat larger bzImage.
  KERNEL_GZIP -KERNEL_XZ
  # Tickless idle: an idle guest halts instead of taking a timer exit every tick.
  NO_HZ_IDLE HIGH_RES_TIMERS
  # Console: the 8250 UART (COM1, port 0x3f8, IRQ 4) and early printk on it.
  PRINTK PRINTK_TIME EARLY_PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE UNIX98_PTYS
  PANIC_TIMEOUT=0
  # Userspace: ELF and #! binaries, the initramfs (gzip only), the usual syscalls.
  BINFMT_ELF BINFMT_SCRIPT BLK_DEV_INITRD RD_GZIP -RD_BZIP2 -RD_LZMA -RD_XZ -RD_LZO
  -RD_LZ4 -RD_ZSTD MULTIUSER FUTEX EPOLL SIGNALFD TIMERFD EVENTFD SHMEM AIO IO_URING
  POSIX_TIMERS FILE_LOCKING INOTIFY_USER
  # File systems.
  PROC_FS SYSFS DEVTMPFS DEVTMPFS_MOUNT TMPFS BLOCK EXT4_FS
  # Networking, for virtio-net.
  NET UNIX INET PACKET NETDEVICES NET_CORE
  # virtio over MMIO only (no PCI): block, net, console, entropy. Devices come from the
  # kernel command line (virtio_mmio.device=SIZE@ADDR:IRQ).
  VIRTIO_MENU VIRTIO VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES BLK_DEV VIRTIO_BLK
  VIRTIO_NET VIRTIO_CONSOLE HW_RANDOM HW_RANDOM_VIRTIO
  # Defaults that olddefconfig turns on once the options above make them visible, and
  # that a serial-console guest without PCI does not use: IPv6, wireless, the Ethernet
  # and Wi-Fi vendor drivers, the input layer (PS/2 keyboard and mouse), the VGA text
  # console, Intel ITMT priorities and the cpufreq they pull in, legacy BSD ptys, VIA's RNG.
  -IPV6 -INET_DIAG -WIRELESS -WLAN -ETHERNET -INPUT -SERIO -VT -HID -SCHED_MC_PRIO -CPU_FREQ
  -LEGACY_PTYS -HW_RANDOM_VIA
)

apply_kernel_options() { # <source dir> <object dir>
  local cfg=$2/.config opt
  local -a args=()
  for opt in "${kernel_options[@]}"; do
    case "$opt" in
      -*) args+=(--disable "${opt#-}") ;;
      *=*) args+=(--set-val "${opt%%=*}" "${opt#*=}") ;;
      *) args+=(--enable "$opt") ;;
    esac
  done
  "$1/scripts/config" --file "$cfg" "${args[@]}"
}

# ---- prerequisites --------------------------------------------------------------------
missing=()
need_tool() {
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need_tool gzip gzip
if [ "$do_kernel" = 1 ]; then
  need_tool gcc gcc
  need_tool make make
  need_tool flex flex
  need_tool bison bison
  need_tool bc bc
  need_tool xz xz-utils
  [ -f /usr/include/libelf.h ] || missing+=(libelf-dev)
  [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  [ -f "$kernel_tarball" ] || missing+=(linux-source-6.1)
fi
if [ "$do_initramfs" = 1 ]; then
  need_tool cpio cpio
  [ -x "$busybox_bin" ] || missing+=(busybox-static)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  die "missing packages; install them with: apt-get install ${missing[*]}"
fi
if [ "$(uname -m)" != x86_64 ]; then
  die "build on an x86_64 host (the kernel is built with the native gcc, and the initramfs takes the host's $busybox_bin)"
fi

# ---- kernel ---------------------------------------------------------------------------
if [ "$do_kernel" = 1 ]; then
  ksrc=$build_dir/linux-source-6.1
  kobj=$build_dir/linux-obj
  if [ ! -f "$ksrc/Makefile" ]; then
    log "unpacking $kernel_tarball"
    tar -xJf "$kernel_tarball" -C "$build_dir"
  fi
  kver=$(make -s -C "$ksrc" kernelversion)
  log "kernel $kver: configuring in $kobj (tinyconfig + ${#kernel_options[@]} options)"
  mkdir -p "$kobj"
  rm -f "$kobj/.config"
  # tinyconfig is allnoconfig merged with the tiny.config fragments; the merge script
  # reports every value the fragments override, which is expected.
  make -s -C "$ksrc" O="$kobj" ARCH=x86_64 tinyconfig >"$kobj/tinyconfig.log"
  apply_kernel_options "$ksrc" "$kobj"
  make -s -C "$ksrc" O="$kobj" ARCH=x86_64 olddefconfig
  cp "$kobj/.config" "$out/linux-6.1.config"
  # Every option asked for must have survived olddefconfig (a dependency not met drops
  # an option silently).
  for opt in "${kernel_options[@]}"; do
    case "$opt" in
      -*) grep -qx "# CONFIG_${opt#-} is not set" "$kobj/.config" || ! grep -q "^CONFIG_${opt#-}=" "$kobj/.config" ||
        die "kernel option ${opt#-} is still set after olddefconfig (something selects it)" ;;
      *=*) grep -qx "CONFIG_${opt%%=*}=${opt#*=}" "$kobj/.config" ||
        die "kernel option $opt did not stick after olddefconfig (unmet dependency?)" ;;
      *) grep -qx "CONFIG_$opt=y" "$kobj/.config" ||
        die "kernel option $opt did not stick after olddefconfig (unmet dependency?)" ;;
    esac
  done
  if [ -f "$here/linux-6.1.config" ] &&
    ! diff -q -I '^# [A-Z][a-z][a-z] [A-Z][a-z][a-z] ' "$here/linux-6.1.config" "$kobj/.config" >/dev/null; then
    if [ "$new_config" = 1 ]; then
      log "kernel config differs from the committed linux-6.1.config (--new-config: using it)"
    else
      diff -u -I '^# [A-Z][a-z][a-z] [A-Z][a-z][a-z] ' "$here/linux-6.1.config" "$kobj/.config" | head -40 >&2 || true
      die "the generated kernel config differs from the committed linux-6.1.config (diff above); \
a different kernel version, or the option list changed (pass --new-config to accept it)"
    fi
  fi
  log "kernel $kver: building bzImage with $jobs jobs"
  make -s -C "$ksrc" O="$kobj" ARCH=x86_64 -j"$jobs" bzImage
  cp "$kobj/arch/x86/boot/bzImage" "$out/bzImage"
fi

# ---- initramfs ------------------------------------------------------------------------
if [ "$do_initramfs" = 1 ]; then
  file_out=$(file -b "$busybox_bin" 2>/dev/null || true)
  case "$file_out" in
    '' | *x86-64*statically\ linked*) ;;
    *) die "$busybox_bin is not a static x86-64 binary ($file_out); install busybox-static" ;;
  esac
  log "initramfs: packing $busybox_bin ($("$busybox_bin" 2>&1 | head -1 | cut -d' ' -f1-2))"
  root=$build_dir/rootfs
  rm -rf "$root"
  mkdir -p "$root"
  (cd "$root" && mkdir -p bin dev etc mnt proc root sbin sys tmp usr/bin usr/sbin)
  install -m 0755 "$busybox_bin" "$root/bin/busybox"
  install -m 0755 "$here/init.sh" "$root/init"
  chmod 0755 "$root" "$root"/* "$root"/usr/*
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
    gzip -9 -n >"$out/initramfs.cpio.gz"
fi

# ---- summary --------------------------------------------------------------------------
log "results in $out"
for f in bzImage initramfs.cpio.gz linux-6.1.config; do
  [ -f "$out/$f" ] || continue
  committed=$here/$f
  note=""
  if [ -f "$committed" ]; then
    if cmp -s "$out/$f" "$committed"; then note="(identical to the committed file)"; else note="(differs from the committed file)"; fi
  fi
  printf '%s  %s %s\n' "$(sha256sum "$out/$f" | cut -d' ' -f1)" "$f" "$note"
done
