//! PSCI SYSTEM_RESET, end to end: the one test resets the machine and passes on the boot that
//! follows. Run with the runner's `--reboot-suite` (QEMU must reboot on a reset, where every
//! other image ends QEMU on one); on the Pi machines the reset goes through the PM watchdog,
//! from armstop's own provider or from TF-A, on `virt` through QEMU's PSCI.
//!
//! The boots talk through a marker in the page after the image: no loader writes there (QEMU
//! reloads the image on a reset, .bss included) and the firmware never uses it. A reset that
//! powers off instead ends QEMU with no exit status, one that does not happen fails the test
//! with PSCI's answer, and a boot loop is caught by the runner's timeout.
#![no_std]
#![no_main]

armstop::test_main!("reset");

mod psci {
    use core::ptr;

    /// "armstopR": the first boot reset the machine.
    const MAGIC: u64 = u64::from_le_bytes(*b"armstopR");

    /// The marker: `[MAGIC, boots that reset]`.
    fn marker() -> *mut [u64; 2] {
        armstop::mm::image_range().1 as *mut [u64; 2]
    }

    fn write_marker(value: [u64; 2]) {
        let m = marker();
        // SAFETY: the page after the image is RAM the board's map covers (as data) and that no
        // one else uses; only the boot CPU touches the marker.
        unsafe { ptr::write_volatile(m, value) };
        // Dirty lines may not survive a reset on hardware: write the marker back to memory.
        armstop::mm::clean_dcache_range(m as usize, size_of::<[u64; 2]>());
    }

    #[armstop::target_test]
    fn system_reset_reboots_the_machine() {
        // SAFETY: as in `write_marker`.
        let [magic, resets] = unsafe { ptr::read_volatile(marker()) };
        if magic != MAGIC {
            write_marker([MAGIC, 1]);
            armstop::testing::figure(format_args!("first boot: PSCI SYSTEM_RESET"));
            let e = armstop::psci::system_reset();
            write_marker([0, 0]);
            panic!("PSCI SYSTEM_RESET returned: {e:?}");
        }
        // Cleared first, so that whatever happens next cannot look like a reset to a later boot.
        write_marker([0, 0]);
        assert_eq!(resets, 1, "the marker says the machine was reset {resets} times");
        armstop::testing::figure(format_args!("second boot: came back after SYSTEM_RESET"));
    }
}
