//! Sets of logical CPU ids: [`CpuSet`] (a value) and [`AtomicCpuSet`] (shared, updated one CPU
//! at a time).
//!
//! Every request that names several CPUs (`stop_cpus`, a multi-CPU stop's active set, the SGI
//! target list, hotplug's online set) takes a `CpuSet`, so no integer's width caps how many CPUs
//! a machine may have. The capacity is one number, [`MAX_CPUS`]: the most CPUs armstop supports
//! on any interrupt controller (GICv3 under QEMU `virt` allows 512). How many CPUs an *image*
//! has room for is configuration of the firmware (its per-CPU tables), at most this.
//!
//! Invariant: a set never holds an id at or above [`MAX_CPUS`]; every operation that could
//! add one ([`CpuSet::insert`], [`CpuSet::first_n`], parsing) refuses or clamps it, so code that
//! iterates a set may index per-CPU tables of `MAX_CPUS` entries with what it gets.
//!
//! The text form (`Display` and `FromStr`) is the one Linux uses in `/sys/devices/system/cpu`:
//! `0-3,5,7-8`, the empty set printed as `(none)`.
//!
//! | armstop | Linux (`include/linux/cpumask.h`) |
//! |---|---|
//! | [`CpuSet`] | `struct cpumask` (`cpumask_t`), as a value |
//! | [`MAX_CPUS`] | `NR_CPUS` |
//! | [`CpuSet::single`] | `cpumask_of` |
//! | [`CpuSet::contains`], [`CpuSet::insert`], [`CpuSet::remove`] | `cpumask_test_cpu`, `__cpumask_set_cpu`, `__cpumask_clear_cpu` |
//! | [`CpuSet::len`], [`CpuSet::is_empty`] | `cpumask_weight`, `cpumask_empty` |
//! | [`CpuSet::first`], [`CpuSet::last`], [`CpuSet::iter`] | `cpumask_first`, `cpumask_last`, `for_each_cpu` |
//! | `&`, `\|`, `-` ([`CpuSet::intersection`], [`CpuSet::union`], [`CpuSet::difference`]) | `cpumask_and`, `cpumask_or`, `cpumask_andnot` |
//! | [`CpuSet::is_subset`], [`CpuSet::intersects`] | `cpumask_subset`, `cpumask_intersects` |
//! | `FromStr`, `Display` | `cpulist_parse`, `%*pbl` |
//! | [`AtomicCpuSet::insert`], [`AtomicCpuSet::remove`] | `cpumask_set_cpu`, `cpumask_clear_cpu` (atomic bit operations) |
//!
//! ```
//! use armstop_cpuset::{AtomicCpuSet, CpuSet};
//! use core::sync::atomic::Ordering;
//!
//! let online: CpuSet = "0-3,5".parse().unwrap();
//! assert_eq!(online.len(), 5);
//! assert!(online.contains(5) && !online.contains(4));
//! let others = online - CpuSet::single(0);
//! assert_eq!(others.to_string(), "1-3,5");
//! assert_eq!(others.iter().collect::<Vec<_>>(), [1, 2, 3, 5]);
//! assert!("3-1".parse::<CpuSet>().is_err());
//!
//! // Shared: each CPU adds itself.
//! let acked = AtomicCpuSet::new();
//! acked.insert(2, Ordering::Relaxed);
//! acked.insert(700, Ordering::Relaxed); // past MAX_CPUS: ignored
//! assert_eq!(acked.load(Ordering::Relaxed), CpuSet::single(2));
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Sub, SubAssign};
use core::str::FromStr;

use armstop_sync::{AtomicU64, Ordering};

/// Most CPUs a [`CpuSet`] can name: GICv3's limit under QEMU `virt`. A multiple of 64.
pub const MAX_CPUS: usize = 512;

const WORDS: usize = MAX_CPUS / 64;
const _: () = assert!(MAX_CPUS.is_multiple_of(64));

/// A set of logical CPU ids below [`MAX_CPUS`]. `Copy`: 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuSet {
    words: [u64; WORDS],
}

impl CpuSet {
    /// No CPUs.
    pub const EMPTY: Self = Self { words: [0; WORDS] };

    /// No CPUs.
    pub const fn new() -> Self {
        Self::EMPTY
    }

    /// CPUs 0..64 from a bit mask (bit `n` = CPU `n`): for tests and small literal sets.
    pub const fn from_bits(bits: u64) -> Self {
        let mut s = Self::EMPTY;
        s.words[0] = bits;
        s
    }

    /// The CPUs 0..64 of this set as a bit mask, if it has none above 63.
    pub const fn to_bits(&self) -> Option<u64> {
        let mut w = 1;
        while w < WORDS {
            if self.words[w] != 0 {
                return None;
            }
            w += 1;
        }
        Some(self.words[0])
    }

    /// Just `cpu`; empty if `cpu` is not below [`MAX_CPUS`].
    pub const fn single(cpu: usize) -> Self {
        let mut s = Self::EMPTY;
        if cpu < MAX_CPUS {
            s.words[cpu / 64] = 1 << (cpu % 64);
        }
        s
    }

    /// CPUs `0..n` (all of [`MAX_CPUS`] if `n` is larger).
    pub const fn first_n(n: usize) -> Self {
        let n = if n > MAX_CPUS { MAX_CPUS } else { n };
        let mut s = Self::EMPTY;
        let mut w = 0;
        while w < n / 64 {
            s.words[w] = u64::MAX;
            w += 1;
        }
        if !n.is_multiple_of(64) {
            s.words[n / 64] = (1 << (n % 64)) - 1;
        }
        s
    }

    /// Whether `cpu` is in the set (never, for ids at or above [`MAX_CPUS`]).
    pub const fn contains(&self, cpu: usize) -> bool {
        cpu < MAX_CPUS && self.words[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// Adds `cpu`. Returns `false`, and leaves the set as it was, if `cpu` is not below
    /// [`MAX_CPUS`].
    pub const fn insert(&mut self, cpu: usize) -> bool {
        if cpu >= MAX_CPUS {
            return false;
        }
        self.words[cpu / 64] |= 1 << (cpu % 64);
        true
    }

    /// Removes `cpu` (nothing happens if it is not there).
    pub const fn remove(&mut self, cpu: usize) {
        if cpu < MAX_CPUS {
            self.words[cpu / 64] &= !(1 << (cpu % 64));
        }
    }

    /// How many CPUs the set holds.
    pub const fn len(&self) -> usize {
        let mut n = 0;
        let mut w = 0;
        while w < WORDS {
            n += self.words[w].count_ones() as usize;
            w += 1;
        }
        n
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        let mut w = 0;
        while w < WORDS {
            if self.words[w] != 0 {
                return false;
            }
            w += 1;
        }
        true
    }

    /// The lowest CPU in the set.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// The highest CPU in the set.
    pub fn last(&self) -> Option<usize> {
        (0..WORDS)
            .rev()
            .find(|&w| self.words[w] != 0)
            .map(|w| w * 64 + 63 - self.words[w].leading_zeros() as usize)
    }

    /// The CPUs in both sets.
    pub const fn intersection(&self, other: &Self) -> Self {
        let mut s = *self;
        let mut w = 0;
        while w < WORDS {
            s.words[w] &= other.words[w];
            w += 1;
        }
        s
    }

    /// The CPUs in either set.
    pub const fn union(&self, other: &Self) -> Self {
        let mut s = *self;
        let mut w = 0;
        while w < WORDS {
            s.words[w] |= other.words[w];
            w += 1;
        }
        s
    }

    /// The CPUs of this set that are not in `other`.
    pub const fn difference(&self, other: &Self) -> Self {
        let mut s = *self;
        let mut w = 0;
        while w < WORDS {
            s.words[w] &= !other.words[w];
            w += 1;
        }
        s
    }

    /// Whether every CPU of this set is in `other`.
    pub const fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    /// Whether the sets share a CPU.
    pub const fn intersects(&self, other: &Self) -> bool {
        !self.intersection(other).is_empty()
    }

    /// The CPUs in increasing order.
    pub fn iter(&self) -> Iter {
        Iter { words: self.words, word: 0 }
    }

    /// The 64-bit words of the set, lowest CPUs first (`words()[w]` bit `b` = CPU `64 w + b`):
    /// for drivers whose registers take CPU lists a word (or a GIC target-list field) at a time.
    pub const fn words(&self) -> &[u64; WORDS] {
        &self.words
    }
}

/// The CPUs of a [`CpuSet`], lowest first.
#[derive(Clone)]
pub struct Iter {
    words: [u64; WORDS],
    word: usize,
}

impl Iterator for Iter {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.word < WORDS {
            let w = &mut self.words[self.word];
            if *w != 0 {
                let bit = w.trailing_zeros() as usize;
                *w &= *w - 1;
                return Some(self.word * 64 + bit);
            }
            self.word += 1;
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.words[self.word.min(WORDS)..].iter().map(|w| w.count_ones() as usize).sum();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter {}

impl IntoIterator for CpuSet {
    type Item = usize;
    type IntoIter = Iter;
    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl IntoIterator for &CpuSet {
    type Item = usize;
    type IntoIter = Iter;
    fn into_iter(self) -> Iter {
        self.iter()
    }
}

/// Collects CPU ids; ids at or above [`MAX_CPUS`] are dropped (see the crate's invariant; code
/// that must refuse them checks with [`CpuSet::insert`]).
impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut s = Self::EMPTY;
        for cpu in iter {
            s.insert(cpu);
        }
        s
    }
}

macro_rules! set_op {
    ($tr:ident, $f:ident, $atr:ident, $af:ident, $method:ident) => {
        impl $tr for CpuSet {
            type Output = CpuSet;
            fn $f(self, rhs: CpuSet) -> CpuSet {
                self.$method(&rhs)
            }
        }
        impl $atr for CpuSet {
            fn $af(&mut self, rhs: CpuSet) {
                *self = self.$method(&rhs);
            }
        }
    };
}
set_op!(BitOr, bitor, BitOrAssign, bitor_assign, union);
set_op!(BitAnd, bitand, BitAndAssign, bitand_assign, intersection);
set_op!(Sub, sub, SubAssign, sub_assign, difference);

/// Linux's CPU-list form: `0-3,5`; `(none)` for the empty set.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let mut it = self.iter().peekable();
        let mut first = true;
        while let Some(lo) = it.next() {
            let mut hi = lo;
            while it.peek() == Some(&(hi + 1)) {
                hi = it.next().unwrap_or(hi);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if hi == lo {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

/// Why a CPU list did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseCpuSetError {
    /// Nothing, or nothing between two commas.
    Empty,
    /// A part that is not a decimal CPU id or a range `a-b` of them (its byte offset).
    NotANumber(usize),
    /// A range whose end is below its start.
    Backwards(usize, usize),
    /// A CPU id at or above [`MAX_CPUS`].
    TooLarge(usize),
}

impl fmt::Display for ParseCpuSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty CPU list (write e.g. 1,3 or 0-2)"),
            Self::NotANumber(at) => write!(f, "not a CPU number or range at byte {at}"),
            Self::Backwards(a, b) => write!(f, "range {a}-{b} ends below its start"),
            Self::TooLarge(n) => write!(f, "CPU {n} is not below {MAX_CPUS}"),
        }
    }
}

fn parse_id(s: &str, at: usize) -> Result<usize, ParseCpuSetError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseCpuSetError::NotANumber(at));
    }
    // Digits only: the one way to fail now is overflow, which is "too large" too.
    let n = s.parse::<usize>().map_err(|_| ParseCpuSetError::TooLarge(usize::MAX))?;
    if n >= MAX_CPUS {
        return Err(ParseCpuSetError::TooLarge(n));
    }
    Ok(n)
}

/// Parses Linux's CPU-list form: comma-separated ids and inclusive ranges (`1,3`, `0-2`,
/// `0-3,8`); spaces around parts are allowed. Needs at least one CPU.
impl FromStr for CpuSet {
    type Err = ParseCpuSetError;

    fn from_str(s: &str) -> Result<Self, ParseCpuSetError> {
        let mut set = Self::EMPTY;
        let mut at = 0;
        for part in s.split(',') {
            let start = at + (part.len() - part.trim_start().len());
            at += part.len() + 1;
            let part = part.trim();
            if part.is_empty() {
                return Err(ParseCpuSetError::Empty);
            }
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => {
                    let lo = parse_id(a.trim(), start)?;
                    let hi = parse_id(b.trim(), start + a.len() + 1)?;
                    if hi < lo {
                        return Err(ParseCpuSetError::Backwards(lo, hi));
                    }
                    (lo, hi)
                }
                None => {
                    let n = parse_id(part, start)?;
                    (n, n)
                }
            };
            for cpu in lo..=hi {
                set.insert(cpu);
            }
        }
        Ok(set)
    }
}

/// A [`CpuSet`] that CPUs update concurrently, one id at a time (each word is one atomic).
///
/// [`AtomicCpuSet::load`] reads word by word: it is a consistent snapshot only of the CPUs of
/// one word. Use it for what is reported (which CPUs acknowledged), never to decide that a set
/// is complete: count for that.
pub struct AtomicCpuSet {
    words: [AtomicU64; WORDS],
}

impl AtomicCpuSet {
    armstop_sync::loom_const_fn! {
        /// An empty set.
        pub fn new() -> Self {
            Self { words: armstop_sync::array_of![AtomicU64::new(0); WORDS] }
        }
    }

    /// Adds `cpu` (ignored at or above [`MAX_CPUS`]).
    pub fn insert(&self, cpu: usize, order: Ordering) {
        if cpu < MAX_CPUS {
            self.words[cpu / 64].fetch_or(1 << (cpu % 64), order);
        }
    }

    /// Removes `cpu`.
    pub fn remove(&self, cpu: usize, order: Ordering) {
        if cpu < MAX_CPUS {
            self.words[cpu / 64].fetch_and(!(1 << (cpu % 64)), order);
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize, order: Ordering) -> bool {
        cpu < MAX_CPUS && self.words[cpu / 64].load(order) & (1 << (cpu % 64)) != 0
    }

    /// Empties the set.
    pub fn clear(&self, order: Ordering) {
        for w in &self.words {
            w.store(0, order);
        }
    }

    /// The set, read one word at a time (see the type's docs).
    pub fn load(&self, order: Ordering) -> CpuSet {
        let mut s = CpuSet::EMPTY;
        for (d, w) in s.words.iter_mut().zip(&self.words) {
            *d = w.load(order);
        }
        s
    }
}

#[cfg(not(loom))]
impl Default for AtomicCpuSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AtomicCpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AtomicCpuSet({})", self.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basic_operations_across_words() {
        let mut s = CpuSet::new();
        assert!(s.is_empty() && s.first().is_none() && s.last().is_none());
        for cpu in [0, 63, 64, 200, 511] {
            assert!(s.insert(cpu));
        }
        assert!(!s.insert(512), "beyond capacity is refused");
        assert_eq!(s.len(), 5);
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 63, 64, 200, 511]);
        assert_eq!((s.first(), s.last()), (Some(0), Some(511)));
        assert!(s.contains(64) && !s.contains(65) && !s.contains(512) && !s.contains(usize::MAX));
        s.remove(64);
        s.remove(9999);
        assert_eq!(s.to_string(), "0,63,200,511");
        assert_eq!(s.to_bits(), None);
        assert_eq!(CpuSet::from_bits(0b1011).to_bits(), Some(0b1011));
        assert_eq!(CpuSet::single(600), CpuSet::EMPTY);
    }

    #[test]
    fn first_n_at_word_edges() {
        for n in [0, 1, 63, 64, 65, 128, 511, 512, 513, usize::MAX] {
            let s = CpuSet::first_n(n);
            assert_eq!(s.len(), n.min(MAX_CPUS), "n = {n}");
            assert_eq!(s.iter().collect::<Vec<_>>(), (0..n.min(MAX_CPUS)).collect::<Vec<_>>());
        }
        assert_eq!(CpuSet::first_n(4).to_bits(), Some(0b1111));
    }

    #[test]
    fn set_algebra() {
        let a: CpuSet = [1, 2, 70].into_iter().collect();
        let b: CpuSet = [2, 70, 300].into_iter().collect();
        assert_eq!((a | b).to_string(), "1-2,70,300");
        assert_eq!((a & b).to_string(), "2,70");
        assert_eq!((a - b).to_string(), "1");
        assert!((a & b).is_subset(&a) && !a.is_subset(&b) && a.intersects(&b));
        assert!(!CpuSet::single(5).intersects(&CpuSet::single(6)));
    }

    #[test]
    fn display_uses_ranges() {
        let s: CpuSet = [0, 1, 2, 3, 5, 7, 8, 64, 65, 66].into_iter().collect();
        assert_eq!(s.to_string(), "0-3,5,7-8,64-66");
        assert_eq!(CpuSet::EMPTY.to_string(), "(none)");
        assert_eq!(format!("{:?}", CpuSet::first_n(512)), "CpuSet(0-511)");
    }

    #[test]
    fn parses_lists_and_names_what_is_wrong() {
        assert_eq!("1,3".parse::<CpuSet>().unwrap().to_string(), "1,3");
        assert_eq!("0-2".parse::<CpuSet>().unwrap().to_string(), "0-2");
        assert_eq!(" 0 - 2 , 8 ".parse::<CpuSet>().unwrap().to_string(), "0-2,8");
        assert_eq!("511".parse::<CpuSet>().unwrap().last(), Some(511));
        let bad: &[(&str, ParseCpuSetError)] = &[
            ("", ParseCpuSetError::Empty),
            ("1,,2", ParseCpuSetError::Empty),
            ("1,", ParseCpuSetError::Empty),
            ("x", ParseCpuSetError::NotANumber(0)),
            ("1,x", ParseCpuSetError::NotANumber(2)),
            ("-1", ParseCpuSetError::NotANumber(0)),
            ("1-", ParseCpuSetError::NotANumber(2)),
            ("1-2-3", ParseCpuSetError::NotANumber(2)),
            ("+1", ParseCpuSetError::NotANumber(0)),
            ("3-1", ParseCpuSetError::Backwards(3, 1)),
            ("512", ParseCpuSetError::TooLarge(512)),
            ("0-9999", ParseCpuSetError::TooLarge(9999)),
            ("99999999999999999999999", ParseCpuSetError::TooLarge(usize::MAX)),
        ];
        for (input, want) in bad {
            assert_eq!(input.parse::<CpuSet>(), Err(*want), "{input:?}");
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn atomic_set_tracks_single_cpus() {
        let a = AtomicCpuSet::new();
        a.insert(3, Ordering::Relaxed);
        a.insert(130, Ordering::Relaxed);
        a.insert(512, Ordering::Relaxed);
        assert!(a.contains(130, Ordering::Relaxed) && !a.contains(512, Ordering::Relaxed));
        assert_eq!(a.load(Ordering::Relaxed).to_string(), "3,130");
        a.remove(3, Ordering::Relaxed);
        assert_eq!(format!("{a:?}"), "AtomicCpuSet(130)");
        a.clear(Ordering::Relaxed);
        assert!(a.load(Ordering::Relaxed).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// The text form reads back as the same set, and the set agrees with a model.
        #[test]
        fn display_parses_back(cpus in proptest::collection::btree_set(0usize..MAX_CPUS, 1..40)) {
            let s: CpuSet = cpus.iter().copied().collect();
            prop_assert_eq!(s.len(), cpus.len());
            prop_assert_eq!(s.iter().collect::<Vec<_>>(), cpus.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(s.to_string().parse::<CpuSet>(), Ok(s));
        }

        /// Any string either parses or gives an error; it never panics.
        #[test]
        fn parse_never_panics(input in "[0-9, \\-x]{0,24}") {
            let _ = input.parse::<CpuSet>();
        }
    }
}
