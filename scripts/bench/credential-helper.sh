#!/usr/bin/env bash
# Benchmark: wall time of a warm credential-helper `get`, the way skopeo calls it
# (argument `get`, stdin `127.0.0.1:5000`, no newline), for
#   1. docker-credential-gdcloud, file store            (GDCLOUD_AUTH_CREDENTIAL_STORE=file)
#   2. docker-credential-gdcloud, Secret Service store  (GDCLOUD_AUTH_CREDENTIAL_STORE=secret-service)
#   3. docker-credential-gdcloud, token path (issue 5): stdin `127.0.0.1:5002`, a registry set up with
#      `gdcloud-auth configure-docker --registries 127.0.0.1:5002 --audience https://registry.test`
#      after a `gdcloud-auth login` (file store; BROWSER=tests/oidc/browser.sh) against the real
#      OpenID provider of tests/oidc (node, access tokens of 300 s), in temp GDCLOUD_CONFIG,
#      DOCKER_CONFIG and HOME:
#        token (warm cache)  the cached access token is answered (no refresh may happen: checked)
#        token (refresh)     before EACH run (hyperfine --prepare, untimed) the cached token is made
#                            stale but still valid (issued_at := expires_at - 2 * lifetime), so every
#                            `get` runs `gdcloud-auth print-identity-token --refresh-stale`: one
#                            refresh_token round trip to the provider (refresh-token rotation) and a
#                            cache rewrite. Checked: each run's token differs from the previous one,
#                            and the provider logged one `grant.success refresh_token` per run.
#   4. docker-credential-secretservice  (Debian golang-docker-credential-helpers)
#   5. docker-credential-pass           (same package; throwaway GPG key, temp password store)
#   6. /bin/true                        (the floor: process spawn + stdin redirection)
# 1, 2, 4, 5 run inside a private, headless D-Bus session with gnome-keyring unlocked (keyring files
# in a temp dir). Prints median and p99 (ms) per candidate, ours(file) - /bin/true (target <= 1 ms)
# and ours(token warm) - /bin/true (same target, issue 5).
#
# Usage: scripts/bench/credential-helper.sh [--runs N] [--refresh-runs N] [--export-dir DIR]
#                                           [--skip-ours] [--skip-token] [-v]
#   --runs N          timed runs per candidate (default: $RUNS or 300); 20 warmup runs always
#   --refresh-runs N  timed runs of "token (refresh)", each a network round trip (default:
#                     $REFRESH_RUNS or 30); 3 warmup runs
#   --export-dir DIR  keep hyperfine's JSON files (one per candidate) in DIR
#   --skip-ours       benchmark only the peers (4-6), e.g. while our binary does not build
#   --skip-token      leave out the token path (3): no node, no OpenID provider
#   -v, --verbose     progress messages on stderr
# Env: GDCLOUD_BIN_DIR  directory holding docker-credential-gdcloud and gdcloud-auth (otherwise they
#                       are built with `cargo build --release --locked`, honouring CARGO_TARGET_DIR)
#      RUNS, REFRESH_RUNS  defaults for --runs, --refresh-runs
# Installs missing tools with apt-get (runs `apt-get update` first only if something is missing).
# The token path needs node (>= 20) in PATH; it runs `npm ci --prefix tests/oidc` if
# tests/oidc/node_modules is missing. The provider listens on 127.0.0.1 and is stopped on exit.
# The environment (RUST_BACKTRACE included) is left as it is, so the figures are what users get.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT")/../.." && pwd)
SERVER=127.0.0.1:5000
WARMUP=20
# Token path: the registry configured with an audience, the audience, and the OpenID client.
TOKEN_SERVER=127.0.0.1:5002
TOKEN_AUDIENCE=https://registry.test
OIDC_CLIENT=gdcloud-test
REFRESH_WARMUP=3

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

# bench KEY EXE [STDIN [RUNS [WARMUP [HYPERFINE_ARG...]]]]: hyperfine one candidate (env already set
# by the caller), JSON to $T/KEY.json. Defaults: $T/stdin, $BENCH_RUNS, $WARMUP.
bench() {
  local key=$1 exe=$2 input=${3:-$T/stdin} runs=${4:-$BENCH_RUNS} warmup=${5:-$WARMUP} cmd
  shift $(($# < 5 ? $# : 5))
  if [[ $HF_INPUT == 1 ]]; then
    set -- "$@" --input "$input" "$(sq "$exe") get"
  else
    cmd="$(sq "$exe") get < $(sq "$input")"
    set -- "$@" "sh -c $(sq "$cmd")"
  fi
  log "hyperfine: $key"
  hyperfine -N --style none --warmup "$warmup" --runs "$runs" \
    --export-json "$T/$key.json" "$@" >"$T/hf-$key.log" 2>&1 \
    || die "$key: hyperfine failed: $(tail -n 20 "$T/hf-$key.log")$(cat "$T/$key.why" 2>/dev/null)"
}

# --- Token path (set up by the outer phase: provider running, signed in, registry configured) ---

# token_env CMD...: CMD in the token path's own temp config, Docker config and HOME (file store).
token_env() {
  GDCLOUD_CONFIG=$T/token/cfg DOCKER_CONFIG=$T/token/docker HOME=$T/token/home \
    GDCLOUD_AUTH_CREDENTIAL_STORE=file "$@"
}

# refresh_grants: refresh_token grants the provider logged so far (tests/oidc/provider.mjs writes
# `[oidc] grant.success refresh_token` for each one it grants).
refresh_grants() {
  awk '$1 == "[oidc]" && $2 == "grant.success" && $3 == "refresh_token" && NF == 3 { n++ } END { print n + 0 }' \
    "$T/oidc/provider.log"
}
grant_errors() { grep -c 'grant\.error' "$T/oidc/provider.log" || true; }

# cached_fp: a fingerprint (sha256 prefix) of the cached access token of $TOKEN_AUDIENCE, or "none".
cached_fp() {
  "$BENCH_PY" - "$T/token/cfg/oidc_token_cache.json" "$TOKEN_AUDIENCE" <<'PY'
import hashlib, json, sys
try:
    t = json.load(open(sys.argv[1]))["tokens"][sys.argv[2]]["token"]
    print(hashlib.sha256(t.encode()).hexdigest()[:16])
except (OSError, ValueError, KeyError, TypeError):
    print("none")
PY
}

# token_get WHAT: one `get` of $TOKEN_SERVER; it must answer ServerURL, the signed-in account and a
# JWT for $TOKEN_AUDIENCE that is the cached one. Prints the token's fingerprint (never the token).
token_get() {
  local what=$1 rc=0
  token_env "$BENCH_OURS" get <"$T/stdin-token" >"$T/token/get.out" 2>"$T/token/get.err" || rc=$?
  [[ $rc == 0 ]] || die "ours (token, $what): \`get\` of $TOKEN_SERVER failed (exit $rc): $(head -c 2000 "$T/token/get.out") $(head -c 2000 "$T/token/get.err")"
  "$BENCH_PY" - "$T/token/get.out" "$T/token/cfg/oidc_token_cache.json" "$TOKEN_SERVER" "$TOKEN_AUDIENCE" \
    2>"$T/token/check.py" <<'PY' || die "ours (token, $what): $(cat "$T/token/check.py")"
import base64, hashlib, json, sys
out, cache, server, aud = sys.argv[1:5]
try:
    d = json.load(open(out))
except ValueError:
    sys.exit("`get` output is not JSON")
c = json.load(open(cache))
if d.get("ServerURL") != server:
    sys.exit(f"ServerURL is {d.get('ServerURL')!r}, not {server!r}")
if not c.get("account") or d.get("Username") != c["account"]:
    sys.exit(f"Username {d.get('Username')!r} is not the signed-in account {c.get('account')!r}")
secret = d.get("Secret") or ""
parts = secret.split(".")
if len(parts) != 3:
    sys.exit("Secret is not a JWT")
claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
auds = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
if aud not in auds:
    sys.exit(f"the token's aud is {claims.get('aud')!r}, not {aud!r}")
if c["tokens"].get(aud, {}).get("token") != secret:
    sys.exit("the answered token is not the cached one")
print(hashlib.sha256(secret.encode()).hexdigest()[:16])
PY
}

# make_stale_cmd: the --prepare command of "token (refresh)" (see $T/token/make-stale.py).
make_stale_cmd() {
  printf '%s %s %s %s %s %s %s' "$(sq "$BENCH_PY")" "$(sq "$T/token/make-stale.py")" \
    "$(sq "$T/token/cfg/oidc_token_cache.json")" "$(sq "$TOKEN_AUDIENCE")" \
    "$(sq "$T/token/stale.state")" "$(sq "$T/token/stale.count")" "$(sq "$T/ours-token-refresh.why")"
}

# token_refresh_checked WHAT: make the cached token stale, `get` once, and check that this really
# refreshed: a new token, exactly one more refresh_token grant at the provider, no grant error.
token_refresh_checked() {
  local what=$1 before after n0 n1 e0 e1 out
  before=$(cached_fp)
  n0=$(refresh_grants) e0=$(grant_errors)
  rm -f "$T/token/stale.state" "$T/token/stale.count"
  out=$(eval "$(make_stale_cmd)" 2>&1) || die "ours (token, $what): making the cached token stale failed: $out"
  after=$(token_get "$what")
  n1=$(refresh_grants) e1=$(grant_errors)
  [[ $after != "$before" ]] \
    || die "ours (token, $what): \`get\` of a stale token answered the old token: no refresh happened; provider log: $(tail -n 20 "$T/oidc/provider.log")"
  [[ $n1 == $((n0 + 1)) && $e1 == "$e0" ]] \
    || die "ours (token, $what): expected one refresh_token grant and no grant error, the provider logged $((n1 - n0)) grants and $((e1 - e0)) errors: $(tail -n 20 "$T/oidc/provider.log")"
}

# token_setup_and_check: the first `get` after sign-in (which refreshes: login caches only the ID
# token), a checked refresh, and a warm `get` that must not refresh.
token_setup_and_check() {
  printf '%s' "$TOKEN_SERVER" >"$T/stdin-token"
  cat >"$T/token/make-stale.py" <<'PY'
# make-stale.py CACHE AUD STATE COUNT WHY: rewrites the cached token of AUD so that it is past half its
# life but still valid (issued_at := expires_at - 2 * (expires_at - issued_at)); in place, so the
# file keeps its 0600 mode. STATE remembers the token made stale: if it is still the cached one at
# the next call, the `get` in between did not refresh, and this fails (so hyperfine fails). COUNT
# gets one line per call (hyperfine also runs --prepare before the warmup runs). A failure's reason
# also goes to WHY (hyperfine does not show the output of --prepare).
import hashlib, json, sys, time
cache, aud, state, count, why = sys.argv[1:6]

def fail(msg):
    with open(why, "w") as w:
        w.write("\n" + msg)
    sys.exit(msg)

with open(cache, "r+") as f:
    d = json.load(f)
    t = (d.get("tokens") or {}).get(aud)
    if not t:
        fail(f"make-stale: no cached token for {aud} in {cache}")
    fp = hashlib.sha256(t["token"].encode()).hexdigest()
    try:
        with open(state) as s:
            if s.read() == fp:
                fail("make-stale: the previous `get` did not refresh (the token made stale is still cached)")
    except FileNotFoundError:
        pass
    iat, exp = int(t["issued_at"]), int(t["expires_at"])
    if exp <= time.time() + 2:
        fail(f"make-stale: the cached token is (nearly) expired (expires_at {exp})")
    t["issued_at"] = exp - 2 * (exp - iat)
    f.seek(0)
    json.dump(d, f, indent=2)
    f.write("\n")
    f.truncate()
with open(state, "w") as s:
    s.write(fp)
with open(count, "a") as c:
    c.write("1\n")
PY
  local n0 warm n1
  token_get "first get after sign-in" >/dev/null
  token_refresh_checked "check of a refresh"
  n0=$(refresh_grants)
  warm=$(token_get "warm check")
  n1=$(refresh_grants)
  [[ $warm == "$(cached_fp)" && $n1 == "$n0" ]] \
    || die "ours (token, warm check): a \`get\` of a fresh cached token refreshed ($((n1 - n0)) grants)"
}

# token_bench: "token (warm cache)" then "token (refresh)", each checked afterwards.
token_bench() {
  local fp n0 n1 e0 e1 count runs=$BENCH_REFRESH_RUNS
  # A freshly refreshed token: half its life (150 s) ahead, for the warm runs.
  token_refresh_checked "refresh before the warm runs"
  fp=$(cached_fp) n0=$(refresh_grants)
  token_env bench ours-token "$BENCH_OURS" "$T/stdin-token"
  n1=$(refresh_grants)
  [[ $n1 == "$n0" && $(cached_fp) == "$fp" ]] \
    || die "ours (token, warm cache): the warm runs refreshed the token ($((n1 - n0)) grants): the timing is not of the warm path"

  rm -f "$T/token/stale.state" "$T/token/stale.count"
  n0=$(refresh_grants) e0=$(grant_errors)
  token_env bench ours-token-refresh "$BENCH_OURS" "$T/stdin-token" "$runs" "$REFRESH_WARMUP" \
    --prepare "$(make_stale_cmd)"
  n1=$(refresh_grants) e1=$(grant_errors)
  count=$(wc -l <"$T/token/stale.count")
  [[ $count -ge $runs ]] || die "ours (token, refresh): --prepare ran $count times for $runs runs"
  [[ $n1 == $((n0 + count)) && $e1 == "$e0" ]] \
    || die "ours (token, refresh): $count \`get\`s of a stale token, but the provider logged $((n1 - n0)) refresh_token grants and $((e1 - e0)) grant errors: $(tail -n 20 "$T/oidc/provider.log")"
  [[ $(cached_fp) != "$(head -c 16 "$T/token/stale.state")" ]] \
    || die "ours (token, refresh): the last timed \`get\` did not refresh"
  printf '%s\n' \
    "token (warm cache): $((BENCH_RUNS + WARMUP)) gets, 0 refreshes at the provider (checked)" \
    "token (refresh): $count gets ($REFRESH_WARMUP warmup + $runs timed), each of a token made stale by --prepare; the provider logged $((n1 - n0)) \`grant.success refresh_token\` and $((e1 - e0)) grant errors; every get answered a new token (checked)" \
    >"$T/token/verified.txt"
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
  if [[ -n $ours && ${BENCH_TOKEN:-0} == 1 ]]; then
    log "token path: checking the first get, a refresh and a warm get"
    token_setup_and_check
  fi

  if [[ -n $ours ]]; then
    GDCLOUD_CONFIG=$T/cfg-file GDCLOUD_AUTH_CREDENTIAL_STORE=file bench ours-file "$ours"
    GDCLOUD_CONFIG=$T/cfg-ss GDCLOUD_AUTH_CREDENTIAL_STORE=secret-service bench ours-ss "$ours"
    if [[ ${BENCH_TOKEN:-0} == 1 ]]; then token_bench; fi
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
REFRESH_RUNS=${REFRESH_RUNS:-30}
EXPORT_DIR=
SKIP_OURS=0
SKIP_TOKEN=0
BENCH_VERBOSE=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --refresh-runs) [[ $# -ge 2 ]] || die "--refresh-runs needs a value"; REFRESH_RUNS=$2; shift 2 ;;
    --refresh-runs=*) REFRESH_RUNS=${1#--refresh-runs=}; shift ;;
    --export-dir) [[ $# -ge 2 ]] || die "--export-dir needs a value"; EXPORT_DIR=$2; shift 2 ;;
    --export-dir=*) EXPORT_DIR=${1#--export-dir=}; shift ;;
    --skip-ours) SKIP_OURS=1; shift ;;
    --skip-token) SKIP_TOKEN=1; shift ;;
    -v|--verbose) BENCH_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 2 ]] || die "--runs/RUNS must be an integer >= 2 (got '$RUNS')"
[[ $REFRESH_RUNS =~ ^[0-9]+$ && $REFRESH_RUNS -ge 2 ]] \
  || die "--refresh-runs/REFRESH_RUNS must be an integer >= 2 (got '$REFRESH_RUNS')"
export BENCH_VERBOSE
TOKEN=0
if [[ $SKIP_OURS == 0 && $SKIP_TOKEN == 0 ]]; then TOKEN=1; fi

T=$(mktemp -d "${TMPDIR:-/tmp}/credential-helper-bench.XXXXXX")
PROVIDER_PID='' WATCHDOG_PID=''
# stop_provider: the OpenID provider (and its stdin watchdog) end with this script, whatever happens.
stop_provider() {
  if [[ -n $WATCHDOG_PID ]]; then kill "$WATCHDOG_PID" 2>/dev/null || true; fi
  if [[ -n $PROVIDER_PID ]]; then
    kill "$PROVIDER_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$PROVIDER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PROVIDER_PID" 2>/dev/null || true
    wait "$PROVIDER_PID" 2>/dev/null || true
  fi
  if [[ -n $WATCHDOG_PID ]]; then wait "$WATCHDOG_PID" 2>/dev/null || true; fi
  PROVIDER_PID='' WATCHDOG_PID=''
}
outer_cleanup() {
  trap '' INT TERM   # a second signal must not cut the cleanup short
  stop_provider
  GNUPGHOME=$T/gnupg gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  rm -rf "$T" 2>/dev/null || { sleep 0.3; rm -rf "$T" 2>/dev/null || true; }
}
trap outer_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Tools: install what is missing (apt-get update only then).
need_pkgs=(hyperfine gnome-keyring libsecret-tools dbus-x11 dbus golang-docker-credential-helpers pass gnupg python3)
if [[ $TOKEN == 1 ]]; then need_pkgs+=(curl); fi   # tests/oidc/browser.sh plays the browser with curl
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

# The token path: gdcloud-auth beside the helper (where the helper looks for it), the OpenID
# provider of tests/oidc, a sign-in and a registry configured with the audience.
AUTH=
if [[ $TOKEN == 1 ]]; then
  command -v node >/dev/null || die "node not found: the token path runs the OpenID provider of tests/oidc on node >= 20 (or use --skip-token)"
  AUTH=$(dirname "$OURS")/gdcloud-auth
  if [[ -z ${GDCLOUD_BIN_DIR:-} ]]; then
    log "building gdcloud-auth (cargo build --release --locked -p gdcloud-auth)"
    (cd "$REPO_ROOT" && cargo build --release --locked -p gdcloud-auth) >"$T/cargo-auth.log" 2>&1 \
      || die "cargo build --release --locked -p gdcloud-auth failed (use GDCLOUD_BIN_DIR=DIR, or --skip-token):
$(tail -n 30 "$T/cargo-auth.log")"
  fi
  [[ -x $AUTH ]] || die "$AUTH: not an executable file (the helper refreshes tokens with the gdcloud-auth beside it; or use --skip-token)"

  OIDC_DIR=$REPO_ROOT/tests/oidc
  if [[ ! -f $OIDC_DIR/node_modules/oidc-provider/package.json ]]; then
    command -v npm >/dev/null || die "npm not found: needed once for npm ci --prefix tests/oidc (or use --skip-token)"
    log "installing the OpenID provider (npm ci --prefix tests/oidc)"
    npm ci --prefix "$OIDC_DIR" >"$T/npm.log" 2>&1 || die "npm ci --prefix tests/oidc failed: $(tail -n 20 "$T/npm.log")"
  fi

  # Started as tests/util/oidc.rs does: it exits when its stdin closes. Its stdin is a FIFO held
  # open by a watchdog that lives as long as this script, so the provider also goes if this script
  # is killed without running its trap; the trap (stop_provider) kills both.
  log "starting the OpenID provider (node tests/oidc/provider.mjs)"
  mkdir -p "$T/oidc" && mkfifo "$T/oidc/stdin"
  ( while kill -0 $$ 2>/dev/null; do sleep 1; done ) >"$T/oidc/stdin" &
  WATCHDOG_PID=$!
  ( cd "$OIDC_DIR" && unset OIDC_TLS_CERT OIDC_TLS_KEY NODE_OPTIONS \
      && OIDC_CLIENT_ID=$OIDC_CLIENT OIDC_AUDIENCES=$TOKEN_AUDIENCE OIDC_ACCESS_TOKEN_TTL=300 \
         OIDC_USE_GRANTED_RESOURCE=1 exec node provider.mjs ) \
    <"$T/oidc/stdin" >"$T/oidc/ready" 2>"$T/oidc/provider.log" &
  PROVIDER_PID=$!
  ISSUER=
  for ((i = 0; i < 300; i++)); do
    # The ready line: {"issuer": "http://127.0.0.1:PORT", "port": PORT}.
    if [[ -s $T/oidc/ready ]] && ISSUER=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["issuer"])' \
        "$T/oidc/ready" 2>/dev/null); then
      break
    fi
    ISSUER=
    kill -0 "$PROVIDER_PID" 2>/dev/null || die "the OpenID provider exited before it was ready: $(tail -n 20 "$T/oidc/provider.log")"
    sleep 0.1
  done
  [[ -n $ISSUER ]] || die "the OpenID provider was not ready within 30 s: $(tail -n 20 "$T/oidc/provider.log")"
  log "provider ready: $ISSUER (pid $PROVIDER_PID)"

  mkdir -p "$T/token/cfg" "$T/token/docker" "$T/token/home"
  token_env "$AUTH" configure-docker --registries "$TOKEN_SERVER" --audience "$TOKEN_AUDIENCE" \
    </dev/null >"$T/token/configure.log" 2>&1 \
    || die "gdcloud-auth configure-docker failed: $(tail -n 20 "$T/token/configure.log")"
  log "signing in (gdcloud-auth login, BROWSER=tests/oidc/browser.sh)"
  token_env env -u OIDC_TEST_CA BROWSER="$OIDC_DIR/browser.sh" OIDC_TEST_USER=alice \
    "$AUTH" login --issuer-url "$ISSUER" --client-id "$OIDC_CLIENT" --audiences "$TOKEN_AUDIENCE" --timeout 60 \
    </dev/null >"$T/token/login.log" 2>&1 \
    || die "gdcloud-auth login failed: $(tail -n 20 "$T/token/login.log"); provider log: $(tail -n 20 "$T/oidc/provider.log")"
  [[ -f $T/token/cfg/oidc_session.json ]] || die "gdcloud-auth login succeeded but saved no session file (file store)"
fi

# Inner phase in a private, headless D-Bus session (keyring daemon ends with it).
mkdir -p "$T/run" && chmod 700 "$T/run"
BENCH_PY=$(python3 -c 'import sys; print(sys.executable)')   # the interpreter itself, not a shim
export BENCH_TMP=$T BENCH_RUNS=$RUNS BENCH_OURS=$OURS HF_INPUT BENCH_PY \
  BENCH_TOKEN=$TOKEN BENCH_REFRESH_RUNS=$REFRESH_RUNS
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
token_note=
if [[ $TOKEN == 1 ]]; then
  token_note="token rows: stdin \"$TOKEN_SERVER\" (configured with audience $TOKEN_AUDIENCE), file store, OpenID provider tests/oidc on $ISSUER (node $(node --version), access tokens of 300 s); \"token (refresh)\": $REFRESH_RUNS runs + $REFRESH_WARMUP warmup, the cached token made stale by an untimed --prepare before each (p99 of $REFRESH_RUNS runs is about their maximum)"
fi
HEAD1="credential-helper \`get\` (stdin \"$SERVER\"), warm: $RUNS runs + $WARMUP warmup each, $how" \
HEAD2="machine: nproc=$(nproc), CPU: ${cpu:-unknown}, ${os:-unknown OS}, kernel $(uname -r)" \
TOKEN_NOTE=$token_note NOTE=$note python3 - "$T" "$OURS" "$TOKEN" <<'EOF'
import json, os, statistics, sys
tmp, ours, token = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
rows = []
if ours:
    rows += [("ours-file", "ours, file store (docker-credential-gdcloud)"),
             ("ours-ss", "ours, Secret Service (docker-credential-gdcloud)")]
if token:
    rows += [("ours-token", "ours, token (warm cache)"),
             ("ours-token-refresh", "ours, token (refresh)")]
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
if token:
    print(os.environ["TOKEN_NOTE"])
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
if token:
    d = res["ours-token"][0] - res["true"][0]
    print(f"ours(token warm) - /bin/true, median: {d:+.3f} ms  (target <= 1 ms: {'met' if d <= 1.0 else 'NOT met'})")
    print()
    with open(os.path.join(tmp, "token", "verified.txt")) as f:
        print(f.read(), end="")
EOF
