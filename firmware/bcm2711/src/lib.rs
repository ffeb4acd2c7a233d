//! The BCM2711 (Raspberry Pi 4) peripherals armstop drives: the GPIO block ([`gpio`]) and the
//! power-management watchdog ([`pm`]).
//!
//! Portable and `no_std`: nothing here knows where a block is mapped or which board it is on.
//! The firmware passes base addresses from its board data; the host tests pass fake register
//! blocks in ordinary memory and check every word the drivers write. The drivers follow the
//! "BCM2711 ARM Peripherals" datasheet (GPIO: chapter 5; the PM watchdog is not in it, and
//! follows Linux's `bcm2835_wdt.c` and TF-A's `rpi3` platform, which drive it the same way).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod gpio;
pub mod pm;

#[cfg(test)]
mod fake;
