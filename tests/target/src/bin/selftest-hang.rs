//! Harness self-test: an image whose only test never ends. The host runner must time it out,
//! name the test and show the console, never wait forever or call it a pass.
#![no_std]
#![no_main]

armstop::test_main!("selftest-hang");

mod selftest {
    #[armstop::target_test]
    fn hangs() {
        loop {
            core::hint::spin_loop();
        }
    }
}
