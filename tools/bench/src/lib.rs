//! `armstop-bench`: armstop's benchmark images and Linux, booted on the same QEMU machine with
//! the same flags in one run, and their figures side by side.

pub mod armstop;
pub mod linux;
pub mod qemu;
pub mod report;
