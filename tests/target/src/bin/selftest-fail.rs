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
        // SAFETY: none: this read is meant to abort, and the harness must report it (the
        // runner checks that it names this function and line 43, this one).
        let v = unsafe { p.read_volatile() };
        black_box(v);
    }

    /// The CPU that fails: cpu1, whose callback is a stopper work (IRQ or idle context).
    fn fail_on_cpu1() -> i32 {
        if armstop::cpu::id() == 1 {
            assert_eq!(black_box(2), 3, "assertion in a stopper callback on cpu1");
        }
        0
    }

    #[target_test]
    fn assert_fails_in_a_stopper_callback_on_secondary() {
        // Once a hang: the boot CPU waited forever for a work the fault path abandoned. Now the
        // stopper finishes cpu1's part with -EFAULT and the harness reports cpu1's message.
        let r = armstop::stop::STOPPERS.stop_one_cpu(1, fail_on_cpu1);
        assert_eq!(r, Ok(-14), "the requester sees -EFAULT");
    }

    #[target_test]
    fn assert_fails_in_a_stop_machine_callback_on_secondary() {
        let all = armstop::stop::CpuSet::first_n(armstop::board::cpu_count());
        let r = armstop::stop::STOPPERS.stop_machine(fail_on_cpu1, Some(all));
        assert_eq!(r, Ok(-14), "the requester sees -EFAULT");
    }

    /// After the failures above, every CPU still serves every kind of request.
    #[target_test]
    fn machine_is_sane_after_failed_callbacks() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        static RAN: AtomicUsize = AtomicUsize::new(0);
        armstop::testing::require_all_cpus();
        let n = armstop::board::cpu_count();
        let s = &armstop::stop::STOPPERS;
        let count = || {
            RAN.fetch_add(1, Ordering::SeqCst);
            0
        };
        assert_eq!(s.stop_machine(count, Some(armstop::stop::CpuSet::first_n(n))), Ok(0));
        assert_eq!(RAN.load(Ordering::SeqCst), n);
        for cpu in 0..n {
            assert_eq!(s.stop_one_cpu(cpu, || armstop::cpu::id() as i32), Ok(cpu as i32));
        }
        assert!(s.halted().is_empty(), "a CPU was halted");
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
