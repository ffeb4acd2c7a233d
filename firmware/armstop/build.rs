//! Chooses the board and puts the linker script and the board's load address where the linker
//! finds them.
//!
//! The board is named by `ARMSTOP_BOARD` (default `qemu-virt`; the names are those in
//! `armstop_boards::ALL`, and an unknown one stops the build with the list); `ARMSTOP_MAX_CPUS`
//! sets how many CPUs the image has room for (default: the board's `max_cpus`). This script
//! writes `board.rs` (the firmware's `BOARD`, an entry of that table, and `NR_CPUS`), copies `linker/armstop.ld` into
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
    let nr_cpus = match env::var("ARMSTOP_MAX_CPUS") {
        Err(_) => board.max_cpus,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (board.cpus.len().max(1)..=armstop_boards::MAX_CPUS).contains(&n) => n,
            _ => panic!(
                "ARMSTOP_MAX_CPUS={v:?}: give a number of CPUs from {} to {} for board {name}",
                board.cpus.len().max(1),
                armstop_boards::MAX_CPUS
            ),
        },
    };
    fs::write(
        out.join("board.rs"),
        format!(
            "/// The board description in force: `{name}` (chosen with `ARMSTOP_BOARD`).\n\
             pub const BOARD: Board = armstop_boards::ALL[{index}];\n\
             /// How many CPUs this image has room for: the size of every per-CPU table (the\n\
             /// board's `max_cpus`, or `ARMSTOP_MAX_CPUS` at build time).\n\
             pub const NR_CPUS: usize = {nr_cpus};\n"
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
    println!("cargo:rerun-if-env-changed=ARMSTOP_MAX_CPUS");
}
