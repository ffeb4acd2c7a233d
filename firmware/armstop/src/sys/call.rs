//! Cross-CPU calls: run a plain `fn(usize) -> usize` on another CPU, in thread context (its
//! idle loop, IRQs enabled), and wait for the result.
//!
//! armstop has two ways to run code on another CPU, for two contexts, as Linux has:
//! the stopper (`stop_one_cpu` and the rest, [`crate::stop`]) preempts whatever the CPU runs and
//! runs the function with IRQs masked, so it must not wait for interrupts or make a stop request
//! itself (`WouldDeadlock`); a call here runs where the CPU would otherwise sleep, with IRQs
//! enabled, so it may wait for interrupts, take CPUs down and up, and make stop requests (what
//! Linux's `work_on_cpu` is for). Both are kicked through the GIC (this one by the IPI path's
//! `Wake` message) and served by the same idle loop ([`crate::smp`]).
//!
//! Invariant: each CPU has one mailbox; callers serialise on its lock, the state word hands a
//! call over (`POSTED` → `RUNNING` → `DONE`/`FAULTED`), and a call posted to a CPU that goes
//! down is refused (`REFUSED`), never left for a caller to time out on.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use core::time::Duration;

use armstop_sync::FnSlot;

use crate::board::{NR_CPUS, cpu_count};
use crate::hotplug::{CpuState, state};
use crate::ipi::{self, Message};
use crate::time::wait_until;

/// How long [`run_on`] waits for a call to finish.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn is_online(cpu: usize) -> bool {
    crate::hotplug::HOTPLUG.is_online(cpu)
}

/// Whether a call is posted to `cpu` and waits to run (for its idle loop).
pub fn is_posted(cpu: usize) -> bool {
    CALLS[cpu].state.load(Ordering::Acquire) == CALL_POSTED
}

/// Runs the call posted to `cpu`, if it is still there (for its idle loop, on `cpu`).
pub fn run_posted(cpu: usize) {
    CALLS[cpu].run();
}

const CALL_IDLE: u32 = 0;
const CALL_POSTED: u32 = 1;
const CALL_RUNNING: u32 = 2;
const CALL_DONE: u32 = 3;
const CALL_FAULTED: u32 = 4;
const CALL_REFUSED: u32 = 5;

/// One CPU's call mailbox. Callers serialise on `lock`; the state word hands the call over.
struct CallSlot {
    lock: spin::Mutex<()>,
    state: AtomicU32,
    func: FnSlot<fn(usize) -> usize>,
    arg: AtomicUsize,
    ret: AtomicUsize,
}

static CALLS: [CallSlot; NR_CPUS] = [const {
    CallSlot {
        lock: spin::Mutex::new(()),
        state: AtomicU32::new(CALL_IDLE),
        // SAFETY: a function pointer type.
        func: unsafe { FnSlot::new() },
        arg: AtomicUsize::new(0),
        ret: AtomicUsize::new(0),
    }
}; NR_CPUS];

impl CallSlot {
    fn run(&self) {
        if self
            .state
            .compare_exchange(CALL_POSTED, CALL_RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return; // withdrawn by a caller that timed out
        }
        // `post` stored it before the Release store of POSTED that the Acquire above
        // synchronises with.
        let Some(f) = self.func.get() else {
            // Never: `post` sets the function first. Its caller gets an error, not a hang.
            self.state.store(CALL_FAULTED, Ordering::Release);
            return;
        };
        let r = f(self.arg.load(Ordering::Relaxed));
        self.ret.store(r, Ordering::Relaxed);
        self.state.store(CALL_DONE, Ordering::Release);
    }
}

/// Why a cross-CPU call did not return a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No such CPU.
    InvalidCpu,
    /// The CPU is not online.
    Offline(CpuState),
    /// The call did not finish within [`CALL_TIMEOUT`].
    Timeout,
    /// The function faulted (panicked or aborted) on that CPU; the fault was reported.
    Faulted,
    /// Another caller held the CPU's call mailbox for longer than [`CALL_TIMEOUT`].
    MailboxBusy,
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidCpu => write!(f, "no such CPU"),
            Self::Offline(s) => write!(f, "CPU is {s:?}"),
            Self::Timeout => {
                write!(f, "call did not finish within {} ms", CALL_TIMEOUT.as_millis())
            }
            Self::Faulted => write!(f, "call faulted on the target CPU"),
            Self::MailboxBusy => write!(
                f,
                "another caller held the CPU's call mailbox for over {} ms",
                CALL_TIMEOUT.as_millis()
            ),
        }
    }
}

/// A call posted to another CPU, to be waited for with [`Pending::wait`].
#[must_use = "a posted call must be waited for"]
pub struct Pending {
    cpu: usize,
    guard: Option<spin::MutexGuard<'static, ()>>,
    local: Option<usize>,
}

/// Posts `f(arg)` to run on `cpu` in its idle loop (thread context, IRQs enabled), without
/// waiting. On the calling CPU itself, runs it at once.
pub fn post(cpu: usize, f: fn(usize) -> usize, arg: usize) -> Result<Pending, CallError> {
    if cpu >= cpu_count() {
        return Err(CallError::InvalidCpu);
    }
    if cpu == crate::cpu::id() {
        return Ok(Pending { cpu, guard: None, local: Some(f(arg)) });
    }
    if !is_online(cpu) {
        return Err(CallError::Offline(state(cpu)));
    }
    let slot = &CALLS[cpu];
    // Callers queue for the mailbox; one that waits longer than a call may take is told so
    // rather than left spinning (a caller that faulted may never release it).
    let mut guard = None;
    if !wait_until(CALL_TIMEOUT, || {
        guard = slot.lock.try_lock();
        guard.is_some()
    }) {
        return Err(CallError::MailboxBusy);
    }
    let guard = guard.expect("taken above");
    slot.func.set(Some(f));
    slot.arg.store(arg, Ordering::Relaxed);
    slot.state.store(CALL_POSTED, Ordering::SeqCst);
    // Against `refuse_calls`: either the CPU going down sees POSTED and refuses the call, or
    // we see it no longer online here and withdraw it (or find it refused).
    if !is_online(cpu) {
        let r =
            slot.state.compare_exchange(CALL_POSTED, CALL_IDLE, Ordering::SeqCst, Ordering::SeqCst);
        if matches!(r, Ok(_) | Err(CALL_REFUSED)) {
            slot.state.store(CALL_IDLE, Ordering::Release);
            return Err(CallError::Offline(state(cpu)));
        }
    }
    ipi::send(cpu, Message::Wake).map_err(|_| CallError::InvalidCpu)?;
    Ok(Pending { cpu, guard: Some(guard), local: None })
}

impl Pending {
    /// Waits for the call's result, up to [`CALL_TIMEOUT`].
    pub fn wait(self) -> Result<usize, CallError> {
        self.wait_timeout(CALL_TIMEOUT)
    }

    /// Waits for the call's result, up to `timeout` (for calls known to run long).
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<usize, CallError> {
        if let Some(r) = self.local {
            return Ok(r);
        }
        let slot = &CALLS[self.cpu];
        let finished = wait_until(timeout, || {
            matches!(slot.state.load(Ordering::Acquire), CALL_DONE | CALL_FAULTED | CALL_REFUSED)
        });
        let result = if finished {
            match slot.state.load(Ordering::Acquire) {
                CALL_DONE => Ok(slot.ret.load(Ordering::Relaxed)),
                CALL_REFUSED => Err(CallError::Offline(state(self.cpu))),
                _ => Err(CallError::Faulted),
            }
        } else {
            // Withdraw it if it has not started; a running call is left to finish on its own
            // (it borrows nothing: a plain `fn` and a `usize`).
            let _ = slot.state.compare_exchange(
                CALL_POSTED,
                CALL_IDLE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return Err(CallError::Timeout);
        };
        slot.state.store(CALL_IDLE, Ordering::Release);
        drop(self.guard.take());
        result
    }
}

/// Runs `f(arg)` on `cpu` and waits for its result.
pub fn run_on(cpu: usize, f: fn(usize) -> usize, arg: usize) -> Result<usize, CallError> {
    post(cpu, f, arg)?.wait()
}

/// Runs `f(arg)` on every online CPU at the same time (the caller's own share last), and
/// returns each CPU's result, `None` for CPUs that are not online.
pub fn run_everywhere(
    f: fn(usize) -> usize,
    arg: usize,
) -> [Option<Result<usize, CallError>>; NR_CPUS] {
    let me = crate::cpu::id();
    let mut pending: [Option<Result<Pending, CallError>>; NR_CPUS] = [const { None }; NR_CPUS];
    for (cpu, p) in pending.iter_mut().enumerate().take(cpu_count()) {
        if cpu != me && is_online(cpu) {
            *p = Some(post(cpu, f, arg));
        }
    }
    let mine = f(arg);
    let mut out: [Option<Result<usize, CallError>>; NR_CPUS] = [None; NR_CPUS];
    out[me] = Some(Ok(mine));
    for (cpu, p) in pending.into_iter().enumerate() {
        if let Some(p) = p {
            out[cpu] = Some(p.and_then(Pending::wait));
        }
    }
    out
}

/// Fault hook for secondary CPUs: a call in progress is marked faulted so its caller stops
/// waiting.
pub fn on_secondary_fault(cpu: usize) {
    let _ = CALLS[cpu].state.compare_exchange(
        CALL_RUNNING,
        CALL_FAULTED,
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
}

/// On a CPU going down, after its stopper is parked (its idle loop calls this before it turns
/// off): a call still posted to it will never run, so its caller gets [`CallError::Offline`]
/// instead of a timeout.
pub fn refuse_calls(cpu: usize) {
    let _ = CALLS[cpu].state.compare_exchange(
        CALL_POSTED,
        CALL_REFUSED,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
}
