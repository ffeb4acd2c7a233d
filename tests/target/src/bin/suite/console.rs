//! The console: whole lines from every CPU at once, truncation, log levels.

use core::fmt::Write;

use armstop::board::{NR_CPUS, cpu_count};
use armstop::console::{self, LineBuf};
use armstop::smp;
use armstop::target_test;
use armstop::testing::require_cpus;

/// Lines per CPU: 12 up to 8 CPUs, then fewer, so that the ~100 lines (about 6.5 KiB) fit the
/// 8 KiB capture buffer whatever the machine.
fn lines_per_cpu() -> usize {
    (96 / cpu_count()).clamp(1, 12)
}

fn chatter(lines: usize) -> usize {
    let me = armstop::cpu::id();
    for i in 0..lines {
        armstop::println!(
            "interleave-check cpu{me} line{i:02} {}",
            "abcdefghijklmnopqrstuvwxyz0123456789"
        );
    }
    0
}

#[target_test]
fn lines_from_all_cpus_never_interleave() {
    require_cpus(2);
    let lines = lines_per_cpu();
    console::capture_start();
    for r in smp::run_everywhere(chatter, lines).into_iter().flatten() {
        r.expect("call");
    }
    console::capture_finish(|text, truncated| {
        assert!(!truncated, "capture buffer too small for the test");
        let mut per_cpu = [0usize; NR_CPUS];
        for line in text.lines().filter(|l| l.contains("interleave-check")) {
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("interleave-check"), "line starts mid-way: {line:?}");
            let cpu: usize = words
                .next()
                .and_then(|w| w.strip_prefix("cpu"))
                .and_then(|n| n.parse().ok())
                .expect(line);
            let want = per_cpu[cpu];
            let mut expect = LineBuf::<96>::new();
            let _ = write!(expect, "line{want:02}");
            assert_eq!(
                words.next(),
                Some(expect.as_str()),
                "cpu{cpu}'s lines out of order or mixed: {line:?}"
            );
            assert_eq!(
                words.next(),
                Some("abcdefghijklmnopqrstuvwxyz0123456789"),
                "mixed line: {line:?}"
            );
            assert_eq!(words.next(), None, "mixed line: {line:?}");
            per_cpu[cpu] += 1;
        }
        for (cpu, &n) in per_cpu.iter().enumerate().take(cpu_count()) {
            assert_eq!(n, lines, "cpu{cpu} lines captured");
        }
    });
}

#[target_test]
fn line_buffer_cuts_long_output_visibly() {
    let mut b = LineBuf::<16>::new();
    let _ = write!(b, "0123456789");
    assert!(!b.truncated());
    let _ = write!(b, "abcdefghij");
    assert!(b.truncated());
    assert_eq!(b.as_str(), "0123456789abc...");
    let mut u = LineBuf::<4>::new();
    let _ = write!(u, "aé€");
    assert!(u.as_str().len() <= 4 && core::str::from_utf8(u.as_str().as_bytes()).is_ok());
}

#[target_test]
fn log_levels_filter() {
    console::capture_start();
    log::debug!("log-level-check debug");
    log::info!("log-level-check info");
    log::warn!("log-level-check warn");
    console::capture_finish(|text, _| {
        assert!(!text.contains("log-level-check debug"), "debug shown at the default level");
        assert!(text.contains("INFO  log-level-check info"));
        assert!(text.contains("WARN  log-level-check warn"));
        assert!(text.contains("cpu0"), "log lines name their CPU");
    });
}
