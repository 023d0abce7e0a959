#!/usr/bin/env bash
# The one command that passes every test: installs what the tests need (Debian packages), checks
# formatting and lints, then runs every unit and integration test of the workspace. The real services
# (Distribution registries, our token server, private D-Bus sessions with gnome-keyring) are started
# per test by the fixtures in tests/util/ on loopback and random ports, and stopped when each test ends.
#   tests/run.sh [extra cargo test args]     e.g. tests/run.sh --test integration registry_clients::
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Packages the integration tests drive (real registry, real clients, real keyring, fish for `env --shell fish`,
# bash (with bash-completion), zsh and fish for the completion scripts, groff and man for the man pages).
# libssl-dev and pkg-config build sigstore-rs, the cosign implementation tests/artifacts_verify.rs checks against.
packages=(docker-registry apache2-utils skopeo umoci podman buildah uidmap oci-image-tool
          gnome-keyring libsecret-tools dbus dbus-x11 openssl ca-certificates curl fish
          zsh bash bash-completion groff-base man-db libssl-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v docker >/dev/null; then
  # The docker CLI (client only: the tests never need an engine). Debian ships it in docker.io.
  missing+=(docker.io)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The OpenID provider the sign-in tests run (oidc-provider, pinned by tests/oidc/package-lock.json).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing nodejs npm"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -d tests/oidc/node_modules/oidc-provider ] || [ tests/oidc/package-lock.json -nt tests/oidc/node_modules/.package-lock.json ]; then
  log "npm ci --prefix tests/oidc"
  npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
fi

# The tests must not inherit a desktop session or the caller's Docker/gdcloud settings; the fixtures
# give each test its own.
unset DBUS_SESSION_BUS_ADDRESS DOCKER_CONFIG REGISTRY_AUTH_FILE GDCLOUD_CONFIG GDCLOUD_ACTIVE_CONFIG_NAME

# >>> testenv: real kube-apiserver + etcd and S3 server (Garage) -- owned by scripts/testenv/ >>>
# The scripts are idempotent and cache what they build under ~/.cache/gdcloud-kit (cold: kube-apiserver
# ~5 min, Garage ~13 min; warm: well under a second). Each prints its binary's path as its last line;
# tests/util/{kube,garage}.rs start one per test from these paths (they run the scripts themselves if
# unset). The storage tests and the runbook demo run on Garage; scripts/testenv/s3s-fs.sh is kept
# only for `scripts/bench/storage.sh --server s3s-fs`.
log "scripts/testenv/kube-apiserver.sh"
GDCLOUD_TEST_KUBE_APISERVER="$(bash scripts/testenv/kube-apiserver.sh | tail -n1)"
log "scripts/testenv/garage.sh"
GDCLOUD_TEST_GARAGE="$(bash scripts/testenv/garage.sh | tail -n1)"
export GDCLOUD_TEST_KUBE_APISERVER GDCLOUD_TEST_GARAGE
# <<< testenv <<<

# A fresh CI clone gains nothing from incremental state (it was 2.6 GB); a developer's tree keeps it.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi
log "free disk for target/: $(df -h --output=avail . | tail -n1 | tr -d ' ') (a build and test run takes ~3 GB)"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
# The credential helper is built without features: it must stay free of the async runtime, HTTP,
# TLS and Kubernetes clients (what keeps its `get` at the cost of a process start).
log "cargo clippy (the credential helper's lean build) and its dependency tree"
cargo clippy -p gdcloud-kit --no-default-features --lib --bins --locked --quiet -- -D warnings
if cargo tree -p gdcloud-kit --no-default-features -e normal --prefix none --locked \
    | grep -E '^(tokio|reqwest|kube|rustls|hyper|indicatif) '; then
  echo "ERROR: the credential helper's build pulls in the crates above; gate them behind the net feature" >&2
  exit 1
fi
log "cargo build (every binary and example, so the integration tests can run them)"
cargo build --workspace --bins --examples --locked --quiet
# The release bundle (issue 10): built with a cheap profile, its glibc baseline checked by release.sh,
# then installed into a fresh prefix with no cargo on PATH; tests/release_bundle.rs uses it too.
log "scripts/release.sh --profile ci-bundle"
GDCLOUD_TEST_BUNDLE="$(CARGO_BUILD_QUIET=1 bash scripts/release.sh --profile ci-bundle --no-vendored-src --out target/dist | tail -n1)"
export GDCLOUD_TEST_BUNDLE
bash scripts/release/check-bundle.sh "$GDCLOUD_TEST_BUNDLE"
log "cargo test"
cargo test --workspace --locked --no-fail-fast "$@"
