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

/// Runs `qemu args` with no standard input until it exits or `timeout` passes.
pub fn run(qemu: &str, args: &[String], timeout: Duration) -> Result<Console, String> {
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
    let status = loop {
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
