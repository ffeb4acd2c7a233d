# armstop recipes. `./bootstrap.sh <recipe>` installs what is missing, then runs the recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Firmware toolchain: a cargo/rustc pair with the library sources -Zbuild-std needs.
# Debian's rustc-web/cargo-web/rust-web-src (1.96) by default; elsewhere point these at a
# nightly with rust-src, e.g. ARMSTOP_CARGO=$(rustup which --toolchain nightly cargo).
fw_cargo := env("ARMSTOP_CARGO", if path_exists("/usr/bin/cargo") == "true" { "/usr/bin/cargo" } else { "cargo" })
fw_rustc := env("ARMSTOP_RUSTC", if path_exists("/usr/bin/rustc") == "true" { "/usr/bin/rustc" } else { "rustc" })
fw_rustdoc := env("ARMSTOP_RUSTDOC", if path_exists("/usr/bin/rustdoc") == "true" { "/usr/bin/rustdoc" } else { "rustdoc" })
portable_crates := "-p armstop-cpuset -p armstop-sync -p armstop-boards -p armstop-stopper -p armstop-hotplug -p armstop-shell -p armstop-psci-provider -p armstop-led -p armstop-idmap -p armstop-devicetree -p armstop-bcm2711"
fw_dir := justfile_directory() / "target" / "firmware"
# Every board gets its own set of images (the board is chosen at build time, ARMSTOP_BOARD):
# target/images/<board>/<image> (ELF) and <image>.bin (raw, for loaders and SD cards).
boards := "qemu-virt raspi4-tfa raspi4-own-psci"
images_root := justfile_directory() / "target" / "images"
runner := justfile_directory() / "target" / "debug" / "armstop-runner"
junit := justfile_directory() / "target" / "junit.xml"

# Every core through PSCI CPU_ON, the SGI matrix, the stopper, hotplug; on QEMU virt (GICv2 and
# GICv3, 4 CPUs) unless machines of `just machines` are named (`virt-gicv3-smp64`: 64 CPUs).
# Then the operator's console: yours when stdin is a terminal (`help`; `poweroff` ends the
# machine); `just run --script FILE` types a script into it (format: tests/console/); with
# neither, it is told `poweroff`.
# Boot the firmware and show the stopper at work (`just run raspi4b-tfa raspi4b-own-psci`).
run *args="virt-gicv2 virt-gicv3": build
    {{runner}} run --images {{images_root}} {{args}}

# Host unit tests, the SD-card check, the loom models, a smoke run of the bench (every request
# kind a few times, Linux once; no timing is checked), then the on-target images by the tiers of
# `just machines`: every image on the 4-CPU virt machines and the Pis; a 15 s soak (`just soak`)
# on virt-gicv3; the suite and hotplug images on virt with 1, 2 and 8 CPUs; the main report on 16 and 64 CPUs; the
# template (`just new-app`) copied outside the checkout, built and its tests run there with its own `just test`; and boots that must
# stop with a clear error (more CPUs than the image has room for, a device tree that disagrees
# with the board, a malformed one).
# Every test (virt and raspi4b machines).
test: build build-bench
    cargo test --quiet
    just doc package
    cargo run --quiet -p armstop-sdcard -- --root {{justfile_directory()}}
    just loom
    cargo run --quiet -p armstop-bench -- --smoke --images {{images_root}} --repo {{justfile_directory()}} --out {{justfile_directory()}}/target/bench-smoke
    {{runner}} test --timeout 600 --junit {{junit}} --log-dir target/qemu-logs \
      --images {{images_root}} --suite suite --suite hotplug --reboot-suite reset \
      --selftest-fail selftest-fail --selftest-hang selftest-hang \
      --suite faults --fault-image fault-panic --fault-image fault-abort --fault-image fault-double \
      --script tests/console/commands.script --script tests/console/reset.script
    {{runner}} soak --images {{images_root}} --log-dir target/qemu-logs --machine virt-gicv3 --duration 15s
    {{runner}} test --timeout 900 --junit target/junit-sizes.xml --log-dir target/qemu-logs \
      --images {{images_root}} --suite suite --suite hotplug --script tests/console/commands.script --script tests/console/reset.script \
      --machines virt-gicv2-smp1,virt-gicv2-smp2,virt-gicv2-smp8,virt-gicv3-smp1,virt-gicv3-smp2,virt-gicv3-smp8
    just run virt-gicv3-smp16 virt-gicv3-smp64 --script tests/console/commands.script
    d=$(mktemp -d) && bash scripts/new-app.sh $d/my-firmware && ARMSTOP_APP_TARGET_DIR={{fw_dir}} just --justfile $d/my-firmware/justfile test && rm -rf $d
    {{runner}} boot-error --images {{images_root}} --machine virt-gicv3 --smp 100 --expect "rebuild with ARMSTOP_MAX_CPUS=100" armstop
    {{runner}} boot-error --images {{images_root}} --machine virt-gicv3 --dtb firmware/devicetree/tests/data/gic-elsewhere.dtb --expect "GIC distributor: board 0x8000000, device tree 0x8100000" armstop
    {{runner}} boot-error --images {{images_root}} --machine virt-gicv2 --dtb firmware/devicetree/tests/data/no-gic.dtb --expect "device tree has no GIC node" armstop
    {{runner}} boot-error --images {{images_root}} --machine raspi4b-own-psci --dtb firmware/devicetree/tests/data/base.dtb --expect "cpu count: board says 4, device tree says 2" armstop

# One test image, on the machines named (default: the full tier of `just machines`), with only
# the tests whose names contain FILTER: `just test-image mytest virt-gicv3 -- stop_machine`.
# Every binary in tests/target/src/bin/ is an image. After a failure the image is booted again
# from the next test, so each failure reported is on a clean machine.
# Run one test image (or some of its tests) on one machine or the matrix.
test-image image *args: build
    {{runner}} test-image --images {{images_root}} --log-dir target/qemu-logs {{image}} {{args}}

# rustdoc with warnings denied: the host crates, then the firmware crate on its target (with
# the firmware toolchain's rustdoc, which matches its rustc).
# Build the API docs of every crate, warnings denied (target/doc, target/firmware-doc).
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --workspace --exclude armstop --exclude armstop-target-tests
    ARMSTOP_BOARD=qemu-virt RUSTC={{fw_rustc}} RUSTDOC={{fw_rustdoc}} RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-D warnings" \
      {{fw_cargo}} doc --quiet --no-deps --target aarch64-unknown-none-softfloat -Zbuild-std=core \
      -Zbuild-std-features=compiler-builtins-mem --target-dir {{justfile_directory()}}/target/firmware-doc -p armstop

# `cargo package` of the portable crates, each built and tested from its package against the
# others' (nothing is published).
# Package the portable crates as for a crates.io release, and check each builds from its package.
package:
    cargo package --quiet --allow-dirty {{ portable_crates }}

# A copy of templates/app in DIR, outside this checkout, pointed at it: a firmware of your own
# with its main image, its tests and its two commands (`just run`, `just test` there).
# Start a firmware of your own on armstop (`just new-app ~/my-firmware`).
new-app dir:
    bash scripts/new-app.sh {{dir}}

# Then the same models with a pre-fix behaviour restored, which must fail (they are marked
# should_panic under that feature, so "ok" there means "the model caught it"): the stopper's
# park before Linux's fix, and a CPU marked online before its stopper is enabled; last, the
# sleeping waits' models against a lost wake-up, each of which must deadlock.
# The loom models of the stopper, of hotplug and of the own PSCI provider (the stopper's and
# hotplug's with waits that sleep at once, then with spin-only waits).
loom:
    RUSTFLAGS="--cfg loom" cargo test --quiet --release --target-dir target/loom -p armstop-stopper -p armstop-hotplug -p armstop-psci-provider --test loom
    ARMSTOP_SPIN_NS=spin RUSTFLAGS="--cfg loom" cargo test --quiet --release --target-dir target/loom -p armstop-stopper -p armstop-hotplug --test loom
    RUSTFLAGS="--cfg loom" cargo test --quiet --release --target-dir target/loom -p armstop-stopper -p armstop-hotplug --test loom --features armstop-stopper/pre-fix-park,armstop-hotplug/pre-fix-park
    RUSTFLAGS="--cfg loom" cargo test --quiet --release --target-dir target/loom -p armstop-hotplug --test loom --features pre-fix-online
    bash scripts/loom-mutation.sh

# Two passes, one mutant at a time and niced: every mutant against the host tests, then the
# survivors in the code the loom models cover against those models; then the verdict: each
# survivor must be in .cargo/mutants-allow.txt with its reason, and none may survive in the
# stopper's and hotplug's core code unless it is equivalent (README, "Mutation testing").
# About an hour on a 2-CPU host; not part of `just test`. `./bootstrap.sh mutants` installs
# cargo-mutants first. Options: --host-only, --check-only (see scripts/mutants.sh).
# Mutation testing of the portable crates (stopper, hotplug, PSCI provider, sync, the parser).
mutants *options:
    bash scripts/mutants.sh {{options}}

# Build the firmware images and the host runner.
build: build-firmware
    cargo build --quiet -p armstop-runner

# Every binary of the main image's and the test images' packages is an image (a new file in
# tests/target/src/bin/ needs no list): target/images/<board>/<name>, ELF and .bin. Each board
# builds in a target directory of its own, so no build of one board can overwrite another's.
# Build the firmware images (main image and test images) for every board.
build-firmware:
    for b in {{boards}}; do \
      ARMSTOP_CARGO={{fw_cargo}} ARMSTOP_RUSTC={{fw_rustc}} ARMSTOP_TARGET_DIR={{fw_dir}} \
        bash scripts/build-images.sh $b {{images_root}}/$b; \
    done

# The release images (`armstop`, for its size, and `bench`, among the rest) of the boards named,
# into target/images/<board>/release/.
# Build the release benchmark images (default: the qemu-virt board).
build-bench *bench_boards="qemu-virt":
    for b in {{bench_boards}}; do \
      ARMSTOP_CARGO={{fw_cargo}} ARMSTOP_RUSTC={{fw_rustc}} ARMSTOP_TARGET_DIR={{fw_dir}} \
        bash scripts/build-images.sh $b {{images_root}}/$b/release --release; \
    done

# armstop's release bench image and Linux 6.1 on the same QEMU machines (default virt-gicv2
# and virt-gicv3; options go to armstop-bench: `just bench --repeat 5`, `just bench --machines
# raspi4b-tfa`); table on the console, JSON and SVG plot in target/bench/. See README,
# "Performance".
# Benchmark armstop against its floors and Linux on the same QEMU.
bench *args: (build-bench "qemu-virt raspi4-tfa raspi4-own-psci")
    cargo build --quiet -p armstop-bench
    {{justfile_directory()}}/target/debug/armstop-bench --images {{images_root}} --repo {{justfile_directory()}} --out {{justfile_directory()}}/target/bench {{args}}

# target/sdcard/<variant>/ (the card's files) and target/sdcard/armstop-<variant>.img (MBR +
# FAT32), each read back and checked first; see README.md, "Raspberry Pi 4".
# Raspberry Pi 4 SD cards, every variant or those named (`just sdcard raspi4-tfa`).
sdcard *variants: build-firmware
    cargo run --quiet -p armstop-sdcard -- --root {{justfile_directory()}} {{variants}}

# The hotplug storm plus every request kind from every CPU (`armstop::load::soak`) for
# `duration` (30s, 10m, 1h; default 10 minutes) on `machine` (default virt-gicv3, 4 CPUs; any of
# `just machines`): a progress line every 10 s, then rcutorture-style totals. Fails if a request
# was lost, a function ran wrong, or a stopper parked with works. Not part of `just test`, which
# soaks 15 s.
# Soak the stopper under hotplug (`just soak 30s`, `just soak 1m raspi4b-tfa`).
soak duration="10m" machine="virt-gicv3": build
    {{runner}} soak --images {{images_root}} --log-dir target/qemu-logs --machine {{machine}} --duration {{duration}}

# Boot an image halted, waiting for GDB on :1234 (e.g. `just gdb virt-gicv3 suite`).
gdb machine="virt-gicv3" image="armstop": build
    {{runner}} boot --images {{images_root}} --machine {{machine}} --gdb {{image}}

# Formatting and lints: rustfmt everywhere, the firmware's layering, clippy on the host crates,
# warnings denied on the firmware.
check:
    cargo fmt --all --check
    cargo run --quiet -p armstop-layers
    cargo clippy --all-targets --quiet -- -D warnings
    RUSTFLAGS="-D warnings -C link-arg=-Tarmstop.ld -C force-frame-pointers=yes" just build-firmware

# List the QEMU machines the runner knows, with their command lines.
machines: build
    {{runner}} machines --images {{images_root}}

# With `mutants` among the recipes named (`just setup mutants`), cargo-mutants too.
# Install the toolchain, QEMU and just (idempotent; prints what it installs).
setup *recipes:
    bash scripts/setup.sh {{recipes}}
