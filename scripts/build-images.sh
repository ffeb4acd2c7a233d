#!/usr/bin/env bash
# Builds one board's firmware images: every binary of the given packages (default: the main
# image's `armstop` and the test images' `armstop-target-tests`) becomes an image, with no list
# to keep: a new file in tests/target/src/bin/ is an image at the next build.
#
#   scripts/build-images.sh BOARD OUT_DIR [--release] [-p PACKAGE ...] [--manifest-path PATH]
#
# Each image is OUT_DIR/<binary> (the ELF, for QEMU's -kernel, GDB and symbols) and
# OUT_DIR/<binary>.bin (raw, for loaders and SD cards). The board is chosen at build time
# (ARMSTOP_BOARD) and builds in a target directory of its own (target/firmware/<board>, or
# ARMSTOP_TARGET_DIR/<board>), so no board's build can overwrite another's images.
# Toolchain: ARMSTOP_CARGO / ARMSTOP_RUSTC (see the justfile); extra RUSTFLAGS pass through.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BOARD OUT_DIR [--release] [-p PACKAGE ...] [--manifest-path PATH]" >&2
  exit 2
fi
board=$1 out=$2
shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo_bin=${ARMSTOP_CARGO:-$( [ -x /usr/bin/cargo ] && echo /usr/bin/cargo || echo cargo )}
rustc_bin=${ARMSTOP_RUSTC:-$( [ -x /usr/bin/rustc ] && echo /usr/bin/rustc || echo rustc )}
target_dir=${ARMSTOP_TARGET_DIR:-$root/target/firmware}/$board
objcopy=${ARMSTOP_OBJCOPY:-llvm-objcopy}

args=() packages=0
while [ $# -gt 0 ]; do
  case $1 in
    --release) args+=(--release) ;;
    -p) args+=(-p "$2"); packages=1; shift ;;
    --manifest-path) args+=(--manifest-path "$2"); shift ;;
    *) echo "$0: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$packages" -eq 1 ] || args+=(-p armstop -p armstop-target-tests)

command -v "$objcopy" >/dev/null || {
  echo "$0: $objcopy is missing (run \`just setup\`)" >&2
  exit 1
}

mkdir -p "$out"
# Cargo names what it built (JSON on stdout; its diagnostics go to stderr as usual), so the
# images are exactly the binaries it linked, whatever their source layout.
ARMSTOP_BOARD=$board RUSTC=$rustc_bin RUSTC_BOOTSTRAP=1 "$cargo_bin" build --quiet \
  --target aarch64-unknown-none-softfloat \
  -Zbuild-std=core -Zbuild-std-features=compiler-builtins-mem \
  --target-dir "$target_dir" --message-format=json-render-diagnostics "${args[@]}" |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])
' >"$out/.built"

n=0
while IFS= read -r elf; do
  name=$(basename "$elf")
  cp "$elf" "$out/$name"
  "$objcopy" -O binary "$out/$name" "$out/$name.bin"
  n=$((n + 1))
done <"$out/.built"
rm -f "$out/.built"
if [ "$n" -eq 0 ]; then
  echo "$0: cargo built no binary for $board" >&2
  exit 1
fi
