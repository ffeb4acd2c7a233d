//! The BCM2711 (Raspberry Pi 4) peripherals armstop drives: the GPIO block ([`gpio`]) and the
//! power-management watchdog ([`pm`]).
//!
//! Portable and `no_std`: nothing here knows where a block is mapped or which board it is on.
//! The firmware passes base addresses from its board data; the host tests pass fake register
//! blocks in ordinary memory and check every word the drivers write. The drivers follow the
//! "BCM2711 ARM Peripherals" datasheet (GPIO: chapter 5; the PM watchdog is not in it, and
//! follows Linux's `bcm2835_wdt.c` and TF-A's `rpi3` platform, which drive it the same way).
//!
//! | here | Linux |
//! |---|---|
//! | [`gpio::Gpio`] | `drivers/pinctrl/bcm/pinctrl-bcm2835.c` (`brcm,bcm2711-gpio`): function select, pulls, levels |
//! | [`gpio::OutputPin`] | a `gpio_desc` driven with `gpiod_set_value` (here: `embedded-hal`'s `OutputPin`) |
//! | [`pm::rstc_full_reset`], [`pm::wdog`] | `__bcm2835_restart` in `drivers/watchdog/bcm2835_wdt.c` |
//! | [`pm::rsts_halt`] | `bcm2835_power_off` (`PM_RSTS_RASPBERRYPI_HALT`, 0x555) |
//!
//! ```
//! use armstop_bcm2711::gpio::{Function, Gpio, PinId, Pull};
//! use armstop_bcm2711::pm;
//! use core::cell::UnsafeCell;
//! use embedded_hal::digital::OutputPin as _;
//!
//! // A fake GPIO block in ordinary memory, 0xf4 bytes (the firmware passes the real block's
//! // address from its board data).
//! let block: &'static UnsafeCell<[u32; 61]> = Box::leak(Box::new(UnsafeCell::new([0; 61])));
//! let word = |offset: usize| {
//!     // SAFETY: in bounds of the leaked block, read volatile, on the one thread using it.
//!     unsafe { block.get().cast::<u32>().add(offset / 4).read_volatile() }
//! };
//! // SAFETY: aligned and large enough, lives for the rest of the run, accessed only with
//! // volatile accesses from this thread.
//! let gpio = unsafe { Gpio::new(block.get() as usize) };
//!
//! let led = PinId::new(42).unwrap();
//! let mut pin = gpio.output(led, true); // latched high first (GPSET1 bit 10), then an output
//! assert_eq!(word(0x20), 1 << 10);
//! assert_eq!(gpio.function(led), Function::Output);
//! gpio.set_pull(led, Pull::Down);
//! assert_eq!(word(0xec), 0b10 << 20);
//! pin.set_low().unwrap(); // GPCLR1 bit 10
//! assert_eq!(word(0x2c), 1 << 10);
//! assert!(PinId::new(58).is_none(), "GPIO0 to GPIO57 only");
//!
//! // The watchdog's words: a reset after 10 ticks, and the halt's boot partition.
//! assert_eq!(pm::wdog(pm::RESET_TICKS), 0x5a00_000a);
//! assert_eq!(pm::rstc_full_reset(0x31), 0x5a00_0021);
//! assert_eq!(pm::partition(pm::rsts_halt(0)), pm::HALT_PARTITION);
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod gpio;
pub mod pm;

#[cfg(test)]
mod fake;
