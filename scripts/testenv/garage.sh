#!/usr/bin/env bash
# Owns the S3 server the integration tests and the storage benchmark run (tests/util/s3.rs,
# scripts/bench/storage.sh): installs Garage 2.5.0 (a distributed S3-compatible store that checks
# SigV4 signatures and the signing region, refuses a wrong Content-MD5, and runs as one node or as a
# cluster) with `cargo install`, cached under ~/.cache/gdcloud-kit/garage/2.5.0/, plus the peers the
# S3 tests and benchmarks drive: stunnel4 (the TLS front), rclone and the `aws` CLI. Garage is
# AGPL: it is a test server only, started as a separate process, never linked.
#
# Idempotent: a cached binary is reused (warm run: well under a second). A cold run compiles Garage
# (~13 min on 2 cores) and may need apt as root (or sudo). Logs go to stderr; the last line on
# stdout is the binary's path. Fails loudly, with the reason, when anything goes wrong.
# Environment: GDCLOUD_TEST_CACHE overrides ~/.cache/gdcloud-kit.
set -Eeuo pipefail

VERSION=2.5.0
CACHE_ROOT="${GDCLOUD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gdcloud-kit}"
ROOT="$CACHE_ROOT/garage/$VERSION"
BIN="$ROOT/bin/garage"

log() { printf '[garage.sh] %s\n' "$*" >&2; }
reported=0
failed_at=""
trap 'failed_at="line $LINENO: $BASH_COMMAND"' ERR
die() { printf '[garage.sh] ERROR: %s\n' "$*" >&2; reported=1; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || [ $reported = 1 ] || printf "[garage.sh] ERROR: failed (exit %s) at %s\n" "$rc" "${failed_at:-?}" >&2' EXIT

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# The peers: stunnel4 (TLS in front of Garage), rclone, the aws CLI (Debian's awscli when absent),
# curl (its --aws-sigv4 reads objects back independently of our client).
missing=()
for p in stunnel4 rclone openssl curl; do installed "$p" || missing+=("$p"); done
command -v aws >/dev/null || missing+=(awscli)
if [ ${#missing[@]} -gt 0 ]; then
  [ -z "$SUDO" ] || command -v sudo >/dev/null || die "not root and no sudo: cannot install ${missing[*]}"
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq -o DPkg::Lock::Timeout=600 >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
fi
for t in stunnel4 rclone aws openssl curl; do
  command -v "$t" >/dev/null || die "$t is not in PATH after installing it"
done

usable() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if usable "$BIN"; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v cargo >/dev/null || die "cargo not in PATH: Garage is installed with cargo install"
mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
log "waiting for the build lock $ROOT/.lock"
flock 9
if usable "$BIN"; then
  log "built meanwhile by another run: $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
log "cargo install garage --version $VERSION --locked (~13 min cold)"
# Own target dir, and run outside the workspace, so neither its config nor its build lock interfere.
target="$ROOT/target.$$"
trap 'rc=$?; rm -rf "$target"; [ $rc -eq 0 ] || [ $reported = 1 ] || printf "[garage.sh] ERROR: failed (exit %s) at %s\n" "$rc" "${failed_at:-?}" >&2' EXIT
cd "$ROOT"
cargo install garage --version "$VERSION" --locked \
  --root "$ROOT" --target-dir "$target" >&2 || die "cargo install garage $VERSION failed (see above)"
usable "$BIN" || die "the installed $BIN does not run"
log "installed $BIN in $(( $(date +%s) - start )) s"
echo "$BIN"
