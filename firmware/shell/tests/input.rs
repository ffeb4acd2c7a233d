//! The input queue: order, where losses come out, and the room kept for line endings.

use armstop_shell::input::{InputQueue, LINE_END_RESERVE, LOST_QUEUE_FULL, LOST_UNKNOWN, Rx};
use proptest::prelude::*;

const N: usize = 64;
const DATA_ROOM: usize = N - LINE_END_RESERVE;

fn drain<const M: usize>(q: &mut InputQueue<M>) -> Vec<Rx> {
    std::iter::from_fn(|| q.pop()).collect()
}

fn bytes(s: &[u8]) -> Vec<Rx> {
    s.iter().map(|&b| Rx::Byte(b)).collect()
}

#[test]
fn bytes_come_out_in_order() {
    let mut q = InputQueue::<N>::new();
    assert!(q.is_empty());
    for &b in b"stop 0\r" {
        assert!(q.push(b));
    }
    assert_eq!(q.len(), 7);
    assert_eq!(drain(&mut q), bytes(b"stop 0\r"));
    assert!(q.is_empty());
    assert_eq!(q.pop(), None);
}

#[test]
fn wraps_around_many_times() {
    let mut q = InputQueue::<N>::new();
    let mut out = Vec::new();
    for i in 0..10 * N {
        assert!(q.push((i % 251) as u8));
        if i % 3 == 0 {
            out.extend(drain(&mut q));
        }
    }
    out.extend(drain(&mut q));
    let want: Vec<Rx> = (0..10 * N).map(|i| Rx::Byte((i % 251) as u8)).collect();
    assert_eq!(out, want);
}

#[test]
fn a_flood_keeps_its_enter() {
    let mut q = InputQueue::<N>::new();
    for _ in 0..5000 {
        q.push(b'a');
    }
    assert!(q.push(b'\r'), "the Enter after a flood must find room");
    let mut want = bytes(&[b'a'; DATA_ROOM]);
    want.push(Rx::Lost(LOST_QUEUE_FULL));
    want.push(Rx::Byte(b'\r'));
    assert_eq!(drain(&mut q), want);
}

#[test]
fn ctrl_c_and_newline_take_reserved_room_too() {
    let mut q = InputQueue::<N>::new();
    for _ in 0..DATA_ROOM {
        assert!(q.push(b'x'));
    }
    assert!(!q.push(b'x'), "data may not take the reserve");
    assert!(q.push(0x03));
    assert!(q.push(b'\n'));
}

#[test]
fn line_ends_beyond_the_reserve_are_lost_and_merge_the_lines() {
    let mut q = InputQueue::<N>::new();
    for _ in 0..DATA_ROOM {
        q.push(b'x');
    }
    for _ in 0..LINE_END_RESERVE {
        assert!(q.push(b'\r'));
    }
    assert!(!q.push(b'\r'), "a full queue keeps nothing");
    let out = drain(&mut q);
    assert_eq!(
        out.last(),
        Some(&Rx::Lost(LOST_QUEUE_FULL)),
        "the loss is after the last kept Enter"
    );
    assert_eq!(out.len(), N + 1);
}

#[test]
fn a_loss_after_an_enter_belongs_to_the_next_line() {
    let mut q = InputQueue::<N>::new();
    for _ in 0..DATA_ROOM - 1 {
        q.push(b'a');
    }
    q.push(b'\r');
    // The next line's first bytes find no room: their loss must come after the Enter.
    assert!(!q.push(b's'));
    assert!(!q.push(b't'));
    let out = drain(&mut q);
    assert_eq!(out[DATA_ROOM - 1], Rx::Byte(b'\r'));
    assert_eq!(out[DATA_ROOM], Rx::Lost(LOST_QUEUE_FULL));
    assert_eq!(out.len(), DATA_ROOM + 1);
    // Room again: the rest of that line comes after its loss.
    for &b in b"op 0\r" {
        assert!(q.push(b));
    }
    assert_eq!(drain(&mut q), bytes(b"op 0\r"));
}

#[test]
fn uart_errors_come_out_where_they_happened() {
    let mut q = InputQueue::<N>::new();
    q.lose(1 << 8); // framing error, queue empty
    q.push(b'a');
    q.lose(1 << 11); // overrun after 'a'
    q.lose(1 << 10); // and a break: joins it
    q.push(b'b');
    assert_eq!(
        drain(&mut q),
        vec![Rx::Lost(1 << 8), Rx::Byte(b'a'), Rx::Lost((1 << 11) | (1 << 10)), Rx::Byte(b'b')]
    );
}

#[test]
fn a_loss_with_no_flag_it_can_keep_is_still_a_loss_and_never_a_byte() {
    let mut q = InputQueue::<N>::new();
    q.lose(0); // nothing said
    q.push(b'a');
    q.lose(0x7f); // bits a slot keeps its byte in
    q.push(b'b');
    q.lose(1 << 31); // the bit that marks a byte
    assert_eq!(
        drain(&mut q),
        vec![
            Rx::Lost(LOST_UNKNOWN),
            Rx::Byte(b'a'),
            Rx::Lost(LOST_UNKNOWN),
            Rx::Byte(b'b'),
            Rx::Lost(LOST_UNKNOWN)
        ]
    );
    // Flags it can keep are kept, the others dropped.
    q.lose((1 << 11) | 0x41);
    assert_eq!(q.pop(), Some(Rx::Lost(1 << 11)));
}

#[test]
fn a_loss_while_the_reader_holds_the_one_before_joins_it() {
    let mut q = InputQueue::<N>::new();
    q.push(b'a');
    q.lose(1 << 8);
    assert_eq!(q.pop(), Some(Rx::Byte(b'a')));
    assert!(!q.is_empty(), "the loss after 'a' is still waiting");
    q.lose(LOST_QUEUE_FULL);
    assert_eq!(q.pop(), Some(Rx::Lost((1 << 8) | LOST_QUEUE_FULL)));
    assert_eq!(q.pop(), None);
    assert!(q.is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Type(u8),
    Read(usize),
    UartError,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![Just(b'a'), Just(b'b'), Just(b'\r')].prop_map(Op::Type),
        2 => (0usize..80).prop_map(Op::Read),
        1 => Just(Op::UartError),
    ]
}

/// Splits a stream into lines ended by `\r`: each line's bytes and whether a loss fell in it.
fn lines(items: &[Rx]) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let (mut line, mut lost) = (Vec::new(), false);
    for item in items {
        match *item {
            Rx::Byte(b'\r') => out.push((std::mem::take(&mut line), std::mem::take(&mut lost))),
            Rx::Byte(b) => line.push(b),
            Rx::Lost(flags) => {
                assert_ne!(flags, 0);
                lost = true;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the pace of the reader, the k-th line the reader gets ends at the k-th Enter
    /// the queue kept, and it comes out marked lost exactly when something typed between that
    /// Enter and the kept one before it was lost (or came in broken); unmarked, it is exactly
    /// what was typed. An Enter is only lost when the queue is completely full.
    #[test]
    fn losses_mark_exactly_the_lines_they_broke(ops in prop::collection::vec(op(), 0..600)) {
        let mut q = InputQueue::<N>::new();
        // What was typed, as the reader should see it if nothing were lost, and the lines
        // the kept Enters end: (bytes, whether any of it was lost).
        let mut out = Vec::new();
        let mut want: Vec<(Vec<u8>, bool)> = Vec::new();
        let (mut line, mut broken) = (Vec::new(), false);
        for o in &ops {
            match *o {
                Op::Type(b) => {
                    let full = q.len() == N;
                    let kept = q.push(b);
                    if b == b'\r' {
                        prop_assert_eq!(kept, !full, "an Enter is lost only when the queue is full");
                    }
                    match (b, kept) {
                        (b'\r', true) => {
                            want.push((std::mem::take(&mut line), std::mem::take(&mut broken)))
                        }
                        (_, true) => line.push(b),
                        (_, false) => broken = true,
                    }
                }
                Op::Read(n) => out.extend((0..n).map_while(|_| q.pop())),
                Op::UartError => {
                    q.lose(1 << 11);
                    broken = true;
                }
            }
        }
        out.extend(drain(&mut q));
        let got = lines(&out);
        prop_assert_eq!(got.len(), want.len());
        for (k, ((g, g_lost), (w, w_lost))) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g_lost, w_lost, "line {} marked wrongly", k);
            if !w_lost {
                prop_assert_eq!(g, w, "line {} came out changed", k);
            }
        }
    }
}
