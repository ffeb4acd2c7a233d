//! Layer 1, the drivers: the GIC, the PL011 console, the generic timer, the PSCI conduit and
//! power-off, and the BCM2711 glue (GPIO, PM watchdog, activity LED), and armstop's own PSCI
//! provider at EL2 for boards whose firmware has none.
//!
//! Invariant: a driver uses only the architecture layer, the board data and other drivers; it
//! knows nothing above it. Interrupts reach their owners through handlers those owners
//! register ([`gic::set_sgi_handler`], [`gic::enable_ppi`], [`gic::enable_spi`]).

pub mod console;
pub mod gic;
pub mod gpio;
pub mod led;
pub mod own_psci;
pub mod pm;
pub mod power;
pub mod psci;
pub mod time;
