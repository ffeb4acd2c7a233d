//! The BCM2711 GPIO block: pin function, pull resistor, output level and input level.
//!
//! "The function select registers are used to define the operation of the general-purpose I/O
//! pins. Each of the 58 GPIO pins has at least two alternative functions" (BCM2711 ARM
//! Peripherals, 5.2): three bits per pin in `GPFSEL0..5`, ten pins to a register. Output levels
//! are driven through the write-1-to-act `GPSET0/1` and `GPCLR0/1`, the pin levels read from
//! `GPLEV0/1`, 32 pins to a register. Unlike the BCM2835, the pulls are plain read/write fields:
//! two bits per pin in `GPIO_PUP_PDN_CNTRL_REG0..3`, sixteen pins to a register (no `GPPUD`
//! clocking sequence).
//!
//! Invariants kept here:
//! - A pin number is checked once, when its [`PinId`] is made, so no register index computed
//!   from it can be out of range and no access can panic. That matters because the firmware
//!   routes the console's pins with the MMU off, before it can report anything.
//! - [`Gpio::set_function`] and [`Gpio::set_pull`] are read-modify-write on registers shared by
//!   ten or sixteen pins: callers serialise them (armstop makes them on the boot CPU before the
//!   other CPUs start). Driving and reading a level ([`Gpio::set_level`], [`Gpio::is_high`]) is
//!   a single write or read that touches no other pin, and is safe from any CPU at any time.
//! - An output is switched to [`Function::Output`] only after its latch holds the level asked
//!   for ([`Gpio::output`]), so it never glitches to a stale level.

use core::convert::Infallible;

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// The GPIO registers armstop uses (offsets from the block's base, `GPFSEL0`).
    pub GpioRegisters {
        (0x00 => gpfsel: [ReadWrite<u32>; 6]),
        (0x18 => _reserved0),
        (0x1c => gpset: [WriteOnly<u32>; 2]),
        (0x24 => _reserved1),
        (0x28 => gpclr: [WriteOnly<u32>; 2]),
        (0x30 => _reserved2),
        (0x34 => gplev: [ReadOnly<u32>; 2]),
        (0x3c => _reserved3),
        (0xe4 => pup_pdn_cntrl: [ReadWrite<u32>; 4]),
        (0xf4 => @END),
    }
}

/// Number of GPIO pins (GPIO0..=GPIO57).
pub const PINS: u8 = 58;

/// A GPIO pin number that the block has (`0..PINS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PinId(u8);

impl PinId {
    /// Pin `n`, if the block has it.
    pub const fn new(n: u8) -> Option<Self> {
        if n < PINS { Some(Self(n)) } else { None }
    }

    /// The GPIO number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// `GPFSELn` index and the shift of this pin's 3-bit field.
    const fn fsel(self) -> (usize, u32) {
        ((self.0 / 10) as usize, (self.0 % 10) as u32 * 3)
    }

    /// `GPIO_PUP_PDN_CNTRL_REGn` index and the shift of this pin's 2-bit field.
    const fn pull(self) -> (usize, u32) {
        ((self.0 / 16) as usize, (self.0 % 16) as u32 * 2)
    }

    /// Bank (`GPSET/GPCLR/GPLEV` 0 or 1) and this pin's bit in it.
    const fn bank(self) -> (usize, u32) {
        ((self.0 / 32) as usize, 1 << (self.0 % 32))
    }
}

/// A pin's function (`GPFSELn` field) and its pull (`GPIO_PUP_PDN_CNTRL_REGn` field), in the
/// hardware's encoding: the board data's types, so a board's pin settings need no translation.
pub use armstop_boards::{PinFunction as Function, Pull};

/// Driver for one GPIO block.
#[derive(Clone, Copy)]
pub struct Gpio {
    regs: &'static GpioRegisters,
}

// SAFETY: `Gpio` only makes volatile accesses to a device register block, which the hardware
// serialises; what callers must serialise for the read-modify-write methods is a matter of
// pin state, not memory safety, and is stated in the module docs. A host fake block in
// ordinary memory is covered by `Gpio::new`'s contract (one thread at a time).
unsafe impl Send for Gpio {}
// SAFETY: as for `Send`.
unsafe impl Sync for Gpio {}

impl core::fmt::Debug for Gpio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Gpio@{:p}", self.regs)
    }
}

impl Gpio {
    /// The block whose registers start at `base`.
    ///
    /// # Safety
    /// `base` is the address of a BCM2711 GPIO block that stays accessible as device memory
    /// for the rest of the run (with the MMU off every access is a device access). Or, for
    /// tests, 4-byte aligned memory of at least `size_of::<GpioRegisters>()` bytes inside an
    /// `UnsafeCell`, that lives for the rest of the run and is only read and written with
    /// volatile accesses, from one thread at a time.
    pub const unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller guarantees a register block (or a fake one) at `base` for the rest
        // of the run; the register types only make volatile accesses.
        Self { regs: unsafe { &*(base as *const GpioRegisters) } }
    }

    /// Selects `pin`'s function. Read-modify-write of the register it shares with nine other
    /// pins: callers serialise it (see the module docs).
    pub fn set_function(&self, pin: PinId, function: Function) {
        let (r, shift) = pin.fsel();
        let reg = &self.regs.gpfsel[r];
        reg.set((reg.get() & !(0b111 << shift)) | (function as u32) << shift);
    }

    /// `pin`'s function.
    pub fn function(&self, pin: PinId) -> Function {
        let (r, shift) = pin.fsel();
        Function::from_bits(self.regs.gpfsel[r].get() >> shift)
    }

    /// Sets `pin`'s pull resistor. Read-modify-write of the register it shares with fifteen
    /// other pins: callers serialise it (see the module docs).
    pub fn set_pull(&self, pin: PinId, pull: Pull) {
        let (r, shift) = pin.pull();
        let reg = &self.regs.pup_pdn_cntrl[r];
        reg.set((reg.get() & !(0b11 << shift)) | (pull as u32) << shift);
    }

    /// `pin`'s pull resistor; `None` if the field holds the reserved value.
    pub fn pull(&self, pin: PinId) -> Option<Pull> {
        let (r, shift) = pin.pull();
        Pull::from_bits(self.regs.pup_pdn_cntrl[r].get() >> shift)
    }

    /// Drives `pin` high (`GPSETn`); no effect on the pin until it is an output, but the latch
    /// keeps the level. One write that touches no other pin.
    pub fn set_high(&self, pin: PinId) {
        let (bank, bit) = pin.bank();
        self.regs.gpset[bank].set(bit);
    }

    /// Drives `pin` low (`GPCLRn`); as [`Gpio::set_high`].
    pub fn set_low(&self, pin: PinId) {
        let (bank, bit) = pin.bank();
        self.regs.gpclr[bank].set(bit);
    }

    /// Drives `pin` high or low.
    pub fn set_level(&self, pin: PinId, high: bool) {
        if high { self.set_high(pin) } else { self.set_low(pin) }
    }

    /// Whether `pin` is high (`GPLEVn`): the level on the pin, which for an output is the level
    /// it drives.
    pub fn is_high(&self, pin: PinId) -> bool {
        let (bank, bit) = pin.bank();
        self.regs.gplev[bank].get() & bit != 0
    }

    /// Makes `pin` an output driving `high`, latched before the function is switched so the pin
    /// never shows another level, and returns its `embedded-hal` handle. Read-modify-write:
    /// callers serialise it, as [`Gpio::set_function`].
    pub fn output(&self, pin: PinId, high: bool) -> OutputPin {
        self.set_level(pin, high);
        self.set_function(pin, Function::Output);
        OutputPin { gpio: *self, pin }
    }
}

/// An output pin, for `embedded-hal` users: made by [`Gpio::output`].
#[derive(Debug)]
pub struct OutputPin {
    gpio: Gpio,
    pin: PinId,
}

impl OutputPin {
    /// The pin.
    pub fn id(&self) -> PinId {
        self.pin
    }
}

impl embedded_hal::digital::ErrorType for OutputPin {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for OutputPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.gpio.set_low(self.pin);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.gpio.set_high(self.pin);
        Ok(())
    }
}

impl embedded_hal::digital::StatefulOutputPin for OutputPin {
    /// Read back from `GPLEVn`: the BCM2711 has no readable output latch, and for an output the
    /// pin level is the level it drives.
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.gpio.is_high(self.pin))
    }

    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.gpio.is_high(self.pin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use embedded_hal::digital::{OutputPin as _, PinState, StatefulOutputPin as _};

    const GPFSEL: usize = 0x00;
    const GPSET: usize = 0x1c;
    const GPCLR: usize = 0x28;
    const GPLEV: usize = 0x34;
    const PUP: usize = 0xe4;

    fn pin(n: u8) -> PinId {
        PinId::new(n).unwrap()
    }

    #[test]
    fn register_map_matches_the_datasheet() {
        assert_eq!(core::mem::size_of::<GpioRegisters>(), 0xf4);
        let f = Fake::<{ 0xf4 / 4 }>::new();
        // SAFETY: a leaked fake of the block's size, used by this test alone.
        let g = unsafe { Gpio::new(f.base()) };
        g.set_high(pin(33));
        g.set_low(pin(1));
        g.set_pull(pin(57), Pull::Down);
        assert_eq!(f.word(GPSET + 4), 1 << 1, "GPSET1 bit 1 for GPIO33");
        assert_eq!(f.word(GPCLR), 1 << 1, "GPCLR0 bit 1 for GPIO1");
        assert_eq!(f.word(PUP + 12), 0b10 << 18, "REG3 bits 19:18 for GPIO57");
    }

    #[test]
    fn pin_numbers_are_checked_once() {
        assert_eq!(PinId::new(57).map(PinId::number), Some(57));
        assert_eq!(PinId::new(58), None);
        assert_eq!(PinId::new(255), None);
        // The last pin's fields are inside the last registers.
        assert_eq!(pin(57).fsel(), (5, 21));
        assert_eq!(pin(57).pull(), (3, 18));
        assert_eq!(pin(57).bank(), (1, 1 << 25));
    }

    #[test]
    fn console_pins_to_alt0_without_pulls_touch_only_their_fields() {
        let f = Fake::<{ 0xf4 / 4 }>::new();
        f.set_word(GPFSEL + 4, 0xffff_ffff);
        f.set_word(PUP, 0xaaa9_5555); // the BCM2711's reset value
        // SAFETY: a leaked fake of the block's size, used by this test alone.
        let g = unsafe { Gpio::new(f.base()) };
        for p in [14, 15] {
            g.set_function(pin(p), Function::Alt0);
            g.set_pull(pin(p), Pull::None);
        }
        // GPFSEL1 bits 14:12 and 17:15 = 0b100, the rest untouched.
        assert_eq!(f.word(GPFSEL + 4), !(0o77 << 12) | (0o44 << 12));
        // REG0 bits 31:28 cleared, the rest untouched.
        assert_eq!(f.word(PUP), 0x0aa9_5555);
        assert_eq!(g.function(pin(14)), Function::Alt0);
        assert_eq!(g.function(pin(15)), Function::Alt0);
        assert_eq!(g.function(pin(13)), Function::Alt3, "0b111 left in place");
        assert_eq!(g.pull(pin(15)), Some(Pull::None));
        assert_eq!(g.pull(pin(7)), Some(Pull::Up));
    }

    #[test]
    fn every_function_and_pull_round_trips() {
        let f = Fake::<{ 0xf4 / 4 }>::new();
        // SAFETY: a leaked fake of the block's size, used by this test alone.
        let g = unsafe { Gpio::new(f.base()) };
        let functions = [
            Function::Input,
            Function::Output,
            Function::Alt0,
            Function::Alt1,
            Function::Alt2,
            Function::Alt3,
            Function::Alt4,
            Function::Alt5,
        ];
        for n in 0..PINS {
            let func = functions[usize::from(n) % functions.len()];
            g.set_function(pin(n), func);
            g.set_pull(pin(n), [Pull::None, Pull::Up, Pull::Down][usize::from(n) % 3]);
        }
        for n in 0..PINS {
            assert_eq!(g.function(pin(n)), functions[usize::from(n) % functions.len()], "{n}");
            let want = [Pull::None, Pull::Up, Pull::Down][usize::from(n) % 3];
            assert_eq!(g.pull(pin(n)), Some(want), "GPIO{n}");
        }
        assert_eq!(Pull::from_bits(0b11), None);
        assert_eq!(Function::from_bits(0b1_001), Function::Output, "bits above the field");
    }

    #[test]
    fn activity_led_pin_is_latched_before_it_becomes_an_output() {
        let f = Fake::<{ 0xf4 / 4 }>::new();
        f.set_word(GPFSEL + 16, 0o7777_7777);
        // SAFETY: a leaked fake of the block's size, used by this test alone.
        let g = unsafe { Gpio::new(f.base()) };
        // (A fake cannot show the order of the two writes, latch then function: see
        // `Gpio::output`.)
        let mut led = g.output(pin(42), false);
        assert_eq!(f.word(GPCLR + 4), 1 << 10, "GPCLR1 bit 10");
        assert_eq!(f.word(GPSET + 4), 0);
        // GPFSEL4 bits 8:6 = 0b001, the other pins' fields untouched.
        assert_eq!(f.word(GPFSEL + 16), 0o7777_7777 & !(0o7 << 6) | (0o1 << 6));
        assert_eq!(led.id().number(), 42);
        led.set_high().unwrap();
        assert_eq!(f.word(GPSET + 4), 1 << 10);
        led.set_state(PinState::Low).unwrap();
        assert_eq!(f.word(GPCLR + 4), 1 << 10);
        // Read back from GPLEV1.
        f.set_word(GPLEV + 4, 1 << 10);
        assert!(led.is_set_high().unwrap());
        f.set_word(GPLEV + 4, !(1 << 10));
        assert!(led.is_set_low().unwrap());
        assert!(!g.is_high(pin(42)));
        assert!(g.is_high(pin(43)));
    }
}
