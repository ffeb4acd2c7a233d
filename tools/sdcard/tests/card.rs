//! Cards built from small stand-in files in a temporary checkout, read back from the FAT image
//! with mtools, and the checker shown to reject damaged cards.
//!
//! Needs mtools and dosfstools; without them every test here fails, saying which is missing.

use std::fs;
use std::path::{Path, PathBuf};

use armstop_boards::{Board, raspi4};
use armstop_sdcard::card::{self, Plan, Sources};
use armstop_sdcard::check::{self, Problem};
use armstop_sdcard::config::{self, ConfigProblem};
use armstop_sdcard::fat::{self, Tools};
use armstop_sdcard::{Error, TempDir};

fn tools() -> Tools {
    match Tools::find() {
        Ok(t) => t,
        Err(e) => panic!("cannot test SD card images: {e}"),
    }
}

/// A stand-in armstop image: not an ELF, names its board like the real one does.
fn kernel(board: &Board) -> Vec<u8> {
    let mut k = vec![0xf3, 0x03, 0x00, 0xaa]; // mov x19, x0
    k.extend_from_slice(format!("armstop stand-in image on {}\0", board.name).as_bytes());
    k.resize(4096, 0x5a);
    k
}

/// A stand-in rpi4 BL31: `b 0x1000` at 0, the armstub magic at 0xf0, `msr RMR_EL3, x0` in its
/// CPU_OFF path; and the emulation-only copy with that instruction turned into a branch.
fn bl31() -> (Vec<u8>, Vec<u8>) {
    let mut b = vec![0u8; 0x9000];
    b[0..4].copy_from_slice(&0x1400_0400u32.to_le_bytes());
    b[0xf0..0xf4].copy_from_slice(&check::STUB_MAGIC.to_le_bytes());
    b[0x889c..0x88a0].copy_from_slice(&check::MSR_RMR_EL3_X0.to_le_bytes());
    let mut q = b.clone();
    q[0x889c..0x88a0].copy_from_slice(&0x17ff_dddau32.to_le_bytes());
    (b, q)
}

/// A checkout with `target/images/<variant>/armstop.bin` for both variants and
/// `target/pi-firmware/` as `scripts/setup.sh` leaves it, all stand-ins.
struct Checkout {
    dir: TempDir,
}

impl Checkout {
    fn new() -> Checkout {
        let dir = TempDir::new("checkout").unwrap();
        let root = dir.path();
        for b in card::VARIANTS {
            write(&root.join("target/images").join(b.name).join("armstop.bin"), &kernel(b));
        }
        let pi = root.join("target/pi-firmware");
        let (real, emulated) = bl31();
        write(&pi.join("bl31.bin"), &real);
        write(&pi.join("bl31-qemu.bin"), &emulated);
        write(&pi.join("boot/start4.elf"), &[b"\x7fELF".as_slice(), &[7u8; 20000]].concat());
        write(&pi.join("boot/fixup4.dat"), &[0x1a, b'\r', b'\n', 0, 0xff, 3, 4]);
        write(&pi.join("boot/LICENCE.raspi-firmware"), b"Copyright (c) Broadcom, stand-in\n");
        write(&pi.join("LICENCE.arm-trusted-firmware"), b"BSD-3-Clause, stand-in\n");
        write(
            &pi.join("VERSIONS"),
            b"Package: arm-trusted-firmware Version: 2.8.0+dfsg-1\n\
              Package: raspi-firmware Version: 1.20220830+ds-1\n",
        );
        Checkout { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn sources(&self, board: &Board) -> Sources {
        Sources::in_repo(self.root(), board, "armstop")
    }

    fn plan(&self, board: &Board) -> Plan {
        card::plan(board, &self.sources(board)).unwrap()
    }

    /// Builds `board`'s card under `target/sdcard`; the image's path.
    fn build(&self, board: &Board) -> PathBuf {
        let out = self.root().join("target/sdcard");
        card::build(&self.plan(board), &tools(), &out, board.name).unwrap().image
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// The checker's verdict on the image at `image`.
fn problems(image: &Path, plan: &Plan) -> Vec<Problem> {
    check::image(&tools(), image, plan).unwrap().1
}

#[test]
fn both_cards_hold_every_file_the_pi_needs_byte_identical_to_its_source() {
    let c = Checkout::new();
    let pi = c.root().join("target/pi-firmware");
    for board in card::VARIANTS {
        let image = c.build(board);
        assert!(image.ends_with(format!("target/sdcard/armstop-{}.img", board.name)));
        let read = fat::read(&tools(), &image).unwrap();
        let mut names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        let mut want =
            vec!["LICENCE.raspi-firmware", "config.txt", "fixup4.dat", "kernel8.img", "start4.elf"];
        if board.own_psci.is_none() {
            want.extend(["LICENCE.arm-trusted-firmware", "bl31.bin"]);
            want.sort();
        }
        assert_eq!(names, want, "{}", board.name);
        // Each file as mtools reads it from the image, against the source file itself.
        let got = |n: &str| &read.iter().find(|(m, _)| m == n).unwrap().1;
        let source = |p: PathBuf| fs::read(p).unwrap();
        let kernel_src = c.root().join("target/images").join(board.name).join("armstop.bin");
        assert_eq!(*got("kernel8.img"), source(kernel_src));
        assert_eq!(*got("start4.elf"), source(pi.join("boot/start4.elf")));
        assert_eq!(*got("fixup4.dat"), source(pi.join("boot/fixup4.dat")));
        assert_eq!(*got("LICENCE.raspi-firmware"), source(pi.join("boot/LICENCE.raspi-firmware")));
        if board.own_psci.is_none() {
            assert_eq!(*got("bl31.bin"), source(pi.join("bl31.bin")), "the unpatched BL31");
            assert_ne!(*got("bl31.bin"), source(pi.join("bl31-qemu.bin")));
        }
        let text = String::from_utf8(got("config.txt").clone()).unwrap();
        let versions = match board.own_psci {
            None => "  arm-trusted-firmware 2.8.0+dfsg-1\n  raspi-firmware 1.20220830+ds-1",
            Some(_) => "  raspi-firmware 1.20220830+ds-1",
        };
        assert_eq!(text, config::generate(board, Some(versions)).unwrap());
        assert_eq!(config::check(board, &text), vec![]);
        let (entries, _) = config::parse(&text);
        let value = |k: &str| entries.iter().find(|e| e.key == k).map(|e| e.value.clone());
        assert_eq!(config::parse_int(&value("kernel_address").unwrap()), Some(board.load_address));
        assert_eq!(value("armstub").is_some(), board.own_psci.is_none());
        // The image is MBR + FAT32, and the checker passes it and the directory.
        let layout = fat::layout(&image).unwrap();
        assert_eq!(layout.start, fat::PART_START);
        assert_eq!(problems(&image, &c.plan(board)), vec![]);
        let dir = c.root().join("target/sdcard").join(board.name);
        assert_eq!(card::read_dir(&dir).unwrap().len(), want.len());
        assert_eq!(check::files(&c.plan(board), &card::read_dir(&dir).unwrap()), vec![]);
        // Nothing half-made is left behind.
        let leftovers: Vec<_> = fs::read_dir(c.root().join("target/sdcard"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".new"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn a_card_without_start4_elf_is_rejected() {
    let c = Checkout::new();
    let image = c.build(&raspi4::TFA);
    fat::delete(&tools(), &image, "start4.elf").unwrap();
    let p = problems(&image, &c.plan(&raspi4::TFA));
    assert!(matches!(&p[..], [Problem::Missing { name, .. }] if name == "start4.elf"), "{p:?}");
    assert!(p[0].to_string().contains("green LED flashes 4 times"), "{}", p[0]);
}

#[test]
fn a_card_with_a_wrong_kernel_address_is_rejected() {
    let c = Checkout::new();
    let plan = c.plan(&raspi4::OWN_PSCI);
    let image = c.build(&raspi4::OWN_PSCI);
    let text = String::from_utf8(plan.file("config.txt").unwrap().bytes.clone()).unwrap();
    let bad = text.replace("kernel_address=0x80000", "kernel_address=0x200000");
    fat::put(&tools(), &image, "config.txt", bad.as_bytes()).unwrap();
    let p = problems(&image, &plan);
    assert!(p.contains(&Problem::Differs {
        name: "config.txt".into(),
        from: "generated from board data".into()
    }));
    let wrong_address = |p: &Problem| {
        matches!(p, Problem::Config(ConfigProblem::Wrong { key: "kernel_address", found, .. })
            if found == "0x200000")
    };
    assert!(p.iter().any(wrong_address), "{p:?}");
}

#[test]
fn armstub_must_be_there_exactly_when_the_board_has_no_psci_provider() {
    let c = Checkout::new();
    // The TF-A card without its armstub line, and without bl31.bin.
    let tfa = c.plan(&raspi4::TFA);
    let image = c.build(&raspi4::TFA);
    let text = String::from_utf8(tfa.file("config.txt").unwrap().bytes.clone()).unwrap();
    fat::put(&tools(), &image, "config.txt", text.replace("armstub=bl31.bin\n", "").as_bytes())
        .unwrap();
    fat::delete(&tools(), &image, "bl31.bin").unwrap();
    let p = problems(&image, &tfa);
    assert!(
        p.iter().any(|p| matches!(p, Problem::Missing { name, .. } if name == "bl31.bin")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::Config(ConfigProblem::Missing { key: "armstub", .. }))),
        "{p:?}"
    );
    // The own-PSCI card with TF-A added.
    let own = c.plan(&raspi4::OWN_PSCI);
    let image = c.build(&raspi4::OWN_PSCI);
    let text = String::from_utf8(own.file("config.txt").unwrap().bytes.clone()).unwrap();
    fat::put(&tools(), &image, "config.txt", format!("{text}armstub=bl31.bin\n").as_bytes())
        .unwrap();
    fat::put(&tools(), &image, "bl31.bin", &bl31().0).unwrap();
    let p = problems(&image, &own);
    assert!(p.contains(&Problem::Unexpected { name: "bl31.bin".into() }), "{p:?}");
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::Config(ConfigProblem::Forbidden { key: "armstub", .. }))),
        "{p:?}"
    );
}

#[test]
fn the_emulation_only_bl31_is_rejected() {
    let c = Checkout::new();
    let plan = c.plan(&raspi4::TFA);
    let image = c.build(&raspi4::TFA);
    fat::put(&tools(), &image, "bl31.bin", &bl31().1).unwrap();
    let p = problems(&image, &plan);
    let armstub: Vec<String> =
        p.iter().filter(|p| matches!(p, Problem::Armstub(_))).map(ToString::to_string).collect();
    assert!(armstub.iter().any(|m| m.contains("RMR_EL3")), "{p:?}");
    assert!(armstub.iter().any(|m| m.contains("bl31-qemu.bin")), "{p:?}");
    assert!(p.iter().any(|p| matches!(p, Problem::Differs { name, .. } if name == "bl31.bin")));
    // Even if the sources themselves were mixed up (bl31.bin replaced by the patched copy), the
    // content checks still refuse it.
    let pi = c.root().join("target/pi-firmware");
    fs::copy(pi.join("bl31-qemu.bin"), pi.join("bl31.bin")).unwrap();
    let err = card::build(&c.plan(&raspi4::TFA), &tools(), &c.root().join("target/sdcard"), "x")
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("RMR_EL3"), "{err}");
    assert!(!c.root().join("target/sdcard/x").exists(), "a rejected card is not left in place");
}

#[test]
fn a_kernel_for_the_other_variant_or_an_elf_is_rejected() {
    let c = Checkout::new();
    let plan = c.plan(&raspi4::TFA);
    let image = c.build(&raspi4::TFA);
    fat::put(&tools(), &image, "kernel8.img", &kernel(&raspi4::OWN_PSCI)).unwrap();
    let msgs: Vec<String> = problems(&image, &plan).iter().map(ToString::to_string).collect();
    assert!(msgs.iter().any(|m| m.contains("does not name board raspi4-tfa")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("names board raspi4-own-psci")), "{msgs:?}");
    let elf = [b"\x7fELF".as_slice(), &kernel(&raspi4::TFA)].concat();
    fat::put(&tools(), &image, "kernel8.img", &elf).unwrap();
    let msgs: Vec<String> = problems(&image, &plan).iter().map(ToString::to_string).collect();
    assert!(msgs.iter().any(|m| m.contains("is an ELF file")), "{msgs:?}");
}

#[test]
fn an_image_that_is_not_mbr_fat32_is_rejected() {
    let c = Checkout::new();
    let plan = c.plan(&raspi4::TFA);
    let image = c.build(&raspi4::TFA);
    let mut bytes = fs::read(&image).unwrap();
    bytes[446 + 4] = 0x0e; // FAT16 LBA
    fs::write(&image, &bytes).unwrap();
    let p = problems(&image, &plan);
    assert!(matches!(&p[..], [Problem::Layout(m)] if m.contains("not FAT32")), "{p:?}");
}

#[test]
fn stray_files_on_a_card_are_rejected() {
    let c = Checkout::new();
    let plan = c.plan(&raspi4::OWN_PSCI);
    let image = c.build(&raspi4::OWN_PSCI);
    fat::put(&tools(), &image, "bl31-qemu.bin", &bl31().1).unwrap();
    let p = problems(&image, &plan);
    assert_eq!(p, vec![Problem::Unexpected { name: "bl31-qemu.bin".into() }]);
}

#[test]
fn bad_inputs_get_errors_that_say_what_to_do() {
    let e = card::variant("raspi4").unwrap_err().to_string();
    assert!(
        e.contains("unknown variant \"raspi4\"")
            && e.contains("raspi4-tfa")
            && e.contains("raspi4-own-psci"),
        "{e}"
    );
    let c = Checkout::new();
    fs::remove_file(c.root().join("target/images/raspi4-tfa/armstop.bin")).unwrap();
    let e = card::plan(&raspi4::TFA, &c.sources(&raspi4::TFA)).unwrap_err();
    assert!(
        matches!(e, Error::MissingFirmwareImage { .. }) && e.to_string().contains("just build"),
        "{e}"
    );
    fs::remove_file(c.root().join("target/pi-firmware/boot/start4.elf")).unwrap();
    let e = card::plan(&raspi4::OWN_PSCI, &c.sources(&raspi4::OWN_PSCI)).unwrap_err();
    assert!(matches!(e, Error::MissingBootFile { .. }), "{e}");
    assert!(
        e.to_string().contains("start4.elf") && e.to_string().contains("./bootstrap.sh"),
        "{e}"
    );
    fs::remove_file(c.root().join("target/pi-firmware/bl31.bin")).unwrap();
    let e = Sources::in_repo(c.root(), &raspi4::TFA, "suite");
    let e = card::plan(&raspi4::TFA, &e).unwrap_err().to_string();
    assert!(e.contains("suite.bin") && e.contains("just build"), "{e}");
    let e = Tools::find_in(&[c.root().to_path_buf()]).unwrap_err().to_string();
    assert!(e.contains("mtools is not installed"), "{e}");
}
