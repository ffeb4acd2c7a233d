//! The board's GPIO block: the console's pins routed before the UART is programmed, and pin
//! handles for drivers (the activity LED, [`crate::led`]). The driver itself (register map,
//! `embedded-hal` output pin) is `armstop-bcm2711`'s, host-tested there.
//!
//! Board data drives everything here (`BOARD.gpio`); a board without a GPIO block gets no
//! access at all.
//!
//! Invariant: pin functions and pulls, which are read-modify-writes of registers shared by
//! several pins, are only changed on the boot CPU before any other CPU runs: the console's pins
//! in [`route_boot_pins`], first thing at boot with the MMU off, and the LED's pin when
//! [`crate::led::start`] first runs. So they need no lock, and the MMU-off path could take
//! none (no atomics there either: only volatile MMIO).

pub use armstop_bcm2711::gpio::{Function, Gpio, OutputPin, PINS, PinId, Pull};

use crate::board::BOARD;

/// The board's GPIO block, if it has one.
pub fn block() -> Option<Gpio> {
    BOARD.gpio.map(|g| {
        // SAFETY: the board's GPIO base is a BCM2711 GPIO block inside a device region of its
        // memory map (`Board::validate`), mapped as device memory for the whole run and a
        // device access with the MMU off.
        unsafe { Gpio::new(g.base as usize) }
    })
}

/// Applies the board's `gpio.boot_pins` (on the Pi 4: GPIO14/15 to the PL011, pulls off).
/// Called by `console::init` before it programs the UART, first thing on the boot CPU with the
/// MMU off: volatile accesses only, nothing that can panic. A pin the block does not have is
/// skipped here; `Board::validate`, which runs right after, reports it.
pub fn route_boot_pins() {
    let (Some(gpio), Some(board_gpio)) = (block(), BOARD.gpio) else { return };
    for setting in board_gpio.boot_pins {
        let Some(pin) = PinId::new(setting.pin) else { continue };
        gpio.set_function(pin, setting.function);
        gpio.set_pull(pin, setting.pull);
    }
}
