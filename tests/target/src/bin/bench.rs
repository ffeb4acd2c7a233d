//! The benchmark image (`just bench`, built with the release profile): every stop request kind
//! and its floors, timed; see `armstop::bench`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

armstop::entry!(main);

fn main() -> ! {
    armstop::bench::run()
}
