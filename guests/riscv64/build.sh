#!/usr/bin/env bash
# Rebuild the bundled riscv64 guest (Image.gz and initramfs.cpio.gz) from Debian 12
# packages: the kernel from linux-source-6.1, busybox from `apt-get source busybox`.
#
# usage: build.sh [--no-kernel] [--no-initramfs] [--busybox=FILE] [BUILD_DIR]
#
#   BUILD_DIR      where sources, objects and results go
#                  (default: ${TMPDIR:-/tmp}/visor-guest-riscv64)
#   --no-kernel    skip the kernel (its compile is the slow part, a few minutes)
#   --no-initramfs skip busybox and the initramfs
#   --busybox=FILE pack this busybox binary instead of building one (for example the
#                  one in the committed initramfs, to change only /init)
#
# Results land in BUILD_DIR/out/. The script never writes into the repository; copy the
# results over the committed files yourself once you have compared them.
#
# Environment:
#   JOBS                   parallel make jobs (default: number of CPUs)
#   SOURCE_DATE_EPOCH      busybox build stamp and initramfs mtimes
#                          (default 1795313993 = 2026-11-22 02:19:53 UTC, the stamp of the
#                          committed busybox, so the rebuilt binary is byte-identical)
#   KBUILD_BUILD_TIMESTAMP, KBUILD_BUILD_USER, KBUILD_BUILD_HOST
#                          kernel version-string fields (defaults match the committed
#                          Image: "Sun Nov 22 02:19:33 UTC 2026", root, vm)
#
# Needs (Debian 12): gcc-riscv64-linux-gnu make flex bison bc xz-utils cpio gzip dpkg-dev
# linux-source-6.1, and a deb-src line in the apt sources for `apt-get source busybox`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
do_kernel=1
do_initramfs=1
busybox_given=""
build_dir=""
for arg in "$@"; do
  case "$arg" in
    --no-kernel) do_kernel=0 ;;
    --no-initramfs) do_initramfs=0 ;;
    --busybox=*) busybox_given=$(cd "$(dirname "${arg#--busybox=}")" && pwd)/$(basename "${arg#--busybox=}") ;;
    -h | --help)
      sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
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
build_dir=${build_dir:-${TMPDIR:-/tmp}/visor-guest-riscv64}
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
out=$build_dir/out
mkdir -p "$out"

jobs=${JOBS:-$(nproc)}
cross=riscv64-linux-gnu-
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1795313993}
export KBUILD_BUILD_TIMESTAMP=${KBUILD_BUILD_TIMESTAMP:-Sun Nov 22 02:19:33 UTC 2026}
export KBUILD_BUILD_USER=${KBUILD_BUILD_USER:-root}
export KBUILD_BUILD_HOST=${KBUILD_BUILD_HOST:-vm}

kernel_tarball=/usr/src/linux-source-6.1.tar.xz
busybox_orig=busybox_1.35.0.orig.tar.bz2

die() {
  echo "build.sh: $*" >&2
  exit 1
}

log() {
  echo "== $*"
}

# ---- prerequisites --------------------------------------------------------------------
missing=()
need_tool() {
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need_tool "${cross}gcc" gcc-riscv64-linux-gnu
need_tool make make
need_tool gzip gzip
if [ "$do_kernel" = 1 ]; then
  need_tool flex flex
  need_tool bison bison
  need_tool bc bc
  need_tool xz xz-utils
  need_tool gcc gcc
  [ -f "$kernel_tarball" ] || missing+=(linux-source-6.1)
fi
if [ "$do_initramfs" = 1 ]; then
  need_tool cpio cpio
  if [ -z "$busybox_given" ]; then
    need_tool dpkg-source dpkg-dev
    need_tool bzip2 bzip2
    need_tool gcc gcc
  elif [ ! -f "$busybox_given" ]; then
    die "--busybox: no file $busybox_given"
  fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
  die "missing packages; install them with: apt-get install ${missing[*]}"
fi

# Run a config target and fail unless it left the committed config unchanged: a change
# means the source is not the version the config was made for.
check_config_unchanged() { # <what> <generated .config> <committed config>
  if ! diff -q -I '^# [A-Z][a-z][a-z] [A-Z][a-z][a-z] ' "$2" "$3" >/dev/null; then
    diff -u -I '^# [A-Z][a-z][a-z] [A-Z][a-z][a-z] ' "$3" "$2" | head -40 >&2 || true
    die "$1: the config changed when applied to this source (diff above); wrong source version?"
  fi
}

# ---- kernel ---------------------------------------------------------------------------
if [ "$do_kernel" = 1 ]; then
  ksrc=$build_dir/linux-source-6.1
  kobj=$build_dir/linux-obj
  if [ ! -f "$ksrc/Makefile" ]; then
    log "unpacking $kernel_tarball"
    tar -xJf "$kernel_tarball" -C "$build_dir"
  fi
  kver=$(make -s -C "$ksrc" kernelversion)
  log "kernel $kver: configuring in $kobj"
  mkdir -p "$kobj"
  cp "$here/linux-6.1.config" "$kobj/.config"
  make -s -C "$ksrc" O="$kobj" ARCH=riscv CROSS_COMPILE="$cross" olddefconfig
  check_config_unchanged kernel "$kobj/.config" "$here/linux-6.1.config"
  log "kernel $kver: building Image with $jobs jobs"
  make -s -C "$ksrc" O="$kobj" ARCH=riscv CROSS_COMPILE="$cross" -j"$jobs" Image
  gzip -9 -n -c "$kobj/arch/riscv/boot/Image" >"$out/Image.gz"
  cp "$kobj/arch/riscv/boot/Image" "$out/Image"
fi

# ---- busybox + initramfs --------------------------------------------------------------
if [ "$do_initramfs" = 1 ]; then
  if [ -n "$busybox_given" ]; then
    log "busybox: using $busybox_given"
    cp "$busybox_given" "$out/busybox"
  else
    bsrc_dir=$build_dir/busybox-src
    mkdir -p "$bsrc_dir"
    if [ ! -f "$bsrc_dir/$busybox_orig" ]; then
      if ! apt-cache showsrc busybox 2>/dev/null | grep -q '^Package: busybox'; then
        die "apt knows no busybox source package: add a deb-src entry for bookworm (e.g. a file \
/etc/apt/sources.list.d/debian-src.sources with 'Types: deb-src', 'URIs: http://deb.debian.org/debian', \
'Suites: bookworm bookworm-updates', 'Components: main'), then run apt-get update"
      fi
      log "fetching busybox source (apt-get source --download-only busybox)"
      (cd "$bsrc_dir" && apt-get source --download-only busybox)
    fi
    [ -f "$bsrc_dir/$busybox_orig" ] ||
      die "apt-get source did not produce $busybox_orig (has Debian moved past busybox 1.35.0?)"
    # The guest uses upstream busybox 1.35.0 as shipped in Debian's source package (the
    # .orig tarball, whose checksum apt verified against the .dsc), without Debian's patch
    # series: the committed config was generated on that tree.
    bsrc=$bsrc_dir/busybox-1.35.0
    if [ ! -f "$bsrc/Makefile" ]; then
      tar -xjf "$bsrc_dir/$busybox_orig" -C "$bsrc_dir"
    fi
    bobj=$build_dir/busybox-obj
    mkdir -p "$bobj"
    cp "$here/busybox-1.35.config" "$bobj/.config"
    log "busybox: configuring in $bobj"
    # `yes` answers any question with the default; its SIGPIPE exit is not an error.
    { yes '' || true; } | make -s -C "$bsrc" O="$bobj" oldconfig >/dev/null
    check_config_unchanged busybox "$bobj/.config" "$here/busybox-1.35.config"
    log "busybox: building with $jobs jobs"
    make -s -C "$bsrc" O="$bobj" CROSS_COMPILE="$cross" -j"$jobs" busybox
    cp "$bobj/busybox" "$out/busybox"

  fi
  log "initramfs: packing"
  root=$build_dir/rootfs
  rm -rf "$root"
  mkdir -p "$root"
  (cd "$root" && mkdir -p bin dev etc mnt proc root sbin sys tmp usr/bin usr/sbin)
  install -m 0755 "$out/busybox" "$root/bin/busybox"
  install -m 0755 "$here/init.sh" "$root/init"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
    gzip -9 -n >"$out/initramfs.cpio.gz"
fi

# ---- summary --------------------------------------------------------------------------
log "results in $out"
for f in Image.gz initramfs.cpio.gz busybox; do
  [ -f "$out/$f" ] || continue
  committed=$here/$f
  note=""
  if [ -f "$committed" ]; then
    if cmp -s "$out/$f" "$committed"; then note="(identical to the committed file)"; else note="(differs from the committed file)"; fi
  fi
  printf '%s  %s %s\n' "$(sha256sum "$out/$f" | cut -d' ' -f1)" "$f" "$note"
done
