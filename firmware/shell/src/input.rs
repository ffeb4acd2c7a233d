//! The queue of typed-ahead input between a UART's receive interrupt (which pushes) and the
//! console's reader (which pops), with what went wrong on the way kept in its place.
//!
//! Invariants, which the console's line discipline relies on:
//! - Bytes come out in the order they went in.
//! - A loss (a byte the queue had no room for, or one the UART reported broken) comes out
//!   exactly where it happened: after every byte that came before it, before every byte after
//!   it. So the line it broke is the line that is discarded, never a neighbour; a loss right
//!   after a line's Enter belongs to the next line.
//! - A line ending (Enter, or Ctrl-C) always finds room unless the queue is full of them: the
//!   last [`LINE_END_RESERVE`] slots take nothing else. A flood of one over-long line therefore
//!   cannot swallow the Enter that ends it, which would leave the console silent, waiting for
//!   an Enter the user already typed.
//!
//! It is a plain value with `&mut` methods: the firmware keeps it behind a lock that the
//! reader takes with IRQs masked, so the handler never finds it held on its own CPU.

/// The flag a [`Rx::Lost`] carries when the queue, not the UART, had no room.
pub const LOST_QUEUE_FULL: u32 = 1 << 16;

/// The flag a [`Rx::Lost`] carries for a loss recorded with no flag it can keep (none, or only
/// bits a slot uses for itself): still a loss, of unknown cause.
pub const LOST_UNKNOWN: u32 = 1 << 30;

/// Slots kept for line endings: a flood of data bytes leaves this many free.
pub const LINE_END_RESERVE: usize = 16;

/// One item taken from the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// A byte, received whole.
    Byte(u8),
    /// Input was lost here. The flags say how: the UART's own (for a PL011, UARTDR's bits
    /// 8..=11: framing, parity, break, overrun) and [`LOST_QUEUE_FULL`]; never 0.
    Lost(u32),
}

/// Whether `b` ends a line for the reader (so it gets a reserved slot).
pub fn is_line_end(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | 0x03)
}

/// A slot: the byte (if [`HAS_BYTE`]) and the loss that came right after it (bits 8..=16).
type Slot = u32;
const HAS_BYTE: Slot = 1 << 31;
const BYTE: Slot = 0xff;

/// The input queue: `N` slots, of which the last [`LINE_END_RESERVE`] are for line endings.
pub struct InputQueue<const N: usize> {
    slots: [Slot; N],
    /// Next slot to write; only [`InputQueue::push`] and [`InputQueue::lose`] move it.
    head: usize,
    /// Next slot to read; only [`InputQueue::pop`] moves it.
    tail: usize,
    /// A loss the reader has taken the byte before of, and not yet itself.
    after: u32,
}

impl<const N: usize> InputQueue<N> {
    const ROOM: () = assert!(N > LINE_END_RESERVE, "the queue must hold more than its reserve");

    /// An empty queue.
    pub const fn new() -> Self {
        let () = Self::ROOM;
        Self { slots: [0; N], head: 0, tail: 0, after: 0 }
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.head.wrapping_sub(self.tail)
    }

    /// Whether nothing is waiting, neither a byte nor a loss.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.after == 0
    }

    /// Queues `byte`, or records it as lost if there is no room for it (data bytes may not
    /// take the reserved slots). Says whether it was kept.
    pub fn push(&mut self, byte: u8) -> bool {
        let room = if is_line_end(byte) { N } else { N - LINE_END_RESERVE };
        if self.len() >= room {
            self.lose(LOST_QUEUE_FULL);
            return false;
        }
        self.slots[self.head % N] = HAS_BYTE | Slot::from(byte);
        self.head = self.head.wrapping_add(1);
        true
    }

    /// Records a loss after everything queued so far, with `flags` (bits 8..=30; others are
    /// dropped, and a loss left with none is [`LOST_UNKNOWN`]: it is still reported). It never
    /// needs room: it joins the newest slot, or a loss already waiting.
    pub fn lose(&mut self, flags: u32) {
        let flags = match flags & !(HAS_BYTE | BYTE) {
            0 => LOST_UNKNOWN,
            f => f,
        };
        if self.head != self.tail {
            let newest = self.head.wrapping_sub(1) % N;
            self.slots[newest] |= flags;
        } else if self.after != 0 {
            self.after |= flags;
        } else {
            // Empty: the slot is free, and an empty slot with flags is a loss on its own.
            self.slots[self.head % N] = flags;
            self.head = self.head.wrapping_add(1);
        }
    }

    /// The oldest item, if any.
    pub fn pop(&mut self) -> Option<Rx> {
        if self.after != 0 {
            return Some(Rx::Lost(core::mem::take(&mut self.after)));
        }
        if self.head == self.tail {
            return None;
        }
        let slot = self.slots[self.tail % N];
        self.tail = self.tail.wrapping_add(1);
        let flags = slot & !(HAS_BYTE | BYTE);
        if slot & HAS_BYTE == 0 {
            return Some(Rx::Lost(flags));
        }
        self.after = flags;
        Some(Rx::Byte((slot & BYTE) as u8))
    }
}

impl<const N: usize> Default for InputQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}
