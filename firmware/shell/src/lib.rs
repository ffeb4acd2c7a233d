//! The operator console's command language: one line, as the UART delivered its bytes, into a
//! [`Command`] checked against the machine, or a [`ParseError`] whose `Display` is the one-line
//! answer the console prints.
//!
//! What a line may hold is decided here, before anything runs: printable ASCII only (no control
//! characters, no other UTF-8), at most [`LINE_MAX`] bytes, a known command with exactly its
//! arguments, numbers that are numbers, CPU ids and sets that the machine has. What depends on
//! the machine's state at the time (a CPU that is offline, or in the wrong state for `on`) is
//! for the command's execution to refuse, with its own message.
//!
//! Invariant: [`parse_line`] never panics and never allocates, whatever the bytes; every `Err`
//! names the command and the argument it is about, where there is one.
//!
//! The other parts of a console: the line editor ([`Editor`]: echo, history, completion), the
//! receive queue between the UART's interrupt and the reader ([`input`]), and the test
//! harness's plan line ([`plan`]). Nothing here knows about a UART or about armstop's
//! firmware, so any console can use it.
//!
//! ```
//! use armstop_shell::{Command, CpuSet, Editor, Event, parse_line};
//!
//! // The bytes of one line, as the UART delivers them, through the editor...
//! let mut editor = Editor::new("armstop> ");
//! let mut echo = Vec::new();
//! let mut line = None;
//! for &b in b"stopcpus 0-2,5\r" {
//!     if let Event::Line(l) = editor.feed(b, &mut |out| echo.extend_from_slice(out)) {
//!         line = Some(l);
//!     }
//! }
//! let line = line.unwrap();
//! assert_eq!(echo, b"stopcpus 0-2,5\r\n");
//!
//! // ...and parsed for a machine of 8 CPUs.
//! let cmd = parse_line(line.as_bytes(), 8);
//! assert_eq!(cmd, Ok(Some(Command::StopCpus("0-2,5".parse::<CpuSet>().unwrap()))));
//! assert_eq!(parse_line(b"", 8), Ok(None));
//!
//! // A bad line gets one line of error, naming what is wrong.
//! let err = parse_line(b"stop 9", 8).unwrap_err();
//! assert_eq!(err.to_string(), "stop: no cpu9: this machine has CPUs 0-7");
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;

pub mod editor;
pub mod input;
pub mod plan;
pub use editor::{Editor, Event, Line};

pub use armstop_cpuset::{CpuSet, MAX_CPUS, ParseCpuSetError};

/// Longest line accepted, in bytes (the console's line buffer).
pub const LINE_MAX: usize = 128;

/// Most storm cycles one command may ask for.
pub const STORM_MAX_CYCLES: u32 = 1_000_000;
/// Longest storm one command may ask for, in seconds (a day).
pub const STORM_MAX_SECS: u32 = 86_400;
/// Longest `sleep`, in ms (a minute).
pub const SLEEP_MAX_MS: u32 = 60_000;
/// Longest stopper watchdog, in ms (an hour); 0 turns it off.
pub const WATCHDOG_MAX_MS: u32 = 3_600_000;

/// How long a storm runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StormLength {
    /// This many hotplug cycles (`storm 2000`).
    Cycles(u32),
    /// This many seconds (`storm 30s`, `storm 10m`, `storm 1h`).
    Seconds(u32),
}

/// A command, with its arguments checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help [cmd]`.
    Help(Option<&'static str>),
    /// `cpus`: every CPU's state, MPIDR, boot EL, works run, last latency.
    Cpus,
    /// `stop <cpu>`: `stop_one_cpu` there.
    Stop(usize),
    /// `stop2 <a> <b>`: `stop_two_cpus(a, b)`.
    Stop2(usize, usize),
    /// `stopcpus <set>`: `stop_cpus` on the set.
    StopCpus(CpuSet),
    /// `stopall`: `stop_machine` on every CPU.
    StopAll,
    /// `off <cpu>`: `cpu_down`.
    Off(usize),
    /// `on <cpu>`: `cpu_up`.
    On(usize),
    /// `storm <cycles|duration>`: the hotplug storm.
    Storm(StormLength),
    /// `soak <duration>`: the soak run (the storm with every request kind from every CPU), for
    /// this many seconds.
    Soak(u32),
    /// `bench`: the benchmark's figures.
    Bench,
    /// `stats`: every counter.
    Stats,
    /// `sleep <ms>`: wait, with the CPU asleep.
    Sleep(u32),
    /// `watchdog <ms>`: the stopper watchdog's limit (0: off).
    Watchdog(u32),
    /// `reset`: PSCI SYSTEM_RESET.
    Reset,
    /// `poweroff`: PSCI SYSTEM_OFF.
    Poweroff,
}

/// Every command: name, arguments, what it does. `help` prints these, and tab completion
/// completes their names.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "[cmd]", "list the commands, or say what one does"),
    ("cpus", "", "each CPU: state, MPIDR, boot EL, works run, last latency"),
    ("stop", "<cpu>", "stop_one_cpu on <cpu>, timed"),
    ("stop2", "<a> <b>", "stop_two_cpus(a, b), timed"),
    ("stopcpus", "<set>", "stop_cpus on a set of CPUs (1,3 or 0-2), timed"),
    ("stopall", "", "stop_machine on every CPU, timed"),
    ("off", "<cpu>", "take <cpu> down (cpu_down)"),
    ("on", "<cpu>", "bring <cpu> up (cpu_up)"),
    ("storm", "<cycles|duration>", "the hotplug storm: 2000 cycles, or 30s, 10m, 1h"),
    ("soak", "<duration>", "the storm with every request kind from every CPU: 30s, 10m, 1h"),
    ("bench", "", "the benchmark's figures on this machine"),
    ("stats", "", "every counter of the stopper and hotplug"),
    ("watchdog", "<ms>", "the stopper watchdog's limit in ms (0: off)"),
    ("sleep", "<ms>", "wait this long (at most 60000 ms), e.g. between a script's lines"),
    ("reset", "", "reset the machine (PSCI SYSTEM_RESET)"),
    ("poweroff", "", "power off (PSCI SYSTEM_OFF)"),
];

/// What was wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Longer than [`LINE_MAX`] bytes (how many came).
    TooLong(usize),
    /// A byte that is not printable ASCII or a space/tab: a control character (byte, offset).
    Control(u8, usize),
    /// A byte above 0x7f (non-ASCII, or not UTF-8 at all) at this offset.
    NotAscii(u8, usize),
    /// No such command (the word, cut to 16 bytes, and its length).
    Unknown([u8; 16], usize),
    /// A command without an argument it needs.
    Missing {
        /// The command.
        cmd: &'static str,
        /// What is missing (`<cpu>`).
        what: &'static str,
    },
    /// An argument more than the command takes (its 1-based position).
    Extra {
        /// The command.
        cmd: &'static str,
        /// Which argument.
        position: usize,
    },
    /// An argument that should be a decimal number and is not.
    NotANumber {
        /// The command.
        cmd: &'static str,
        /// What it should be (`<cpu>`).
        what: &'static str,
    },
    /// A CPU the machine does not have.
    NoSuchCpu {
        /// The command.
        cmd: &'static str,
        /// The id given (saturated).
        cpu: usize,
        /// CPUs the machine has.
        cpus: usize,
    },
    /// `stop2` with the same CPU twice.
    SameCpu(usize),
    /// A CPU set that does not parse.
    BadSet(ParseCpuSetError),
    /// A storm length that is neither cycles nor a duration, or is 0 or too long.
    BadStorm,
    /// A soak length that is not a duration, or is 0 or too long.
    BadSoak,
    /// A `sleep` above [`SLEEP_MAX_MS`].
    SleepTooLong(u32),
    /// A watchdog limit above [`WATCHDOG_MAX_MS`].
    WatchdogTooLong(u32),
    /// `help` about a command that does not exist.
    NoHelp([u8; 16], usize),
}

fn word(w: &[u8]) -> ([u8; 16], usize) {
    let mut b = [0; 16];
    let n = w.len().min(16);
    b[..n].copy_from_slice(&w[..n]);
    (b, w.len())
}

fn show_word(f: &mut fmt::Formatter<'_>, b: &[u8; 16], len: usize) -> fmt::Result {
    // Only printable ASCII reaches a word (checked first), so this is text.
    let shown = core::str::from_utf8(&b[..len.min(16)]).unwrap_or("?");
    f.write_str(shown)?;
    if len > 16 { f.write_str("...") } else { Ok(()) }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "line too long: {n} bytes, at most {LINE_MAX}"),
            Self::Control(b, at) => write!(f, "control character {b:#04x} at column {}", at + 1),
            Self::NotAscii(b, at) => {
                write!(f, "byte {b:#04x} at column {} is not ASCII: commands are ASCII", at + 1)
            }
            Self::Unknown(b, n) => {
                f.write_str("unknown command ")?;
                show_word(f, b, *n)?;
                f.write_str(" (help lists them)")
            }
            Self::Missing { cmd, what } => write!(f, "{cmd}: missing {what}"),
            Self::Extra { cmd, position } => {
                write!(f, "{cmd}: unexpected argument {position} (help {cmd} shows its use)")
            }
            Self::NotANumber { cmd, what } => write!(f, "{cmd}: {what} must be a decimal number"),
            Self::NoSuchCpu { cmd, cpu, cpus } => {
                write!(f, "{cmd}: no cpu{cpu}: this machine has CPUs 0-{}", cpus.saturating_sub(1))
            }
            Self::SameCpu(c) => write!(f, "stop2: needs two different CPUs, got cpu{c} twice"),
            Self::BadSet(e) => write!(f, "stopcpus: {e}"),
            Self::BadStorm => write!(
                f,
                "storm: give cycles (1 to {STORM_MAX_CYCLES}) or a duration (30s, 10m, 1h; at \
                 most {STORM_MAX_SECS} s)"
            ),
            Self::BadSoak => {
                write!(f, "soak: give a duration (30s, 10m, 1h; at most {STORM_MAX_SECS} s)")
            }
            Self::SleepTooLong(ms) => {
                write!(f, "sleep: {ms} ms is over the limit of {SLEEP_MAX_MS} ms")
            }
            Self::WatchdogTooLong(ms) => {
                write!(f, "watchdog: {ms} ms is over the limit of {WATCHDOG_MAX_MS} ms")
            }
            Self::NoHelp(b, n) => {
                f.write_str("help: no command ")?;
                show_word(f, b, *n)
            }
        }
    }
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn cpu_arg(cmd: &'static str, s: &[u8], cpus: usize) -> Result<usize, ParseError> {
    let n = number(s).ok_or(ParseError::NotANumber { cmd, what: "<cpu>" })?;
    let cpu = usize::try_from(n).unwrap_or(usize::MAX);
    if cpu >= cpus {
        return Err(ParseError::NoSuchCpu { cmd, cpu, cpus });
    }
    Ok(cpu)
}

/// A duration as `storm` and `soak` take it (`30s`, `10m`, `1h`): whole seconds from 1 to
/// [`STORM_MAX_SECS`]; `None` for anything else (a bare number, another unit, 0, too long).
/// Also what `armstop-runner soak --duration` accepts.
pub fn parse_duration(s: &[u8]) -> Option<u32> {
    let unit = match s.last() {
        Some(b's') => 1,
        Some(b'm') => 60,
        Some(b'h') => 3600,
        _ => return None,
    };
    let n = number(&s[..s.len() - 1]).filter(|&n| n > 0)?;
    let secs = n.checked_mul(unit).filter(|&t| t <= u64::from(STORM_MAX_SECS))?;
    Some(secs as u32)
}

fn storm_arg(s: &[u8]) -> Result<StormLength, ParseError> {
    if let Some(secs) = parse_duration(s) {
        return Ok(StormLength::Seconds(secs));
    }
    let c = number(s).filter(|&n| n > 0 && n <= u64::from(STORM_MAX_CYCLES));
    c.map(|c| StormLength::Cycles(c as u32)).ok_or(ParseError::BadStorm)
}

/// The command named `name`, if there is one.
pub fn command(name: &[u8]) -> Option<&'static (&'static str, &'static str, &'static str)> {
    COMMANDS.iter().find(|c| c.0.as_bytes() == name)
}

/// The commands whose names start with `prefix`, for tab completion.
pub fn completions(prefix: &[u8]) -> impl Iterator<Item = &'static str> + '_ {
    COMMANDS.iter().map(|c| c.0).filter(move |n| n.as_bytes().starts_with(prefix))
}

/// Parses one line (without its line ending) on a machine of `cpus` CPUs: `Ok(None)` for a
/// blank line.
pub fn parse_line(line: &[u8], cpus: usize) -> Result<Option<Command>, ParseError> {
    if line.len() > LINE_MAX {
        return Err(ParseError::TooLong(line.len()));
    }
    for (at, &b) in line.iter().enumerate() {
        match b {
            b' ' | b'\t' | 0x21..=0x7e => {}
            0x80.. => return Err(ParseError::NotAscii(b, at)),
            _ => return Err(ParseError::Control(b, at)),
        }
    }
    let mut words = line.split(|b| *b == b' ' || *b == b'\t').filter(|w| !w.is_empty());
    let Some(name) = words.next() else { return Ok(None) };
    let Some(&(cmd, usage, _)) = command(name) else {
        let (b, n) = word(name);
        return Err(ParseError::Unknown(b, n));
    };
    let mut args: [&[u8]; 2] = [&[], &[]];
    let mut n = 0;
    for w in words {
        if n == 2 {
            return Err(ParseError::Extra { cmd, position: 3 });
        }
        args[n] = w;
        n += 1;
    }
    // How many arguments the usage names, and whether they are optional (`[cmd]`).
    let wanted = usage.split(' ').filter(|u| !u.is_empty()).count();
    let optional = usage.starts_with('[');
    if n > wanted {
        return Err(ParseError::Extra { cmd, position: wanted + 1 });
    }
    if n < wanted && !optional {
        let what = usage.split(' ').nth(n).unwrap_or(usage);
        return Err(ParseError::Missing { cmd, what });
    }
    let c = match cmd {
        "help" => match n {
            0 => Command::Help(None),
            _ => match command(args[0]) {
                Some(c) => Command::Help(Some(c.0)),
                None => {
                    let (b, len) = word(args[0]);
                    return Err(ParseError::NoHelp(b, len));
                }
            },
        },
        "cpus" => Command::Cpus,
        "stop" => Command::Stop(cpu_arg(cmd, args[0], cpus)?),
        "stop2" => {
            let (a, b) = (cpu_arg(cmd, args[0], cpus)?, cpu_arg(cmd, args[1], cpus)?);
            if a == b {
                return Err(ParseError::SameCpu(a));
            }
            Command::Stop2(a, b)
        }
        "stopcpus" => {
            // ASCII was checked above, so this is text.
            let text = core::str::from_utf8(args[0]).unwrap_or("");
            let set: CpuSet = text.parse().map_err(ParseError::BadSet)?;
            if let Some(cpu) = set.last().filter(|&c| c >= cpus) {
                return Err(ParseError::NoSuchCpu { cmd, cpu, cpus });
            }
            Command::StopCpus(set)
        }
        "stopall" => Command::StopAll,
        "off" => Command::Off(cpu_arg(cmd, args[0], cpus)?),
        "on" => Command::On(cpu_arg(cmd, args[0], cpus)?),
        "storm" => Command::Storm(storm_arg(args[0])?),
        "soak" => Command::Soak(parse_duration(args[0]).ok_or(ParseError::BadSoak)?),
        "bench" => Command::Bench,
        "stats" => Command::Stats,
        "sleep" => {
            let ms = number(args[0]).ok_or(ParseError::NotANumber { cmd, what: "<ms>" })?;
            match u32::try_from(ms).ok().filter(|&m| m <= SLEEP_MAX_MS) {
                Some(ms) => Command::Sleep(ms),
                None => return Err(ParseError::SleepTooLong(ms.min(u64::from(u32::MAX)) as u32)),
            }
        }
        "watchdog" => {
            let ms = number(args[0]).ok_or(ParseError::NotANumber { cmd, what: "<ms>" })?;
            match u32::try_from(ms).ok().filter(|&m| m <= WATCHDOG_MAX_MS) {
                Some(ms) => Command::Watchdog(ms),
                None => {
                    return Err(ParseError::WatchdogTooLong(ms.min(u64::from(u32::MAX)) as u32));
                }
            }
        }
        "reset" => Command::Reset,
        _ => Command::Poweroff,
    };
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(line: &str) -> Command {
        parse_line(line.as_bytes(), 4).unwrap_or_else(|e| panic!("{line:?}: {e}")).unwrap()
    }

    fn err(line: &[u8]) -> String {
        parse_line(line, 4).expect_err(&format!("{line:?} parsed")).to_string()
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(ok("help"), Command::Help(None));
        assert_eq!(ok("help stop2"), Command::Help(Some("stop2")));
        assert_eq!(ok("cpus"), Command::Cpus);
        assert_eq!(ok("stop 3"), Command::Stop(3));
        assert_eq!(ok("  stop2\t1   2 "), Command::Stop2(1, 2));
        assert_eq!(ok("stopcpus 1,3"), Command::StopCpus("1,3".parse().unwrap()));
        assert_eq!(ok("stopcpus 0-2"), Command::StopCpus(CpuSet::first_n(3)));
        assert_eq!(ok("stopall"), Command::StopAll);
        assert_eq!(ok("off 1"), Command::Off(1));
        assert_eq!(ok("on 1"), Command::On(1));
        assert_eq!(ok("storm 2000"), Command::Storm(StormLength::Cycles(2000)));
        assert_eq!(ok("storm 30s"), Command::Storm(StormLength::Seconds(30)));
        assert_eq!(ok("storm 10m"), Command::Storm(StormLength::Seconds(600)));
        assert_eq!(ok("storm 1h"), Command::Storm(StormLength::Seconds(3600)));
        assert_eq!(ok("storm 24h"), Command::Storm(StormLength::Seconds(86_400)));
        assert_eq!(ok("soak 30s"), Command::Soak(30));
        assert_eq!(ok("soak 10m"), Command::Soak(600));
        assert_eq!(ok("soak 1h"), Command::Soak(3600));
        assert_eq!(ok("soak 86400s"), Command::Soak(86_400));
        assert_eq!(ok("bench"), Command::Bench);
        assert_eq!(ok("stats"), Command::Stats);
        assert_eq!(ok("watchdog 0"), Command::Watchdog(0));
        assert_eq!(ok("watchdog 5000"), Command::Watchdog(5000));
        assert_eq!(ok("sleep 0"), Command::Sleep(0));
        assert_eq!(ok("sleep 60000"), Command::Sleep(60_000));
        assert_eq!(ok("reset"), Command::Reset);
        assert_eq!(ok("poweroff"), Command::Poweroff);
        assert_eq!(parse_line(b"", 4), Ok(None));
        assert_eq!(parse_line(b"   \t ", 4), Ok(None));
        for (name, _, _) in COMMANDS {
            assert!(command(name.as_bytes()).is_some());
        }
    }

    /// Every bad input, and the one line the console answers with.
    #[test]
    fn bad_inputs_name_what_was_wrong() {
        let long = [b'x'; LINE_MAX + 1];
        let table: &[(&[u8], &str)] = &[
            (b"frobnicate", "unknown command frobnicate (help lists them)"),
            (
                b"averyveryverylongcommandname",
                "unknown command averyveryverylon... (help lists them)",
            ),
            (b"STOP 1", "unknown command STOP"),
            (b"stop", "stop: missing <cpu>"),
            (b"stop2 1", "stop2: missing <b>"),
            (b"stopcpus", "stopcpus: missing <set>"),
            (b"storm", "storm: missing <cycles|duration>"),
            (b"watchdog", "watchdog: missing <ms>"),
            (b"cpus now", "cpus: unexpected argument 1 (help cpus shows its use)"),
            (b"stop 1 2", "stop: unexpected argument 2"),
            (b"stop2 1 2 3", "stop2: unexpected argument 3"),
            (b"help stop extra", "help: unexpected argument 2"),
            (b"stop x", "stop: <cpu> must be a decimal number"),
            (b"stop -1", "stop: <cpu> must be a decimal number"),
            (b"stop +1", "stop: <cpu> must be a decimal number"),
            (b"stop 0x1", "stop: <cpu> must be a decimal number"),
            (b"stop 99999999999999999999", "stop: <cpu> must be a decimal number"),
            (b"stop 4", "stop: no cpu4: this machine has CPUs 0-3"),
            (b"off 1000", "off: no cpu1000: this machine has CPUs 0-3"),
            (b"stop2 2 2", "stop2: needs two different CPUs, got cpu2 twice"),
            (b"stop2 1 9", "stop2: no cpu9"),
            (b"stopcpus 3-1", "stopcpus: range 3-1 ends below its start"),
            (b"stopcpus 1,,2", "stopcpus: empty CPU list"),
            (b"stopcpus 0-7", "stopcpus: no cpu7: this machine has CPUs 0-3"),
            (b"stopcpus a", "stopcpus: not a CPU number or range at byte 0"),
            (b"storm 0", "storm: give cycles"),
            (b"storm 5x", "storm: give cycles"),
            (b"storm 2000000", "storm: give cycles"),
            (b"storm 25h", "storm: give cycles"),
            (b"storm s", "storm: give cycles"),
            (b"storm 1000001", "storm: give cycles"),
            (b"soak", "soak: missing <duration>"),
            (b"soak 600", "soak: give a duration (30s, 10m, 1h; at most 86400 s)"),
            (b"soak 0s", "soak: give a duration"),
            (b"soak 0m", "soak: give a duration"),
            (b"soak 25h", "soak: give a duration"),
            (b"soak 86401s", "soak: give a duration"),
            (b"soak 1441m", "soak: give a duration"),
            (b"soak 10x", "soak: give a duration"),
            (b"soak m", "soak: give a duration"),
            (b"soak -5s", "soak: give a duration"),
            (b"soak 99999999999999999999h", "soak: give a duration"),
            (b"soak 10m 20m", "soak: unexpected argument 2"),
            (b"watchdog 3600001", "watchdog: 3600001 ms is over the limit of 3600000 ms"),
            (b"sleep 60001", "sleep: 60001 ms is over the limit of 60000 ms"),
            (b"sleep", "sleep: missing <ms>"),
            (b"sleep 1s", "sleep: <ms> must be a decimal number"),
            (b"watchdog ten", "watchdog: <ms> must be a decimal number"),
            (b"help nothing", "help: no command nothing"),
            (b"stop 1\x1b[A", "control character 0x1b at column 7"),
            (b"\x7f", "control character 0x7f at column 1"),
            (b"stop\x001", "control character 0x00 at column 5"),
            ("stöp 1".as_bytes(), "byte 0xc3 at column 3 is not ASCII"),
            (b"stop \xff", "byte 0xff at column 6 is not ASCII"),
            (&long, "line too long: 129 bytes, at most 128"),
        ];
        for (line, want) in table {
            let got = err(line);
            assert!(got.starts_with(want), "{line:?}: got {got:?}, want {want:?}");
            assert!(!got.contains('\n'), "one line: {got:?}");
        }
    }

    #[test]
    fn cpu_checks_follow_the_machine() {
        assert_eq!(parse_line(b"stop 63", 64), Ok(Some(Command::Stop(63))));
        assert!(parse_line(b"stop 1", 1).is_err(), "a 1-CPU machine has cpu0 only");
        assert_eq!(
            parse_line(b"stopcpus 0-511", MAX_CPUS),
            Ok(Some(Command::StopCpus(CpuSet::first_n(512))))
        );
    }

    /// Every limit is inclusive: a line of exactly `LINE_MAX` bytes, a number of 19 digits (the
    /// most a `u64` always holds) and a word of 16 bytes, shown whole.
    #[test]
    fn limits_are_inclusive() {
        let mut line = [b' '; LINE_MAX];
        line[..4].copy_from_slice(b"help");
        assert_eq!(parse_line(&line, 4), Ok(Some(Command::Help(None))));
        assert_eq!(
            err(b"watchdog 1000000000000000000"),
            "watchdog: 4294967295 ms is over the limit of 3600000 ms"
        );
        assert_eq!(err(b"sixteenletterscm"), "unknown command sixteenletterscm (help lists them)");
        assert_eq!(err(b"help sixteenletterscm"), "help: no command sixteenletterscm");
    }

    #[test]
    fn completion_lists_matching_commands() {
        assert_eq!(
            completions(b"sto").collect::<Vec<_>>(),
            ["stop", "stop2", "stopcpus", "stopall", "storm"]
        );
        assert_eq!(completions(b"so").collect::<Vec<_>>(), ["soak"]);
        assert_eq!(completions(b"p").collect::<Vec<_>>(), ["poweroff"]);
        assert_eq!(completions(b"").count(), COMMANDS.len());
        assert_eq!(completions(b"x").count(), 0);
    }

    proptest! {
        // Bounded: `just test` runs this in well under a second.
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Any bytes: a command, a blank line or an error, never a panic; an error is one line.
        #[test]
        fn any_bytes_give_an_answer(line in proptest::collection::vec(any::<u8>(), 0..160), cpus in 1usize..=MAX_CPUS) {
            match parse_line(&line, cpus) {
                Ok(_) => prop_assert!(line.len() <= LINE_MAX),
                Err(e) => prop_assert!(!e.to_string().contains('\n')),
            }
        }

        /// Lines made of the language's own words: whatever parses names only CPUs that exist.
        #[test]
        fn parsed_cpus_exist(
            name in proptest::sample::select(COMMANDS.iter().map(|c| c.0).collect::<Vec<_>>()),
            args in proptest::collection::vec("[0-9]{1,3}|[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,3}[smh]|[a-z]{1,4}", 0..4),
            cpus in 1usize..=8,
        ) {
            let line = std::iter::once(name.to_string()).chain(args).collect::<Vec<_>>().join(" ");
            if let Ok(Some(c)) = parse_line(line.as_bytes(), cpus) {
                match c {
                    Command::Stop(a) | Command::Off(a) | Command::On(a) => prop_assert!(a < cpus),
                    Command::Stop2(a, b) => prop_assert!(a < cpus && b < cpus && a != b),
                    Command::StopCpus(s) => prop_assert!(s.is_subset(&CpuSet::first_n(cpus)) && !s.is_empty()),
                    _ => {}
                }
            }
        }
    }
}
