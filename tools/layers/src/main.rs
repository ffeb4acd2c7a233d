//! `armstop-layers [SRC]`: checks the firmware crate's layering (default
//! `firmware/armstop/src`); prints each import against it and exits 1 if there is one.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let src = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("firmware/armstop/src"), PathBuf::from);
    match armstop_layers::check_tree(&src) {
        Ok(v) if v.is_empty() => {
            println!(
                "layers: {} modules in {} layers, every import points down",
                armstop_layers::MODULES.len(),
                armstop_layers::LAYERS.len()
            );
            ExitCode::SUCCESS
        }
        Ok(v) => {
            for x in &v {
                eprintln!("{x}");
            }
            eprintln!("layers: {} import(s) against the layering", v.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("armstop-layers: {e}");
            ExitCode::from(2)
        }
    }
}
