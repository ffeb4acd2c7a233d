//! Chooses the board and puts the linker script and the board's load address where the linker
//! finds them.
//!
//! The board is named by `ARMSTOP_BOARD` (default `qemu-virt`; the names are those in
//! `armstop_boards::ALL`, and an unknown one stops the build with the list). This script writes
//! `board.rs` (the firmware's `BOARD`, an entry of that table), copies `linker/armstop.ld` into
//! OUT_DIR, writes `armstop-board.ld` with the board's load address and adds OUT_DIR to the
//! library search path, which cargo passes on to every image that depends on this crate.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let script = root.join("../../linker/armstop.ld");
    let name = env::var("ARMSTOP_BOARD").unwrap_or_else(|_| "qemu-virt".into());
    let Some((index, board)) = armstop_boards::by_name(&name) else {
        let known: Vec<_> = armstop_boards::ALL.iter().map(|b| b.name).collect();
        panic!("ARMSTOP_BOARD={name:?} is not a board armstop knows; choose one of {known:?}");
    };
    fs::write(
        out.join("board.rs"),
        format!(
            "/// The board description in force: `{name}` (chosen with `ARMSTOP_BOARD`).\npub const BOARD: Board = armstop_boards::ALL[{index}];\n"
        ),
    )
    .expect("write board.rs");
    fs::copy(&script, out.join("armstop.ld")).expect("copy linker/armstop.ld");
    fs::write(
        out.join("armstop-board.ld"),
        format!("/* board {} */\nLOAD_ADDRESS = {:#x};\n", board.name, board.load_address),
    )
    .expect("write armstop-board.ld");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ARMSTOP_BOARD");
}
