//! GICv3: memory-mapped distributor and redistributors, system-register CPU interface.
//!
//! Each CPU finds its own redistributor by matching `GICR_TYPER.Affinity_Value` against its
//! MPIDR (frames are not in CPU order in general), wakes it (`GICR_WAKER.ProcessorSleep`), and
//! configures its banked SGIs as Group 1. SGIs carry no source CPU on GICv3.

use core::sync::atomic::{AtomicUsize, Ordering};

use armstop_stopper::CpuSet;

use crate::board::NR_CPUS;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use super::{Ack, DEFAULT_PRIORITY, GicError, SgiTarget, bank};

register_structs! {
    Gicd {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32>),
        (0x008 => _r0),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => ispendr: [ReadWrite<u32>; 32]),
        (0x280 => icpendr: [ReadWrite<u32>; 32]),
        (0x300 => _r2),
        (0x380 => icactiver: [ReadWrite<u32>; 32]),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _r3),
        (0x6000 => irouter: [ReadWrite<u64>; 1020]),
        (0x7fe0 => @END),
    }
}

register_structs! {
    GicrRd {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => _iidr: ReadOnly<u32>),
        (0x008 => typer: ReadOnly<u64>),
        (0x010 => _r0),
        (0x014 => waker: ReadWrite<u32>),
        (0x018 => @END),
    }
}

register_structs! {
    GicrSgi {
        (0x000 => _r0),
        (0x080 => igroupr0: ReadWrite<u32>),
        (0x084 => _r1),
        (0x100 => isenabler0: ReadWrite<u32>),
        (0x104 => _r2),
        (0x180 => icenabler0: ReadWrite<u32>),
        (0x184 => _r3),
        (0x280 => icpendr0: ReadWrite<u32>),
        (0x284 => _r4),
        (0x380 => icactiver0: ReadWrite<u32>),
        (0x384 => _r5),
        (0x400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x420 => @END),
    }
}

const GICD_CTLR_RWP: u32 = 1 << 31;
const GICR_CTLR_RWP: u32 = 1 << 3;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const TYPER_VLPIS: u64 = 1 << 1;
const TYPER_LAST: u64 = 1 << 4;

macro_rules! sysreg_write {
    ($reg:literal, $val:expr) => {
        // SAFETY: GICv3 CPU interface register write; EL1 access was granted by the boot code
        // (ICC_SRE_EL2) or firmware, and the value is what the caller documents.
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) $val as u64, options(nostack)) }
    };
}

macro_rules! sysreg_read {
    ($reg:literal) => {{
        let v: u64;
        // SAFETY: GICv3 CPU interface register read (see `sysreg_write`).
        unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nostack)) };
        v
    }};
}

fn isb() {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// `GICD_PIDR2.ArchRev` of a GICv3 distributor at `gicd` (its ID block is at 0xFFD0).
pub fn arch_rev(gicd: u64) -> u32 {
    // SAFETY: a GICv3 distributor frame is 64 KiB, mapped as device memory by the board;
    // GICD_PIDR2 (offset 0xFFE8) is read-only.
    let pidr2 = unsafe { core::ptr::read_volatile((gicd + 0xffe8) as *const u32) };
    (pidr2 >> 4) & 0xf
}

/// A GICv3.
pub struct GicV3 {
    gicd: &'static Gicd,
    gicr_base: u64,
    /// Each logical CPU's redistributor frame (0 until found).
    rd: [AtomicUsize; NR_CPUS],
}

// SAFETY: the driver holds references to MMIO register blocks, accessed only with volatile
// reads and writes. The GIC is built to be accessed from every CPU at once (the CPU interface
// and SGI/PPI registers are banked per CPU; distributor writes are single-register updates).
unsafe impl Sync for GicV3 {}
// SAFETY: as for Sync; the register blocks are not tied to the CPU that created the driver.
unsafe impl Send for GicV3 {}

impl GicV3 {
    /// Driver for the distributor at `gicd` and redistributors from `gicr` on.
    pub fn new(gicd: u64, gicr: u64) -> Self {
        // SAFETY: the board maps the distributor as device memory for the whole run.
        let gicd = unsafe { &*(gicd as *const Gicd) };
        Self { gicd, gicr_base: gicr, rd: [const { AtomicUsize::new(0) }; NR_CPUS] }
    }

    fn wait_rwp(&self) {
        while self.gicd.ctlr.get() & GICD_CTLR_RWP != 0 {}
    }

    /// Disables and clears every shared interrupt; enables affinity routing and Group 1.
    pub fn init_distributor(&self) {
        let d = self.gicd;
        d.ctlr.set(0);
        self.wait_rwp();
        let lines = ((d.typer.get() & 0x1f) as usize + 1) * 32;
        for i in 1..(lines / 32).min(32) {
            d.icenabler[i].set(u32::MAX);
            d.icpendr[i].set(u32::MAX);
            d.icactiver[i].set(u32::MAX);
        }
        self.wait_rwp();
        // ARE (bit 4) and Group 1 enable (bit 1): the same bits whether the distributor has a
        // single security state (DS = 1) or we see its Non-secure view.
        d.ctlr.set((1 << 4) | (1 << 1));
        self.wait_rwp();
    }

    fn find_redistributor(&self, mpidr: u64) -> Option<u64> {
        let want = ((mpidr >> 32 & 0xff) << 24) | (mpidr & 0xff_ffff);
        let mut frame = self.gicr_base;
        // A GICv3 has at most one frame per CPU; bound the walk in case `Last` is never seen.
        for _ in 0..256 {
            // SAFETY: `frame` is within the board's redistributor region (device memory);
            // GICR_TYPER is read-only.
            let rd = unsafe { &*(frame as *const GicrRd) };
            let typer = rd.typer.get();
            if typer >> 32 == want {
                return Some(frame);
            }
            if typer & TYPER_LAST != 0 {
                return None;
            }
            frame += if typer & TYPER_VLPIS != 0 { 0x4_0000 } else { 0x2_0000 };
        }
        None
    }

    /// Per-CPU set-up (see [`super::init_cpu`]).
    pub fn init_cpu(&self) -> Result<(), GicError> {
        let cpu = crate::cpu::id();
        let mpidr = crate::board::mpidr(cpu).ok_or(GicError::BadTarget)?;
        if mpidr & 0xff >= 16 && !self.range_selector() {
            return Err(GicError::Aff0TooLarge(mpidr));
        }
        let frame = self.find_redistributor(mpidr).ok_or(GicError::NoRedistributor(mpidr))?;
        self.rd[cpu].store(frame as usize, Ordering::Relaxed);
        // SAFETY: `frame` is this CPU's redistributor (RD_base, then SGI_base 64 KiB above),
        // device memory mapped by the board.
        let (rd, sgi) =
            unsafe { (&*(frame as *const GicrRd), &*((frame + 0x1_0000) as *const GicrSgi)) };
        rd.waker.set(rd.waker.get() & !WAKER_PROCESSOR_SLEEP);
        while rd.waker.get() & WAKER_CHILDREN_ASLEEP != 0 {}
        sgi.icenabler0.set(u32::MAX);
        while rd.ctlr.get() & GICR_CTLR_RWP != 0 {}
        sgi.icpendr0.set(u32::MAX);
        sgi.icactiver0.set(u32::MAX);
        sgi.igroupr0.set(u32::MAX);
        for r in &sgi.ipriorityr {
            r.set(u32::from_ne_bytes([DEFAULT_PRIORITY; 4]));
        }
        sgi.isenabler0.set(0xffff);

        // ICC_SRE_EL1.SRE: use the system-register interface.
        let sre = sysreg_read!("s3_0_c12_c12_5");
        sysreg_write!("s3_0_c12_c12_5", sre | 1);
        isb();
        if sysreg_read!("s3_0_c12_c12_5") & 1 == 0 {
            return Err(GicError::SystemRegistersDisabled);
        }
        sysreg_write!("s3_0_c4_c6_0", 0xffu64); // ICC_PMR_EL1: every priority passes
        sysreg_write!("s3_0_c12_c12_3", 0u64); // ICC_BPR1_EL1
        sysreg_write!("s3_0_c12_c12_4", 0u64); // ICC_CTLR_EL1: EOImode 0 (EOI also deactivates)
        sysreg_write!("s3_0_c12_c12_7", 1u64); // ICC_IGRPEN1_EL1
        isb();
        Ok(())
    }

    /// Whether the CPU interface takes SGI target lists beyond Aff0 15 (`ICC_CTLR_EL1.RSS`).
    fn range_selector(&self) -> bool {
        sysreg_read!("s3_0_c12_c12_4") & (1 << 18) != 0
    }

    /// Writes ICC_SGI1R_EL1, once per group of 16 CPUs that share Aff3.Aff2.Aff1 and the range
    /// selector (`Aff0 / 16`) and have targets: at most one write per CPU, one per cluster on
    /// QEMU `virt` (16 CPUs per cluster).
    pub fn send_sgi(&self, sgi: u8, target: SgiTarget) {
        let intid = u64::from(sgi) << 24;
        let mut left = match target {
            SgiTarget::AllOthers => {
                sysreg_write!("s3_0_c12_c11_5", intid | (1 << 40)); // IRM: all but self
                isb();
                return;
            }
            SgiTarget::Cpu(c) => CpuSet::single(c),
            SgiTarget::Set(m) => m,
        };
        // The group of 16 an MPIDR's target-list bit belongs to.
        let group = |m: u64| m & !0xf;
        while let Some(first) = left.first() {
            let Some(g) = crate::board::mpidr(first).map(group) else {
                left.remove(first);
                continue;
            };
            let mut list = 0u64;
            for c in left {
                if let Some(m) = crate::board::mpidr(c).filter(|&m| group(m) == g) {
                    list |= 1 << (m & 0xf);
                    left.remove(c);
                }
            }
            let rs = (g >> 4) & 0xf;
            let aff1 = (g >> 8) & 0xff;
            let aff2 = (g >> 16) & 0xff;
            let aff3 = (g >> 32) & 0xff;
            sysreg_write!(
                "s3_0_c12_c11_5",
                (aff3 << 48) | (rs << 44) | (aff2 << 32) | intid | (aff1 << 16) | list
            );
        }
        isb();
    }

    /// Reads ICC_IAR1_EL1.
    pub fn acknowledge(&self) -> Option<Ack> {
        let raw = sysreg_read!("s3_0_c12_c12_0") as u32;
        let intid = raw & 0xff_ffff;
        if (1020..1024).contains(&intid) {
            return None;
        }
        Some(Ack { raw, intid, source: None })
    }

    /// Writes ICC_EOIR1_EL1.
    pub fn end(&self, raw: u32) {
        sysreg_write!("s3_0_c12_c12_1", raw);
        isb();
    }

    /// Number of interrupt lines (SGIs, PPIs and SPIs) the distributor implements.
    pub fn lines(&self) -> u32 {
        (((self.gicd.typer.get() & 0x1f) + 1) * 32).min(1020)
    }

    /// Enables SPI `intid` as Group 1, routed to logical CPU `cpu`, at the default priority.
    pub fn enable_spi(&self, intid: u32, cpu: usize) {
        let d = self.gicd;
        bank::write_byte(&d.ipriorityr, intid, DEFAULT_PRIORITY);
        bank::set_bit(&d.igroupr, intid);
        self.route_spi(intid, cpu);
        bank::write_bit(&d.isenabler, intid);
        self.wait_rwp();
    }

    /// Disables SPI `intid` and clears it if pending.
    pub fn disable_spi(&self, intid: u32) {
        bank::write_bit(&self.gicd.icenabler, intid);
        self.wait_rwp();
        bank::write_bit(&self.gicd.icpendr, intid);
    }

    /// Makes SPI `intid` pending (as if its device raised it).
    pub fn set_pending(&self, intid: u32) {
        bank::write_bit(&self.gicd.ispendr, intid);
    }

    /// `GICD_ISENABLER<n>`: the enable bits of interrupts `32n..32n+32`.
    pub fn enable_word(&self, n: u32) -> u32 {
        self.gicd.isenabler[n as usize].get()
    }

    /// Whether SPI `intid` is enabled.
    pub fn spi_enabled(&self, intid: u32) -> bool {
        bank::read_bit(&self.gicd.isenabler, intid)
    }

    /// Routes SPI `intid` to logical CPU `cpu` (GICD_IROUTER, Interrupt_Routing_Mode 0).
    pub fn route_spi(&self, intid: u32, cpu: usize) {
        if let Some(m) = crate::board::mpidr(cpu) {
            self.gicd.irouter[intid as usize].set(m);
        }
    }

    /// The logical CPUs SPI `intid` targets.
    pub fn spi_targets(&self, intid: u32) -> CpuSet {
        let m = self.gicd.irouter[intid as usize].get() & armstop_boards::MPIDR_AFFINITY_MASK;
        crate::board::logical_id(m).map_or(CpuSet::EMPTY, CpuSet::single)
    }

    /// This CPU's redistributor frames (RD_base, SGI_base), found by `init_cpu`.
    fn frames(&self) -> (&'static GicrRd, &'static GicrSgi) {
        let frame = self.rd[crate::cpu::id()].load(Ordering::Relaxed) as u64;
        assert_ne!(frame, 0, "GICv3 PPI access before this CPU's gic::init_cpu");
        // SAFETY: this CPU's redistributor (RD_base, then SGI_base 64 KiB above), found by
        // `init_cpu`; device memory mapped by the board.
        unsafe { (&*(frame as *const GicrRd), &*((frame + 0x1_0000) as *const GicrSgi)) }
    }

    /// Enables PPI `intid` on this CPU (its redistributor's `GICR_ISENABLER0`, Group 1 since
    /// `init_cpu`) at `priority`.
    pub fn enable_ppi(&self, intid: u32, priority: u8) {
        let (_, sgi) = self.frames();
        bank::write_byte(&sgi.ipriorityr, intid, priority);
        sgi.isenabler0.set(1 << intid);
    }

    /// Disables PPI `intid` on this CPU (waiting until the redistributor has done so) and
    /// clears it if pending.
    pub fn disable_ppi(&self, intid: u32) {
        let (rd, sgi) = self.frames();
        sgi.icenabler0.set(1 << intid);
        while rd.ctlr.get() & GICR_CTLR_RWP != 0 {}
        sgi.icpendr0.set(1 << intid);
    }

    /// Clears SGI `sgi`'s pending state on this CPU (its redistributor's `GICR_ICPENDR0`), and
    /// reads it back so the clear has reached the redistributor before the caller goes on.
    pub fn clear_sgi_pending(&self, sgi: u8) {
        let (_, frame) = self.frames();
        frame.icpendr0.set(1 << sgi);
        let _ = frame.icpendr0.get();
    }

    /// Whether PPI `intid` is enabled on this CPU.
    pub fn ppi_enabled(&self, intid: u32) -> bool {
        let (_, sgi) = self.frames();
        sgi.isenabler0.get() & (1 << intid) != 0
    }

    /// Sets SGI `sgi`'s priority on this CPU (its redistributor's `GICR_IPRIORITYR0..3`).
    pub fn set_sgi_priority(&self, sgi: u8, priority: u8) {
        let (_, frame) = self.frames();
        bank::write_byte(&frame.ipriorityr, u32::from(sgi), priority);
    }

    /// ICC_PMR_EL1.
    pub fn priority_mask(&self) -> u8 {
        sysreg_read!("s3_0_c4_c6_0") as u8
    }

    /// Writes ICC_PMR_EL1 (self-synchronising for the interrupts it masks).
    pub fn set_priority_mask(&self, pmr: u8) {
        sysreg_write!("s3_0_c4_c6_0", u64::from(pmr));
        isb();
    }

    /// Stops this CPU's interface from signalling interrupts and lets its redistributor sleep
    /// (before it powers off); `init_cpu` wakes it again.
    pub fn disable_cpu(&self) {
        sysreg_write!("s3_0_c12_c12_7", 0u64); // ICC_IGRPEN1_EL1
        isb();
        let frame = self.rd[crate::cpu::id()].load(Ordering::Relaxed) as u64;
        if frame != 0 {
            // SAFETY: this CPU's redistributor frame, found by `init_cpu` (device memory).
            let rd = unsafe { &*(frame as *const GicrRd) };
            rd.waker.set(rd.waker.get() | WAKER_PROCESSOR_SLEEP);
            while rd.waker.get() & WAKER_CHILDREN_ASLEEP == 0 {}
        }
    }

    /// ICC_HPPIR1_EL1, if something is pending.
    pub fn highest_pending(&self) -> Option<u32> {
        let id = sysreg_read!("s3_0_c12_c12_2") as u32 & 0xff_ffff;
        (!(1020..1024).contains(&id)).then_some(id)
    }
}
