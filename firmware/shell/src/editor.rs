//! The console's line editor: bytes from the UART in, one line at a time out, with what a user
//! of U-Boot's or Zephyr's shell expects: backspace, the arrow keys (and their Ctrl-key
//! equivalents), history, tab completion of command names.
//!
//! It edits bytes and nothing else: every byte that is not an editing key goes into the line
//! as it came (a control character, a byte of UTF-8 or of garbage), so that [`parse_line`]
//! names it in its one-line error instead of the editor dropping it unseen. Only complete,
//! recognised escape sequences are keys; others are swallowed whole, never half-inserted.
//!
//! Invariants: [`Editor::feed`] never panics, never allocates and writes a bounded amount of
//! output per byte; a line that did not fit, or lost bytes on the wire, is never handed on as
//! if it were whole (it comes out as [`Event::TooLong`] or [`Event::Lost`]).
//!
//! Written here rather than taken from `embedded-cli` or `noline`: `embedded-cli` 0.2 drops
//! bytes it does not accept (invalid UTF-8, input past a full buffer) without a trace, which
//! the console must name, and completes only commands declared through its derive; `noline`
//! 0.5 has no completion.
//!
//! [`parse_line`]: crate::parse_line

use crate::{LINE_MAX, completions};

/// Lines the history keeps.
pub const HISTORY: usize = 16;

/// Longest escape sequence parameter run kept track of; a longer one is abandoned.
const ESC_PARAMS_MAX: usize = 8;

/// A finished line (a copy: the editor goes on with the next).
#[derive(Clone, Copy)]
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    /// The line's bytes, as typed (without the end of line).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Debug for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Line(\"{}\")", self.as_bytes().escape_ascii())
    }
}

/// What a byte did.
#[derive(Debug)]
pub enum Event {
    /// Nothing to act on yet.
    Pending,
    /// Enter: a line to parse (possibly empty).
    Line(Line),
    /// Enter on a line longer than [`LINE_MAX`]: how many bytes it had. Nothing of it runs.
    TooLong(usize),
    /// Enter on a line during which the UART lost bytes ([`Editor::input_lost`]).
    Lost,
    /// Ctrl-C: the line was dropped.
    Cancelled,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// ESC seen.
    Start,
    /// ESC [, then this many parameter or intermediate bytes; the first parameter's value;
    /// whether a `;` ended it.
    Csi(usize, u32, bool),
    /// ESC O.
    Ss3,
}

/// The line editor. `prompt` is redrawn in front of the line when it is edited in the middle.
pub struct Editor {
    prompt: &'static str,
    buf: [u8; LINE_MAX],
    len: usize,
    cursor: usize,
    /// Bytes typed past a full line.
    overflow: usize,
    lost: bool,
    esc: Esc,
    /// The last byte was CR: a LF right after it ends nothing more (CR LF is one Enter).
    after_cr: bool,
    history: [[u8; LINE_MAX]; HISTORY],
    history_len: [usize; HISTORY],
    /// How many history slots hold a line; the newest is at `(next + HISTORY - 1) % HISTORY`.
    history_count: usize,
    next: usize,
    /// While browsing the history: how far back (1 = newest).
    browsing: usize,
    /// The line being typed before browsing started, restored by going past the newest.
    draft: [u8; LINE_MAX],
    draft_len: usize,
}

impl Editor {
    /// An empty editor.
    pub const fn new(prompt: &'static str) -> Self {
        Self {
            prompt,
            buf: [0; LINE_MAX],
            len: 0,
            cursor: 0,
            overflow: 0,
            lost: false,
            esc: Esc::None,
            after_cr: false,
            history: [[0; LINE_MAX]; HISTORY],
            history_len: [0; HISTORY],
            history_count: 0,
            next: 0,
            browsing: 0,
            draft: [0; LINE_MAX],
            draft_len: 0,
        }
    }

    /// The prompt.
    pub fn prompt(&self) -> &'static str {
        self.prompt
    }

    /// The line as it stands (for tests and redraws).
    pub fn text(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Where the cursor is, in bytes from the start of the line.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The UART reported lost input (an overrun, a framing error): the line in progress is
    /// damaged, and Enter reports it instead of running it.
    pub fn input_lost(&mut self) {
        self.lost = true;
    }

    /// The history, newest first.
    pub fn history(&self) -> impl Iterator<Item = &[u8]> {
        (1..=self.history_count).map(|back| self.history_entry(back))
    }

    fn history_entry(&self, back: usize) -> &[u8] {
        let i = (self.next + HISTORY - back) % HISTORY;
        &self.history[i][..self.history_len[i]]
    }

    /// Takes one byte; `out` gets what to echo to the terminal.
    pub fn feed(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.esc {
            Esc::None => {}
            _ => {
                self.escape(byte, out);
                return Event::Pending;
            }
        }
        match byte {
            b'\n' if after_cr => Event::Pending,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                out(b"\r\n");
                self.enter()
            }
            0x1b => {
                self.esc = Esc::Start;
                Event::Pending
            }
            0x7f | 0x08 => {
                self.backspace(out);
                Event::Pending
            }
            0x03 => {
                out(b"^C\r\n");
                self.clear_line();
                Event::Cancelled
            }
            0x01 => self.moved(0, out),
            0x05 => self.moved(self.len, out),
            0x02 => self.moved(self.cursor.saturating_sub(1), out),
            0x06 => self.moved((self.cursor + 1).min(self.len), out),
            0x04 => {
                self.delete_at_cursor(out);
                Event::Pending
            }
            0x0b => {
                self.len = self.cursor;
                self.redraw(out);
                Event::Pending
            }
            0x15 => {
                self.len = 0;
                self.cursor = 0;
                self.redraw(out);
                Event::Pending
            }
            0x0c => {
                out(b"\r\n");
                self.redraw(out);
                Event::Pending
            }
            0x10 => {
                self.older(out);
                Event::Pending
            }
            0x0e => {
                self.newer(out);
                Event::Pending
            }
            b'\t' => {
                self.complete(out);
                Event::Pending
            }
            _ => {
                self.insert(byte, out);
                Event::Pending
            }
        }
    }

    fn escape(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) {
        match self.esc {
            Esc::Start => {
                self.esc = match byte {
                    b'[' => Esc::Csi(0, 0, false),
                    b'O' => Esc::Ss3,
                    // ESC and one more byte (Alt-key): not a key of ours; both are dropped.
                    _ => Esc::None,
                };
            }
            Esc::Ss3 => {
                self.esc = Esc::None;
                self.key(byte, 0, out);
            }
            Esc::Csi(n, first, sep) => {
                if n >= ESC_PARAMS_MAX {
                    // A run this long is no key we know: abandon it (the rest is typed text).
                    self.esc = Esc::None;
                } else if (0x30..=0x3f).contains(&byte) {
                    // Parameter bytes: keep the first number (the key code of `ESC [ 3 ~`).
                    let first = if byte.is_ascii_digit() && !sep {
                        first.saturating_mul(10).saturating_add(u32::from(byte - b'0'))
                    } else {
                        first
                    };
                    self.esc = Esc::Csi(n + 1, first, sep || byte == b';');
                } else if (0x20..=0x2f).contains(&byte) {
                    // Intermediate bytes: part of the sequence, no meaning to us.
                    self.esc = Esc::Csi(n + 1, first, sep);
                } else {
                    self.esc = Esc::None;
                    if (0x40..=0x7e).contains(&byte) {
                        self.key(byte, first, out);
                    }
                    // Anything else breaks the sequence off; it is dropped with it.
                }
            }
            Esc::None => {}
        }
    }

    fn key(&mut self, fin: u8, param: u32, out: &mut dyn FnMut(&[u8])) {
        match (fin, param) {
            (b'A', _) => self.older(out),
            (b'B', _) => self.newer(out),
            (b'C', _) => {
                let _ = self.moved((self.cursor + 1).min(self.len), out);
            }
            (b'D', _) => {
                let _ = self.moved(self.cursor.saturating_sub(1), out);
            }
            (b'H', _) | (b'~', 1 | 7) => {
                let _ = self.moved(0, out);
            }
            (b'F', _) | (b'~', 4 | 8) => {
                let _ = self.moved(self.len, out);
            }
            (b'~', 3) => self.delete_at_cursor(out),
            // Other keys (function keys, Page Up...) mean nothing here.
            _ => {}
        }
    }

    fn enter(&mut self) -> Event {
        let event = if self.lost {
            Event::Lost
        } else if self.overflow > 0 {
            Event::TooLong(self.len + self.overflow)
        } else {
            let mut line = Line { buf: [0; LINE_MAX], len: self.len };
            line.buf[..self.len].copy_from_slice(&self.buf[..self.len]);
            self.remember();
            Event::Line(line)
        };
        self.clear_line();
        event
    }

    fn clear_line(&mut self) {
        self.len = 0;
        self.cursor = 0;
        self.overflow = 0;
        self.lost = false;
        self.browsing = 0;
    }

    /// Keeps the line in the history, unless it is empty or repeats the newest entry.
    fn remember(&mut self) {
        let line = &self.buf[..self.len];
        if line.iter().all(|b| *b == b' ') {
            return;
        }
        if self.history_count > 0 && self.history_entry(1) == line {
            return;
        }
        self.history[self.next][..self.len].copy_from_slice(line);
        self.history_len[self.next] = self.len;
        self.next = (self.next + 1) % HISTORY;
        self.history_count = (self.history_count + 1).min(HISTORY);
    }

    fn insert(&mut self, byte: u8, out: &mut dyn FnMut(&[u8])) {
        if self.len == LINE_MAX {
            if self.overflow == 0 {
                out(b"\x07");
            }
            self.overflow = self.overflow.saturating_add(1);
            return;
        }
        self.buf.copy_within(self.cursor..self.len, self.cursor + 1);
        self.buf[self.cursor] = byte;
        self.len += 1;
        self.cursor += 1;
        if self.cursor == self.len {
            out(&[shown(byte)]);
        } else {
            self.redraw(out);
        }
    }

    fn backspace(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.overflow > 0 {
            // The bytes past the end were never shown; rubbing one out takes it back.
            self.overflow -= 1;
            return;
        }
        if self.cursor == 0 {
            return;
        }
        self.buf.copy_within(self.cursor..self.len, self.cursor - 1);
        self.len -= 1;
        self.cursor -= 1;
        if self.cursor == self.len {
            out(b"\x08 \x08");
        } else {
            self.redraw(out);
        }
    }

    fn delete_at_cursor(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.cursor == self.len {
            return;
        }
        self.buf.copy_within(self.cursor + 1..self.len, self.cursor);
        self.len -= 1;
        self.redraw(out);
    }

    fn moved(&mut self, to: usize, out: &mut dyn FnMut(&[u8])) -> Event {
        if to != self.cursor {
            self.cursor = to;
            self.redraw(out);
        }
        Event::Pending
    }

    fn older(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.browsing == self.history_count {
            return;
        }
        if self.browsing == 0 {
            self.draft[..self.len].copy_from_slice(&self.buf[..self.len]);
            self.draft_len = self.len;
        }
        self.browsing += 1;
        self.load_history(out);
    }

    fn newer(&mut self, out: &mut dyn FnMut(&[u8])) {
        match self.browsing {
            0 => {}
            1 => {
                self.browsing = 0;
                let n = self.draft_len;
                self.buf[..n].copy_from_slice(&self.draft[..n]);
                self.set_len(n, out);
            }
            _ => {
                self.browsing -= 1;
                self.load_history(out);
            }
        }
    }

    fn load_history(&mut self, out: &mut dyn FnMut(&[u8])) {
        let i = (self.next + HISTORY - self.browsing) % HISTORY;
        let n = self.history_len[i];
        self.buf[..n].copy_from_slice(&self.history[i][..n]);
        self.set_len(n, out);
    }

    fn set_len(&mut self, n: usize, out: &mut dyn FnMut(&[u8])) {
        self.len = n;
        self.cursor = n;
        self.overflow = 0;
        self.redraw(out);
    }

    /// Tab: completes the command name (or `help`'s argument) under the cursor at the end of
    /// the line; with several candidates, as far as they agree, then lists them.
    fn complete(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.cursor != self.len || self.overflow > 0 {
            out(b"\x07");
            return;
        }
        let line = &self.buf[..self.len];
        let start = line.iter().rposition(|b| *b == b' ').map_or(0, |i| i + 1);
        let words_before = line[..start].split(|b| *b == b' ').filter(|w| !w.is_empty()).count();
        let first = line.split(|b| *b == b' ').find(|w| !w.is_empty()).unwrap_or(&[]);
        let completes_a_command = words_before == 0 || (words_before == 1 && first == b"help");
        if !completes_a_command {
            out(b"\x07");
            return;
        }
        let mut prefix = [0u8; LINE_MAX];
        let plen = self.len - start;
        prefix[..plen].copy_from_slice(&self.buf[start..self.len]);
        let prefix = &prefix[..plen];
        let mut matches = completions(prefix);
        let Some(first_match) = matches.next() else {
            out(b"\x07");
            return;
        };
        // The longest prefix every candidate shares.
        let mut common = first_match.len();
        let mut several = false;
        for m in completions(prefix).skip(1) {
            several = true;
            common =
                common.min(first_match.bytes().zip(m.bytes()).take_while(|(a, b)| a == b).count());
        }
        let mut added = false;
        for &b in &first_match.as_bytes()[plen..common] {
            self.insert(b, out);
            added = true;
        }
        if !several {
            self.insert(b' ', out);
        } else if !added {
            // Nothing more in common: show the candidates, then the line again.
            out(b"\r\n");
            for m in completions(prefix) {
                out(m.as_bytes());
                out(b"  ");
            }
            out(b"\r\n");
            self.redraw(out);
        }
    }

    /// Draws the prompt and the line again, and puts the terminal's cursor where ours is.
    fn redraw(&self, out: &mut dyn FnMut(&[u8])) {
        out(b"\r");
        out(self.prompt.as_bytes());
        for &b in &self.buf[..self.len] {
            out(&[shown(b)]);
        }
        out(b"\x1b[K");
        let back = self.len - self.cursor;
        if back > 0 {
            let mut seq = [0u8; 8];
            let n = cursor_left(back, &mut seq);
            out(&seq[..n]);
        }
    }
}

/// How a byte of the line is echoed: itself if printable, else `?` (the parser will name it).
fn shown(b: u8) -> u8 {
    if (0x20..=0x7e).contains(&b) { b } else { b'?' }
}

/// `ESC [ n D` into `seq`; returns its length.
fn cursor_left(n: usize, seq: &mut [u8; 8]) -> usize {
    seq[0] = 0x1b;
    seq[1] = b'[';
    let mut digits = [0u8; 3];
    let mut k = 0;
    let mut v = n.min(999);
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..k {
        seq[2 + i] = digits[k - 1 - i];
    }
    seq[2 + k] = b'D';
    3 + k
}
