#!/usr/bin/env bash
# Regenerates the device tree fixtures in firmware/devicetree/tests/data/, so that
# `cargo test -p armstop-devicetree` needs neither QEMU nor dtc.
#
#   - virt-*.dtb: the blobs QEMU's `virt` machine hands a guest (`-M ...,dumpdtb=`), for the
#     configurations armstop runs in, compacted with dtc (QEMU pads its blob to 1 MiB; the
#     compact one is a few KiB). `dtb-randomness=off` leaves out /chosen's rng-seed and
#     kaslr-seed, so the same QEMU gives the same bytes on every run. `-nic none` because the
#     default NIC needs a ROM file that not every QEMU package ships; it is not in the tree.
#   - every *.dts in that folder (hand-written edge cases and errors; they include base.dts),
#     compiled to the .dtb of the same name, plus too-many-cpus.dtb, generated here.
#
# Installs device-tree-compiler (dtc) with apt-get if it is missing. Needs
# qemu-system-aarch64 (scripts/setup.sh installs it). Commit the .dtb files it writes.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'dump-dtbs: %s\n' "$*"; }
die() { printf 'dump-dtbs: error: %s\n' "$*" >&2; exit 1; }

DATA=firmware/devicetree/tests/data
[ -d "$DATA" ] || die "$DATA not found (run from the armstop tree)"

if ! command -v dtc >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "dtc missing, not root and no sudo: install device-tree-compiler"
    SUDO="sudo"
  fi
  say "installing device-tree-compiler"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq device-tree-compiler
fi
command -v qemu-system-aarch64 >/dev/null 2>&1 || die "qemu-system-aarch64 missing (see scripts/setup.sh)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# dump NAME MACHINE SMP
dump() {
  local name=$1 machine=$2 smp=$3
  qemu-system-aarch64 -M "$machine,dtb-randomness=off,dumpdtb=$tmp/$name.dtb" \
    -cpu cortex-a72 -smp "$smp" -m 1G -nographic -nic none </dev/null >"$tmp/$name.log" 2>&1 ||
    { cat "$tmp/$name.log" >&2; die "qemu failed for $name"; }
  dtc -q -I dtb -O dtb -o "$DATA/$name.dtb" "$tmp/$name.dtb"
  say "$name.dtb ($(stat -c %s "$DATA/$name.dtb") bytes, from $machine -smp $smp)"
}

for n in 1 2 4 8; do dump "virt-gicv2-smp$n" virt,gic-version=2 "$n"; done
# 128 CPUs need a second GICv3 redistributor region (the first holds 123 frames).
for n in 1 4 16 64 128; do dump "virt-gicv3-smp$n" virt,gic-version=3 "$n"; done
dump virt-el2-gicv3-smp4 virt,virtualization=on,gic-version=3 4

for src in "$DATA"/*.dts; do
  [ "$(basename "$src")" = base.dts ] && continue
  out=${src%.dts}.dtb
  dtc -q -I dts -O dtb -o "$out" "$src"
  say "$(basename "$out") (from $(basename "$src"))"
done
dtc -q -I dts -O dtb -o "$DATA/base.dtb" "$DATA/base.dts"
say "base.dtb (from base.dts)"

# One CPU more than armstop supports (armstop-cpuset's MAX_CPUS = 512), in 16-CPU clusters.
{
  printf '/include/ "base.dts"\n/ {\n\tcpus {\n'
  for i in $(seq 0 512); do
    printf '\t\tcpu@%x {\n\t\t\tdevice_type = "cpu";\n\t\t\treg = <0x%x>;\n\t\t};\n' \
      $(( (i / 16) << 8 | (i % 16) )) $(( (i / 16) << 8 | (i % 16) ))
  done
  printf '\t};\n};\n'
} >"$tmp/too-many-cpus.dts"
dtc -q -i "$DATA" -I dts -O dtb -o "$DATA/too-many-cpus.dtb" "$tmp/too-many-cpus.dts"
say "too-many-cpus.dtb (513 CPUs, generated)"
