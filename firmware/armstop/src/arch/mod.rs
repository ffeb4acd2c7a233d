//! AArch64 boot and exception code: the only code that runs before Rust has a stack, and the
//! exception vectors.

pub mod boot;
pub mod el2;
pub mod exception;
