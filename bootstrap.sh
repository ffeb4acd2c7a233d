#!/usr/bin/env bash
# Installs whatever armstop needs (scripts/setup.sh, idempotent), then runs a just recipe:
#   ./bootstrap.sh run     boot the firmware on QEMU and show the cores and SGIs at work
#   ./bootstrap.sh test    run every test
#   ./bootstrap.sh mutants mutation testing of the portable crates (also installs cargo-mutants)
set -euo pipefail
cd "$(dirname "$0")"
# The recipe and its arguments: setup.sh installs what only some recipes need (cargo-mutants)
# when they are named.
bash scripts/setup.sh "$@"
# cargo install puts cargo-mutants here, which a fresh shell may not have on PATH.
PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v just >/dev/null 2>&1; then
  # pip may have put it in a scripts directory that is not on PATH.
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.cargo/bin:$PATH"
  export PATH
fi
exec just "$@"
