#!/usr/bin/env bash
# Installs whatever armstop needs (scripts/setup.sh, idempotent), then runs a just recipe:
#   ./bootstrap.sh run     boot the firmware on QEMU and show the cores and SGIs at work
#   ./bootstrap.sh test    run every test
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if ! command -v just >/dev/null 2>&1; then
  # pip may have put it in a scripts directory that is not on PATH.
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.cargo/bin:$PATH"
  export PATH
fi
exec just "$@"
