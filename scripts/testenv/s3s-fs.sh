#!/usr/bin/env bash
# Owns the real S3 server the integration tests run (tests/util/s3.rs): installs `s3s-fs` 0.14.1
# (the s3s project's file-system S3 server, which checks SigV4 signatures) with `cargo install`,
# cached under ~/.cache/gdcloud-kit/s3s-fs/0.14.1/, plus the peers the S3 tests and benchmarks
# drive: stunnel4 (the TLS front), rclone and the `aws` CLI. Tests talk to a real S3 server over
# real HTTP(S), not a mock, so that signing, TLS and error replies are the real thing.
#
# Idempotent: a cached binary is reused (warm run: well under a second). A cold run compiles s3s-fs
# (~4 min on 2 cores) and may need apt as root (or sudo). Logs go to stderr; the last line on stdout
# is the binary's path. Fails loudly, with the reason, when anything goes wrong.
# Environment: GDCLOUD_TEST_CACHE overrides ~/.cache/gdcloud-kit.
set -Eeuo pipefail

VERSION=0.14.1  # 0.17 needs a newer rustc than some machines have; 0.14.1 is what the tests pin.
CACHE_ROOT="${GDCLOUD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gdcloud-kit}"
ROOT="$CACHE_ROOT/s3s-fs/$VERSION"
BIN="$ROOT/bin/s3s-fs"

log() { printf '[s3s-fs.sh] %s\n' "$*" >&2; }
reported=0
failed_at=""
trap 'failed_at="line $LINENO: $BASH_COMMAND"' ERR
die() { printf '[s3s-fs.sh] ERROR: %s\n' "$*" >&2; reported=1; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || [ $reported = 1 ] || printf "[s3s-fs.sh] ERROR: failed (exit %s) at %s\n" "$rc" "${failed_at:-?}" >&2' EXIT

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# The peers: stunnel4 (TLS in front of s3s-fs), rclone, the aws CLI (Debian's awscli when absent).
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
for t in stunnel4 rclone aws openssl; do
  command -v "$t" >/dev/null || die "$t is not in PATH after installing it"
done

usable() { [ -x "$1" ] && "$1" --help >/dev/null 2>&1; }

if usable "$BIN"; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v cargo >/dev/null || die "cargo not in PATH: s3s-fs is installed with cargo install"
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
log "cargo install s3s-fs --version $VERSION --locked --features binary (~4 min cold)"
# Own target dir, and run outside the workspace, so neither its config nor its build lock interfere.
target="$ROOT/target.$$"
trap 'rc=$?; rm -rf "$target"; [ $rc -eq 0 ] || [ $reported = 1 ] || printf "[s3s-fs.sh] ERROR: failed (exit %s) at %s\n" "$rc" "${failed_at:-?}" >&2' EXIT
cd "$ROOT"
cargo install s3s-fs --version "$VERSION" --locked --features binary \
  --root "$ROOT" --target-dir "$target" >&2 || die "cargo install s3s-fs $VERSION failed (see above)"
usable "$BIN" || die "the installed $BIN does not run"
log "installed $BIN in $(( $(date +%s) - start )) s"
echo "$BIN"
