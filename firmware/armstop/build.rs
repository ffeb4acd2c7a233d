//! Puts the linker script and the board's load address where the linker finds them.
//!
//! Images link with `-Tarmstop.ld` (set in .cargo/config.toml); this script copies
//! `linker/armstop.ld` into OUT_DIR, writes `armstop-board.ld` with the board's load address
//! (from the same board data the firmware uses) and adds OUT_DIR to the library search path,
//! which cargo passes on to every image that depends on this crate.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let script = root.join("../../linker/armstop.ld");
    let board = armstop_boards::qemu_virt::BOARD;
    fs::copy(&script, out.join("armstop.ld")).expect("copy linker/armstop.ld");
    fs::write(
        out.join("armstop-board.ld"),
        format!("/* board {} */\nLOAD_ADDRESS = {:#x};\n", board.name, board.load_address),
    )
    .expect("write armstop-board.ld");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
