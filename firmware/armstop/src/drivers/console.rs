//! The console: a PL011 UART shared by every CPU, with whole lines as the unit of output.
//!
//! Input: bytes reach whoever owns the console's input (the operator console, on the boot CPU)
//! one at a time ([`read`]), in the order they came, with what the UART said about them: a
//! byte lost to an overrun, a framing or parity error or a break is reported, never passed on
//! as data. Once [`enable_rx_interrupts`] has run, the UART's interrupt handler
//! ([`on_rx_interrupt`], on the reader's CPU) empties the RX FIFO into a [`RX_BUFFER`]-byte
//! queue ([`armstop_shell::input`]), so typing ahead while a long command runs is kept; input
//! past a full queue is dropped and reported as lost where it was, like an overrun, and the
//! Enter after a flood is kept.
//!
//! Invariant: a line is formatted into a per-call buffer first and written under the console
//! lock in one go, so lines from different CPUs never interleave within a line. A CPU that
//! faults while it holds the lock (owner recorded) still gets its report out: [`force_line`]
//! writes without waiting for a lock that this CPU itself holds.
//!
//! Written by hand rather than with `arm-pl011-uart`: armstop needs the register map through
//! `tock-registers` (as the other drivers), a lock-free "force" path for fault reports, and
//! output capture for the console's own tests; the driver itself is ~40 lines.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use armstop_shell::input::{self, InputQueue};

use crate::board::BOARD;

register_structs! {
    Pl011Regs {
        (0x000 => dr: ReadWrite<u32>),
        (0x004 => rsr_ecr: ReadWrite<u32>),
        (0x008 => _r0),
        (0x018 => fr: ReadOnly<u32>),
        (0x01c => _r1),
        (0x024 => ibrd: ReadWrite<u32>),
        (0x028 => fbrd: ReadWrite<u32>),
        (0x02c => lcrh: ReadWrite<u32>),
        (0x030 => cr: ReadWrite<u32>),
        (0x034 => _r2),
        (0x038 => imsc: ReadWrite<u32>),
        (0x03c => _r3),
        (0x044 => icr: WriteOnly<u32>),
        (0x048 => @END),
    }
}

const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const FR_BUSY: u32 = 1 << 3;
/// UARTDR's error bits beside the byte: framing, parity, break, overrun.
const DR_ERRORS: u32 = 0xf00;
/// UARTIMSC/ICR: receive and receive-timeout interrupts.
const INT_RX: u32 = (1 << 4) | (1 << 6);

/// Bytes of typed-ahead input kept while the reader is busy (the last
/// [`input::LINE_END_RESERVE`] only for line endings, so a flood keeps its Enter).
pub const RX_BUFFER: usize = 1024;

/// The typed-ahead input: filled by [`on_rx_interrupt`], emptied by [`read`], both on the
/// reader's CPU. The reader takes the lock with IRQs masked, so the handler never finds it
/// held by its own CPU (and were the UART's interrupt ever routed elsewhere, it would wait).
static RX: spin::Mutex<InputQueue<RX_BUFFER>> = spin::Mutex::new(InputQueue::new());

fn regs() -> &'static Pl011Regs {
    // SAFETY: the board's UART base is a PL011 register block, mapped as device memory for the
    // whole run (and usable with the MMU off); all accesses go through volatile MMIO.
    unsafe { &*(BOARD.uart.base as *const Pl011Regs) }
}

/// Programs the UART: 8N1, FIFOs on, the board's baud rate. Safe with the MMU off (no locks).
/// The board's boot pins (the UART's TX/RX, where a GPIO block routes them) are set up first.
pub fn init() {
    crate::gpio::route_boot_pins();
    let u = regs();
    let Some(clk) = BOARD.uart.clock_hz else {
        // No clock to divide (QEMU's UART has no baud rate): the format and FIFOs only.
        u.lcrh.set(0x70);
        u.cr.set(u.cr.get() | 0x301);
        return;
    };
    while u.fr.get() & FR_BUSY != 0 {}
    u.cr.set(0);
    u.icr.set(0x7ff);
    // Divisor in 1/64ths: UARTCLK / (16 * baud) = IBRD + FBRD / 64.
    let div64 = (u64::from(clk) * 4 / u64::from(BOARD.uart.baud)) as u32;
    u.ibrd.set(div64 >> 6);
    u.fbrd.set(div64 & 0x3f);
    u.lcrh.set(0x70); // 8 bits, FIFOs enabled
    u.imsc.set(0);
    u.cr.set(0x301); // UARTEN | TXE | RXE
}

fn put_byte(b: u8) {
    let u = regs();
    while u.fr.get() & FR_TXFF != 0 {}
    u.dr.set(u32::from(b));
}

fn put_bytes(s: &[u8]) {
    for &b in s {
        if b == b'\n' {
            put_byte(b'\r');
        }
        put_byte(b);
    }
}

/// What [`read`] gives: a byte, or input lost at that point (see [`describe_loss`]).
pub use armstop_shell::input::Rx;

/// What the flags of [`Rx::Lost`] say, in words.
pub fn describe_loss(flags: u32) -> &'static str {
    if flags & input::LOST_UNKNOWN != 0 {
        "cause unknown"
    } else if flags & input::LOST_QUEUE_FULL != 0 {
        "input came faster than the console read it: its 1024-byte buffer overflowed"
    } else if flags & (1 << 11) != 0 {
        "receive FIFO overrun (input came faster than it was read)"
    } else if flags & (1 << 10) != 0 {
        "break on the line"
    } else if flags & (1 << 8) != 0 {
        "framing error (wrong baud rate?)"
    } else {
        "parity error"
    }
}

/// Takes the next input, if any is waiting (never blocks), in the order it came: the buffered
/// bytes, with a loss where it happened, then what is still in the RX FIFO. Call from the
/// reader's CPU.
pub fn read() -> Option<Rx> {
    // Masked, so the handler cannot fill the queue between the look at it and the look at
    // the FIFO, which would hand a newer byte out before older ones.
    let _irq = crate::cpu::mask_irqs();
    if let Some(rx) = RX.lock().pop() {
        return Some(rx);
    }
    read_fifo()
}

/// One entry of the RX FIFO, if any.
fn read_fifo() -> Option<Rx> {
    let u = regs();
    if u.fr.get() & FR_RXFE != 0 {
        return None;
    }
    let d = u.dr.get();
    if d & DR_ERRORS != 0 {
        // Clears the sticky error flags, so the next byte is judged on its own.
        u.rsr_ecr.set(0);
        return Some(Rx::Lost(d & DR_ERRORS));
    }
    Some(Rx::Byte(d as u8))
}

/// Whether input is waiting (queued or in the FIFO, or a loss to report).
pub fn rx_pending() -> bool {
    let _irq = crate::cpu::mask_irqs();
    !RX.lock().is_empty() || regs().fr.get() & FR_RXFE == 0
}

/// Unmasks the UART's receive interrupts: from now on the board's UART interrupt
/// ([`armstop_boards::Pl011::intid`], routed by the caller to the reader's CPU with
/// [`on_rx_interrupt`] as its handler) buffers what arrives.
pub fn enable_rx_interrupts() {
    let u = regs();
    u.icr.set(INT_RX);
    u.imsc.set(u.imsc.get() | INT_RX);
}

/// The UART interrupt's handler: empties the RX FIFO into the input queue (which lowers the
/// level-triggered line), keeping count of what it could not keep.
pub fn on_rx_interrupt() {
    // Cleared before the FIFO is emptied, not after: a byte that arrives once the last look
    // found the FIFO empty raises the interrupt again instead of waiting, unsignalled, in the
    // FIFO (QEMU's PL011 raises it only as the FIFO goes from empty to one byte).
    regs().icr.set(INT_RX);
    let mut q = RX.lock();
    while let Some(rx) = read_fifo() {
        match rx {
            Rx::Lost(flags) => q.lose(flags),
            Rx::Byte(b) => {
                // One it has no room for is kept as a loss in its place.
                let _ = q.push(b);
            }
        }
    }
}

/// Writes bytes as they are, under the console lock, with no line ending added: a line
/// editor's echo and redraws (see [`write_line`] for whole lines).
pub fn write_raw(bytes: &[u8]) {
    locked(|| raw_bytes(bytes));
}

/// Emits bytes without the LF to CR LF translation of lines (the editor sends its own CR LF).
fn raw_bytes(bytes: &[u8]) {
    for &b in bytes {
        put_byte(b);
    }
    if CAPTURING.load(Ordering::Relaxed) {
        let mut c = CAPTURE.lock();
        // Captures are text for tests: bytes that are not UTF-8 on their own are left out.
        if let Ok(s) = core::str::from_utf8(bytes) {
            let _ = c.write_str(s);
        }
    }
}

/// Writes a string with no lock at all. Only for the boot CPU before other CPUs run (and
/// before the MMU is on, when locks do not work).
pub fn early_write(s: &str) {
    put_bytes(s.as_bytes());
}

/// A fixed-size line buffer; output past its end is cut and marked with `...`.
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, truncated: false }
    }

    /// What was written (valid UTF-8 up to a cut inside a character, which is dropped).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: `valid_up_to` is a UTF-8 boundary.
                unsafe { core::str::from_utf8_unchecked(&self.buf[..e.valid_up_to()]) }
            }
        }
    }

    /// Whether output was cut.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() && !self.truncated {
            self.truncated = true;
            let tail = N.saturating_sub(3);
            if self.len > tail {
                self.buf[tail..].fill(b'.');
            }
        }
        Ok(())
    }
}

/// Longest line written in one piece.
pub const LINE_MAX: usize = 256;
const NO_OWNER: usize = usize::MAX;

static LOCK: spin::Mutex<()> = spin::Mutex::new(());
static OWNER: AtomicUsize = AtomicUsize::new(NO_OWNER);

/// Writes one line (a newline is added) atomically with respect to other CPUs' lines.
pub fn write_line(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::<LINE_MAX>::new();
    let _ = line.write_fmt(args);
    locked(|| emit(line.as_str()));
}

/// Runs `f` (one write) under the console lock with IRQs masked, the owner recorded.
fn locked(f: impl FnOnce()) {
    let _irq = crate::cpu::mask_irqs();
    let me = crate::cpu::id();
    if OWNER.load(Ordering::Relaxed) == me {
        // Re-entered on this CPU (a fault while printing): waiting would deadlock.
        f();
        return;
    }
    let _g = LOCK.lock();
    OWNER.store(me, Ordering::Relaxed);
    f();
    OWNER.store(NO_OWNER, Ordering::Relaxed);
}

/// Writes a fault report line: waits for the lock for a bounded time (another CPU may have
/// died holding it), then writes regardless.
pub fn force_line(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::<LINE_MAX>::new();
    let _ = line.write_fmt(args);
    let me = crate::cpu::id();
    if OWNER.load(Ordering::Relaxed) != me {
        let deadline = crate::time::Instant::now() + core::time::Duration::from_millis(200);
        loop {
            if let Some(_g) = LOCK.try_lock() {
                OWNER.store(me, Ordering::Relaxed);
                emit(line.as_str());
                OWNER.store(NO_OWNER, Ordering::Relaxed);
                return;
            }
            if crate::time::Instant::now() > deadline {
                break;
            }
            core::hint::spin_loop();
        }
    }
    emit(line.as_str());
}

/// After a fault on this CPU: if it held the console lock, release it, so that the other
/// CPUs (and this one, after the harness restarts it) can print again.
pub fn release_if_owner() {
    if OWNER.load(Ordering::Relaxed) == crate::cpu::id() {
        OWNER.store(NO_OWNER, Ordering::Relaxed);
        // SAFETY: this CPU holds the lock (it is the recorded owner) and abandons the code
        // that held it; no one else can be inside the critical section.
        unsafe { LOCK.force_unlock() };
    }
}

static CAPTURING: AtomicBool = AtomicBool::new(false);
/// Bytes a capture keeps.
const CAPTURE_MAX: usize = 8192;
static CAPTURE: spin::Mutex<LineBuf<CAPTURE_MAX>> = spin::Mutex::new(LineBuf::new());

fn emit(line: &str) {
    put_bytes(line.as_bytes());
    put_bytes(b"\n");
    if CAPTURING.load(Ordering::Relaxed) {
        // The console lock is held, so captured lines keep the order they were written in.
        let mut c = CAPTURE.lock();
        let _ = c.write_str(line);
        let _ = c.write_str("\n");
    }
}

/// Starts copying every console line into a buffer (for tests of the console itself).
pub fn capture_start() {
    CAPTURE.lock().clear();
    CAPTURING.store(true, Ordering::SeqCst);
}

/// Stops capturing and hands the captured text to `f`.
///
/// `f` gets a copy, with no lock held: it is usually a test's assertions, and one that fails
/// must leave the console (and the next capture) usable, since the harness goes on printing.
pub fn capture_finish<R>(f: impl FnOnce(&str, bool) -> R) -> R {
    CAPTURING.store(false, Ordering::SeqCst);
    // A writer that saw CAPTURING set appends under the console lock: wait for it to finish.
    drop(LOCK.lock());
    let mut copy = LineBuf::<CAPTURE_MAX>::new();
    let truncated = {
        let c = CAPTURE.lock();
        let _ = copy.write_str(c.as_str());
        c.truncated()
    };
    f(copy.as_str(), truncated)
}

/// Prints a line to the console (see [`write_line`]).
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::console::write_line(format_args!($($arg)*)) };
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = crate::time::Instant::now().since_boot();
        write_line(format_args!(
            "[{:>4}.{:06}] cpu{} {:<5} {}",
            t.as_secs(),
            t.subsec_micros(),
            crate::cpu::id(),
            record.level(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

/// Installs the console as the `log` backend at `level`.
pub fn init_logger(level: log::LevelFilter) {
    // A second call (there is none) would be refused by `log`; nothing to do then.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
