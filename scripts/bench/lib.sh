# shellcheck shell=bash
# scripts/bench/lib.sh: what the benchmarks scripts/bench/{artifacts,bundle,storage}.sh have in common,
# kept in one place so that a fix to the harness (cleanup, timing, the registry's readiness poll,
# the binary's build) reaches every benchmark. Sourced, never run. It holds:
#   say / log / die / usage   progress lines, setup lines (-v), errors, --help from the header comment
#   want OP                   OP is in ONLY (the --only list)
#   bench_tmpdir              the temp dir $T, $RESULTS in it, and the traps that clean up whatever
#                             happens: CLEANUP_HOOKS, then the registries still running, BUILD_TMP, $T
#                             (kept, and its path printed, with KEEP=1)
#   install_missing           apt-get install of the tools that are missing (apt-get update only then)
#   set_skopeo                SKOPEO: skopeo, with --insecure-policy when no policy.json exists
#   find_ours PACKAGE         OURS / OURS_VERSION: $GDCLOUD_BIN_DIR/PACKAGE or a cargo release build
#   free_port, stop_process   a free TCP port on 127.0.0.1; stop a process (TERM, KILL after 5 s)
#   start_registry, stop_registry   a plain-HTTP Distribution `docker-registry` on a random port
#   timed                     wall time, peak RSS and CPU time of one command into $RESULTS (TSV)
#   machine_info, report_busy the header's machine description and how busy the CPUs are
# The sourcing script sets `set -euo pipefail`, LC_ALL=C and SCRIPT_START itself, then, before
# sourcing this file:
#   SCRIPT      its own path (readlink -f "${BASH_SOURCE[0]}"); SCRIPT_DIR and REPO_ROOT follow
#   BENCH_NAME  its short name (artifacts, bundle, storage): "[NAME-bench] " before progress lines,
#               "NAME bench: error: " before errors, the temp dir NAME-bench.XXXXXX, the registry's secret
#   USAGE_END   a regex for the last header comment line --help prints (from "# Usage:" on)
# and afterwards, as its options say: PROGRESS, BENCH_VERBOSE, KEEP, RUNS, ONLY, TIMED_FORMAT.

SCRIPT_DIR=$(dirname "$SCRIPT")
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

PROGRESS=1
BENCH_VERBOSE=0
KEEP=0
say() { if [[ $PROGRESS == 1 ]]; then printf '[%s-bench] %s\n' "$BENCH_NAME" "$*" >&2; fi; }
log() { if [[ $BENCH_VERBOSE == 1 ]]; then printf '[%s-bench] %s\n' "$BENCH_NAME" "$*" >&2; fi; }
die() { printf '%s bench: error: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }
usage() { sed -n "/^# Usage:/,/$USAGE_END/{s/^# \{0,1\}//;p}" "$SCRIPT"; }
want() { local o; for o in "${ONLY[@]}"; do [[ $o == "$1" ]] && return 0; done; return 1; }

# ---------------------------------------------------------------------------------------------
# Temp dir, cleanup (registries and servers are stopped whatever happens)
# ---------------------------------------------------------------------------------------------
CLEANUP_HOOKS=()     # functions cleanup runs first (e.g. stopping a server)
REGISTRY_PIDS=()     # registries start_registry started and stop_registry has not stopped yet
BUILD_TMP=           # a half-built cache entry (file or directory), removed if the script dies

# bench_tmpdir: T (a new temp dir under $TMPDIR), RESULTS (an empty $T/results.tsv), and the traps.
bench_tmpdir() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME-bench.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  RESULTS=$T/results.tsv
  : >"$RESULTS"
}
cleanup() {
  local rc=$? pid hook
  trap - EXIT INT TERM
  for hook in "${CLEANUP_HOOKS[@]}"; do "$hook"; done
  for pid in "${REGISTRY_PIDS[@]}"; do stop_registry "$pid"; done
  if [[ -n ${BUILD_TMP:-} ]]; then rm -rf "$BUILD_TMP" 2>/dev/null || true; fi
  if [[ $KEEP == 1 ]]; then
    printf '%s bench: temp dir kept: %s\n' "$BENCH_NAME" "$T" >&2
  else
    rm -rf "$T" 2>/dev/null || { sleep 0.5; rm -rf "$T" 2>/dev/null || true; }
  fi
  exit "$rc"
}

# stop_process PID: stop it (TERM, KILL after 5 s) and reap it.
stop_process() {
  local pid=$1 i
  if kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
# install_missing COMMAND:PACKAGE...: apt-get install the PACKAGEs whose COMMAND is not found
# (`apt-get update` first, only when something is missing; through sudo when not root).
install_missing() {
  local pair cmd pkg missing=() sudo=()
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  say "installing: ${missing[*]}"
  if [[ $(id -u) != 0 ]]; then command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root"; sudo=(sudo); fi
  { "${sudo[@]}" apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >"$T/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed: $(tail -n 20 "$T/apt.log")"
}

# set_skopeo: SKOPEO, the skopeo command. skopeo refuses to run without a signature policy; an
# accept-anything one changes no timing.
# shellcheck disable=SC2034 # SKOPEO is for the sourcing script
set_skopeo() {
  SKOPEO=(skopeo)
  if [[ ! -e /etc/containers/policy.json && ! -e ${XDG_CONFIG_HOME:-$HOME/.config}/containers/policy.json ]]; then
    SKOPEO=(skopeo --insecure-policy)
  fi
}

# find_ours PACKAGE: OURS, the absolute path of the binary PACKAGE: $GDCLOUD_BIN_DIR/PACKAGE, or
# else built with `cargo build --release --locked -p PACKAGE` (honouring CARGO_TARGET_DIR); and
# OURS_VERSION, the first line of its --version.
find_ours() {
  local pkg=$1 target_dir
  if [[ -n ${GDCLOUD_BIN_DIR:-} ]]; then
    OURS=$GDCLOUD_BIN_DIR/$pkg
  else
    say "building $pkg (cargo build --release --locked -p $pkg)"
    (cd "$REPO_ROOT" && cargo build --release --locked -p "$pkg") >"$T/cargo.log" 2>&1 \
      || die "cargo build --release --locked -p $pkg failed (or use GDCLOUD_BIN_DIR=DIR):
$(tail -n 30 "$T/cargo.log")"
    target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
      || target_dir=$(cd "$REPO_ROOT" && realpath -m "${CARGO_TARGET_DIR:-target}")
    OURS=$target_dir/release/$pkg
  fi
  [[ -x $OURS ]] || die "$OURS: not an executable file"
  OURS=$(readlink -f "$OURS")
  # shellcheck disable=SC2034 # for the sourcing script's header
  OURS_VERSION=$("$OURS" --version 2>/dev/null | head -n 1 || true)
}

# ---------------------------------------------------------------------------------------------
# Registries
# ---------------------------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_registry DIR: a Distribution registry storing in DIR/storage on a random free port, no auth,
# plain HTTP on 127.0.0.1; sets REG_PID and REG_PORT once it answers /v2/.
start_registry() {
  local dir=$1
  mkdir -p "$dir/storage"
  for _ in 1 2 3; do
    REG_PORT=$(free_port)
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$REG_PORT
  secret: $BENCH_NAME-bench
EOF
    docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
    REG_PID=$!
    REGISTRY_PIDS+=("$REG_PID")
    if python3 - "$REG_PORT" "$REG_PID" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 15
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)                     # the registry died (port taken?)
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/v2/" % port, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
EOF
    then
      log "registry up on 127.0.0.1:$REG_PORT (pid $REG_PID, storage $dir/storage)"
      return 0
    fi
    stop_registry "$REG_PID"
  done
  die "docker-registry did not come up: $(tail -n 20 "$dir/registry.log")"
}

# stop_registry PID: stop it (TERM, KILL after 5 s), reap it, forget it.
stop_registry() {
  local pid=$1 keep=() p
  stop_process "$pid"
  for p in "${REGISTRY_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  REGISTRY_PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
# TIMED_FORMAT (set by the script): how `timed` prints its progress line, a printf format taking
# OP RUN RUNS TOOL SECS CPU, then the server's CPU seconds when TIMED_SERVER_TICKS is set, then the
# peak RSS in MiB.
# A function printing the CPU ticks (user + system) a server has used so far, or empty: then timed
# also records the server's CPU seconds during the command.
TIMED_SERVER_TICKS=
CLK_TCK=$(getconf CLK_TCK)

# timed OP TOOL RUN LOGFILE CMD...: sync, then wall time, peak RSS and CPU time of CMD (and the
# server's CPU time meanwhile, see TIMED_SERVER_TICKS); CMD must exit 0, its output goes to LOGFILE.
# Appends OP TOOL RUN SECS RSS_KIB CPU_SECS [SERVER_CPU_SECS] to $RESULTS (TSV).
timed() {
  local op=$1 tool=$2 run=$3 logf=$4 rc=0 t0 t1 s0 s1 secs rss cpu usage srv=() row
  shift 4
  sync
  if [[ -n $TIMED_SERVER_TICKS ]]; then s0=$("$TIMED_SERVER_TICKS"); fi
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %U %S' -o "$logf.time" "$@" >"$logf" 2>&1 </dev/null || rc=$?
  t1=$EPOCHREALTIME
  if [[ -n $TIMED_SERVER_TICKS ]]; then s1=$("$TIMED_SERVER_TICKS"); fi
  if [[ $rc != 0 ]]; then
    die "$op run $run, $tool failed (exit $rc): $*
$(tail -n 20 "$logf")"
  fi
  usage=$(tail -n 1 "$logf.time")
  [[ $usage =~ ^([0-9]+)\ ([0-9.]+)\ ([0-9.]+)$ ]] \
    || die "$op run $run, $tool: no peak RSS / CPU time from /usr/bin/time: $(cat "$logf.time")"
  rss=${BASH_REMATCH[1]}
  cpu=$(awk -v u="${BASH_REMATCH[2]}" -v s="${BASH_REMATCH[3]}" 'BEGIN { printf "%.2f", u + s }')
  if [[ -n $TIMED_SERVER_TICKS ]]; then
    srv=("$(awk -v a="$s0" -v b="$s1" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / t }')")
  fi
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  row=("$op" "$tool" "$run" "$secs" "$rss" "$cpu" "${srv[@]}")
  (IFS=$'\t'; echo "${row[*]}") >>"$RESULTS"
  # shellcheck disable=SC2059 # the format is the script's
  say "$(printf "$TIMED_FORMAT" "$op" "$run" "$RUNS" "$tool" "$secs" "$cpu" "${srv[@]}" \
    "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')")"
}

# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------
# machine_info: "nproc=N, CPU: MODEL, OS, kernel RELEASE".
machine_info() {
  local cpu os_name
  cpu=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
  os_name=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
  printf 'nproc=%s, CPU: %s, %s, kernel %s' "$(nproc)" "${cpu:-unknown}" "${os_name:-unknown OS}" "$(uname -r)"
}

cpu_ticks() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
# report_busy: sync, then a line saying how many CPUs were busy with other work (1 s sample of
# /proc/stat) and the load average, and a WARNING line when that is more than 0.2 CPUs.
report_busy() {
  local busy0 idle0 busy1 idle1 busy load1
  sync
  read -r busy0 idle0 < <(cpu_ticks); sleep 1; read -r busy1 idle1 < <(cpu_ticks)
  busy=$(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) -v n="$(nproc)" \
    'BEGIN { printf "%.2f", (b + i > 0) ? n * b / (b + i) : 0 }')
  read -r load1 _ </proc/loadavg
  echo "before the first run: $busy of $(nproc) CPUs busy with other work (1 s sample), load average $load1"
  if awk -v b="$busy" 'BEGIN { exit !(b > 0.2) }'; then
    echo "WARNING: other work is running on this machine; it competes for the CPUs and disk, timings will be noisy"
  fi
}
