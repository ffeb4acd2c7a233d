//! Malformed blobs, made by mutating valid ones: each header fault gives its own error, and no
//! mutation makes `parse` panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use armstop_devicetree::{DtError, FDT_MAGIC, blob_at, blob_in, parse};
use dtoolkit::error::FdtErrorKind;

const VIRT: &[u8] = include_bytes!("data/virt-gicv3-smp4.dtb");
const SMALL: &[&[u8]] = &[
    include_bytes!("data/virt-gicv2-smp2.dtb"),
    include_bytes!("data/edge-cases.dtb"),
    include_bytes!("data/base.dtb"),
];

fn with_totalsize(dtb: &[u8], totalsize: u32) -> Vec<u8> {
    let mut v = dtb.to_vec();
    v[4..8].copy_from_slice(&totalsize.to_be_bytes());
    v
}

/// `parse(bytes)`, failing the test (with `what`) if it panics.
fn parse_no_panic(bytes: &[u8], what: &dyn Fn() -> String) -> Result<(), DtError> {
    match catch_unwind(AssertUnwindSafe(|| parse(bytes).map(|_| ()))) {
        Ok(r) => r,
        Err(_) => panic!("parse panicked on {}", what()),
    }
}

#[test]
fn the_fixture_is_valid() {
    assert!(parse(VIRT).is_ok());
    assert_eq!(u32::from_be_bytes(VIRT[..4].try_into().unwrap()), FDT_MAGIC);
}

#[test]
fn bad_magic_gives_the_value_read() {
    let mut v = VIRT.to_vec();
    v[..4].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    let e = parse(&v).unwrap_err();
    assert_eq!(e, DtError::BadMagic(0xdead_beef));
    assert_eq!(e.to_string(), "no device tree: magic is 0xdeadbeef, expected 0xd00dfeed");
    // What an ELF boot finds at the start of RAM: zeros.
    assert_eq!(parse(&[0; 64]), Err(DtError::BadMagic(0)));
}

#[test]
fn truncated_blobs() {
    let n = VIRT.len();
    let e = parse(&VIRT[..n - 1]).unwrap_err();
    assert_eq!(e, DtError::Truncated { totalsize: n as u32, len: n - 1 });
    assert_eq!(
        e.to_string(),
        format!("device tree is truncated: totalsize is {n} bytes, {} available", n - 1)
    );
    assert_eq!(parse(&VIRT[..8]), Err(DtError::Truncated { totalsize: n as u32, len: 8 }));
    assert_eq!(parse(&VIRT[..7]), Err(DtError::TooShort { len: 7 }));
    assert_eq!(parse(&[]), Err(DtError::TooShort { len: 0 }));
}

#[test]
fn totalsize_larger_than_the_slice() {
    let n = VIRT.len();
    let v = with_totalsize(VIRT, n as u32 + 100);
    assert_eq!(parse(&v), Err(DtError::Truncated { totalsize: n as u32 + 100, len: n }));
    let v = with_totalsize(VIRT, u32::MAX);
    assert_eq!(parse(&v), Err(DtError::Truncated { totalsize: u32::MAX, len: n }));
}

#[test]
fn totalsize_smaller_than_the_header() {
    let v = with_totalsize(VIRT, 16);
    let e = parse(&v).unwrap_err();
    assert_eq!(e, DtError::TotalSizeTooSmall(16));
    assert_eq!(e.to_string(), "device tree totalsize 16 is smaller than its 40-byte header");
}

#[test]
fn totalsize_cutting_the_structure_is_dtoolkits_error() {
    // The header is consistent with the slice, but the blocks it points to run past its end.
    let v = with_totalsize(&VIRT[..200], 200);
    let e = parse(&v).unwrap_err();
    assert!(matches!(e, DtError::Parse(_)), "{e:?}");
    assert!(e.to_string().starts_with("malformed device tree: "), "{e}");
}

#[test]
fn unsupported_version_is_dtoolkits_error() {
    let mut v = VIRT.to_vec();
    v[20..24].copy_from_slice(&16u32.to_be_bytes()); // version
    v[24..28].copy_from_slice(&16u32.to_be_bytes()); // last_comp_version
    let e = parse(&v).unwrap_err();
    assert!(
        matches!(&e, DtError::Parse(p) if p.kind == FdtErrorKind::UnsupportedVersion(16)),
        "{e:?}"
    );
}

#[test]
fn blob_in_cuts_to_totalsize() {
    let mut v = VIRT.to_vec();
    v.extend_from_slice(&[0xff; 100]);
    assert_eq!(blob_in(&v), Ok(VIRT));
}

#[test]
fn blob_at_reads_the_header_in_place() {
    let mut ram = VIRT.to_vec();
    ram.extend_from_slice(&[0; 4096]);
    let addr = ram.as_ptr().expose_provenance();
    // SAFETY: `ram` is readable for its whole length and is not written while `blob` lives.
    let blob = unsafe { blob_at(addr, ram.len()) }.unwrap();
    assert_eq!(blob, VIRT);
    assert!(parse(blob).is_ok());

    let n = VIRT.len();
    // SAFETY: as above; fewer bytes than `ram` holds.
    let e = unsafe { blob_at(addr, n - 1) }.unwrap_err();
    assert_eq!(e, DtError::TooLarge { totalsize: n as u32, max_len: n - 1 });
    assert_eq!(
        e.to_string(),
        format!("device tree totalsize {n} is over the {}-byte limit", n - 1)
    );
    // SAFETY: as above.
    assert_eq!(unsafe { blob_at(addr, 4) }, Err(DtError::TooShort { len: 4 }));
    // SAFETY: as above; nothing is read for a zero length.
    assert_eq!(unsafe { blob_at(addr, 0) }, Err(DtError::TooShort { len: 0 }));

    let zeros = [0u8; 64];
    // SAFETY: `zeros` is readable for 64 bytes.
    let e = unsafe { blob_at(zeros.as_ptr().expose_provenance(), zeros.len()) }.unwrap_err();
    assert_eq!(e, DtError::BadMagic(0));
}

#[test]
fn blob_at_rejects_null_and_wrapping_ranges_without_reading() {
    // SAFETY: both are rejected before any read (see blob_at's contract).
    let e = unsafe { blob_at(0, 1 << 20) }.unwrap_err();
    assert_eq!(e, DtError::BadAddress(0));
    assert_eq!(e.to_string(), "no device tree: address 0x0 is null or its range wraps");
    // SAFETY: as above.
    assert_eq!(unsafe { blob_at(usize::MAX - 15, 64) }, Err(DtError::BadAddress(usize::MAX - 15)));
}

#[test]
fn truncation_never_panics() {
    for dtb in std::iter::once(VIRT).chain(SMALL.iter().copied()) {
        for len in (0..dtb.len()).step_by(7) {
            let cut = &dtb[..len];
            let e = parse_no_panic(cut, &|| format!("a cut at {len}")).unwrap_err();
            if len >= 8 {
                assert!(matches!(e, DtError::Truncated { .. }), "cut at {len}: {e:?}");
            }
            // The same cut with a header that agrees, so that dtoolkit walks the cut blocks.
            if len >= 8 {
                let v = with_totalsize(cut, len as u32);
                let _ = parse_no_panic(&v, &|| format!("a cut at {len} with totalsize {len}"));
            }
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    for dtb in std::iter::once(VIRT).chain(SMALL.iter().copied()) {
        let mut v = dtb.to_vec();
        for i in 0..v.len() {
            for mask in [0xff, 0x01, 0x80] {
                v[i] ^= mask;
                let _ = parse_no_panic(&v, &|| format!("byte {i} ^ {mask:#x}"));
                v[i] ^= mask;
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    // xorshift64*: deterministic, so a failure reproduces.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for round in 0..20_000 {
        let base = SMALL[round % SMALL.len()];
        let mut v = base.to_vec();
        let edits = 1 + next() % 8;
        for _ in 0..edits {
            let i = (next() % v.len() as u64) as usize;
            match next() % 3 {
                // A big-endian word of a likely-interesting value, where one fits.
                0 if i + 4 <= v.len() => {
                    let words = [0, 1, 2, 3, 4, 9, 0xffff_ffff, 0x8000_0000, v.len() as u32];
                    let w = words[(next() % words.len() as u64) as usize];
                    v[i..i + 4].copy_from_slice(&w.to_be_bytes());
                }
                _ => v[i] = next() as u8,
            }
        }
        let _ = parse_no_panic(&v, &|| format!("random round {round}"));
    }
}
