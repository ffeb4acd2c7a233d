//! PSCI through `smccc`, with the conduit (HVC or SMC) chosen once at boot.
//!
//! `smccc`'s calls take the conduit as a type parameter; the board (or the boot EL, for
//! [`PsciConduit::FromBootEl`]) picks one at run time, so every call here dispatches on it.
//! Errors keep PSCI's names ([`error_name`]) so that a refusal is reported as the spec says it.

use armstop_boards::PsciConduit;
use smccc::psci::{self, AffinityState, LowestAffinityLevel, Version};
use smccc::{Hvc, Smc};

pub use smccc::psci::error::Error;

use crate::board::BOARD;

/// How PSCI calls are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0`.
    Hvc,
    /// `smc #0`.
    Smc,
}

static CONDUIT: spin::Once<Conduit> = spin::Once::new();

/// Picks the conduit for a firmware entered at `boot_el`. The conduit that does not match
/// answers nothing useful (at EL1 `smc` is UNDEF without EL3 firmware; at EL2 `hvc` traps to
/// our own EL2), so the choice is made once and never probed.
pub fn init(boot_el: u8) -> Conduit {
    *CONDUIT.call_once(|| match BOARD.psci {
        PsciConduit::Hvc => Conduit::Hvc,
        PsciConduit::Smc => Conduit::Smc,
        PsciConduit::FromBootEl if boot_el >= 2 => Conduit::Smc,
        PsciConduit::FromBootEl => Conduit::Hvc,
    })
}

/// Whether [`init`] has chosen the conduit (a fault early in the boot comes before it).
pub fn is_ready() -> bool {
    CONDUIT.get().is_some()
}

/// The conduit in use.
pub fn conduit() -> Conduit {
    *CONDUIT.get().expect("PSCI used before psci::init")
}

macro_rules! call {
    ($f:ident($($arg:expr),*)) => {
        match conduit() {
            Conduit::Hvc => psci::$f::<Hvc>($($arg),*),
            Conduit::Smc => psci::$f::<Smc>($($arg),*),
        }
    };
}

/// PSCI_VERSION.
pub fn version() -> Result<Version, Error> {
    call!(version())
}

/// PSCI_FEATURES for a function id: `Ok(flags)` if implemented.
pub fn features(function_id: u32) -> Result<u32, Error> {
    call!(psci_features(function_id))
}

/// The value PSCI wants for a CPU: the bare affinity fields. QEMU rejects MPIDR bit 31 with
/// INVALID_PARAMETERS (TF-A accepts either).
pub fn target(mpidr: u64) -> u64 {
    mpidr & armstop_boards::MPIDR_AFFINITY_MASK
}

/// CPU_ON (64-bit): starts `mpidr` at `entry` with `context_id` in x0.
pub fn cpu_on(mpidr: u64, entry: u64, context_id: u64) -> Result<(), Error> {
    call!(cpu_on(target(mpidr), entry, context_id))
}

/// CPU_OFF for the calling CPU; returns only with the reason it was refused.
pub fn cpu_off() -> Error {
    match call!(cpu_off()) {
        Ok(()) => Error::Unknown(0),
        Err(e) => e,
    }
}

/// AFFINITY_INFO for one CPU.
pub fn affinity_info(mpidr: u64) -> Result<AffinityState, Error> {
    call!(affinity_info(target(mpidr), LowestAffinityLevel::All))
}

/// SYSTEM_OFF; returns only with the reason it failed.
pub fn system_off() -> Error {
    match call!(system_off()) {
        Ok(()) => Error::Unknown(0),
        Err(e) => e,
    }
}

/// SYSTEM_RESET; returns only with the reason it failed.
pub fn system_reset() -> Error {
    match call!(system_reset()) {
        Ok(()) => Error::Unknown(0),
        Err(e) => e,
    }
}

/// Any PSCI call by function id, with `x1..x3` = `args`; returns `x0` as PSCI's signed result.
/// For tests and diagnostics of calls armstop does not otherwise make (the typed functions
/// above are for everything else).
pub fn raw_call(function: u32, args: [u64; 3]) -> i64 {
    use smccc::Call;
    let mut a = [0u64; 17];
    a[..3].copy_from_slice(&args);
    let r = match conduit() {
        Conduit::Hvc => Hvc::call64(function, a),
        Conduit::Smc => Smc::call64(function, a),
    };
    r[0] as i64
}

/// The PSCI specification's name for an error.
pub fn error_name(e: Error) -> &'static str {
    match e {
        Error::NotSupported => "NOT_SUPPORTED",
        Error::InvalidParameters => "INVALID_PARAMETERS",
        Error::Denied => "DENIED",
        Error::AlreadyOn => "ALREADY_ON",
        Error::OnPending => "ON_PENDING",
        Error::InternalFailure => "INTERNAL_FAILURE",
        Error::NotPresent => "NOT_PRESENT",
        Error::Disabled => "DISABLED",
        Error::InvalidAddress => "INVALID_ADDRESS",
        Error::Unknown(_) => "UNKNOWN",
    }
}
