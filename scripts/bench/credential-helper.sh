#!/usr/bin/env bash
# Benchmark: wall time of a warm credential-helper `get`, the way skopeo calls it
# (argument `get`, stdin `127.0.0.1:5000`, no newline), for
#   1. docker-credential-gdcloud, file store            (GDCLOUD_AUTH_CREDENTIAL_STORE=file)
#   2. docker-credential-gdcloud, Secret Service store  (GDCLOUD_AUTH_CREDENTIAL_STORE=secret-service)
#   3. docker-credential-secretservice  (Debian golang-docker-credential-helpers)
#   4. docker-credential-pass           (same package; throwaway GPG key, temp password store)
#   5. /bin/true                        (the floor: process spawn + stdin redirection)
# 1-3 run inside a private, headless D-Bus session with gnome-keyring unlocked (keyring files in a
# temp dir). Prints median and p99 (ms) per candidate, and ours(file) - /bin/true (target <= 1 ms).
#
# Usage: scripts/bench/credential-helper.sh [--runs N] [--export-dir DIR] [--skip-ours] [-v]
#   --runs N          timed runs per candidate (default: $RUNS or 300); 20 warmup runs always
#   --export-dir DIR  keep hyperfine's JSON files (one per candidate) in DIR
#   --skip-ours       benchmark only the peers (3-5), e.g. while our binary does not build
#   -v, --verbose     progress messages on stderr
# Env: GDCLOUD_BIN_DIR  directory holding docker-credential-gdcloud (otherwise it is built with
#                       `cargo build --release --locked`, honouring CARGO_TARGET_DIR)
#      RUNS             default for --runs
# Installs missing tools with apt-get (runs `apt-get update` first only if something is missing).
# The environment (RUST_BACKTRACE included) is left as it is, so the figures are what users get.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT")/../.." && pwd)
SERVER=127.0.0.1:5000
WARMUP=20

log() { if [[ ${BENCH_VERBOSE:-0} == 1 ]]; then printf '[bench] %s\n' "$*" >&2; fi; }
die() { printf 'credential-helper bench: error: %s\n' "$*" >&2; exit 1; }
# POSIX single-quoting (understood by sh and by hyperfine's -N word splitting).
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------------------------------------
# Inner phase: runs inside `dbus-run-session`, set up by the outer phase below.
# ---------------------------------------------------------------------------------------------
inner_cleanup() {
  local rc=$?
  GNUPGHOME=$T/gnupg gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  if [[ -n ${KEYRING_PID:-} ]]; then
    kill "$KEYRING_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$KEYRING_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  exit "$rc"
}

# check_get NAME EXE: one `get` must succeed and return Username u / Secret p (never printed).
check_get() {
  local name=$1 exe=$2 out err rc=0
  out=$("$exe" get <"$T/stdin" 2>"$T/check.err") || rc=$?
  err=$(head -c 2000 "$T/check.err")
  if [[ $rc != 0 ]]; then
    die "$name: \`get\` of $SERVER failed (exit $rc) before timing; stderr: ${err:-<empty>}"
  fi
  printf '%s' "$out" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit("output is not JSON")
if not isinstance(d, dict):
    sys.exit("output is not a JSON object")
bad = [k for k, v in (("Username", "u"), ("Secret", "p")) if d.get(k) != v]
if bad:
    sys.exit("wrong or missing " + "/".join(bad) + " (keys present: " + ",".join(sorted(d)) + ")")
' 2>"$T/check.py" || die "$name: \`get\` of $SERVER exited 0 but did not return the stored credential: $(cat "$T/check.py")"
}

# store NAME EXE: `store` the test credential, as `docker login` does.
store() {
  local name=$1 exe=$2 rc=0
  printf '%s' "{\"ServerURL\":\"$SERVER\",\"Username\":\"u\",\"Secret\":\"p\"}" \
    | "$exe" store >/dev/null 2>"$T/store.err" || rc=$?
  [[ $rc == 0 ]] || die "$name: \`store\` failed (exit $rc); stderr: $(head -c 2000 "$T/store.err")"
}

# keyring_items: number of items in the default Secret Service collection (the unlocked login one).
keyring_items() {
  dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets/aliases/default \
    org.freedesktop.DBus.Properties.Get string:org.freedesktop.Secret.Collection string:Items 2>/dev/null \
    | grep -c 'object path' || true
}

# store_in_keyring NAME EXE: `store` must add an item to the Secret Service (not fall back elsewhere).
store_in_keyring() {
  local before after
  before=$(keyring_items)
  store "$@"
  after=$(keyring_items)
  [[ $after -gt $before ]] || die "$1: \`store\` succeeded but added no item to the Secret Service (items: $before -> $after)"
}

# bench KEY EXE: hyperfine one candidate (env already set by the caller), JSON to $T/KEY.json.
bench() {
  local key=$1 exe=$2 cmd
  if [[ $HF_INPUT == 1 ]]; then
    set -- --input "$T/stdin" "$(sq "$exe") get"
  else
    cmd="$(sq "$exe") get < $(sq "$T/stdin")"
    set -- "sh -c $(sq "$cmd")"
  fi
  log "hyperfine: $key"
  hyperfine -N --style none --warmup "$WARMUP" --runs "$BENCH_RUNS" \
    --export-json "$T/$key.json" "$@" >"$T/hf-$key.log" 2>&1 \
    || die "$key: hyperfine failed: $(tail -n 20 "$T/hf-$key.log")"
}

inner() {
  exec 2>&3 3>&-   # our stderr back; dbus-daemon's chatter stays in the outer log
  T=$BENCH_TMP
  trap inner_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Only the keyring daemon keeps its data under the temp dir; the helpers see the caller's env.
  if [[ -n ${BENCH_XDG_DATA_HOME+set} ]]; then export XDG_DATA_HOME=$BENCH_XDG_DATA_HOME; else unset XDG_DATA_HOME; fi

  log "starting gnome-keyring-daemon (secrets, unlocked)"
  mkdir -p "$T/keyring-data"
  printf '%s' pw | XDG_DATA_HOME=$T/keyring-data \
    gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>"$T/keyring.err" \
    || die "gnome-keyring-daemon --unlock failed: $(head -c 2000 "$T/keyring.err")"
  # The daemon takes the bus name a little after `--unlock` returns: wait for it (up to 10 s), so
  # that no client D-Bus-activates a second, locked daemon. Its pid lets us stop it at the end.
  local i
  KEYRING_PID=
  for ((i = 0; i < 100; i++)); do
    KEYRING_PID=$(dbus-send --session --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null \
      | awk '{print $NF}') || true
    [[ $KEYRING_PID =~ ^[0-9]+$ ]] && break
    KEYRING_PID=
    sleep 0.1
  done
  [[ -n $KEYRING_PID ]] || die "gnome-keyring-daemon did not take org.freedesktop.secrets on the private D-Bus session within 10 s"

  log "creating a throwaway GPG key and password store"
  export GNUPGHOME=$T/gnupg PASSWORD_STORE_DIR=$T/password-store
  mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
  cat >"$T/gpg-key.params" <<'EOF'
%no-protection
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
Subkey-Type: ECDH
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Real: credential-helper bench
Name-Email: bench@example.invalid
Expire-Date: 0
%commit
EOF
  gpg --batch --quiet --gen-key "$T/gpg-key.params" >"$T/gpg.log" 2>&1 \
    || die "gpg key generation failed: $(tail -n 5 "$T/gpg.log")"
  local fpr
  fpr=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1=="fpr"{print $10; exit}')
  [[ -n $fpr ]] || die "gpg key generation produced no secret key"
  pass init "$fpr" >"$T/pass.log" 2>&1 || die "pass init failed: $(tail -n 5 "$T/pass.log")"

  printf '%s' "$SERVER" >"$T/stdin"

  # Setup and a checked `get` for every candidate before any timing.
  local ours=${BENCH_OURS:-} sss pass_helper
  sss=$(command -v docker-credential-secretservice) || die "docker-credential-secretservice not found"
  pass_helper=$(command -v docker-credential-pass) || die "docker-credential-pass not found"
  if [[ -n $ours ]]; then
    mkdir -p "$T/cfg-file" "$T/cfg-ss"
    GDCLOUD_CONFIG=$T/cfg-file GDCLOUD_AUTH_CREDENTIAL_STORE=file store "ours (file)" "$ours"
    [[ -n $(find "$T/cfg-file" -type f -print -quit) ]] \
      || die "ours (file): \`store\` succeeded but wrote nothing under GDCLOUD_CONFIG"
    GDCLOUD_CONFIG=$T/cfg-file GDCLOUD_AUTH_CREDENTIAL_STORE=file check_get "ours (file)" "$ours"
    GDCLOUD_CONFIG=$T/cfg-ss GDCLOUD_AUTH_CREDENTIAL_STORE=secret-service store_in_keyring "ours (secret-service)" "$ours"
    GDCLOUD_CONFIG=$T/cfg-ss GDCLOUD_AUTH_CREDENTIAL_STORE=secret-service check_get "ours (secret-service)" "$ours"
  fi
  store_in_keyring docker-credential-secretservice "$sss"
  check_get docker-credential-secretservice "$sss"
  store docker-credential-pass "$pass_helper"
  check_get docker-credential-pass "$pass_helper"
  /bin/true get <"$T/stdin" || die "/bin/true failed"

  if [[ -n $ours ]]; then
    GDCLOUD_CONFIG=$T/cfg-file GDCLOUD_AUTH_CREDENTIAL_STORE=file bench ours-file "$ours"
    GDCLOUD_CONFIG=$T/cfg-ss GDCLOUD_AUTH_CREDENTIAL_STORE=secret-service bench ours-ss "$ours"
  fi
  bench secretservice "$sss"
  bench pass "$pass_helper"
  bench true /bin/true
}

if [[ ${1:-} == --inner ]]; then
  inner
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Outer phase: options, tools, our binary, temp dir, then the inner phase under dbus-run-session.
# ---------------------------------------------------------------------------------------------
usage() { sed -n '/^# Usage:/,/^# The environment/{s/^# \{0,1\}//;p}' "$SCRIPT"; }

RUNS=${RUNS:-300}
EXPORT_DIR=
SKIP_OURS=0
BENCH_VERBOSE=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --export-dir) [[ $# -ge 2 ]] || die "--export-dir needs a value"; EXPORT_DIR=$2; shift 2 ;;
    --export-dir=*) EXPORT_DIR=${1#--export-dir=}; shift ;;
    --skip-ours) SKIP_OURS=1; shift ;;
    -v|--verbose) BENCH_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 2 ]] || die "--runs/RUNS must be an integer >= 2 (got '$RUNS')"
export BENCH_VERBOSE

T=$(mktemp -d "${TMPDIR:-/tmp}/credential-helper-bench.XXXXXX")
outer_cleanup() {
  GNUPGHOME=$T/gnupg gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  rm -rf "$T" 2>/dev/null || { sleep 0.3; rm -rf "$T" 2>/dev/null || true; }
}
trap outer_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Tools: install what is missing (apt-get update only then).
need_pkgs=(hyperfine gnome-keyring libsecret-tools dbus-x11 dbus golang-docker-credential-helpers pass gnupg python3)
missing=()
for p in "${need_pkgs[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing: ${missing[*]}"
  sudo=()
  if [[ $(id -u) != 0 ]]; then command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root"; sudo=(sudo); fi
  { "${sudo[@]}" apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >"$T/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed: $(tail -n 20 "$T/apt.log")"
fi

HF_VERSION=$(hyperfine --version | awk '{print $2}')
if hyperfine --help 2>/dev/null | grep -q -- '--input'; then HF_INPUT=1; else HF_INPUT=0; fi

# Our binary.
OURS=
if [[ $SKIP_OURS == 0 ]]; then
  if [[ -n ${GDCLOUD_BIN_DIR:-} ]]; then
    OURS=$GDCLOUD_BIN_DIR/docker-credential-gdcloud
  else
    log "building docker-credential-gdcloud (cargo build --release --locked)"
    (cd "$REPO_ROOT" && cargo build --release --locked --bin docker-credential-gdcloud) >"$T/cargo.log" 2>&1 \
      || die "cargo build --release --locked failed (use GDCLOUD_BIN_DIR=DIR, or --skip-ours):
$(tail -n 30 "$T/cargo.log")"
    target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
      || target_dir=$(cd "$REPO_ROOT" && realpath -m "${CARGO_TARGET_DIR:-target}")
    OURS=$target_dir/release/docker-credential-gdcloud
  fi
  [[ -x $OURS ]] || die "$OURS: not an executable file"
  OURS=$(readlink -f "$OURS")
fi

# Inner phase in a private, headless D-Bus session (keyring daemon ends with it).
mkdir -p "$T/run" && chmod 700 "$T/run"
export BENCH_TMP=$T BENCH_RUNS=$RUNS BENCH_OURS=$OURS HF_INPUT
if [[ -n ${XDG_DATA_HOME+set} ]]; then export BENCH_XDG_DATA_HOME=$XDG_DATA_HOME; fi
rc=0
XDG_RUNTIME_DIR=$T/run dbus-run-session -- bash "$SCRIPT" --inner 3>&2 2>>"$T/dbus.log" || rc=$?
[[ $rc == 0 ]] || exit "$rc"

if [[ -n $EXPORT_DIR ]]; then
  mkdir -p "$EXPORT_DIR" && cp "$T"/*.json "$EXPORT_DIR"/
fi

# Table.
cpu=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
[[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/^Model name/{print $2; exit}' || true)
os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
if [[ $HF_INPUT == 1 ]]; then
  how="hyperfine $HF_VERSION -N --input (no shell)"
  note=
else
  how="hyperfine $HF_VERSION -N"
  note="note: hyperfine $HF_VERSION has no --input, so EVERY command (the /bin/true floor included) runs as sh -c 'EXE get < FILE'; the sh cost is in every row and cancels in the difference"
fi
HEAD1="credential-helper \`get\` (stdin \"$SERVER\"), warm: $RUNS runs + $WARMUP warmup each, $how" \
HEAD2="machine: nproc=$(nproc), CPU: ${cpu:-unknown}, ${os:-unknown OS}, kernel $(uname -r)" \
NOTE=$note python3 - "$T" "$OURS" <<'EOF'
import json, os, statistics, sys
tmp, ours = sys.argv[1], sys.argv[2]
rows = []
if ours:
    rows += [("ours-file", "ours, file store (docker-credential-gdcloud)"),
             ("ours-ss", "ours, Secret Service (docker-credential-gdcloud)")]
rows += [("secretservice", "docker-credential-secretservice"),
         ("pass", "docker-credential-pass"),
         ("true", "/bin/true (floor)")]

def stats(key):
    with open(os.path.join(tmp, key + ".json")) as f:
        t = sorted(x * 1000.0 for x in json.load(f)["results"][0]["times"])
    pos = (len(t) - 1) * 0.99            # p99, linear interpolation between closest ranks
    lo = int(pos)
    hi = min(lo + 1, len(t) - 1)
    return statistics.median(t), t[lo] + (t[hi] - t[lo]) * (pos - lo)

res = {k: stats(k) for k, _ in rows}
print(os.environ["HEAD1"])
print(os.environ["HEAD2"])
if os.environ.get("NOTE"):
    print(os.environ["NOTE"])
w = max(len(label) for _, label in rows)
print()
print(f"{'candidate':<{w}}  {'median ms':>10}  {'p99 ms':>10}")
print(f"{'-' * w}  {'-' * 10}  {'-' * 10}")
for k, label in rows:
    med, p99 = res[k]
    print(f"{label:<{w}}  {med:>10.3f}  {p99:>10.3f}")
if ours:
    d = res["ours-file"][0] - res["true"][0]
    print()
    print(f"ours(file) - /bin/true, median: {d:+.3f} ms  (target <= 1 ms: {'met' if d <= 1.0 else 'NOT met'})")
EOF
