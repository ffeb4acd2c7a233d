//! Layer 2, the system services: fault reporting, the IPI messages, the stopper on the target,
//! CPU hotplug, cross-CPU calls, and SMP bring-up with the idle loop every secondary runs.
//!
//! Invariant: a service uses the layers below and the services before it in this order, never
//! one after it: `fault`, `ipi`, `stop`, `hotplug`, `call`, `smp` (the boot flow, which ties them
//! together). Applications ([`crate::app`]) sit above.

pub mod call;
pub mod fault;
pub mod hotplug;
pub mod ipi;
pub mod smp;
pub mod stop;
