//! The soak image (`just soak`): `armstop::load::soak` for as long as the host asks, with a
//! progress line every 10 s and the totals at the end; exit status 0 only if nothing was lost,
//! nothing ran wrong and no stopper parked with works (`Totals::ok`).
//!
//! The duration comes at run time, so one image serves every length: the runner has QEMU's
//! generic loader write it, with a check word, at the board's parameter address
//! (`Board::param_address`, the last page of RAM) before any CPU starts. Without that word the
//! image says so and ends with status 2, rather than soak for whatever the page held. (Once
//! the operator console reads commands from the UART, `soak <duration>` does the same there.)
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use armstop::board::BOARD;
use armstop::println;
use armstop_boards::PARAM_MAGIC;

armstop::entry!(main);

/// Why the page holds no duration.
enum NoDuration {
    /// The check word is not there: the host passed nothing.
    Missing(u64),
    /// There is a check word, and the value is 0 or over the console's limit.
    OutOfRange(u32),
}

/// The duration the host passed, in seconds. The page is cleared after reading, so that a
/// reboot without the loader (on hardware) does not find the last run's value.
fn duration() -> Result<u32, NoDuration> {
    let Some(at) = BOARD.param_address() else { return Err(NoDuration::Missing(0)) };
    let p = at as *mut u64;
    // SAFETY: the parameter page is normal RAM that the identity map covers and that nothing
    // else uses (see `Board::param_address`); only the boot CPU touches it, once, here.
    let word = unsafe { p.read_volatile() };
    // SAFETY: as above.
    unsafe { p.write_volatile(0) };
    armstop::mm::clean_dcache_range(at as usize, 8);
    let (value, magic) = (word as u32, (word >> 32) as u32);
    if magic != PARAM_MAGIC {
        return Err(NoDuration::Missing(word));
    }
    if value == 0 || value > armstop_shell::STORM_MAX_SECS {
        return Err(NoDuration::OutOfRange(value));
    }
    Ok(value)
}

fn main() -> ! {
    let at = BOARD.param_address().unwrap_or(0);
    let secs = match duration() {
        Ok(s) => s,
        Err(NoDuration::Missing(word)) => {
            println!(
                "armstop-soak: error: no duration at {at:#x} (read {word:#018x}, no check word \
                 {PARAM_MAGIC:#x} in its upper half): boot it with `armstop-runner soak --duration D`"
            );
            armstop::power::exit(2)
        }
        Err(NoDuration::OutOfRange(v)) => {
            println!(
                "armstop-soak: error: duration {v} s at {at:#x} is out of range (1 to {} s)",
                armstop_shell::STORM_MAX_SECS
            );
            armstop::power::exit(2)
        }
    };
    let n = armstop::board::cpu_count();
    println!("armstop-soak: begin secs={secs} board={} cpus={n}", BOARD.name);
    let t = armstop::load::soak(secs, &mut |p| armstop::load::print(p));
    armstop::load::print(&t);
    armstop::power::exit(if t.ok() { 0 } else { 1 })
}
