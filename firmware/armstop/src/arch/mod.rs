//! Layer 0, the CPU architecture: AArch64 entry and the EL2 → EL1 drop, exception vectors,
//! system registers and IRQ masking, the identity map and the per-CPU stacks.
//!
//! Invariant: nothing here names a driver, a service or an application. What runs above is
//! reached through the entry contract ([`boot`]: symbols the layers above define) and through
//! handlers registered by their owners ([`exception::set_handler`]).

pub mod boot;
pub mod cpu;
pub mod exception;
pub mod mm;
