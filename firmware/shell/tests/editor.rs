//! The line editor, key by key, and a bounded property run over arbitrary bytes.

use armstop_shell::editor::HISTORY;
use armstop_shell::{Editor, Event, LINE_MAX, ParseError, parse_line};
use proptest::prelude::*;

/// Feeds `bytes`; returns every event that is not `Pending`, and the echo.
fn feed(ed: &mut Editor, bytes: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let mut echo = Vec::new();
    let mut events = Vec::new();
    for &b in bytes {
        match ed.feed(b, &mut |s| echo.extend_from_slice(s)) {
            Event::Pending => {}
            e => events.push(e),
        }
    }
    (events, echo)
}

/// The lines `bytes` gives, as strings; panics on any other event.
fn lines(ed: &mut Editor, bytes: &[u8]) -> Vec<String> {
    feed(ed, bytes)
        .0
        .into_iter()
        .map(|e| match e {
            Event::Line(l) => String::from_utf8_lossy(l.as_bytes()).into_owned(),
            other => panic!("expected a line, got {other:?}"),
        })
        .collect()
}

fn one_line(bytes: &[u8]) -> String {
    let mut ed = Editor::new("> ");
    let mut got = lines(&mut ed, bytes);
    assert_eq!(got.len(), 1, "one Enter, one line: {got:?}");
    got.remove(0)
}

const LEFT: &[u8] = b"\x1b[D";
const RIGHT: &[u8] = b"\x1b[C";
const UP: &[u8] = b"\x1b[A";
const DOWN: &[u8] = b"\x1b[B";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn typing_then_enter_gives_the_line_and_echoes_it() {
    let mut ed = Editor::new("> ");
    let (events, echo) = feed(&mut ed, b"cpus\r");
    assert!(matches!(&events[..], [Event::Line(l)] if l.as_bytes() == b"cpus"));
    assert_eq!(echo, b"cpus\r\n");
}

#[test]
fn cr_lf_is_one_enter_and_lf_alone_is_one_too() {
    let mut ed = Editor::new("> ");
    assert_eq!(lines(&mut ed, b"a\r\nb\nc\r\r"), ["a", "b", "c", ""]);
}

#[test]
fn backspace_and_delete_rub_out() {
    assert_eq!(one_line(b"stpo\x7f\x7fop\r"), "stop");
    assert_eq!(one_line(b"stopp\x08\r"), "stop");
    // Delete (ESC [ 3 ~) and Ctrl-D take the byte under the cursor.
    assert_eq!(one_line(&cat(&[b"stoxp", LEFT, LEFT, b"\x1b[3~\r"])), "stop");
    assert_eq!(one_line(&cat(&[b"stoxp", LEFT, LEFT, b"\x04\r"])), "stop");
    // Backspace at the start does nothing.
    assert_eq!(one_line(&cat(&[b"ab", LEFT, LEFT, b"\x7f\r"])), "ab");
    // Mid-line it takes the byte before the cursor, and the rest moves up.
    assert_eq!(one_line(&cat(&[b"stxop", LEFT, LEFT, b"\x7f\r"])), "stop");
}

/// At the end of the line a rub-out is echoed as back, space, back; mid-line the line is drawn
/// again.
#[test]
fn backspace_echo() {
    let mut ed = Editor::new("> ");
    let (_, echo) = feed(&mut ed, b"ab\x7f");
    assert_eq!(echo, b"ab\x08 \x08");
    let mut ed = Editor::new("> ");
    let (_, echo) = feed(&mut ed, &cat(&[b"abc", LEFT, b"\x7f"]));
    assert!(echo.ends_with(b"\r> ac\x1b[K\x1b[1D"), "{:?}", String::from_utf8_lossy(&echo));
}

#[test]
fn arrows_home_end_and_their_ctrl_keys_move_the_cursor() {
    assert_eq!(one_line(&cat(&[b"sop", LEFT, LEFT, b"t\r"])), "stop");
    assert_eq!(one_line(&cat(&[b"sop", LEFT, LEFT, RIGHT, b"x\r"])), "soxp");
    assert_eq!(one_line(b"top\x01s\r"), "stop");
    assert_eq!(one_line(b"sto\x01\x05p\r"), "stop");
    assert_eq!(one_line(b"sop\x02\x02t\r"), "stop");
    assert_eq!(one_line(b"sp\x01\x06to\r"), "stop");
    assert_eq!(one_line(&cat(&[b"top", b"\x1b[H", b"s", b"\x1b[F", b"!\r"])), "stop!");
    assert_eq!(one_line(&cat(&[b"top", b"\x1b[1~", b"s", b"\x1b[4~", b"!\r"])), "stop!");
    assert_eq!(one_line(&cat(&[b"top", b"\x1bOH", b"s\r"])), "stop");
    // Ctrl-Right (ESC [ 1 ; 5 C) is still "right".
    assert_eq!(one_line(&cat(&[b"ab", LEFT, LEFT, b"\x1b[1;5C", b"x\r"])), "axb");
    // Left at the start and right at the end stay put.
    assert_eq!(one_line(&cat(&[b"b", LEFT, LEFT, LEFT, b"a", RIGHT, RIGHT, b"c\r"])), "abc");
}

#[test]
fn a_mid_line_edit_redraws_prompt_line_and_cursor() {
    let mut ed = Editor::new("armstop> ");
    let (_, echo) = feed(&mut ed, &cat(&[b"sop", LEFT, LEFT, b"t"]));
    let echo = String::from_utf8(echo).unwrap();
    assert!(echo.ends_with("\rarmstop> stop\x1b[K\x1b[2D"), "{echo:?}");
    assert_eq!(ed.cursor(), 2);
}

/// The cursor is put back with `ESC [ n D`, n in decimal: one, two and three digits.
#[test]
fn the_cursor_goes_back_by_one_two_or_three_digits() {
    for (typed, back) in [(5, "5"), (12, "12"), (107, "107"), (LINE_MAX, "128")] {
        let mut ed = Editor::new("> ");
        let text = "x".repeat(typed);
        let (_, echo) = feed(&mut ed, &cat(&[text.as_bytes(), b"\x01"]));
        let echo = String::from_utf8(echo).unwrap();
        let want = format!("\r> {text}\x1b[K\x1b[{back}D");
        assert!(echo.ends_with(&want), "{typed} back: {echo:?}");
        assert_eq!(ed.cursor(), 0);
    }
}

/// Ctrl-L starts the prompt and the line again on a fresh terminal line; the line is unchanged.
#[test]
fn ctrl_l_redraws_on_a_new_line() {
    let mut ed = Editor::new("> ");
    let (events, echo) = feed(&mut ed, b"cp\x0c");
    assert!(events.is_empty());
    assert_eq!(echo, b"cp\r\n\r> cp\x1b[K");
    assert_eq!(ed.text(), b"cp");
    assert_eq!(lines(&mut ed, b"us\r"), ["cpus"]);
}

/// The editor's prompt is the one it was made with; a line's `Debug` shows its bytes escaped.
#[test]
fn prompt_and_line_debug() {
    let mut ed = Editor::new("armstop> ");
    assert_eq!(ed.prompt(), "armstop> ");
    let (events, _) = feed(&mut ed, b"cpus\x01\x05\"\r");
    assert_eq!(format!("{events:?}"), r#"[Line(Line("cpus\""))]"#);
}

#[test]
fn kill_keys_and_ctrl_c() {
    assert_eq!(one_line(b"garbage\x15cpus\r"), "cpus");
    assert_eq!(one_line(b"cpusxyz\x02\x02\x02\x0b\r"), "cpus");
    let mut ed = Editor::new("> ");
    let (events, echo) = feed(&mut ed, b"stop 1\x03");
    assert!(matches!(&events[..], [Event::Cancelled]));
    assert!(echo.ends_with(b"^C\r\n"));
    assert_eq!(lines(&mut ed, b"cpus\r"), ["cpus"], "the next line starts clean");
}

#[test]
fn history_goes_back_and_forth_and_keeps_the_draft() {
    let mut ed = Editor::new("> ");
    lines(&mut ed, b"cpus\rstats\r");
    assert_eq!(lines(&mut ed, &cat(&[UP, b"\r"])), ["stats"]);
    // "stats" again is not stored twice.
    assert_eq!(ed.history().collect::<Vec<_>>(), [b"stats".as_slice(), b"cpus"]);
    assert_eq!(lines(&mut ed, &cat(&[UP, UP, UP, b"\r"])), ["cpus"], "stops at the oldest");
    // Newest first: cpus, stats, cpus.
    assert_eq!(lines(&mut ed, &cat(&[UP, UP, DOWN, b"\r"])), ["cpus"]);
    assert_eq!(lines(&mut ed, &cat(&[b"st", UP, DOWN, b"op\r"])), ["stop"], "the draft comes back");
    assert_eq!(lines(&mut ed, &cat(&[b"\x10\x10\x0e\r"])), ["stop"], "Ctrl-P / Ctrl-N");
    // Empty and blank lines are not remembered.
    lines(&mut ed, b"\r   \r");
    assert_eq!(ed.history().next(), Some(b"stop".as_slice()));
}

#[test]
fn history_keeps_the_newest_lines_only() {
    let mut ed = Editor::new("> ");
    for i in 0..HISTORY + 5 {
        lines(&mut ed, format!("stop {i}\r").as_bytes());
    }
    let h: Vec<_> = ed.history().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    assert_eq!(h.len(), HISTORY);
    assert_eq!(h[0], format!("stop {}", HISTORY + 4));
    assert_eq!(h[HISTORY - 1], "stop 5");
    let oldest = cat(&[&UP.repeat(HISTORY + 3), b"\r"]);
    assert_eq!(lines(&mut ed, &oldest), ["stop 5"]);
}

#[test]
fn tab_completes_command_names() {
    assert_eq!(one_line(b"he\t\r"), "help ");
    assert_eq!(one_line(b"wat\tx\r"), "watchdog x");
    // stop, stop2, stopcpus, stopall: as far as they agree.
    assert_eq!(one_line(b"st\t\r"), "st");
    assert_eq!(one_line(b"sto\t\r"), "sto", "stop... and storm");
    assert_eq!(one_line(b"stop\t\r"), "stop");
    assert_eq!(one_line(b"stopc\t\r"), "stopcpus ");
    // `help`'s argument is a command name too.
    assert_eq!(one_line(b"help pow\t\r"), "help poweroff ");
    // Leading spaces are no word.
    assert_eq!(one_line(b"  he\t\r"), "  help ");
}

/// A line already past its room is not completed (the bytes past the end were never kept).
#[test]
fn tab_on_a_line_too_long_rings_and_adds_nothing() {
    let mut ed = Editor::new("> ");
    let full = format!("{}he", " ".repeat(LINE_MAX - 2));
    feed(&mut ed, full.as_bytes());
    let (_, echo) = feed(&mut ed, b"l");
    assert_eq!(echo, b"\x07", "the first byte past the room rings");
    let (_, echo) = feed(&mut ed, b"\t");
    assert_eq!(echo, b"\x07");
    let (events, _) = feed(&mut ed, b"\r");
    assert!(matches!(&events[..], [Event::TooLong(n)] if *n == LINE_MAX + 1), "{events:?}");
}

#[test]
fn tab_lists_candidates_when_they_share_nothing_more() {
    let mut ed = Editor::new("> ");
    let (_, echo) = feed(&mut ed, b"stop");
    let (_, echo2) = feed(&mut ed, b"\t");
    assert_eq!(ed.text(), b"stop");
    let shown = String::from_utf8_lossy(&echo2);
    for c in ["stop", "stop2", "stopcpus", "stopall"] {
        assert!(shown.contains(&format!("{c}  ")), "{c} listed: {shown:?}");
    }
    assert!(shown.ends_with("\r> stop\x1b[K"), "line drawn again: {shown:?}");
    assert!(!echo.is_empty());
}

#[test]
fn tab_with_nothing_to_complete_rings_and_changes_nothing() {
    for line in [&b"xyz"[..], b"stop 1", b"cpus "] {
        let mut ed = Editor::new("> ");
        feed(&mut ed, line);
        let (_, echo) = feed(&mut ed, b"\t");
        assert_eq!(echo, b"\x07", "{:?}", String::from_utf8_lossy(line));
        assert_eq!(ed.text(), line);
    }
    // On an empty line every command is a candidate: they are listed.
    let mut ed = Editor::new("> ");
    let (_, echo) = feed(&mut ed, b"\t");
    assert!(String::from_utf8_lossy(&echo).contains("poweroff  "));
    // Not at the end of the line: no completion either.
    let mut ed = Editor::new("> ");
    feed(&mut ed, &cat(&[b"he", LEFT]));
    let (_, echo) = feed(&mut ed, b"\t");
    assert_eq!(echo, b"\x07");
    assert_eq!(ed.text(), b"he");
}

#[test]
fn a_line_too_long_is_reported_whole_and_never_runs() {
    let mut ed = Editor::new("> ");
    let long = [b'a'; LINE_MAX + 72];
    let (events, echo) = feed(&mut ed, &cat(&[&long, b"\r"]));
    assert!(matches!(&events[..], [Event::TooLong(n)] if *n == LINE_MAX + 72), "{events:?}");
    assert_eq!(echo.iter().filter(|b| **b == 0x07).count(), 1, "one bell when it fills");
    // Exactly full is fine; rubbing out the excess makes it fine again.
    let full = [b'b'; LINE_MAX];
    assert_eq!(lines(&mut ed, &cat(&[&full, b"\r"])), [String::from_utf8(full.to_vec()).unwrap()]);
    let over = cat(&[&full, b"xyz", b"\x7f\x7f\x7f\r"]);
    assert_eq!(lines(&mut ed, &over).len(), 1);
    assert_eq!(lines(&mut ed, b"cpus\r"), ["cpus"]);
}

#[test]
fn lost_input_damages_the_line_only() {
    let mut ed = Editor::new("> ");
    feed(&mut ed, b"sto");
    ed.input_lost();
    let (events, _) = feed(&mut ed, b"p 1\r");
    assert!(matches!(&events[..], [Event::Lost]));
    assert_eq!(lines(&mut ed, b"cpus\r"), ["cpus"]);
}

#[test]
fn other_bytes_reach_the_parser_which_names_them() {
    let l = one_line(b"cp\x07us\r");
    assert_eq!(parse_line(l.as_bytes(), 4), Err(ParseError::Control(0x07, 2)));
    let mut ed = Editor::new("> ");
    let (events, echo) = feed(&mut ed, "stop é\r".as_bytes());
    let Event::Line(l) = &events[0] else { panic!("{events:?}") };
    assert_eq!(parse_line(l.as_bytes(), 4), Err(ParseError::NotAscii(0xc3, 5)));
    assert_eq!(echo, b"stop ??\r\n", "non-printable bytes echo as ?");
}

#[test]
fn unknown_escape_sequences_are_swallowed_whole() {
    // Insert (ESC [ 2 ~), F1 (ESC O P), F5 (ESC [ 1 5 ~), Alt-x (ESC x).
    assert_eq!(one_line(b"cp\x1b[2~u\x1bOPs\x1b[15~\x1bx\r"), "cpus");
    // A parameter run past any key we know is abandoned, and what follows is text again.
    let mut ed = Editor::new("> ");
    let l = lines(&mut ed, b"\x1b[1111111111111cpus\r");
    assert_eq!(l.len(), 1);
    assert!(l[0].ends_with("cpus"), "{l:?}");
    assert_eq!(lines(&mut ed, b"stats\r"), ["stats"]);
    // The key code is the whole first number: F5 (15) is not Home (1), and text typed after it
    // still goes where the cursor was.
    assert_eq!(one_line(b"ab\x1b[15~c\r"), "abc");
    // A run of intermediate bytes counts towards the limit as parameters do: the byte past it
    // is dropped with the sequence, and the rest is text ('y' is not taken as its final byte).
    assert_eq!(one_line(b"x\x1b[        !yz\r"), "xyz");
}

/// Only the first number of a CSI sequence is its key code: modifiers after `;` (Ctrl-Delete,
/// ESC [ 3 ; 5 ~) do not change which key it is.
#[test]
fn a_modified_key_is_still_that_key() {
    assert_eq!(one_line(&cat(&[b"stoxp", LEFT, LEFT, b"\x1b[3;5~\r"])), "stop");
    assert_eq!(one_line(&cat(&[b"top", b"\x1b[1;2~", b"s\r"])), "stop");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    /// Whatever arrives: no panic, every line fits, the cursor stays in the line, and the echo
    /// per byte is bounded (a redraw at most, or the candidate list).
    #[test]
    fn any_bytes_keep_the_editor_sound(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut ed = Editor::new("armstop> ");
        for b in bytes {
            let mut echoed = 0;
            let e = ed.feed(b, &mut |s| echoed += s.len());
            prop_assert!(echoed <= 2 * LINE_MAX + 200, "echo of {echoed} bytes for one");
            prop_assert!(ed.cursor() <= ed.text().len() && ed.text().len() <= LINE_MAX);
            if let Event::Line(l) = e {
                prop_assert!(l.as_bytes().len() <= LINE_MAX);
                // The parser takes whatever the editor hands on.
                let _ = parse_line(l.as_bytes(), 4);
            }
        }
    }

    /// Plain printable text and Enter gives back exactly that text.
    #[test]
    fn printable_text_comes_back_as_typed(text in "[ -~&&[^\\x1b]]{0,128}") {
        let mut ed = Editor::new("> ");
        let got = lines(&mut ed, format!("{text}\r").as_bytes());
        prop_assert_eq!(got, vec![text]);
    }
}
