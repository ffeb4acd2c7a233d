#!/usr/bin/env bash
# `just new-app DIR`: a firmware of your own on armstop, from templates/app, in DIR (which must
# not exist yet, or be empty), pointed at this checkout: its Cargo.toml depends on this
# checkout's armstop crate and its justfile uses this checkout's runner and scripts.
set -euo pipefail
die() { printf 'new-app: %s\n' "$*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: just new-app DIR"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=$1
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  die "$dir exists and is not empty: give a new directory"
fi
case "$(cd "$(dirname "$dir")" 2>/dev/null && pwd)/" in
  "$root"/*) die "$dir is inside this checkout: a firmware of your own lives outside it" ;;
esac
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cp -R "$root/templates/app/." "$dir/"
# The two places the template names armstop by a path relative to templates/app.
sed -i "s|path = \"../../firmware/armstop\"|path = \"$root/firmware/armstop\"|" "$dir/Cargo.toml"
sed -i "s|^armstop := \"../..\"|armstop := \"$root\"|" "$dir/justfile"
grep -q "path = \"$root/firmware/armstop\"" "$dir/Cargo.toml" || die "could not point $dir/Cargo.toml at $root"
grep -q "^armstop := \"$root\"" "$dir/justfile" || die "could not point $dir/justfile at $root"
printf 'new-app: %s: a firmware of your own on armstop (%s); there, `just run` and `just test`\n' "$dir" "$root"
