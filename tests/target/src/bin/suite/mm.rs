//! The identity map as the MMU walks it, on every CPU.

use armstop::board::{BOARD, cpu_count};
use armstop::mm::{self, StackKind};
use armstop::smp;
use armstop::target_test;
use armstop_boards::MemoryKind;

fn sctlr(_: usize) -> usize {
    use aarch64_cpu::registers::{Readable, SCTLR_EL1};
    SCTLR_EL1.get() as usize
}

#[target_test]
fn mmu_caches_and_wxn_on_every_cpu() {
    for cpu in 0..cpu_count() {
        let s = smp::run_on(cpu, sctlr, 0).expect("call");
        for (bit, name) in [(0, "M"), (2, "C"), (12, "I"), (19, "WXN")] {
            assert_ne!(s & (1 << bit), 0, "SCTLR_EL1.{name} clear on cpu{cpu}");
        }
    }
}

#[target_test]
fn ram_is_normal_cacheable_and_devices_are_device() {
    for r in BOARD.memory {
        let attr = mm::attribute_of(r.base).expect("mapped");
        match r.kind {
            MemoryKind::Normal => {
                assert_eq!(attr, 0xff, "{} should be write-back cacheable", r.name)
            }
            MemoryKind::Device => assert_eq!(attr, 0x04, "{} should be Device-nGnRE", r.name),
        }
        assert_eq!(mm::translate(r.base, false), Some(r.base), "{} identity mapped", r.name);
    }
}

#[target_test]
fn guard_pages_are_unmapped_for_every_cpu() {
    for cpu in 0..cpu_count() {
        for (page, kind) in mm::guard_pages(cpu) {
            assert_eq!(mm::translate(page as u64, false), None, "cpu{cpu} {kind:?} guard page");
            assert_eq!(mm::guard_page_owner(page as u64 + 8), Some((cpu, kind)));
            // The page above each guard is usable stack.
            assert!(
                mm::translate(page as u64 + 4096, true).is_some(),
                "stack above the {kind:?} guard"
            );
        }
    }
}

fn stack_pointer(_: usize) -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp) };
    sp
}

#[target_test]
fn each_cpu_runs_on_its_own_thread_stack() {
    for cpu in 0..cpu_count() {
        let sp = smp::run_on(cpu, stack_pointer, 0).expect("call");
        let slot = mm::stack_slot(cpu);
        let (lo, hi) = (slot + mm::EXCEPTION_TOP + 4096, slot + mm::THREAD_TOP);
        assert!(
            (lo..hi).contains(&sp),
            "cpu{cpu} sp {sp:#x} outside its thread stack {lo:#x}..{hi:#x}"
        );
    }
    let last = cpu_count() - 1;
    assert_eq!(
        mm::guard_page_owner(mm::stack_slot(last) as u64 + mm::EXCEPTION_TOP as u64),
        Some((last, StackKind::Thread))
    );
}

#[target_test]
fn code_is_read_only_and_data_is_not_executable() {
    let code = every_cpu_online_marker as *const () as u64;
    assert!(mm::translate(code, false).is_some(), "code readable");
    assert_eq!(mm::translate(code, true), None, "code must not be writable");
    static mut DATA: u64 = 0;
    let data = (&raw const DATA) as u64;
    assert!(mm::translate(data, true).is_some(), "data writable");
    let (start, end) = mm::image_range();
    assert!(start == BOARD.load_address && end > start);
}

fn every_cpu_online_marker() {}

#[target_test]
fn unmapped_addresses_do_not_translate() {
    assert_eq!(mm::translate(0x7_0000_0000, false), None);
    assert_eq!(mm::translate(0x7_0000_0000, true), None);
}
