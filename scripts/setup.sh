#!/usr/bin/env bash
# Installs what armstop needs to build and test, and nothing that is already there.
#
# Idempotent: every step checks first and prints what it installs. Run as root (or with
# passwordless sudo) on Debian 12 "bookworm"; on other systems it tells you what to get instead.
#
#   - Rust 1.96 with matching library sources (Debian's rustc-web/cargo-web/rust-web-src) so that
#     `-Zbuild-std` can build `core` for aarch64-unknown-none offline, plus lld to link it.
#   - qemu-system-aarch64 >= 9 from bookworm-backports (QEMU 10.x; needed for `raspi4b`).
#   - `just`, from PyPI (rust-just), falling back to `cargo install just`.
#   - cargo-mutants (crates.io, pinned), only when `mutants` is among the recipes named:
#     `scripts/setup.sh [recipe...]`, as `./bootstrap.sh <recipe>` calls it.
#   - The Raspberry Pi 4 boot files, from Debian's packages, unpacked (no install) under
#     target/pi-firmware/: TF-A's BL31 for the Pi 4 (`arm-trusted-firmware`, arm64) and the
#     VideoCore firmware `start4.elf`/`fixup4.dat` (`raspi-firmware`, non-free-firmware); plus
#     bl31-qemu.bin, the same BL31 patched for emulation only (see below).
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install the packages listed in README.md by hand"
  SUDO="sudo"
fi

have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
}

apt_install() { # apt_install [-t suite] pkg...
  local target=()
  if [ "$1" = "-t" ]; then target=(-t "$2"); shift 2; fi
  local missing=()
  for p in "$@"; do have_deb "$p" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  apt_update
  say "installing ${missing[*]} ${target[*]:+(from ${target[1]})}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${target[@]}" "${missing[@]}" >/dev/null
}

# --- Debian sources: backports (QEMU 10) and non-free-firmware (Pi boot files, later) ---------
if [ -r /etc/os-release ] && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
  SRC=/etc/apt/sources.list.d/armstop-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Reuse the URI and keyring of the existing Debian entry so mirrors/snapshots keep working.
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')
    key=$(grep -hs '^Signed-By:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')
    uri=${uri:-http://deb.debian.org/debian}
    key=${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
    say "adding bookworm-backports (main non-free-firmware) to $SRC"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main non-free-firmware\nSigned-By: %s\n' \
      "$uri" "$key" | $SUDO tee "$SRC" >/dev/null
    APT_UPDATED=0
  fi
  apt_install rustc-web cargo-web rust-web-src lld llvm gdb-multiarch mtools dosfstools
  if ! command -v qemu-system-aarch64 >/dev/null 2>&1 || \
     ! qemu-system-aarch64 -machine help 2>/dev/null | grep -q '^raspi4b'; then
    apt_install -t bookworm-backports qemu-system-arm
  fi
else
  say "not Debian bookworm: make sure you have a nightly Rust with rust-src (or RUSTC_BOOTSTRAP=1"
  say "with matching sources), ld.lld, and qemu-system-aarch64 >= 9; see README.md"
fi

# --- Raspberry Pi 4 boot files ---------------------------------------------------------------------
# Unpacked from the .deb files, never installed: arm-trusted-firmware is an arm64 package.
PI_DIR="$(cd "$(dirname "$0")/.." && pwd)/target/pi-firmware"
# The exact BL31 the QEMU work-around was checked against (Debian 2.8.0+dfsg-1, rpi4/bl31.bin).
BL31_SHA256=2033f257de495cf2d31c81704811bf1bab955e24d4d1823900a7615cadc15ccb
if [ -r /etc/os-release ] && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release \
   && { [ ! -f "$PI_DIR/bl31.bin" ] || [ ! -f "$PI_DIR/boot/start4.elf" ]; }; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "adding the arm64 package architecture (for arm-trusted-firmware's .deb)"
    $SUDO dpkg --add-architecture arm64
    APT_UPDATED=0
  fi
  NF=/etc/apt/sources.list.d/armstop-pi.sources
  if ! apt-cache policy raspi-firmware 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    if [ ! -f "$NF" ]; then
      uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')
      key=$(grep -hs '^Signed-By:' /etc/apt/sources.list.d/debian.sources | head -n1 | awk '{print $2}')
      say "adding bookworm non-free-firmware (raspi-firmware) to $NF"
      printf 'Types: deb\nURIs: %s\nSuites: bookworm\nComponents: non-free-firmware\nSigned-By: %s\n' \
        "${uri:-http://deb.debian.org/debian}" "${key:-/usr/share/keyrings/debian-archive-keyring.gpg}" \
        | $SUDO tee "$NF" >/dev/null
    fi
    APT_UPDATED=0
  fi
  apt_update
  tmp=$(mktemp -d)
  say "downloading arm-trusted-firmware (arm64) and raspi-firmware into $PI_DIR"
  (cd "$tmp" && chmod 777 . && apt-get download -qq arm-trusted-firmware:arm64 raspi-firmware) \
    || die "could not download arm-trusted-firmware:arm64 / raspi-firmware"
  mkdir -p "$PI_DIR/boot"
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$tmp/x"
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >> "$tmp/versions"
  done
  cp "$tmp/x/usr/lib/arm-trusted-firmware/rpi4/bl31.bin" "$PI_DIR/bl31.bin"
  cp "$tmp/x/usr/lib/raspi-firmware/start4.elf" "$tmp/x/usr/lib/raspi-firmware/fixup4.dat" "$PI_DIR/boot/"
  cp "$tmp/x/usr/share/doc/raspi-firmware/copyright" "$PI_DIR/boot/LICENCE.raspi-firmware" 2>/dev/null || true
  cp "$tmp/x/usr/share/doc/arm-trusted-firmware/copyright" "$PI_DIR/LICENCE.arm-trusted-firmware" 2>/dev/null || true
  sort "$tmp/versions" > "$PI_DIR/VERSIONS"
  rm -rf "$tmp"
fi
# Emulation only (QEMU raspi4b-tfa), never on a card. Two things keep a core that TF-A turned off
# from coming back under QEMU; both are patched in the exact build they were checked against,
# each word checked before it is replaced:
#  1. TF-A's CPU_OFF ends with `msr RMR_EL3, x0` (a warm-reset request), which QEMU ignores: the
#     core would sit in `wfi` for good. On the Pi the warm reset restarts the core at 0, whose
#     first instruction is `b 0x1000` (BL31's entry, which resets SCTLR_EL3); the patch
#     branches to 0x1000 directly.
#  2. TF-A's Raspberry Pi pen (plat/rpi/common/aarch64/plat_helpers.S, plat_wait_for_warm_boot)
#     clears the core's mailbox entry to WAIT on arrival, after PSCI has already reported the
#     core OFF: a CPU_ON landing in between writes GO and has it erased, and the core never
#     leaves the pen (AFFINITY_INFO stays ON_PENDING). On hardware that window is microseconds;
#     under TCG a descheduled vCPU widens it to milliseconds. The patch clears the entry when GO
#     is consumed instead: `str x1,[x0]` on arrival becomes `nop`, and the `mov x0,#0x100;
#     ldr x1,[x0]` that loads the entry point after GO becomes `str xzr,[x0]` (entry = WAIT)
#     and a PC-relative `ldr x1, 0x100` (the same word).
BL31_QEMU_SHA256=b8e37516f95aabc0c91b11671f1a67de568b7ebb3d4e6a9326a16869116b553f
if [ -f "$PI_DIR/bl31.bin" ] && { [ ! -f "$PI_DIR/bl31-qemu.bin" ] || \
     [ "$(sha256sum "$PI_DIR/bl31-qemu.bin" | awk '{print $1}')" != "$BL31_QEMU_SHA256" ]; }; then
  have=$(sha256sum "$PI_DIR/bl31.bin" | awk '{print $1}')
  if [ "$have" != "$BL31_SHA256" ]; then
    rm -f "$PI_DIR/bl31-qemu.bin"
    say "warning: $PI_DIR/bl31.bin is not the BL31 the QEMU work-around was checked against"
    say "  (sha256 $have); on raspi4b-tfa, cores turned off cannot be turned on again"
  else
    python3 - "$PI_DIR/bl31.bin" "$PI_DIR/bl31-qemu.bin" "$BL31_QEMU_SHA256" <<'PY'
import hashlib, struct, sys
src, dst, want = sys.argv[1], sys.argv[2], sys.argv[3]
data = bytearray(open(src, "rb").read())

def b(frm, to):  # B <to>
    return 0x14000000 | (((to - frm) >> 2) & 0x3FFFFFF)

def ldr_literal(frm, to, rt):  # LDR Xrt, <to>
    return 0x58000000 | ((((to - frm) >> 2) & 0x7FFFF) << 5) | rt

assert struct.unpack_from("<I", data, 0)[0] == 0x14000400, "reset vector is not b 0x1000"
PATCHES = [  # offset, expected word, replacement
    (0x889C, 0xD51EC040, b(0x889C, 0x1000)),  # msr RMR_EL3, x0 -> b 0x1000
    (0x231C, 0xF9000001, 0xD503201F),  # pen: str x1, [x0] (entry = WAIT) -> nop
    (0x2330, 0xD2802000, 0xF900001F),  # pen: mov x0, #0x100 -> str xzr, [x0]
    (0x2334, 0xF9400001, ldr_literal(0x2334, 0x100, 1)),  # pen: ldr x1, [x0] -> ldr x1, 0x100
]
for off, old, new in PATCHES:
    word = struct.unpack_from("<I", data, off)[0]
    assert word == old, f"expected {old:#010x} at {off:#x}, found {word:#010x}"
    struct.pack_into("<I", data, off, new)
got = hashlib.sha256(data).hexdigest()
assert got == want, f"patched BL31 has sha256 {got}, expected {want}"
open(dst, "wb").write(data)
PY
    say "wrote $PI_DIR/bl31-qemu.bin (RMR_EL3 warm reset emulated, TF-A pen race closed; QEMU only)"
  fi
fi

# --- just ---------------------------------------------------------------------------------------
if ! command -v just >/dev/null 2>&1; then
  if command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1; then
    say "installing just (PyPI rust-just)"
    "$(command -v pip3 || command -v pip)" install -q rust-just || true
  fi
  if ! command -v just >/dev/null 2>&1; then
    command -v cargo >/dev/null 2>&1 || die "need pip or cargo to install just"
    say "installing just (cargo install just)"
    cargo install --locked -q just
  fi
fi

# --- cargo-mutants, for `just mutants` only ------------------------------------------------------
# Built from crates.io with the host's cargo (a few minutes on 2 CPUs), so only when a recipe
# named on the command line needs it (`./bootstrap.sh mutants`, `scripts/setup.sh mutants`):
# `just test` and CI do not use it. Pinned: its config keys and outcome files are what
# scripts/mutants.sh reads. 27.1.0 needs Rust 1.88 or later.
CARGO_MUTANTS_VERSION=27.1.0
for recipe in "$@"; do
  [ "$recipe" = mutants ] || continue
  command -v cargo >/dev/null 2>&1 || die "need cargo to install cargo-mutants"
  PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
  if [ "$(cargo mutants --version 2>/dev/null)" != "cargo-mutants $CARGO_MUTANTS_VERSION" ]; then
    say "installing cargo-mutants $CARGO_MUTANTS_VERSION (cargo install --locked, with $(cargo --version))"
    nice -n 15 cargo install --locked -q cargo-mutants --version "$CARGO_MUTANTS_VERSION"
  fi
  break
done

# --- checks: fail here, with a clear reason, rather than later in a build ---------------------
for tool in just ld.lld qemu-system-aarch64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after set-up"
done
qemu-system-aarch64 -machine help | grep -q '^raspi4b' || die "qemu-system-aarch64 has no raspi4b machine (need QEMU >= 9)"
[ -f "$PI_DIR/bl31.bin" ] && [ -f "$PI_DIR/boot/start4.elf" ] \
  || say "warning: no Raspberry Pi boot files in $PI_DIR: the raspi4b machines and \`just sdcard\` need them"
[ -d /usr/lib/rustlib/src/rust/library/core ] || [ -n "${ARMSTOP_CARGO:-}" ] \
  || die "no Rust library sources for -Zbuild-std (rust-web-src)"
say "ready: $(just --version), $(qemu-system-aarch64 --version | head -n1)"
