#!/usr/bin/env bash
# Rebuild a bundled guest from Debian packages by running guests/<arch>/build.sh.
#
# usage: scripts/build-guest.sh [ARCH [build.sh options...] [BUILD_DIR]]
#   ARCH is a directory under guests/ (riscv64 or x86_64; riscv64 when omitted).
#   Everything after ARCH is passed to guests/ARCH/build.sh; see
#   `scripts/build-guest.sh riscv64 --help`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=riscv64
if [ "$#" -gt 0 ]; then
  case "$1" in
    -*) ;;
    *)
      if [ ! -d "$repo/guests/$1" ]; then
        echo "build-guest.sh: unknown guest '$1' (have: $(cd "$repo/guests" && echo */ | tr -d /))" >&2
        exit 2
      fi
      arch=$1
      shift
      ;;
  esac
fi
script=$repo/guests/$arch/build.sh
if [ ! -x "$script" ]; then
  echo "build-guest.sh: no guest build script at guests/$arch/build.sh" >&2
  exit 1
fi
exec "$script" "$@"
