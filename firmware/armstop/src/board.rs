//! The board this image was built for.
//!
//! The one place a board is chosen (at build time, by `ARMSTOP_BOARD`; see `build.rs`):
//! everything else reads [`BOARD`] and acts on its data.

use armstop_boards::Board;

include!(concat!(env!("OUT_DIR"), "/board.rs"));

/// Number of CPUs on the board (logical ids `0..cpu_count()`).
pub const fn cpu_count() -> usize {
    BOARD.cpus.len()
}
