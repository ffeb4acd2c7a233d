//! GICv2 (GIC-400): memory-mapped distributor and CPU interface.
//!
//! A CPU's bit in SGI target lists is read from its banked `GICD_ITARGETSR0` ("each field
//! returns a value that corresponds only to the processor reading the register"), never
//! derived from MPIDR. Group handling follows `GICD_TYPER.SecurityExtn`: without Security
//! Extensions (QEMU) both groups are enabled and signalled as IRQ; with them (a real GIC-400,
//! where we are Non-secure) only the Non-secure view's enable bit exists.

use core::sync::atomic::{AtomicU8, Ordering};

use armstop_stopper::CpuSet;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use super::{Ack, DEFAULT_PRIORITY, SgiTarget, bank};

register_structs! {
    /// GICv2 distributor registers (those armstop uses).
    pub Gicd {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32>),
        (0x008 => _r0),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => ispendr: [ReadWrite<u32>; 32]),
        (0x280 => icpendr: [ReadWrite<u32>; 32]),
        (0x300 => _isactiver: [ReadWrite<u32>; 32]),
        (0x380 => icactiver: [ReadWrite<u32>; 32]),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _r1),
        (0x800 => itargetsr: [ReadWrite<u32>; 255]),
        (0xbfc => _r2),
        (0xf00 => sgir: WriteOnly<u32>),
        (0xf04 => _r3),
        (0xf10 => cpendsgir: [ReadWrite<u32>; 4]),
        (0xf20 => _r4),
        (0xfe8 => pidr2: ReadOnly<u32>),
        (0xfec => _r5),
        (0x1000 => @END),
    }
}

register_structs! {
    /// GICv2 CPU interface registers (those armstop uses).
    pub Gicc {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => pmr: ReadWrite<u32>),
        (0x008 => bpr: ReadWrite<u32>),
        (0x00c => iar: ReadOnly<u32>),
        (0x010 => eoir: WriteOnly<u32>),
        (0x014 => _rpr: ReadOnly<u32>),
        (0x018 => hppir: ReadOnly<u32>),
        (0x01c => @END),
    }
}

/// `GICD_PIDR2.ArchRev` of the distributor at `gicd` (same offset on GICv2 and GICv3).
pub fn arch_rev(gicd: u64) -> u32 {
    // SAFETY: `gicd` is the board's distributor, mapped as device memory; PIDR2 is read-only.
    let d = unsafe { &*(gicd as *const Gicd) };
    (d.pidr2.get() >> 4) & 0xf
}

/// A GICv2.
pub struct GicV2 {
    gicd: &'static Gicd,
    gicc: &'static Gicc,
    /// Each logical CPU's bit in SGI target lists, from its banked ITARGETSR0.
    cpu_bits: [AtomicU8; MAX_CPUS],
}

const SPURIOUS: u32 = 1020;

/// Most CPUs a GICv2 serves: its SGI target lists and `ITARGETSR` bytes have 8 bits.
pub const MAX_CPUS: usize = 8;

// SAFETY: the driver holds references to MMIO register blocks, accessed only with volatile
// reads and writes. The GIC is built to be accessed from every CPU at once (the CPU interface
// and SGI/PPI registers are banked per CPU; distributor writes are single-register updates).
unsafe impl Sync for GicV2 {}
// SAFETY: as for Sync; the register blocks are not tied to the CPU that created the driver.
unsafe impl Send for GicV2 {}

impl GicV2 {
    /// Driver for the frames at `gicd`/`gicc` (device memory, mapped by the board).
    pub fn new(gicd: u64, gicc: u64) -> Self {
        // SAFETY: the board maps both frames as device memory for the whole run; these are
        // the GICv2 register layouts; access is volatile MMIO.
        let (gicd, gicc) = unsafe { (&*(gicd as *const Gicd), &*(gicc as *const Gicc)) };
        Self { gicd, gicc, cpu_bits: [const { AtomicU8::new(0) }; MAX_CPUS] }
    }

    fn security_extensions(&self) -> bool {
        self.gicd.typer.get() & (1 << 10) != 0
    }

    /// Disables and clears every shared interrupt, then enables forwarding.
    pub fn init_distributor(&self) {
        let d = self.gicd;
        d.ctlr.set(0);
        let lines = ((d.typer.get() & 0x1f) as usize + 1) * 32;
        for i in 1..lines / 32 {
            d.icenabler[i].set(u32::MAX);
            d.icpendr[i].set(u32::MAX);
            d.icactiver[i].set(u32::MAX);
        }
        d.ctlr.set(if self.security_extensions() { 1 } else { 3 });
    }

    /// Per-CPU interface set-up (see [`super::init_cpu`]).
    pub fn init_cpu(&self) {
        let d = self.gicd;
        let cpu = crate::cpu::id();
        // `gic::init_primary` refuses a machine with more CPUs than a GICv2 has bits for.
        if let Some(bit) = self.cpu_bits.get(cpu) {
            // A GIC with one CPU interface (GICD_TYPER.CPUNumber = 0) may read its target
            // registers as zero (the architecture makes them RAZ/WI on a uniprocessor): its
            // one CPU is then interface 0, and an SGI to it needs that bit in its target list.
            let own = match d.itargetsr[0].get() as u8 {
                0 if (d.typer.get() >> 5) & 0b111 == 0 => 1,
                b => b,
            };
            bit.store(own, Ordering::Relaxed);
        }
        d.icenabler[0].set(u32::MAX);
        d.icpendr[0].set(u32::MAX);
        for r in &d.cpendsgir {
            r.set(u32::MAX);
        }
        d.icactiver[0].set(u32::MAX);
        for r in &d.ipriorityr[..8] {
            r.set(u32::from_ne_bytes([DEFAULT_PRIORITY; 4]));
        }
        d.isenabler[0].set(0xffff);
        let c = self.gicc;
        c.pmr.set(0xff);
        c.bpr.set(0);
        // Non-secure view: bit 0 enables Group 1. Without Security Extensions: both groups,
        // and AckCtl so Group 1 interrupts can be acknowledged through GICC_IAR.
        c.ctlr.set(if self.security_extensions() { 1 } else { 7 });
    }

    /// The target-list bit of logical CPU `cpu` (0 until that CPU initialised its interface,
    /// and for ids a GICv2 cannot have).
    pub fn cpu_bit(&self, cpu: usize) -> u8 {
        self.cpu_bits.get(cpu).map_or(0, |b| b.load(Ordering::Relaxed))
    }

    /// Writes GICD_SGIR.
    pub fn send_sgi(&self, sgi: u8, target: SgiTarget) {
        let (filter, list) = match target {
            SgiTarget::Cpu(c) => (0u32, self.cpu_bit(c)),
            SgiTarget::Set(m) => (0, m.iter().fold(0, |a, c| a | self.cpu_bit(c))),
            SgiTarget::AllOthers => (1, 0),
        };
        self.gicd.sgir.set((filter << 24) | (u32::from(list) << 16) | u32::from(sgi));
    }

    /// Reads GICC_IAR.
    pub fn acknowledge(&self) -> Option<Ack> {
        let raw = self.gicc.iar.get();
        let intid = raw & 0x3ff;
        if intid >= SPURIOUS {
            return None;
        }
        let source = if intid < 16 {
            let bit = 1u8 << ((raw >> 10) & 7);
            (0..MAX_CPUS).find(|&c| self.cpu_bit(c) == bit)
        } else {
            None
        };
        Some(Ack { raw, intid, source })
    }

    /// Writes GICC_EOIR with the raw IAR value.
    pub fn end(&self, raw: u32) {
        self.gicc.eoir.set(raw);
    }

    /// Number of interrupt lines (SGIs, PPIs and SPIs) the distributor implements.
    pub fn lines(&self) -> u32 {
        ((self.gicd.typer.get() & 0x1f) + 1) * 32
    }

    /// Enables SPI `intid`, targeted at logical CPU `cpu`, at the default priority.
    pub fn enable_spi(&self, intid: u32, cpu: usize) {
        bank::write_byte(&self.gicd.ipriorityr, intid, DEFAULT_PRIORITY);
        self.route_spi(intid, cpu);
        bank::write_bit(&self.gicd.isenabler, intid);
    }

    /// Disables SPI `intid` and clears it if pending.
    pub fn disable_spi(&self, intid: u32) {
        bank::write_bit(&self.gicd.icenabler, intid);
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

    /// Routes SPI `intid` to logical CPU `cpu` alone (GICD_ITARGETSR byte).
    pub fn route_spi(&self, intid: u32, cpu: usize) {
        bank::write_byte(&self.gicd.itargetsr, intid, self.cpu_bit(cpu));
    }

    /// The logical CPUs SPI `intid` targets, as a mask.
    pub fn spi_targets(&self, intid: u32) -> CpuSet {
        let byte = bank::read_byte(&self.gicd.itargetsr, intid);
        (0..MAX_CPUS).filter(|&c| self.cpu_bit(c) & byte != 0).collect()
    }

    /// Enables PPI `intid` on this CPU (banked `GICD_ISENABLER0`) at `priority`.
    pub fn enable_ppi(&self, intid: u32, priority: u8) {
        bank::write_byte(&self.gicd.ipriorityr, intid, priority);
        bank::write_bit(&self.gicd.isenabler, intid);
    }

    /// Disables PPI `intid` on this CPU and clears it if pending.
    pub fn disable_ppi(&self, intid: u32) {
        bank::write_bit(&self.gicd.icenabler, intid);
        bank::write_bit(&self.gicd.icpendr, intid);
    }

    /// Whether PPI `intid` is enabled on this CPU.
    pub fn ppi_enabled(&self, intid: u32) -> bool {
        bank::read_bit(&self.gicd.isenabler, intid)
    }

    /// Clears SGI `sgi`'s pending state on this CPU, from every source (banked
    /// `GICD_CPENDSGIR`), and reads it back so the clear has reached the distributor before
    /// the caller goes on (a posted write could land after a later SGI).
    pub fn clear_sgi_pending(&self, sgi: u8) {
        let r = &self.gicd.cpendsgir[usize::from(sgi / 4)];
        r.set(0xff << ((sgi % 4) * 8));
        let _ = r.get();
    }

    /// Sets SGI `sgi`'s priority on this CPU (banked `GICD_IPRIORITYR0..3`).
    pub fn set_sgi_priority(&self, sgi: u8, priority: u8) {
        bank::write_byte(&self.gicd.ipriorityr, u32::from(sgi), priority);
    }

    /// GICC_PMR.
    pub fn priority_mask(&self) -> u8 {
        self.gicc.pmr.get() as u8
    }

    /// Writes GICC_PMR and reads it back: a device write may still be in flight when the
    /// caller unmasks IRQs, and the read completes only after it.
    pub fn set_priority_mask(&self, pmr: u8) {
        self.gicc.pmr.set(u32::from(pmr));
        let _ = self.gicc.pmr.get();
    }

    /// Stops this CPU's interface from signalling interrupts (before it powers off).
    pub fn disable_cpu(&self) {
        self.gicc.ctlr.set(0);
    }

    /// GICC_HPPIR, if something is pending.
    pub fn highest_pending(&self) -> Option<u32> {
        let id = self.gicc.hppir.get() & 0x3ff;
        (id < SPURIOUS).then_some(id)
    }
}
