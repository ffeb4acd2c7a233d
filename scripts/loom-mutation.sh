#!/usr/bin/env bash
# The loom models of the sleeping waits against the lost wake-up mutation (a waiter that checks
# its condition before it announces that it sleeps): each model must fail with loom's deadlock
# report. Loom aborts the process on a deadlock, so the models cannot be should_panic tests:
# each runs alone here, and passing is the failure.
set -euo pipefail
cd "$(dirname "$0")/.."
models=(
  armstop-stopper:sleep_requester_is_woken
  armstop-stopper:sleep_participants_are_woken
  armstop-stopper:sleep_stop_cpus_mutex_waiter_is_woken
  armstop-hotplug:sleep_cpu_down_controller_is_woken
)
for m in "${models[@]}"; do
  pkg=${m%%:*} name=${m#*:}
  if out=$(RUSTFLAGS="--cfg loom" cargo test --quiet --release --target-dir target/loom -p "$pkg" \
      --test loom --features mutation-lost-wakeup -- --exact "$name" 2>&1); then
    echo "loom-mutation: FAILED: $name passed with the lost wake-up mutation" >&2
    exit 1
  fi
  if ! grep -q '^deadlock; threads' <<<"$out"; then
    printf '%s\n' "$out" | tail -n 20 >&2
    echo "loom-mutation: FAILED: $name failed, but not with loom's deadlock report" >&2
    exit 1
  fi
  echo "loom-mutation: $name catches the lost wake-up (deadlock)"
done
