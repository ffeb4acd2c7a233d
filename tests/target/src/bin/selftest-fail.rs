//! Harness self-test: an image whose tests fail in every way a test can fail. The host runner
//! checks that each is reported as a failure with a readable message (and that the one good
//! test still passes), so the harness is known to be able to fail.
#![no_std]
#![no_main]

armstop::test_main!("selftest-fail");

mod selftest {
    use armstop::target_test;
    use core::hint::black_box;

    #[target_test]
    fn passes() {}

    #[target_test]
    fn assert_fails() {
        assert_eq!(black_box(1 + 1), 3, "arithmetic is broken");
    }

    #[target_test]
    fn panics_on_boot_core() {
        panic!("deliberate panic on the boot core");
    }

    fn boom(_: usize) -> usize {
        panic!("deliberate panic on a secondary core")
    }

    #[target_test]
    fn panics_on_secondary() {
        let r = armstop::smp::run_on(1, boom, 0);
        // The harness reports cpu1's own message, not this consequence.
        r.expect("call on cpu1");
    }

    #[target_test]
    fn data_abort() {
        // Beyond the board's RAM: no translation, so a level 1 translation fault.
        let p = black_box(0x7_0000_0000u64) as *const u64;
        // SAFETY: none: this read is meant to abort, and the harness must report it.
        let v = unsafe { p.read_volatile() };
        black_box(v);
    }

    #[inline(never)]
    #[allow(unconditional_recursion, reason = "overflowing the stack is the point")]
    fn recurse(n: u64) -> u64 {
        let frame = black_box([n; 32]);
        recurse(n + 1) + frame[(n % 32) as usize]
    }

    #[target_test]
    fn stack_overflow() {
        black_box(recurse(0));
    }
}
