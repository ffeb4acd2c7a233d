//! Fake register blocks for the host tests: ordinary memory laid out like a device's registers,
//! which a driver writes through its register types and a test reads word by word.

use core::cell::UnsafeCell;

/// `WORDS` 32-bit registers, all zero at first. Leaked, so a driver may keep a `'static`
/// reference to it; one per test, used from that test's thread only.
pub struct Fake<const WORDS: usize> {
    mem: &'static UnsafeCell<[u32; WORDS]>,
}

impl<const WORDS: usize> Fake<WORDS> {
    pub fn new() -> Self {
        Self { mem: Box::leak(Box::new(UnsafeCell::new([0; WORDS]))) }
    }

    /// Address of the first register, for a driver's `new`.
    pub fn base(&self) -> usize {
        self.mem.get() as usize
    }

    fn at(&self, offset: usize) -> *mut u32 {
        assert!(offset.is_multiple_of(4) && offset / 4 < WORDS, "offset {offset:#x}");
        // In bounds (checked above) of the leaked array.
        self.mem.get().cast::<u32>().wrapping_add(offset / 4)
    }

    /// The register at byte `offset`.
    pub fn word(&self, offset: usize) -> u32 {
        // SAFETY: in bounds of the leaked array; the driver's accesses are volatile and on this
        // thread, so nothing else touches the word meanwhile.
        unsafe { self.at(offset).read_volatile() }
    }

    /// Sets the register at byte `offset` (what the hardware would show a driver).
    pub fn set_word(&self, offset: usize, value: u32) {
        // SAFETY: as in `word`.
        unsafe { self.at(offset).write_volatile(value) }
    }
}
