//! Driving the operator's console from a script: the script format, what a terminal would
//! show of the console's output (its echo and redraws applied), and each step's checks.
//!
//! A script is a text file of steps:
//!
//! ```text
//! # A comment. Each "> " line is one step: its bytes are typed, then the console must show
//! # its prompt again (or the machine must end, for `poweroff`).
//! > cpus
//! = cpu0          the step's output has a line containing "cpu0" (checks go in order:
//!                 each from the line the one before matched, which it may share;
//!                 `= A || B`: a line containing A or B)
//! ! FAILED        ... and no line containing "FAILED"
//! @ needs 2       the next step runs only on a machine with at least 2 CPUs (then ignored)
//! > stop 1
//! = stop 1: ran on cpu1
//! $ exit 0        the machine ended, with this exit status (for a last step)
//! ```
//!
//! In typed text, `\r` `\n` `\t` `\e` (ESC) `\\` and `\xNN` are escapes, and `{N*TEXT}` is TEXT
//! N times (a flood). A step line ends with Enter (`\r`) unless it already ends with `\r`,
//! `\n` or Ctrl-C (`\x03`), or with `\c`, which types nothing and leaves the line open (the
//! next step goes on with it).
//!
//! Invariant: a step passes only on what the console showed for that step, never on output
//! of an earlier or a later one (each step's output is cut at its prompt).

use std::fmt::Write as _;

/// The console's prompt, as the firmware prints it.
pub const PROMPT: &str = "armstop> ";

/// What a fresh prompt looks like at the end of the output: a line ended, then the prompt.
pub const FRESH_PROMPT: &[u8] = b"\r\narmstop> ";

/// One check on a step's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A line containing this text, after the previous `Has` match.
    Has(String),
    /// No line containing this text.
    Lacks(String),
    /// The machine ended with this exit status.
    Exit(i32),
}

/// One typed line and its checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its name in results: the line as written in the script.
    pub name: String,
    /// The bytes typed.
    pub input: Vec<u8>,
    /// CPUs the machine must have for the step to run.
    pub needs_cpus: usize,
    /// The checks.
    pub checks: Vec<Check>,
    /// The script's line number.
    pub line: usize,
    /// It ends with `\c`: the line it leaves open is echoed after its last prompt, so that
    /// prompt is not the end of its output.
    pub open: bool,
}

impl Step {
    /// How many fresh prompts its input gives: one per line ended (CR, LF, or CR LF as one)
    /// or dropped (Ctrl-C), as the console's editor counts them.
    pub fn prompts(&self) -> usize {
        let mut n = 0;
        let mut after_cr = false;
        for &b in &self.input {
            n += match b {
                b'\n' if after_cr => 0,
                b'\r' | b'\n' | 0x03 => 1,
                _ => 0,
            };
            after_cr = b == b'\r';
        }
        n
    }

    /// Seconds its lines ask the machine to spend on purpose (`soak 10m`, `storm 30s`,
    /// `sleep 500`), which its time limit allows on top of the usual answer time; a line that
    /// does not parse asks for none.
    pub fn asks_secs(&self) -> u64 {
        self.input
            .split(|&b| b == b'\r' || b == b'\n')
            .map(|line| match armstop_shell::parse_line(line, armstop_shell::MAX_CPUS) {
                Ok(Some(armstop_shell::Command::Soak(s)))
                | Ok(Some(armstop_shell::Command::Storm(armstop_shell::StormLength::Seconds(s)))) => {
                    u64::from(s)
                }
                Ok(Some(armstop_shell::Command::Sleep(ms))) => u64::from(ms).div_ceil(1000),
                _ => 0,
            })
            .sum()
    }
}

/// How many fresh prompts `output` holds.
pub fn count_prompts(output: &[u8]) -> usize {
    output.windows(FRESH_PROMPT.len()).filter(|w| *w == FRESH_PROMPT).count()
}

/// Parses a script (see the module docs); errors name the line.
pub fn parse_script(text: &str) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut needs = 1;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, rest) = line.split_at(1);
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let last = steps.last_mut();
        match (tag, last) {
            (">", _) => {
                let (text, open) = match rest.strip_suffix("\\c") {
                    Some(t) => (t, true),
                    None => (rest, false),
                };
                let mut input = unescape(text).map_err(|e| format!("line {n}: {e}"))?;
                if !open && !matches!(input.last(), Some(b'\r' | b'\n' | 0x03)) {
                    input.push(b'\r');
                }
                steps.push(Step {
                    name: if rest.is_empty() { "<Enter>".into() } else { rest.to_string() },
                    input,
                    needs_cpus: needs,
                    checks: vec![],
                    line: n,
                    open,
                });
                needs = 1;
            }
            ("@", _) => {
                let v = rest.strip_prefix("needs ").ok_or_else(|| {
                    format!("line {n}: `@` takes `needs N` (CPUs the next step needs)")
                })?;
                needs = v.trim().parse().map_err(|_| format!("line {n}: {v:?} is not a count"))?;
            }
            ("=" | "!" | "$", None) => {
                return Err(format!("line {n}: a check before the first `> ` step"));
            }
            ("=", Some(s)) => s.checks.push(Check::Has(rest.to_string())),
            ("!", Some(s)) => s.checks.push(Check::Lacks(rest.to_string())),
            ("$", Some(s)) => {
                let v = rest.strip_prefix("exit ").ok_or_else(|| {
                    format!("line {n}: `$` takes `exit N` (the machine's exit status)")
                })?;
                let code = v.trim().parse().map_err(|_| format!("line {n}: {v:?} is no status"))?;
                s.checks.push(Check::Exit(code));
            }
            _ => {
                return Err(format!(
                    "line {n}: starts with neither `>`, `=`, `!`, `$`, `@` nor `#`"
                ));
            }
        }
    }
    if steps.is_empty() {
        return Err("the script has no `> ` step".into());
    }
    Ok(steps)
}

/// Typed text with its escapes and repetitions expanded (see the module docs).
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let c = *b.get(i + 1).ok_or("a `\\` at the end of the line")?;
                i += 2;
                match c {
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'e' => out.push(0x1b),
                    b'\\' => out.push(b'\\'),
                    b'{' => out.push(b'{'),
                    b'x' => {
                        let hex = s.get(i..i + 2).ok_or("`\\x` needs two hex digits")?;
                        out.push(
                            u8::from_str_radix(hex, 16)
                                .map_err(|_| format!("`\\x{hex}` is not hex"))?,
                        );
                        i += 2;
                    }
                    c => return Err(format!("unknown escape `\\{}`", c as char)),
                }
            }
            b'{' => {
                let end = s[i..].find('}').ok_or("a `{` without its `}`")? + i;
                let inner = &s[i + 1..end];
                let (count, text) = inner.split_once('*').ok_or("`{N*TEXT}` needs a `*`")?;
                let count: usize = count
                    .parse()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| format!("`{{{inner}}}`: a count from 1 to 1000000"))?;
                let text = unescape(text)?;
                for _ in 0..count {
                    out.extend_from_slice(&text);
                }
                i = end + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// What a terminal shows of `bytes`, line by line: CR returns to the start of the line, BS
/// moves left, `ESC [ K` clears to the end, `ESC [ n D`/`C` move, other escapes and the bell
/// show nothing, and printed bytes overwrite what is under the cursor.
pub fn render(bytes: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut col = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match b {
            b'\n' => {
                lines.push(String::from_utf8_lossy(&cur).into_owned());
                cur.clear();
                col = 0;
            }
            b'\r' => col = 0,
            0x08 => col = col.saturating_sub(1),
            0x07 => {}
            0x1b => {
                if bytes.get(i) != Some(&b'[') {
                    i += 1;
                    continue;
                }
                i += 1;
                let start = i;
                while i < bytes.len() && (0x30..=0x3f).contains(&bytes[i]) {
                    i += 1;
                }
                let n: usize = std::str::from_utf8(&bytes[start..i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1);
                match bytes.get(i) {
                    Some(b'K') => cur.truncate(col),
                    Some(b'D') => col = col.saturating_sub(n),
                    Some(b'C') => col += n,
                    _ => {}
                }
                i += 1;
            }
            b => {
                if col < cur.len() {
                    cur[col] = b;
                } else {
                    cur.resize(col, b' ');
                    cur.push(b);
                }
                col += 1;
            }
        }
    }
    if !cur.is_empty() {
        lines.push(String::from_utf8_lossy(&cur).into_owned());
    }
    lines
}

/// Checks `step`'s output (its rendered lines) and, where the machine ended, its exit status:
/// `None` if every check holds, else what failed.
pub fn check(step: &Step, lines: &[String], exit: Option<i32>) -> Option<String> {
    let mut from = 0;
    let mut problems = String::new();
    for c in &step.checks {
        match c {
            // In order: from the line the previous one matched (several may match one line).
            Check::Has(text) => {
                let holds = |l: &String| text.split(" || ").any(|alt| l.contains(alt));
                match lines[from..].iter().position(holds) {
                    Some(at) => from += at,
                    None => {
                        let _ = write!(problems, "no line with {text:?}; ");
                    }
                }
            }
            Check::Lacks(text) => {
                if let Some(l) = lines.iter().find(|l| l.contains(text.as_str())) {
                    let _ = write!(problems, "a line has {text:?}: {:?}; ", l.trim());
                }
            }
            Check::Exit(code) => match exit {
                Some(e) if e == *code => {}
                Some(e) => {
                    let _ = write!(problems, "the machine ended with status {e}, not {code}; ");
                }
                None => {
                    let _ = write!(problems, "the machine did not end (wanted status {code}); ");
                }
            },
        }
    }
    if problems.is_empty() {
        None
    } else {
        problems.truncate(problems.len() - 2);
        Some(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_parses_into_steps_with_their_checks() {
        let s = parse_script(
            "# comment\n> cpus\n= cpu0\n! FAILED\n\n@ needs 2\n> stop 1\n= ran on cpu1\n> poweroff\n$ exit 0\n",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].input.as_slice(), s[0].needs_cpus), (&b"cpus\r"[..], 1));
        assert_eq!(s[0].checks, [Check::Has("cpu0".into()), Check::Lacks("FAILED".into())]);
        assert_eq!((s[1].needs_cpus, s[1].line), (2, 7));
        assert_eq!(s[2].needs_cpus, 1, "`@ needs` is for one step");
        assert_eq!(s[2].checks, [Check::Exit(0)]);
    }

    #[test]
    fn bad_scripts_are_refused_with_the_line() {
        for (text, want) in [
            ("= x\n> a\n", "line 1: a check before"),
            ("> a\n? b\n", "line 2: starts with neither"),
            ("@ needs two\n> a\n", "line 1: \"two\" is not a count"),
            ("> a\n$ exit zero\n", "line 2: \"zero\" is no status"),
            ("> a\\q\n", "line 1: unknown escape"),
            ("> {0*a}\n", "a count from 1"),
            ("# nothing\n", "no `> ` step"),
        ] {
            let e = parse_script(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn typed_text_has_escapes_and_floods() {
        assert_eq!(unescape(r"a\tb\e[D\x7f\\").unwrap(), b"a\tb\x1b[D\x7f\\");
        assert_eq!(unescape("{3*ab}c").unwrap(), b"abababc");
        assert_eq!(unescape(r"{2*\x03}").unwrap(), b"\x03\x03");
        let s = parse_script("> x\\x03\n> stop 0\\rab\\c\n").unwrap();
        assert_eq!(s[0].input, b"x\x03", "Ctrl-C ends the step itself");
        assert_eq!((s[1].input.as_slice(), s[1].prompts()), (&b"stop 0\rab"[..], 1), "left open");
    }

    #[test]
    fn a_step_is_given_the_time_its_lines_ask_for() {
        let s = parse_script("> cpus\n> soak 10m\n> sleep 1500\\rstorm 30s\\rstorm 20\n> soak 9\n")
            .unwrap();
        assert_eq!(s.iter().map(Step::asks_secs).collect::<Vec<_>>(), [0, 600, 32, 0]);
    }

    #[test]
    fn a_step_waits_for_one_prompt_per_line_it_ends() {
        let s = parse_script("> cpus\n> {3*stop 0\\r}\n> a\\r\\nb\\x03\n").unwrap();
        assert_eq!(s.iter().map(Step::prompts).collect::<Vec<_>>(), [1, 3, 2]);
        assert_eq!(count_prompts(b"x\r\narmstop> y\r\narmstop> "), 2);
        assert_eq!(count_prompts(b"\rarmstop> sto\x1b[K"), 0, "a redraw is no fresh prompt");
    }

    #[test]
    fn render_applies_echo_and_redraws() {
        let out = b"armstop> sop\rarmstop> stop\x1b[K\x1b[2D\r\nstop 1: ok\r\narmstop> cpx\x08 \x08us\x07";
        assert_eq!(render(out), ["armstop> stop", "stop 1: ok", "armstop> cpus"]);
        assert_eq!(render(b"abc\x1b[2Dx\r\n"), ["axc"]);
    }

    #[test]
    fn checks_go_in_order_and_name_what_failed() {
        let s = &parse_script("> a\n= one\n= two\n! bad\n$ exit 0\n").unwrap()[0];
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check(s, &lines(&["one", "two"]), Some(0)), None);
        assert_eq!(check(s, &lines(&["one two"]), Some(0)), None, "one line may hold both");
        let alt = &parse_script("> a\n= x || two\n").unwrap()[0];
        assert_eq!(check(alt, &lines(&["two"]), None), None, "either alternative");
        assert!(check(alt, &lines(&["three"]), None).is_some());
        let e = check(s, &lines(&["two", "one"]), Some(0)).unwrap();
        assert!(e.contains("no line with \"two\""), "{e}");
        let e = check(s, &lines(&["one", "two", "bad thing"]), Some(1)).unwrap();
        assert!(e.contains("a line has \"bad\"") && e.contains("status 1, not 0"), "{e}");
        assert!(check(s, &lines(&["one", "two"]), None).unwrap().contains("did not end"));
    }
}
