#!/usr/bin/env python3
"""The verdict of `just mutants` (scripts/mutants.sh), from cargo-mutants' output directories.

  mutants-check.py loom-regexes HOST... --allow FILE
      The host pass's survivors in the code the loom models cover, one anchored regex each, for
      the loom pass's `--re`; less those FILE already accepts (each was run through the models
      when it was reviewed, and a loom build per mutant is slow).
  mutants-check.py report DIR... --allow FILE
      Each mutant's outcome over the runs in DIR... (the host pass, the loom pass: caught in any
      counts as caught; a run whose directory name has `loom` in it is a loom pass), counts per
      crate, and every survivor. Exits 1 if a survivor is not in FILE, or if FILE lets one
      through in the code the issue names (the stopper's and hotplug's queueing, parking,
      locking and state machine, and the stopper watchdog's unlinking, aborting, claiming and
      halting of a stuck request) for any reason but `equivalent` or `test-only`.

The allow-list names a mutant without its line and column (so that edits elsewhere in the file
do not stale it), or with them for one place only, then gives its reason on the indented
line(s) below it, starting with its kind: `equivalent:` (no test can tell it from the original),
`test-only:` (it mutates code that only a test feature compiles, such as `mutation-lost-wakeup`),
`diagnostics:` (it changes only what is printed or counted for people), or `timing:` (it changes
only how long a wait spins or sleeps).
"""

import json
import re
import sys
from pathlib import Path

# Files whose code the loom models run (their `tests/loom.rs`, on sync's loom primitives).
LOOM_FILES = re.compile(r"^firmware/(stopper|hotplug|psci-provider|sync)/src/")

# The code the issue names: no survivor allowed there unless it is equivalent to the original.
# Each entry is a file's pattern and its functions: a mutant inside one ("... in NAME") or one
# replacing it whole ("replace NAME ...") is in the core. `PREFIXES` match as they are (a
# type's every method); `FUNCTIONS` must end there.
STOPPER_PREFIXES = r"List::|Done::|<impl Drop for WaitingGuard|NowaitWork::"
STOPPER_FUNCTIONS = (
    r"MultiStopState::from_u32|MultiStop<'a>::(new|set_state|ack_state|run|chan|abort|participate)"
    r"|bit|cpus_where|erase"
    r"|Stoppers<P, N>::(queue_\w+|run_works|has_work|park|stop_machine_park|stop_machine_unpark"
    r"|park_requested|is_enabled|is_parked|enabled_mask|stop_cpus_locked|lock_waiting"
    r"|lock_stop_cpus|wait|wait_until|wait_until_polled|wait_loop|sleep_once|notify"
    r"|notify_cpu|notify_mask|stop_one_cpu|stop_one_cpu_nowait|stop_two_cpus|stop_cpus"
    r"|try_stop_cpus|stop_machine|check_caller|check_cpu|check_mask|in_callback"
    r"|in_progress_chan|stop_cpus_chan"
    # The watchdog's failing of a request: unlink (List::), abort, claim, halt, recover.
    r"|fail_request|call_user|complete|claim_stuck|unclaim|is_halted|halted|mark_halted"
    r"|recover_fault)"
)
HOTPLUG_FUNCTIONS = (
    r"transition_allowed|CpuState::from_u32"
    r"|Hotplug<'s, S, P, N>::(try_transition|transition|state|is_online|online_mask|lock|wait"
    r"|boot_cpu_online|cpu_online|take_cpu_down|dying_step|cpu_down|cpu_up)"
)
CORE_CODE = (
    (r"firmware/stopper/src/lib\.rs", STOPPER_PREFIXES, STOPPER_FUNCTIONS),
    (r"firmware/hotplug/src/lib\.rs", None, HOTPLUG_FUNCTIONS),
)


def core_pattern(where, end):
    """One pattern over `CORE_CODE`: `where` says how the name is introduced, `end` what must
    follow a function's name."""
    files = []
    for path, prefixes, functions in CORE_CODE:
        names = f"(?:{functions}){end}"
        if prefixes:
            names = f"{prefixes}|{names}"
        files.append(f"^{path}:{where}(?:{names})")
    return re.compile("|".join(files))


CORE = core_pattern(r".* in ", r"\b")
# Whole-function replacements name the function without " in ".
CORE_FN = core_pattern(r"\d+:\d+: replace ", r"[ -]")
KINDS = ("equivalent", "test-only", "diagnostics", "timing")
# What may survive in the core code: what cannot change the program the tests run.
CORE_KINDS = ("equivalent:", "test-only:")


def is_core(name):
    return bool(CORE.search(name) or CORE_FN.search(name))


def key(name):
    """The name without its line and column."""
    return re.sub(r"^([^:]+):\d+:\d+: ", r"\1: ", name)


def lines(path):
    return [l for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def load(outdir):
    d = Path(outdir) / "mutants.out"
    if not (d / "mutants.json").exists():
        sys.exit(f"mutants-check: no cargo-mutants output in {outdir}")
    packages = {m["name"]: m["package"] for m in json.loads((d / "mutants.json").read_text())}
    outcome = {}
    for kind in ("caught", "timeout", "unviable", "missed"):
        for n in lines(d / f"{kind}.txt"):
            outcome[n] = kind
    return packages, outcome


def rust_regex(name):
    # Escape only what the regex crate treats as special; it refuses escapes of `<` and `>`.
    return "^" + re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", name) + "$"


def load_allow(path):
    allow, errors, cur = {}, [], None
    for i, raw in enumerate(Path(path).read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw[0].isspace():
            if cur is None:
                errors.append(f"{path}:{i}: a reason with no mutant above it")
            else:
                allow[cur] = (allow[cur] + " " + raw.strip()).strip()
        else:
            cur = raw.strip()
            if cur in allow:
                errors.append(f"{path}:{i}: listed twice: {cur}")
            allow[cur] = ""
    for k, why in allow.items():
        kind = why.split(":", 1)[0]
        if kind not in KINDS:
            errors.append(f"{path}: `{k}`: the reason must start with one of {', '.join(KINDS)}")
    return allow, errors


# When runs disagree, the best outcome for the tests stands: any catch beats a survival.
RANK = {"caught": 3, "timeout": 2, "missed": 1, "unviable": 0}


def merged(dirs):
    packages, outcome, source = {}, {}, {}
    for d in dirs:
        pk, out = load(d)
        packages.update(pk)
        for n, o in out.items():
            if n not in outcome or RANK[o] > RANK[outcome[n]]:
                outcome[n], source[n] = o, d
    return packages, outcome, source


def report(dirs, allow_path):
    packages, outcome, source = merged(dirs)
    for n, o in outcome.items():
        if o in ("caught", "timeout") and "loom" in Path(source[n]).name:
            outcome[n] = "caught by loom" if o == "caught" else "timeout in loom"
    unfinished = [n for n in packages if n not in outcome]
    allow, errors = load_allow(allow_path)
    counts = {}
    for n, pkg in packages.items():
        o = outcome.get(n, "not run")
        c = counts.setdefault(pkg, {})
        c[o] = c.get(o, 0) + 1
    cols = ["caught", "caught by loom", "timeout", "timeout in loom", "unviable", "missed", "not run"]
    print("| crate | mutants | " + " | ".join(cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for pkg in sorted(counts):
        c = counts[pkg]
        print(f"| {pkg} | {sum(c.values())} | " + " | ".join(str(c.get(k, 0)) for k in cols) + " |")
    if unfinished:
        errors.append(f"{len(unfinished)} mutants have no outcome (was the run cut short?)")
    survivors = sorted(n for n, o in outcome.items() if o == "missed")
    seen = set()
    print(f"\nsurvivors: {len(survivors)}")
    for n in survivors:
        # An entry with its line and column names one place (test-only code, whose mutation
        # text is the same as that of the real code beside it); the others, every place.
        k = n if n in allow else key(n)
        seen.add(k)
        why = allow.get(k)
        if why is None:
            tag = "NOT ALLOWED (no reason listed)"
            errors.append(f"survivor not in {allow_path}: {n}")
        elif is_core(n) and not why.startswith(CORE_KINDS):
            tag = "NOT ALLOWED (core code: only an equivalent mutant may survive)"
            errors.append(f"survivor in the stopper's/hotplug's core code: {n}")
        else:
            tag = why
        print(f"  {n}\n      {tag}")
    stale = sorted(set(allow) - seen)
    for k in stale:
        print(f"note: allowed but no longer surviving (remove it?): {k}")
    for e in errors:
        print(f"mutants-check: {e}", file=sys.stderr)
    return 1 if errors else 0


def main(argv):
    if len(argv) >= 4 and argv[0] == "loom-regexes" and argv[-2] == "--allow":
        _, outcome, _ = merged(argv[1:-2])
        allow, errors = load_allow(argv[-1])
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 1
        for n in sorted(outcome):
            allowed = n in allow or key(n) in allow
            if outcome[n] == "missed" and LOOM_FILES.search(n) and not allowed:
                print(rust_regex(n))
        return 0
    if argv and argv[0] == "report" and "--allow" in argv:
        i = argv.index("--allow")
        allow_path, rest = argv[i + 1], argv[1:i] + argv[i + 2 :]
        if rest:
            return report(rest, allow_path)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
