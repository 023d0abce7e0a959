#!/usr/bin/env bash
# Owns the real Kubernetes API server the integration tests run (tests/util/kube.rs): builds
# kube-apiserver from Debian's own `kubernetes` *source* package, offline with its vendored Go
# modules, caches the binary under ~/.cache/gdcloud-kit/kube-apiserver/<debian-version>/ and
# installs etcd (apt `etcd-server`) beside it. Tests talk to a real apiserver + etcd, not a mock, so
# that authentication, RBAC (403s), CRDs and custom resources behave exactly as on a cluster.
#
# Idempotent: a cached binary is reused without rebuilding (warm run: ~0.1 s). A cold run (~5 min on
# 2 cores, ~4.5 min of it the Go build) needs apt and root (or sudo). Logs go to stderr; the last
# line on stdout is the binary's path. Fails loudly, with the reason, when anything goes wrong.
#   scripts/testenv/kube-apiserver.sh            -> ~/.cache/gdcloud-kit/kube-apiserver/.../kube-apiserver
# Environment: KUBE_APISERVER_DEB_VERSION overrides the pinned source version (the cache key);
# GDCLOUD_TEST_CACHE overrides ~/.cache/gdcloud-kit; KEEP_BUILD=1 keeps the build tree.
set -Eeuo pipefail

# The exact Debian source version we build (bookworm: 1.20.5+really1.20.2, i.e. upstream 1.20.2).
VERSION="${KUBE_APISERVER_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
UPSTREAM="v1.20.2"
CACHE_ROOT="${GDCLOUD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gdcloud-kit}"
DIR="$CACHE_ROOT/kube-apiserver/$VERSION"
BIN="$DIR/kube-apiserver"

log() { printf '[kube-apiserver.sh] %s\n' "$*" >&2; }
reported=0
failed_at=""
trap 'failed_at="line $LINENO: $BASH_COMMAND"' ERR
die() { printf '[kube-apiserver.sh] ERROR: %s\n' "$*" >&2; reported=1; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || [ $reported = 1 ] || printf "[kube-apiserver.sh] ERROR: failed (exit %s) at %s\n" "$rc" "${failed_at:-?}" >&2' EXIT

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: cannot install Debian packages"
  SUDO="sudo"
fi
apt_install() {
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "$@" >&2 || die "apt-get install $* failed"
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_updated=0
apt_update() {
  [ $apt_updated = 1 ] && return 0
  log "apt-get update"
  $SUDO apt-get update -qq -o DPkg::Lock::Timeout=600 >&2 || die "apt-get update failed"
  apt_updated=1
}

# etcd (3.4, apt) is what the apiserver stores into; the fixture starts one per test.
missing=()
for p in etcd-server etcd-client; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  apt_install "${missing[@]}"
fi
command -v etcd >/dev/null || die "etcd is not in PATH after installing etcd-server"
# kubectl drives the fixtures; any recent one works (1.32 warns about the skew). Debian's 1.20 else.
if ! command -v kubectl >/dev/null; then
  apt_update
  apt_install kubernetes-client
  command -v kubectl >/dev/null || die "kubectl is not in PATH after installing kubernetes-client"
fi

usable() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if usable "$BIN"; then
  log "cached: $BIN ($("$BIN" --version 2>&1))"
  echo "$BIN"
  exit 0
fi

mkdir -p "$DIR"
# One build at a time (tests running in parallel may all call this script).
exec 9>"$DIR/.lock"
log "waiting for the build lock $DIR/.lock"
flock 9
if usable "$BIN"; then
  log "built meanwhile by another run: $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
log "building kube-apiserver from Debian source package kubernetes $VERSION (takes ~5-7 min on 2 cores)"

# 1. deb-src for bookworm and bookworm-updates.
srcs=/etc/apt/sources.list.d/gdcloud-kit-deb-src.sources
if ! apt-get source --print-uris -qq "kubernetes=$VERSION" >/dev/null 2>&1; then
  if [ ! -e "$srcs" ]; then
    log "adding deb-src (bookworm, bookworm-updates) in $srcs"
    printf '%s\n' \
      "# Added by gdcloud-kit scripts/testenv/kube-apiserver.sh: Debian source packages (kubernetes)." \
      "Types: deb-src" \
      "URIs: http://deb.debian.org/debian" \
      "Suites: bookworm bookworm-updates" \
      "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | $SUDO tee "$srcs" >/dev/null
  fi
  apt_updated=0
  apt_update
fi

# 2. the build tools, Debian's reflect2 1.0.2 (the required fix below) and etcd.
missing=()
for p in dpkg-dev golang-go rsync make golang-github-modern-go-reflect2-dev; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  apt_install "${missing[@]}"
fi
export PATH="/usr/lib/go/bin:$PATH"
command -v go >/dev/null || die "go is not in PATH after installing golang-go"
log "$(go version)"

# 3. the source package, unpacked with Debian's patches applied.
work="$DIR/build.$$"
cleanup() { if [ "${KEEP_BUILD:-0}" != 1 ]; then rm -rf "$work"; fi; }
trap 'rc=$?; cleanup; [ $rc -eq 0 ] || [ $reported = 1 ] || printf "[kube-apiserver.sh] ERROR: build failed (exit %s) at %s\n" "$rc" "${failed_at:-?}" >&2' EXIT
rm -rf "$DIR"/build.*
mkdir -p "$work"
cd "$work"
log "apt-get source kubernetes=$VERSION (in $work)"
if ! apt-get source -qq "kubernetes=$VERSION" >&2; then
  avail=$(apt-cache showsrc kubernetes 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')
  die "apt-get source kubernetes=$VERSION failed; versions apt knows: ${avail:-none}. Update KUBE_APISERVER_DEB_VERSION (the pin in this script) if Debian moved on."
fi
src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
[ -n "$src" ] && [ -f "$src/go.mod" ] || die "no unpacked kubernetes source with go.mod in $work"
cd "$src"

# 4. the required fix: reflect2 1.0.1 (vendored) crashes the apiserver (SIGSEGV) with Go 1.18+
#    when a custom resource is created; swap in Debian's 1.0.2.
r2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$r2" ] || die "$r2 missing (golang-github-modern-go-reflect2-dev)"
grep -q 'github.com/modern-go/reflect2 v1.0.1' go.mod || die "go.mod does not pin reflect2 v1.0.1: the source changed, revisit the reflect2 fix"
rm -rf vendor/github.com/modern-go/reflect2
mkdir -p vendor/github.com/modern-go/reflect2
find "$r2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
  -exec cp {} vendor/github.com/modern-go/reflect2/ \;
[ -f "$r2/LICENSE" ] && cp "$r2/LICENSE" vendor/github.com/modern-go/reflect2/
sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#' go.mod vendor/modules.txt
grep -q '# github.com/modern-go/reflect2 v1.0.2' vendor/modules.txt || die "could not bump reflect2 in vendor/modules.txt"
log "vendored reflect2 replaced by Debian's 1.0.2"

# 5. build, offline (vendor/), in a GOPATH layout the Makefile expects.
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
log "make WHAT=cmd/kube-apiserver"
GOPATH="$PWD/.go" GOPROXY=off CGO_ENABLED=0 \
  KUBE_GIT_VERSION="$UPSTREAM" KUBE_GIT_TREE_STATE=clean \
  make WHAT=cmd/kube-apiserver >&2 || die "make WHAT=cmd/kube-apiserver failed (see the output above)"
out="$src/_output/bin/kube-apiserver"
[ -x "$out" ] || out=$(find "$src/_output" -type f -name kube-apiserver -perm -u+x | head -n1)
[ -n "$out" ] && [ -x "$out" ] || die "the build produced no kube-apiserver binary under _output/"
cp "$out" "$BIN.tmp"
usable "$BIN.tmp" || die "the built kube-apiserver does not run: $("$BIN.tmp" --version 2>&1 | tail -n3)"
mv -f "$BIN.tmp" "$BIN"
echo "$VERSION" >"$DIR/debian-version"
cd /
log "built $BIN ($("$BIN" --version 2>&1), $(du -h "$BIN" | cut -f1)) in $(( $(date +%s) - start )) s"
echo "$BIN"
