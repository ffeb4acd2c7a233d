//! The BCM2711 power-management (PM) block's watchdog: the words that reset the SoC, or halt it
//! (the Pi's "power off").
//!
//! The watchdog is not in the datasheet; it is driven as Linux's `bcm2835_wdt.c` and TF-A's
//! `rpi3` platform drive it. Every write carries the password `0x5a` in bits 31:24, or the block
//! ignores it. A reset is: `PM_WDOG` = a short timeout in watchdog ticks (65536 per second),
//! then `PM_RSTC`'s reset-configuration field (`WRCFG`, bits 5:4) = full reset; the SoC resets
//! when the timeout expires. A halt is the same reset with the boot partition number in
//! `PM_RSTS` set to 63 first: the Pi's boot firmware reads it after the reset and, for 63,
//! stops (on the Pi 4 that is as close to power-off as the board gets; QEMU's `raspi4b` powers
//! off).
//!
//! This module only computes the words (here, on the host, they are tested); the firmware's
//! `pm` module writes them, with the MMU possibly off, so everything here is a `const fn` on
//! plain integers: nothing to lock, nothing that can panic.
//!
//! Invariant: a computed word always carries the password and changes only the field it is
//! for; the other bits of a read-modify-write keep what was read, except the password byte,
//! which is replaced rather than OR-ed into whatever a read returned there.

/// `PM_RSTC`: reset control (offset from the PM block's base).
pub const RSTC: usize = 0x1c;
/// `PM_RSTS`: reset status, which also holds the partition to boot next.
pub const RSTS: usize = 0x20;
/// `PM_WDOG`: watchdog timeout, in ticks.
pub const WDOG: usize = 0x24;

/// The password every write carries (bits 31:24).
pub const PASSWORD: u32 = 0x5a00_0000;
/// The password field.
pub const PASSWORD_MASK: u32 = 0xff00_0000;
/// `PM_WDOG`'s timeout field.
pub const WDOG_TIME_MASK: u32 = 0x000f_ffff;
/// `PM_RSTC.WRCFG`: what the watchdog does when it expires. (Linux's `PM_RSTC_WRCFG_CLR`,
/// 0xffffffcf, is this field's complement, the mask of bits kept.)
pub const RSTC_WRCFG_MASK: u32 = 0x0000_0030;
/// `WRCFG` = full reset.
pub const RSTC_WRCFG_FULL_RESET: u32 = 0x0000_0020;
/// `PM_RSTS`'s partition field: the six bits of the partition number in bits 0, 2, 4, 6, 8 and
/// 10. (Linux's `PM_RSTS_PARTITION_CLR`, 0xfffffaaa, is its complement, the bits kept.)
pub const RSTS_PARTITION_MASK: u32 = 0x0000_0555;
/// The partition that tells the Pi's boot firmware to halt.
pub const HALT_PARTITION: u8 = 63;
/// Watchdog ticks per second.
pub const TICKS_PER_SECOND: u32 = 65_536;
/// The timeout armstop resets with: 10 ticks (about 150 us), as Linux.
pub const RESET_TICKS: u32 = 10;

/// `PM_WDOG` word for a timeout of `ticks` (cut to the 20-bit field).
pub const fn wdog(ticks: u32) -> u32 {
    PASSWORD | (ticks & WDOG_TIME_MASK)
}

/// `PM_RSTC` word that makes the watchdog do a full reset, from the value `rstc` read there.
pub const fn rstc_full_reset(rstc: u32) -> u32 {
    PASSWORD | (rstc & !PASSWORD_MASK & !RSTC_WRCFG_MASK) | RSTC_WRCFG_FULL_RESET
}

/// `partition` (0..=63; higher bits are ignored) spread over `PM_RSTS`'s partition field.
pub const fn partition_bits(partition: u8) -> u32 {
    let p = partition as u32 & 0x3f;
    let mut bits = 0;
    let mut i = 0;
    while i < 6 {
        bits |= ((p >> i) & 1) << (2 * i);
        i += 1;
    }
    bits
}

/// The partition number held in a `PM_RSTS` value.
pub const fn partition(rsts: u32) -> u8 {
    let mut p = 0;
    let mut i = 0;
    while i < 6 {
        p |= ((rsts >> (2 * i)) & 1) << i;
        i += 1;
    }
    p as u8
}

/// `PM_RSTS` word that selects `partition` for the next boot, from the value `rsts` read there.
pub const fn rsts_with_partition(rsts: u32, partition: u8) -> u32 {
    PASSWORD | (rsts & !PASSWORD_MASK & !RSTS_PARTITION_MASK) | partition_bits(partition)
}

/// `PM_RSTS` word for a halt (partition 63, `0x555` in the field).
pub const fn rsts_halt(rsts: u32) -> u32 {
    rsts_with_partition(rsts, HALT_PARTITION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halt_is_partition_63_which_is_0x555() {
        assert_eq!(partition_bits(HALT_PARTITION), 0x555);
        assert_eq!(rsts_halt(0), 0x5a00_0555);
        assert_eq!(partition(rsts_halt(0x1234)), 63);
    }

    #[test]
    fn rsts_keeps_the_other_status_bits_and_replaces_the_password() {
        // HADWRH (bit 6) is a partition bit; bit 12 and up are status bits that stay.
        let read = 0xff00_f000 | 0x0aa | 0x041;
        let w = rsts_halt(read);
        assert_eq!(w & PASSWORD_MASK, PASSWORD, "password replaced, not OR-ed");
        assert_eq!(w & RSTS_PARTITION_MASK, 0x555);
        assert_eq!(w & !PASSWORD_MASK & !RSTS_PARTITION_MASK, 0xf000 | 0x0aa);
        assert_eq!(partition(w), 63);
        // Same bits as Linux's `(rsts & PM_RSTS_PARTITION_CLR) | 0x555`, password apart.
        assert_eq!(w & !PASSWORD_MASK, (read & 0xffff_faaa | 0x555) & !PASSWORD_MASK);
    }

    #[test]
    fn every_partition_round_trips() {
        for p in 0..=63u8 {
            let w = rsts_with_partition(0xffff_ffff, p);
            assert_eq!(partition(w), p);
            assert_eq!(w & !RSTS_PARTITION_MASK, 0x5aff_faaa);
        }
        assert_eq!(partition_bits(64 + 5), partition_bits(5), "only six bits");
    }

    #[test]
    fn full_reset_sets_wrcfg_and_keeps_the_rest() {
        assert_eq!(rstc_full_reset(0), 0x5a00_0020);
        // WRCFG was "clear" (0b11): replaced by full reset; bit 8 and bit 1 kept.
        assert_eq!(rstc_full_reset(0x0000_0132), 0x5a00_0122);
        assert_eq!(rstc_full_reset(0xa5ff_ffff), 0x5aff_ffef);
        // Linux: PM_PASSWORD | (rstc & PM_RSTC_WRCFG_CLR) | PM_RSTC_WRCFG_FULL_RESET.
        for rstc in [0u32, 0x30, 0x132, 0x00ff_ffff] {
            assert_eq!(rstc_full_reset(rstc), PASSWORD | (rstc & 0xffff_ffcf) | 0x20);
        }
    }

    #[test]
    fn watchdog_timeout_is_cut_to_its_field() {
        assert_eq!(wdog(RESET_TICKS), 0x5a00_000a);
        assert_eq!(wdog(u32::MAX), 0x5a0f_ffff);
        assert_eq!(RESET_TICKS * 1_000_000 / TICKS_PER_SECOND, 152, "about 150 us");
    }
}
