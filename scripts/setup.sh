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

# --- checks: fail here, with a clear reason, rather than later in a build ---------------------
for tool in just ld.lld qemu-system-aarch64; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after set-up"
done
qemu-system-aarch64 -machine help | grep -q '^raspi4b' || die "qemu-system-aarch64 has no raspi4b machine (need QEMU >= 9)"
[ -d /usr/lib/rustlib/src/rust/library/core ] || [ -n "${ARMSTOP_CARGO:-}" ] \
  || die "no Rust library sources for -Zbuild-std (rust-web-src)"
say "ready: $(just --version), $(qemu-system-aarch64 --version | head -n1)"
