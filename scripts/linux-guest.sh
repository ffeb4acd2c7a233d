#!/usr/bin/env bash
# Prepares target/linux/ to boot Debian's arm64 cloud kernel (Linux 6.1) on QEMU `virt` with a
# busybox init that measures CPU hotplug with the kernel's own tracer (the `cpuhp` events):
#
#   target/linux/Image              the kernel (raw arm64 Image, for QEMU's -kernel)
#   target/linux/initramfs.cpio.gz  busybox (static, aarch64) + /init (newc, gzip)
#   target/linux/init               the /init inside it (for reading)
#   target/linux/VERSIONS           the Debian packages used, name and version
#
# Idempotent and cheap: does nothing when every output is newer than this script; otherwise it
# downloads only what is missing and rebuilds the initramfs only when the init changed.
# Needs: apt-get/apt-cache/dpkg-deb (and root, once, for `dpkg --add-architecture arm64` and
# `apt-get update`, or to install `cpio` if it is missing).
#
# The init reads `armstop.cycles=N` (default 20) from the kernel command line, then for each CPU
# 1..n-1 and each cycle writes trace markers around `echo 0/1 > /sys/devices/system/cpu/cpuN/online`:
#   armstop down cpuN k   (before offlining)
#   armstop up cpuN k     (offline done, before onlining)
#   armstop done cpuN k   (online done)
# and prints the trace of each CPU's batch between `armstop-linux: trace begin` and
# `armstop-linux: trace end`. Problems are `armstop-linux: error ...` lines. It ends with
# `armstop-linux: done` and `poweroff -f` (PSCI SYSTEM_OFF: QEMU exits 0).
set -euo pipefail

say() { echo "linux-guest: $*"; }
die() { echo "linux-guest: error: $*" >&2; exit 1; }

script="$(readlink -f "${BASH_SOURCE[0]}")"
repo="$(cd "$(dirname "$script")/.." && pwd)"
out="$repo/target/linux"
image="$out/Image"
initramfs="$out/initramfs.cpio.gz"
versions="$out/VERSIONS"
init_file="$out/init"

fresh() { # every output exists and is newer than this script
    local f
    for f in "$image" "$initramfs" "$versions" "$init_file"; do
        [[ -s "$f" && "$f" -nt "$script" ]] || return 1
    done
}
if fresh; then
    say "up to date: $out"
    exit 0
fi

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $*"
    fi
}

mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# apt-get download, run as root, downloads as user _apt: let it write there.
chmod 711 "$tmp" && mkdir -m 1777 "$tmp/dl"

# The /init. Keep it POSIX/busybox sh.
cat >"$tmp/init" <<'INIT'
#!/bin/busybox sh
# armstop-linux: measures CPU hotplug with the cpuhp trace events (see scripts/linux-guest.sh).
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

err() { echo "armstop-linux: error $*"; }
# put VALUE FILE: write VALUE to FILE, reporting a failure.
put() { echo "$1" > "$2" || err "echo $1 > $2 failed"; }
finish() {
    echo "armstop-linux: done"
    sync
    poweroff -f
    err "poweroff -f failed"
    while :; do sleep 1; done
}

mount -t proc proc /proc || err "mount proc failed"
mount -t sysfs sysfs /sys || err "mount sysfs failed"
[ -c /dev/console ] || mount -t devtmpfs devtmpfs /dev || err "mount devtmpfs failed"
T=/sys/kernel/tracing
if [ ! -e $T/trace ]; then
    mount -t tracefs tracefs $T || { err "mount tracefs failed"; finish; }
fi

cycles=20
for w in $(cat /proc/cmdline); do
    case "$w" in armstop.cycles=*) cycles="${w#armstop.cycles=}" ;; esac
done
case "$cycles" in
    ''|*[!0-9]*) err "bad armstop.cycles=$cycles"; finish ;;
esac

ncpu=$(nproc)
echo "armstop-linux: kernel $(uname -r)"
echo "armstop-linux: cpus $ncpu"
echo "armstop-linux: cycles $cycles"
echo "armstop-linux: clock $(cat $T/trace_clock)"
[ -d $T/events/cpuhp ] || { err "no cpuhp trace events"; finish; }

put 0 $T/tracing_on
put 8192 $T/buffer_size_kb
put 1 $T/events/cpuhp/enable
put '' $T/trace

# One batch per CPU: trace, then print and clear, so the buffer holds one CPU's cycles only.
c=1
while [ $c -lt $ncpu ]; do
    f=/sys/devices/system/cpu/cpu$c/online
    if [ ! -e $f ]; then
        err "cpu$c has no $f"
        c=$((c + 1))
        continue
    fi
    put 1 $T/tracing_on
    k=0
    while [ $k -lt "$cycles" ]; do
        put "armstop down cpu$c $k" $T/trace_marker
        put 0 $f
        put "armstop up cpu$c $k" $T/trace_marker
        put 1 $f
        put "armstop done cpu$c $k" $T/trace_marker
        k=$((k + 1))
    done
    put 0 $T/tracing_on
    for s in $T/per_cpu/cpu*/stats; do
        o=$(sed -n 's/^overrun: //p' $s)
        [ "${o:-0}" = 0 ] || err "trace buffer overrun: $o events lost ($s)"
    done
    echo "armstop-linux: trace begin cpu$c"
    grep -v '^#' $T/trace
    echo "armstop-linux: trace end cpu$c"
    put '' $T/trace
    c=$((c + 1))
done
put 0 $T/events/cpuhp/enable
finish
INIT

# --- kernel -------------------------------------------------------------------------------
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "dpkg --add-architecture arm64"
    as_root dpkg --add-architecture arm64
    say "apt-get update"
    as_root apt-get update -qq
elif ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    say "apt-get update (no arm64 package lists)"
    as_root apt-get update -qq
fi

candidate() { apt-cache policy "$1" | sed -n 's/^ *Candidate: //p'; }
# linux-image-cloud-arm64 is a metapackage: its candidate depends on the concrete image.
kpkg="$(apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-cloud-arm64\).*/\1/p')"
kpkg="${kpkg%%$'\n'*}"
[[ -n "$kpkg" ]] || die "cannot resolve linux-image-cloud-arm64:arm64 to a linux-image-6.1.0-*-cloud-arm64 package"
kver="$(candidate "$kpkg:arm64")"
bver="$(candidate busybox-static:arm64)"
[[ -n "$kver" && "$kver" != "(none)" ]] || die "no candidate for $kpkg:arm64"
[[ -n "$bver" && "$bver" != "(none)" ]] || die "no candidate for busybox-static:arm64"
want_versions="$kpkg:arm64 $kver
busybox-static:arm64 $bver"

have_versions=""
[[ -f "$versions" ]] && have_versions="$(cat "$versions")"

if [[ -s "$image" && "$have_versions" == "$want_versions" ]]; then
    say "kernel up to date: $kpkg $kver"
else
    (cd "$tmp/dl" && say "apt-get download $kpkg:arm64 ($kver)" && apt-get download -qq "$kpkg:arm64")
    deb="$(ls "$tmp"/dl/linux-image-*_arm64.deb)"
    say "dpkg-deb -x $(basename "$deb")"
    dpkg-deb -x "$deb" "$tmp/kernel"
    vmlinuz="$(ls "$tmp"/kernel/boot/vmlinuz-*)"
    magic="$(od -An -tx1 -N2 "$vmlinuz" | tr -d ' ')"
    if [[ "$magic" == "1f8b" ]]; then
        say "$(basename "$vmlinuz") is gzip-compressed: gunzip to $image"
        gzip -dc "$vmlinuz" >"$tmp/Image"
    else
        cp "$vmlinuz" "$tmp/Image"
    fi
    # An arm64 Image has "ARM\x64" at offset 56.
    [[ "$(od -An -c -j56 -N3 "$tmp/Image" | tr -d ' ')" == "ARM" ]] ||
        die "$(basename "$vmlinuz") is not an arm64 Image: $(file -b "$tmp/Image" 2>/dev/null || true)"
    mv "$tmp/Image" "$image"
    say "kernel: $image ($(stat -c %s "$image") bytes)"
fi

# --- initramfs ----------------------------------------------------------------------------
if [[ -s "$initramfs" && -f "$init_file" && "$have_versions" == "$want_versions" ]] &&
    cmp -s "$tmp/init" "$init_file"; then
    say "initramfs up to date: $initramfs"
else
    if ! command -v cpio >/dev/null; then
        say "apt-get install cpio"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cpio >/dev/null
    fi
    (cd "$tmp/dl" && say "apt-get download busybox-static:arm64 ($bver)" &&
        apt-get download -qq busybox-static:arm64)
    dpkg-deb -x "$(ls "$tmp"/dl/busybox-static_*_arm64.deb)" "$tmp/bb"
    root="$tmp/root"
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/proc" "$root/sys" \
        "$root/dev" "$root/tmp" "$root/etc"
    cp "$tmp/bb/bin/busybox" "$root/bin/busybox"
    # The init installs every applet's symlink itself (`busybox --install -s`): listing them
    # here would mean running an aarch64 binary on the host. These are enough to start it.
    ln -s busybox "$root/bin/sh"
    install -m 0755 "$tmp/init" "$root/init"
    say "cpio (newc) + gzip -> $initramfs"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
        gzip -9n >"$tmp/initramfs.cpio.gz"
    mv "$tmp/initramfs.cpio.gz" "$initramfs"
    cp "$tmp/init" "$init_file"
fi

printf '%s\n' "$want_versions" >"$versions"
touch "$image" "$initramfs" "$init_file" "$versions"
say "ready: $out ($kpkg $kver, busybox-static $bver)"
