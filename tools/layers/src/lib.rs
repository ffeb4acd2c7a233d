//! The firmware crate's layers, and the check that its imports point one way.
//!
//! `firmware/armstop` is laid out as the tree shows: `arch/` (layer 0, with `board.rs`),
//! `drivers/` (1), `sys/` (2), `app/` (3). [`MODULES`] ranks every module: its layer, then its
//! place in the layer. A module may name (`crate::x`, `crate::{x, y}`, `$crate::x` in a macro)
//! only modules of a lower rank: those of the layers below, and those before it in its own
//! layer. So there is no circle, and nothing from a higher layer is used by a lower one.
//! `lib.rs` (the re-exports) and `main.rs` (an image) are not modules of a layer.
//!
//! This reads the source text, not the compiler's view: it sees every path written with
//! `crate::`, which is how the firmware names its modules (a `use super::` stays inside a
//! module). A module not in [`MODULES`] is an error too, so a new one must be given a place.
#![deny(unsafe_op_in_unsafe_fn)]

use std::fmt;
use std::path::{Path, PathBuf};

/// Every module: its name (as `crate::<name>` or the crate root re-export names it), its
/// layer, and the directory its file lives in. Within a layer, a module may use only those
/// listed before it.
pub const MODULES: &[(&str, u8, &str)] = &[
    ("board", 0, ""),
    ("cpu", 0, "arch"),
    ("mm", 0, "arch"),
    ("boot", 0, "arch"),
    ("exception", 0, "arch"),
    ("time", 1, "drivers"),
    ("gpio", 1, "drivers"),
    ("pm", 1, "drivers"),
    ("psci", 1, "drivers"),
    ("console", 1, "drivers"),
    ("power", 1, "drivers"),
    ("gic", 1, "drivers"),
    ("led", 1, "drivers"),
    ("own_psci", 1, "drivers"),
    ("fault", 2, "sys"),
    ("ipi", 2, "sys"),
    ("stop", 2, "sys"),
    ("hotplug", 2, "sys"),
    ("call", 2, "sys"),
    ("smp", 2, "sys"),
    ("testing", 3, "app"),
    ("demo", 3, "app"),
    ("bench", 3, "app"),
    ("load", 3, "app"),
    ("shell", 3, "app"),
];

/// The layers' directories, by layer, and their names.
pub const LAYERS: &[(&str, &str)] = &[
    ("arch", "CPU architecture"),
    ("drivers", "drivers"),
    ("sys", "system services"),
    ("app", "applications"),
];

fn rank(module: &str) -> Option<usize> {
    MODULES.iter().position(|m| m.0 == module)
}

/// One import against the layering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The file, relative to the crate's `src/`.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

fn describe(module: &str) -> String {
    match MODULES.iter().find(|m| m.0 == module) {
        Some(&(_, layer, _)) => format!("{module} (layer {layer}, {})", LAYERS[layer as usize].1),
        None => module.to_string(),
    }
}

/// The module a file belongs to: `arch/mm.rs` → `mm`, `drivers/gic/v3.rs` → `gic`, `board.rs`
/// → `board`; `None` for the crate root, an image, and the layers' own `mod.rs`.
pub fn module_of(file: &Path) -> Option<String> {
    let parts: Vec<String> = file
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        [one] => Some(one.clone()),
        [layer, m] if m == "mod" && LAYERS.iter().any(|l| l.0 == layer) => None,
        [_, m, ..] => Some(m.clone()),
        [] => None,
    }
}

/// The modules a line names through `crate::` (or `$crate::`), with layer directories looked
/// through (`crate::drivers::gic` names `gic`) and `{a, b}` groups expanded.
pub fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let mut path = rest;
        // Through a layer directory.
        for (dir, _) in LAYERS {
            if let Some(p) = path.strip_prefix(dir).and_then(|p| p.strip_prefix("::")) {
                path = p;
            }
        }
        if let Some(group) = path.strip_prefix('{') {
            let body = group.split('}').next().unwrap_or("");
            for item in body.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() && first != "self" {
                    out.push(first.to_string());
                }
            }
        } else {
            let name: String =
                path.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// The layer directories and the crate's root items that a path may name without being a
/// module of a layer: `crate::arch` alone and the like, and the root's macros.
const NOT_MODULES: &[&str] = &["arch", "drivers", "sys", "app", "println", "print", "entry"];

/// Checks one file's text (its path relative to `src/`).
pub fn check_file(file: &Path, text: &str) -> Vec<Violation> {
    let Some(me) = module_of(file) else { return Vec::new() };
    let mut v = Vec::new();
    let Some(my_rank) = rank(&me) else {
        v.push(Violation {
            file: file.into(),
            line: 1,
            what: format!("module {me} has no place in the layers (add it to MODULES)"),
        });
        return v;
    };
    let my_dir = MODULES[my_rank].2;
    let in_dir = file.components().count() > 1;
    let dir = file.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    if (my_dir.is_empty() && in_dir) || (!my_dir.is_empty() && dir.as_deref() != Some(my_dir)) {
        v.push(Violation {
            file: file.into(),
            line: 1,
            what: format!(
                "module {me} belongs in {}/",
                if my_dir.is_empty() { "src" } else { my_dir }
            ),
        });
    }
    for (n, line) in text.lines().enumerate() {
        for other in named_modules(line) {
            if other == me || NOT_MODULES.contains(&other.as_str()) {
                continue;
            }
            let what = match rank(&other) {
                None => format!("{me} names crate::{other}, which is no module of a layer"),
                Some(r) if r > my_rank => format!(
                    "{} uses {}: {}",
                    describe(&me),
                    describe(&other),
                    if MODULES[r].1 > MODULES[my_rank].1 {
                        "a lower layer may not use a higher one"
                    } else {
                        "within a layer, a module may use only those before it"
                    }
                ),
                Some(_) => continue,
            };
            v.push(Violation { file: file.into(), line: n + 1, what });
        }
    }
    v
}

/// Checks every `.rs` file under `src`.
pub fn check_tree(src: &Path) -> Result<Vec<Violation>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in rd {
            let p = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(src, &mut files)?;
    files.sort();
    let mut v = Vec::new();
    let mut seen = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src).expect("under src");
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        seen.extend(module_of(rel));
        v.extend(check_file(rel, &text));
    }
    for (m, _, dir) in MODULES {
        if !seen.iter().any(|s| s == m) {
            v.push(Violation {
                file: PathBuf::from(dir),
                line: 0,
                what: format!("MODULES lists {m}, which has no file"),
            });
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_map_to_their_modules() {
        assert_eq!(module_of(Path::new("drivers/gic/v3.rs")).as_deref(), Some("gic"));
        assert_eq!(module_of(Path::new("arch/mm.rs")).as_deref(), Some("mm"));
        assert_eq!(module_of(Path::new("board.rs")).as_deref(), Some("board"));
        assert_eq!(module_of(Path::new("sys/mod.rs")), None);
        assert_eq!(module_of(Path::new("lib.rs")), None);
    }

    #[test]
    fn paths_name_modules_through_layers_and_groups() {
        assert_eq!(named_modules("use crate::drivers::gic::{self, SgiTarget};"), ["gic"]);
        assert_eq!(named_modules("use crate::{console, time::Instant};"), ["console", "time"]);
        assert_eq!(
            named_modules("    crate::stop::STOPPERS.x(); crate::cpu::id()"),
            ["stop", "cpu"]
        );
        assert_eq!(named_modules("$crate::console::print(x)"), ["console"]);
        assert!(named_modules("// crate::smp in a comment").is_empty());
    }

    #[test]
    fn upward_and_sideways_imports_are_reported() {
        let up = check_file(Path::new("drivers/gic/mod.rs"), "use crate::stop::STOPPERS;\n");
        assert_eq!(up.len(), 1, "{up:?}");
        assert!(up[0].what.contains("a lower layer may not use a higher one"), "{up:?}");
        assert_eq!(up[0].line, 1);
        // hotplug after stop: stop may not use it.
        let side = check_file(Path::new("sys/stop.rs"), "\n\n fn f() { crate::hotplug::x() }");
        assert_eq!(side.len(), 1);
        assert!(side[0].what.contains("only those before it") && side[0].line == 3);
        assert!(check_file(Path::new("sys/hotplug.rs"), "use crate::stop::X;").is_empty());
        let stray = check_file(Path::new("drivers/newthing.rs"), "");
        assert!(stray[0].what.contains("no place in the layers"));
        let moved = check_file(Path::new("sys/gic.rs"), "");
        assert!(moved[0].what.contains("belongs in drivers/"), "{moved:?}");
    }

    /// The firmware crate as it is.
    #[test]
    fn the_firmware_imports_one_way() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/armstop/src");
        let v = check_tree(&src).unwrap();
        let text: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert!(v.is_empty(), "layering violations:\n{}", text.join("\n"));
    }
}
