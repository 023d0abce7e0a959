#!/usr/bin/env bash
# Owns the cross-linking toolchain of scripts/release.sh: zig (from PyPI's `ziglang` wheel, which
# ships the zig compiler and glibc stubs of every version) and cargo-zigbuild (crates.io), cached
# under ~/.cache/gdcloud-kit/{zig,cargo-zigbuild}/VERSION/. With them, `cargo zigbuild --target
# x86_64-unknown-linux-gnu.2.28` links against glibc 2.28's symbol versions whatever glibc the build
# host has, and compiles the C code (vendored libdbus, ring) with `zig cc` for that glibc too.
#
# Idempotent: a cached install is reused (warm: well under a second). Cold: pip install (~10 s) and
# cargo install cargo-zigbuild (~2 min on 2 cores). Logs go to stderr; stdout's last two lines are
# `ZIG=PATH` and `CARGO_ZIGBUILD=PATH`. Fails loudly, with the reason.
# Environment: GDCLOUD_TEST_CACHE overrides ~/.cache/gdcloud-kit (as scripts/testenv/*.sh).
set -Eeuo pipefail

ZIG_VERSION=0.14.1            # the ziglang wheel; cargo-zigbuild below supports it
ZIGBUILD_VERSION=0.24.1
CACHE_ROOT="${GDCLOUD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gdcloud-kit}"
ZIG_ROOT="$CACHE_ROOT/zig/$ZIG_VERSION"
ZIGBUILD_ROOT="$CACHE_ROOT/cargo-zigbuild/$ZIGBUILD_VERSION"
ZIG="$ZIG_ROOT/bin/zig"
ZIGBUILD="$ZIGBUILD_ROOT/bin/cargo-zigbuild"

log() { printf '[zig-toolchain.sh] %s\n' "$*" >&2; }
die() { printf '[zig-toolchain.sh] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$ZIG_ROOT" "$ZIGBUILD_ROOT"
if ! [ -x "$ZIG" ] || ! "$ZIG" version >/dev/null 2>&1; then
  exec 8>"$ZIG_ROOT/.lock"; flock 8
  if ! [ -x "$ZIG" ] || ! "$ZIG" version >/dev/null 2>&1; then
    command -v python3 >/dev/null || die "python3 not in PATH: zig is installed from PyPI's ziglang wheel"
    log "pip install ziglang==$ZIG_VERSION into $ZIG_ROOT"
    rm -rf "$ZIG_ROOT/site"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$ZIG_ROOT/site" "ziglang==$ZIG_VERSION" >&2 || die "pip install ziglang==$ZIG_VERSION failed"
    mkdir -p "$ZIG_ROOT/bin"
    ln -sfn ../site/ziglang/zig "$ZIG"
  fi
  "$ZIG" version >/dev/null 2>&1 || die "$ZIG does not run"
fi
log "zig $("$ZIG" version): $ZIG"

if ! [ -x "$ZIGBUILD" ] || ! "$ZIGBUILD" --version >/dev/null 2>&1; then
  exec 9>"$ZIGBUILD_ROOT/.lock"; flock 9
  if ! [ -x "$ZIGBUILD" ] || ! "$ZIGBUILD" --version >/dev/null 2>&1; then
    command -v cargo >/dev/null || die "cargo not in PATH: cargo-zigbuild is installed with cargo install"
    log "cargo install cargo-zigbuild --version $ZIGBUILD_VERSION --locked (~2 min cold)"
    target="$ZIGBUILD_ROOT/target.$$"
    trap 'rm -rf "$target"' EXIT
    (cd "$ZIGBUILD_ROOT" && cargo install cargo-zigbuild --version "$ZIGBUILD_VERSION" --locked \
      --root "$ZIGBUILD_ROOT" --target-dir "$target" >&2) || die "cargo install cargo-zigbuild $ZIGBUILD_VERSION failed (see above)"
  fi
  "$ZIGBUILD" --version >/dev/null 2>&1 || die "$ZIGBUILD does not run"
fi
log "$("$ZIGBUILD" --version): $ZIGBUILD"
echo "ZIG=$ZIG"
echo "CARGO_ZIGBUILD=$ZIGBUILD"
