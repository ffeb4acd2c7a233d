#!/usr/bin/env bash
# `just mutants`: cargo-mutants on the portable crates (stopper, hotplug, PSCI provider, sync,
# the console parser), in two passes, then the verdict (README, "Mutation testing"):
#   1. every mutant against the crates' host tests (.cargo/mutants.toml);
#   2. the mutants pass 1 missed in the code the loom models cover, against those models
#      (.cargo/mutants-loom.toml: --cfg loom, release, `--test loom`). Loom builds are slow, so
#      only what the host tests could not catch goes through them, less the survivors already
#      reviewed and accepted (which went through them when they were);
#   3. scripts/mutants-check.py: a mutant caught (or timed out) in either pass is caught; every
#      survivor must be in .cargo/mutants-allow.txt with its reason, and none may survive in the
#      stopper's and hotplug's core code unless it is equivalent. Exit 1 otherwise.
# Output: target/mutants/{host,loom}/mutants.out (cargo-mutants' own), target/mutants/report.md.
# Options (for a quicker look; the verdict is only whole without them):
#   --host-only   skip pass 2
#   --check-only  rerun only step 3 over the output of an earlier run
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'mutants: %s\n' "$*"; }

host_only=0 check_only=0
for a in "$@"; do
  case $a in
    --host-only) host_only=1 ;;
    --check-only) check_only=1 ;;
    *) say "unknown option $a"; exit 2 ;;
  esac
done

PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! cargo mutants --version >/dev/null 2>&1; then
  say "cargo-mutants is missing: ./bootstrap.sh mutants (or bash scripts/setup.sh mutants) installs it"
  exit 1
fi

out=target/mutants
# cargo-mutants builds every mutant in a scratch copy of the tree under TMPDIR: there, that copy
# and its target directory stay inside this tree's target/.
mkdir -p "$out/tmp"
export TMPDIR="$PWD/$out/tmp"

# cargo-mutants exits 2 when a mutant survives and 3 when one times out: the checker judges
# those. Anything else (1: bad usage, 4: the unmutated tree fails its tests) stops here.
mutants() {
  local rc=0
  # Niced and one job at a time: the host is shared with firmware builds and QEMU runs.
  nice -n 15 cargo mutants --jobs 1 --colors never --no-times "$@" || rc=$?
  case $rc in
    0 | 2 | 3) ;;
    *) say "cargo-mutants failed (exit $rc)"; exit "$rc" ;;
  esac
}

if [ "$check_only" -eq 0 ]; then
  rm -rf "$out/host" "$out/loom"
  start=$SECONDS
  say "pass 1: every mutant against the host tests"
  # A test that takes 20 s where the unmutated ones take about 1 s is hung: counted as a timeout.
  mutants --minimum-test-timeout 20 --output "$out/host"
  say "pass 1 took $(((SECONDS - start) / 60)) min"
  if [ "$host_only" -eq 0 ]; then
    mapfile -t res < <(python3 scripts/mutants-check.py loom-regexes "$out/host" \
      --allow .cargo/mutants-allow.txt)
    if [ "${#res[@]}" -eq 0 ]; then
      say "pass 2: nothing for the loom models (pass 1 left no survivor in their code)"
    else
      start=$SECONDS
      say "pass 2: ${#res[@]} survivors of pass 1 against the loom models"
      # cargo-mutants' own baseline would run `--test loom` in the mutated crates only, and
      # armstop-sync has no loom test of its own (its loom half is run by the others' models):
      # the baseline is this, the models unmutated, and the timeout is fixed (they take about
      # 5 s; a mutant can make loom's search explode).
      RUSTFLAGS="--cfg loom" nice -n 15 cargo test --quiet --release --target-dir target/loom \
        -p armstop-stopper -p armstop-hotplug -p armstop-psci-provider --test loom
      RUSTFLAGS="--cfg loom" mutants --config .cargo/mutants-loom.toml --baseline skip \
        --timeout 120 --output "$out/loom" "${res[@]/#/--re=}"
      say "pass 2 took $(((SECONDS - start) / 60)) min"
    fi
  fi
fi

loom_dir=()
[ -d "$out/loom/mutants.out" ] && loom_dir=("$out/loom")
rc=0
python3 scripts/mutants-check.py report "$out/host" "${loom_dir[@]}" \
  --allow .cargo/mutants-allow.txt | tee "$out/report.md" || rc=$?
if [ "$rc" -ne 0 ]; then
  say "FAILED: a mutant survives that no test catches and .cargo/mutants-allow.txt does not accept"
  exit 1
fi
say "ok: every mutant caught, timed out, unviable, or accepted with its reason ($out/report.md)"
