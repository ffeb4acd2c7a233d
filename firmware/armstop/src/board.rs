//! The board this image was built for.
//!
//! The one place a board is chosen: everything else reads [`BOARD`] and acts on its data.

use armstop_boards::Board;

/// The board description in force.
pub const BOARD: Board = armstop_boards::qemu_virt::BOARD;

/// Number of CPUs on the board (logical ids `0..cpu_count()`).
pub const fn cpu_count() -> usize {
    BOARD.cpus.len()
}
