//! `armstop_bench::linux` against a real console transcript: Linux 6.1.0-57-cloud-arm64 on
//! `qemu-system-aarch64 -M virt,gic-version=2 -cpu cortex-a72 -smp 4 -m 1G`, `armstop.cycles=2`
//! (`tests/data/linux-virt-gicv2-2cycles.txt`, `\r` removed), and edits of it for each error.

use std::path::Path;
use std::time::Duration;

use armstop_bench::linux::{self, LinuxRun};

const TRANSCRIPT: &str = include_str!("data/linux-virt-gicv2-2cycles.txt");

fn transcript() -> Vec<String> {
    TRANSCRIPT.lines().map(String::from).collect()
}

/// The transcript after `f`, parsed with `cycles`; must fail: the error.
fn error_after(cycles: u32, f: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines = transcript();
    f(&mut lines);
    match linux::parse(&lines, cycles) {
        Ok(r) => panic!("parsed an edited transcript: {r:?}"),
        Err(e) => e,
    }
}

fn assert_contains(e: &str, what: &str) {
    assert!(e.contains(what), "error {e:?} does not say {what:?}");
}

/// Index of the first line containing `s`.
fn find(lines: &[String], s: &str) -> usize {
    lines.iter().position(|l| l.contains(s)).unwrap_or_else(|| panic!("no line with {s:?}"))
}

#[test]
fn real_transcript() {
    let r: LinuxRun = linux::parse(&transcript(), 2).unwrap();
    assert_eq!(r.kernel, "6.1.0-57-cloud-arm64");
    assert_eq!(r.cpus, 4);
    assert_eq!(r.cycles_per_cpu, 2);
    for v in [&r.down_ns, &r.up_ns, &r.cycle_ns, &r.takedown_ns] {
        assert_eq!(v.len(), 6);
    }
    // cpu1, cycle 0: markers at 1.644214, 1.713926, 1.761654; takedown_cpu 1.691666..1.705555.
    assert_eq!(r.down_ns[0], 69_712_000);
    assert_eq!(r.up_ns[0], 47_728_000);
    assert_eq!(r.cycle_ns[0], 117_440_000);
    assert_eq!(r.takedown_ns[0], 13_889_000);
    // cpu1, cycle 1: takedown_cpu 1.782983..1.818998.
    assert_eq!(r.takedown_ns[1], 36_015_000);
    for i in 0..6 {
        assert_eq!(r.cycle_ns[i], r.down_ns[i] + r.up_ns[i]);
        assert!(r.takedown_ns[i] > 0 && r.takedown_ns[i] < r.down_ns[i]);
    }
    assert_eq!(r.steps["takedown_cpu"], r.takedown_ns);
    for one_per_cycle in ["sched_cpu_deactivate", "bringup_cpu", "cpuhp_kick_ap_work", "finish_cpu"]
    {
        assert_eq!(r.steps[one_per_cycle].len(), 6, "{one_per_cycle}");
    }
    // Both directions, two states, two instances, three instances.
    assert_eq!(r.steps["console_cpu_notify"].len(), 12);
    assert_eq!(r.steps["perf_event_exit_cpu"].len(), 12);
    assert_eq!(r.steps["bio_cpu_dead"].len(), 12);
    assert_eq!(r.steps["trace_rb_cpu_prepare"].len(), 18);
    // bringup_cpu encloses the AP thread's online steps (it waits for them).
    let bringup: u64 = r.steps["bringup_cpu"][0];
    assert!(bringup > r.steps["sched_cpu_activate"][0]);
    assert!(r.qemu_args.is_empty());
}

#[test]
fn qemu_args_match_armstop() {
    let m = armstop_runner::machine("virt-gicv3").unwrap();
    let a = linux::qemu_args(m, Path::new("/x/target/linux"), 7);
    let want = [
        "-M",
        "virt,gic-version=3",
        "-cpu",
        "cortex-a72",
        "-smp",
        "4",
        "-m",
        "1G",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-semihosting",
        "-kernel",
        "/x/target/linux/Image",
        "-initrd",
        "/x/target/linux/initramfs.cpio.gz",
        "-append",
        "console=ttyAMA0 loglevel=1 panic=-1 armstop.cycles=7",
    ];
    assert_eq!(a, want);
    // The same machine flags as armstop's own boot there.
    let files = armstop_runner::BootFiles {
        image: "/x/target/linux/Image".into(),
        firmware: None,
        notes: vec![],
        reboot_on_reset: false,
        dtb: None,
    };
    assert_eq!(a[..20], armstop_runner::qemu_args(m, &files, None)[..]);
}

#[test]
fn run_refuses_raspi() {
    let m = armstop_runner::machine("raspi4b-tfa").unwrap();
    let e = linux::run("false", Path::new("/nonexistent"), m, 2, Duration::from_secs(1), &quiet())
        .unwrap_err();
    assert_contains(&e, "virt only");
}

#[test]
fn zero_cycles() {
    assert_contains(&linux::parse(&transcript(), 0).unwrap_err(), "zero cycles");
    assert_contains(
        &error_after(2, |l| {
            let i = find(l, "armstop-linux: cycles");
            l[i] = "armstop-linux: cycles 0".into();
        }),
        "zero cycles",
    );
}

#[test]
fn cycles_mismatch() {
    assert_contains(&linux::parse(&transcript(), 3).unwrap_err(), "3 were asked for");
}

#[test]
fn no_trace_begin() {
    let e = error_after(2, |l| l.retain(|s| !s.contains("armstop-linux: trace ")));
    assert_contains(&e, "no `armstop-linux: trace begin`");
    let e = error_after(2, |l| l.retain(|s| !s.contains("armstop-linux: trace begin")));
    assert_contains(&e, "trace end without trace begin");
}

#[test]
fn no_trace_end() {
    let e = error_after(2, |l| {
        let i = l.iter().rposition(|s| s.contains("armstop-linux: trace end")).unwrap();
        l.truncate(i);
    });
    assert_contains(&e, "no `armstop-linux: trace end`");
    let e = error_after(2, |l| l.retain(|s| !s.contains("armstop-linux: trace end cpu1")));
    assert_contains(&e, "trace begin inside a trace block");
}

#[test]
fn guest_error_line() {
    let e = error_after(2, |l| {
        let i = find(l, "armstop up cpu2 1");
        l.insert(
            i,
            "armstop-linux: error echo 0 > /sys/devices/system/cpu/cpu2/online failed".into(),
        );
    });
    assert_contains(&e, "the guest reported: armstop-linux: error echo 0");
}

#[test]
fn guest_did_not_finish() {
    let e = error_after(2, |l| l.retain(|s| s != "armstop-linux: done"));
    assert_contains(&e, "did not finish");
}

#[test]
fn missing_header_lines() {
    let e = error_after(2, |l| l.retain(|s| !s.starts_with("armstop-linux: kernel")));
    assert_contains(&e, "uname -r");
    let e = error_after(2, |l| l.retain(|s| !s.starts_with("armstop-linux: cpus")));
    assert_contains(&e, "no `armstop-linux: cpus` line");
    let e = error_after(2, |l| {
        let i = find(l, "armstop-linux: cpus");
        l[i] = "armstop-linux: cpus 1".into();
    });
    assert_contains(&e, "no secondary CPU");
}

#[test]
fn exit_without_enter() {
    let e = error_after(2, |l| {
        let i = find(l, "(cpuhp_kick_ap_work)");
        l.remove(i);
    });
    assert_contains(&e, "cpuhp_exit of step 236 for cpu1 by kworker/0:1-16 without cpuhp_enter");
}

#[test]
fn enter_without_exit() {
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        assert!(l[i + 1].contains("cpuhp_exit") && l[i + 1].contains("step: 153"));
        l.remove(i + 1);
    });
    assert_contains(&e, "step 153 (takedown_cpu) for cpu1 by kworker/0:1-16 has no cpuhp_exit");
    // At the very end of the trace too: drop the last marker and the exit before it.
    let e = error_after(2, |l| {
        let i = l.iter().rposition(|s| s.contains("armstop done cpu3 1")).unwrap();
        assert!(l[i - 1].contains("cpuhp_exit") && l[i - 1].contains("step:  91"));
        l.drain(i - 1..=i);
    });
    assert!(!e.starts_with("line "), "{e}");
    assert_contains(&e, "step 91 (bringup_cpu) for cpu3 by init-1 has no cpuhp_exit");
}

#[test]
fn exit_of_another_step() {
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        l[i + 1] = l[i + 1].replace("step: 153", "step: 154");
    });
    assert_contains(
        &e,
        "cpuhp_exit of step 154 for cpu1 by kworker/0:1-16, but the open step is 153",
    );
}

#[test]
fn failed_step() {
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        l[i + 1] = l[i + 1].replace("ret: 0", "ret: -16");
    });
    assert_contains(&e, "step 153 (takedown_cpu) for cpu1 failed: ret -16");
}

#[test]
fn exit_before_enter() {
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        l[i + 1] = l[i + 1].replace("1.705555", "1.691665");
    });
    assert_contains(&e, "before its enter");
}

#[test]
fn no_takedown() {
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        l.drain(i..i + 2);
    });
    assert_contains(&e, "0 takedown_cpu steps in offline \"armstop down cpu1 0\"");
}

#[test]
fn markers_out_of_order() {
    let e = error_after(2, |l| {
        let i = find(l, "armstop up cpu1 0");
        l[i] = l[i].replace("armstop up cpu1 0", "armstop up cpu1 1");
    });
    assert_contains(
        &e,
        "marker out of order: expected \"armstop up cpu1 0\", got \"armstop up cpu1 1\"",
    );
    let e = error_after(2, |l| {
        let i = find(l, "armstop down cpu2 0");
        l.remove(i);
    });
    assert_contains(&e, "outside a hotplug write");
}

#[test]
fn markers_missing() {
    let e = error_after(2, |l| {
        let b = find(l, "armstop-linux: trace begin cpu3");
        let e = find(l, "armstop-linux: trace end cpu3");
        l.drain(b..=e);
    });
    assert_contains(&e, "after 12 of 18 markers: \"armstop down cpu3 0\" is missing");
}

#[test]
fn marker_after_the_last() {
    let e = error_after(2, |l| {
        let i = l.iter().rposition(|s| s.contains("armstop done cpu3 1")).unwrap();
        let extra = l[i].replace("armstop done cpu3 1", "armstop down cpu3 2");
        l.insert(i + 1, extra);
    });
    assert_contains(&e, "after the last cycle");
}

#[test]
fn event_for_another_cpu() {
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        l[i] = l[i].replace("cpu: 0001", "cpu: 0002");
    });
    assert_contains(&e, "cpuhp_enter for cpu2 during \"armstop down cpu1 0\"");
}

#[test]
fn lost_events() {
    let e = error_after(2, |l| {
        let i = find(l, "armstop up cpu2 0");
        l.insert(i, "CPU:1 [LOST 12 EVENTS]".into());
    });
    assert_contains(&e, "lost events");
}

#[test]
fn garbage_in_trace() {
    let e = error_after(2, |l| {
        let i = find(l, "armstop up cpu2 0");
        l.insert(i, "[    2.1] psci: CPU2 killed (polled 0 ms)".into());
    });
    assert_contains(&e, "not a trace line inside a trace block");
    let e = error_after(2, |l| {
        let i = find(l, "(takedown_cpu)");
        l[i] = l[i].replace(" (takedown_cpu)", "");
    });
    assert_contains(&e, "without a callback name");
}

#[test]
fn carriage_returns_and_noise_outside_blocks() {
    let mut lines: Vec<String> = transcript().into_iter().map(|l| format!("{l}\r")).collect();
    lines
        .insert(0, "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]".into());
    let r = linux::parse(&lines, 2).unwrap();
    assert_eq!(r, linux::parse(&transcript(), 2).unwrap());
}

/// Boots Linux for real on virt-gicv2 and virt-gicv3 (needs `scripts/linux-guest.sh` to have
/// worked, or apt access) and prints medians: `cargo test -p armstop-bench --test linux --
/// --ignored --nocapture`. Cycles from `ARMSTOP_LINUX_CYCLES` (default 20).
#[test]
#[ignore = "boots QEMU: slow"]
fn boot_linux() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cycles = std::env::var("ARMSTOP_LINUX_CYCLES").map_or(20, |s| s.parse().unwrap());
    let med = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2] as f64 / 1e6
    };
    for name in ["virt-gicv2", "virt-gicv3"] {
        let m = armstop_runner::machine(name).unwrap();
        let t = std::time::Instant::now();
        let r =
            linux::run("qemu-system-aarch64", &repo, m, cycles, Duration::from_secs(300), &quiet())
                .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{name}: {} cpus {} x {} cycles in {:.1} s wall; median ms: down {:.3} up {:.3} cycle \
             {:.3} takedown_cpu {:.3} sched_cpu_deactivate {:.3} bringup_cpu {:.3}",
            r.kernel,
            r.cpus,
            r.cycles_per_cpu,
            t.elapsed().as_secs_f64(),
            med(&r.down_ns),
            med(&r.up_ns),
            med(&r.cycle_ns),
            med(&r.takedown_ns),
            med(&r.steps["sched_cpu_deactivate"]),
            med(&r.steps["bringup_cpu"]),
        );
        println!("  qemu-system-aarch64 {}", r.qemu_args.join(" "));
    }
}

/// A repository with fresh (dummy) `target/linux` outputs, so `run` does not call the script,
/// and a fake QEMU running `body` (a shell script that ignores its arguments).
fn fake_repo(test: &str, body: &str) -> (std::path::PathBuf, String) {
    use std::os::unix::fs::PermissionsExt;
    let repo = std::env::temp_dir().join(format!("armstop-bench-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    std::fs::create_dir_all(repo.join("target/linux")).unwrap();
    let script = repo.join("scripts/linux-guest.sh");
    std::fs::write(&script, "exit 1\n").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&script).unwrap().set_modified(old).unwrap();
    for f in ["Image", "initramfs.cpio.gz", "VERSIONS", "init"] {
        std::fs::write(repo.join("target/linux").join(f), "x").unwrap();
    }
    let qemu = repo.join("qemu");
    std::fs::write(&qemu, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    (repo, qemu.display().to_string())
}

#[test]
fn run_parses_the_console() {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/linux-virt-gicv2-2cycles.txt");
    let (repo, qemu) = fake_repo("ok", &format!("sed 's/$/\\r/' '{}'", data.display()));
    let m = armstop_runner::machine("virt-gicv2").unwrap();
    let r = linux::run(&qemu, &repo, m, 2, Duration::from_secs(20), &quiet()).unwrap();
    assert_eq!(r.down_ns[0], 69_712_000);
    assert_eq!(r.qemu_args, linux::qemu_args(m, &repo.join("target/linux"), 2));
    let e = linux::run(&qemu, &repo, m, 3, Duration::from_secs(20), &quiet()).unwrap_err();
    assert_contains(&e, "3 were asked for");
    assert_contains(&e, "last console lines:\n");
    assert_contains(&e, "\n  armstop-linux: trace end cpu3\n  armstop-linux: done\n");
    assert_contains(&e, "-append 'console=ttyAMA0 loglevel=1 panic=-1 armstop.cycles=3'");
    std::fs::remove_dir_all(&repo).unwrap();
}

#[test]
fn run_times_out() {
    let (repo, qemu) =
        fake_repo("timeout", "echo 'armstop-linux: kernel 6.1'; echo still here; exec sleep 30");
    let m = armstop_runner::machine("virt-gicv3").unwrap();
    let t = std::time::Instant::now();
    let e = linux::run(&qemu, &repo, m, 2, Duration::from_millis(500), &quiet()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_contains(&e, "timed out after 0.5 s and was killed");
    assert_contains(&e, "  armstop-linux: kernel 6.1\n  still here");
    std::fs::remove_dir_all(&repo).unwrap();
}

#[test]
fn run_reports_qemu_failure() {
    let (repo, qemu) = fake_repo("status", "echo 'no romfile' >&2; exit 3");
    let m = armstop_runner::machine("virt-gicv2").unwrap();
    let e = linux::run(&qemu, &repo, m, 2, Duration::from_secs(20), &quiet()).unwrap_err();
    assert_contains(&e, "QEMU exited with exit status: 3");
    assert_contains(&e, "stderr: no romfile");
    std::fs::remove_dir_all(&repo).unwrap();
}

#[test]
fn run_reports_script_failure() {
    let (repo, qemu) = fake_repo("script", "exit 0");
    std::fs::remove_file(repo.join("target/linux/init")).unwrap();
    let m = armstop_runner::machine("virt-gicv2").unwrap();
    let e = linux::run(&qemu, &repo, m, 2, Duration::from_secs(20), &quiet()).unwrap_err();
    assert_contains(&e, "linux-guest.sh failed");
    std::fs::remove_dir_all(&repo).unwrap();
}

/// No progress lines worth reading in a test: no steps counted, no earlier run.
fn quiet() -> armstop_bench::qemu::Watch {
    armstop_bench::qemu::Watch {
        label: "Linux (test)".into(),
        counts: None,
        expected: None,
        expected_time: None,
    }
}
