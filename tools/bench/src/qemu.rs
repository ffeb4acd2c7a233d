//! Running QEMU for a benchmark: console lines, exit status and stderr, under a timeout.
//!
//! Invariant: QEMU never outlives the call. On a timeout it is killed and waited for, and the
//! error carries the command line and the last console lines, so a hang is reported, not
//! waited on.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one QEMU run printed.
#[derive(Debug)]
pub struct Console {
    /// Console (stdout) lines, without line endings.
    pub lines: Vec<String>,
    /// QEMU's exit status.
    pub status: ExitStatus,
    /// Everything QEMU wrote to stderr.
    pub stderr: String,
}

/// `qemu` and `args` as one shell-quoted command line, for messages and reports.
pub fn command_line(qemu: &str, args: &[String]) -> String {
    std::iter::once(qemu)
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            if a.is_empty() || a.contains([' ', '\'', '"']) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` lines, indented, for an error message.
pub fn tail(lines: &[String], n: usize) -> String {
    if lines.is_empty() {
        return "  (no console output)".into();
    }
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// What a long run says while it goes: every [`PROGRESS_EVERY`], a line on stderr with how far
/// it is (the console lines holding `counts`, out of `expected`), how fast, and the time left,
/// estimated from that rate or from an earlier run's length.
pub struct Watch {
    /// What runs, for the line (`armstop on virt-gicv3`).
    pub label: String,
    /// Console lines that mark a step done (`armstop-bench: figure`), and their name.
    pub counts: Option<(&'static str, &'static str)>,
    /// Steps the run will have, if known (from an earlier run of the same configuration).
    pub expected: Option<usize>,
    /// How long an earlier run of the same configuration took.
    pub expected_time: Option<Duration>,
}

/// How often a [`Watch`] prints.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Watch {
    /// The progress line after `elapsed` with `done` steps (`None`: nothing counted).
    pub fn line(&self, elapsed: Duration, done: Option<usize>) -> String {
        let secs = elapsed.as_secs_f64();
        let mut out = format!("armstop-bench: progress {}: {secs:.0} s", self.label);
        let mut left = self.expected_time.map(|t| t.as_secs_f64() - secs);
        if let (Some(done), Some((_, name))) = (done, self.counts) {
            let rate = done as f64 / secs.max(1.0) * 60.0;
            match self.expected {
                Some(total) => {
                    out += &format!(", {done}/{total} {name}, {rate:.1} {name}/min");
                    if done > 0 {
                        left = Some((total.saturating_sub(done)) as f64 * secs / done as f64);
                    }
                }
                None => {
                    out +=
                        &format!(", {done} {name} (of how many: first run), {rate:.1} {name}/min")
                }
            }
        }
        match left {
            Some(l) => out + &format!(", about {:.0} s left", l.max(0.0)),
            None => out + ", time left unknown (first run)",
        }
    }
}

/// Runs `qemu args` with no standard input until it exits or `timeout` passes, saying how it
/// goes every [`PROGRESS_EVERY`] if `watch` is given.
pub fn run(
    qemu: &str,
    args: &[String],
    timeout: Duration,
    watch: Option<&Watch>,
) -> Result<Console, String> {
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {qemu}: {e}"))?;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().expect("piped stdout");
    let sink = Arc::clone(&lines);
    let out_reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let s = String::from_utf8_lossy(&buf);
            let s = s.trim_end_matches(['\r', '\n']).to_string();
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(s);
            buf.clear();
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let mut next_progress = PROGRESS_EVERY;
    let status = loop {
        if let Some(w) = watch
            && start.elapsed() >= next_progress
        {
            next_progress += PROGRESS_EVERY;
            let done = w.counts.map(|(pattern, _)| {
                lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter(|l| l.contains(pattern))
                    .count()
            });
            eprintln!("{}", w.line(start.elapsed(), done));
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for {qemu}: {e}"));
            }
        }
    };
    let _ = out_reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let lines = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
    match status {
        Some(status) => Ok(Console { lines, status, stderr }),
        None => Err(format!(
            "QEMU timed out after {:.1} s and was killed ({}); last console lines:\n{}",
            timeout.as_secs_f64(),
            command_line(qemu, args),
            tail(&lines, 15)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_how_fast_and_how_long() {
        let first = Watch {
            label: "armstop on virt-gicv3".into(),
            counts: Some((crate::armstop::FIGURE, "figures")),
            expected: None,
            expected_time: None,
        };
        let l = first.line(Duration::from_secs(20), Some(10));
        assert_eq!(
            l,
            "armstop-bench: progress armstop on virt-gicv3: 20 s, 10 figures (of how many: first run), 30.0 figures/min, time left unknown (first run)"
        );
        let later =
            Watch { expected: Some(40), expected_time: Some(Duration::from_secs(90)), ..first };
        assert_eq!(
            later.line(Duration::from_secs(20), Some(10)),
            "armstop-bench: progress armstop on virt-gicv3: 20 s, 10/40 figures, 30.0 figures/min, about 60 s left"
        );
        let linux = Watch {
            label: "Linux on virt-gicv2".into(),
            counts: None,
            expected: None,
            expected_time: Some(Duration::from_secs(100)),
        };
        assert_eq!(
            linux.line(Duration::from_secs(30), None),
            "armstop-bench: progress Linux on virt-gicv2: 30 s, about 70 s left"
        );
    }
}
