//! Layer 3, the applications: what `just run` shows ([`demo`], then the operator's console,
//! [`shell`]), the on-target test harness ([`testing`]), the benchmark image's work
//! ([`bench`](mod@bench)) and the load engine (the hotplug storm and the soak run, [`load`]). They may use everything below;
//! nothing below uses them (the harness takes faults over through [`crate::fault::set_hook`]).

pub mod bench;
pub mod demo;
pub mod load;
pub mod shell;
pub mod testing;
