#!/usr/bin/env bash
# Benchmark: gdcloud-storage cp against rclone and the aws CLI, on one object of random bytes
# (1 GiB by default) held by a local s3s-fs (the S3 server the integration tests use), over loopback:
#   download  s3://bench/obj -> file   ours: gdcloud-storage cp --quiet s3://bench/obj FILE
#                                      peers: rclone copyto bench:bench/obj FILE
#                                             aws s3 cp s3://bench/obj FILE
#                                      ceiling: one plain ranged GET stream of the whole object (curl)
#   upload    file -> s3://bench/objN  ours: gdcloud-storage cp --quiet FILE s3://bench/obj3
#                                      peers: rclone copyto FILE bench:bench/obj2
#                                             aws s3 cp FILE s3://bench/obj4
#                                      reference: one plain single-part PUT stream (curl) -> obj5
# Runs alternate (ours, rclone, aws, curl, ours, rclone, ...). Prints per operation the median wall
# time of each tool, the ratios ours/rclone (target <= 0.8) and ours/aws (target <= 0.25), the peak
# RSS of each tool (target for ours: < 64 MiB), CPU time of the tool and of the server, the floor the
# server sets (its least CPU per download over the CPUs; its single-stream PUT time), and a final
# MET / NOT MET line per operation.
#
# Usage: scripts/bench/storage.sh [--runs N] [--size-mib N] [--only download|upload] [--ours-args ARGS]
#                                [--seed multipart|single] [--keep] [-q] [-v]
#   --runs N          timed runs per tool per operation (default: $RUNS or 3)
#   --size-mib N      object size in MiB (default 1024)
#   --seed HOW        how the downloaded object is stored: multipart (default; `aws s3 cp`, 8 MiB
#                     parts, ETag "<md5 of md5s>-N": no tool can check the bytes against it) or single
#                     (one PUT, ETag = the plain MD5: ours and rclone check the bytes against it)
#   --only OP         run only this operation (repeatable, or comma-separated: --only download,upload)
#   --ours-args ARGS  extra flags for `gdcloud-storage cp`, split on blanks
#                     (e.g. --ours-args '--concurrency 16 --part-size-mib 16')
#   --keep            keep the temp dir (logs, the server's data dir, the last run's downloaded files
#                     and uploaded objects) and print its path
#   -q, --quiet       no per-run progress lines on stderr
#   -v, --verbose     also setup steps (source file, server, seeding) on stderr
# Env: GDCLOUD_BIN_DIR  directory holding gdcloud-storage (otherwise it is built with
#                       `cargo build --release --locked -p gdcloud-storage`, honouring CARGO_TARGET_DIR)
#      BENCH_CACHE      cache dir for the random source file (default: ~/.cache/gdcloud-kit/bench)
#      RUNS             default for --runs
#      TMPDIR           where the temp dir goes (default /tmp); it needs about 3x the object size
# Tools: s3s-fs, rclone, awscli and curl come from scripts/testenv/s3s-fs.sh (cached; a cold cache
# compiles s3s-fs, about 4 min); /usr/bin/time (apt `time`) and python3 are apt-installed if missing.
#
# Wall time is taken by bash ($EPOCHREALTIME) around `/usr/bin/time -f '%M %U %S' CMD` (peak RSS and
# CPU time of CMD); the server's CPU time during the run comes from /proc/PID/stat. `sync` runs
# (untimed) before every timed command, so one run's writeback does not land in the next. No warmup:
# the source file and the stored object are in the page cache for every tool. The header says how
# busy the CPUs were with other work just before the first run.
# The downloaded object is stored once, before the first run, by the aws CLI (see --seed).
# Every timed command must exit 0 and its result is checked (untimed) before the next run: each
# downloaded file has the source's sha256 (and nothing else is left in its directory); each upload
# left an object of exactly the source's size and bytes in the server's data dir, and is then
# deleted through the S3 API.
# Every tool runs with only its own settings in the environment, and with AWS_CA_BUNDLE,
# SSL_CERT_FILE, SSL_CERT_DIR, CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE unset (plain HTTP on 127.0.0.1);
# the aws CLI and rclone read no user config file (empty ones in the temp dir), ours an empty
# GDCLOUD_CONFIG dir, so all three run with their default transfer settings.
set -euo pipefail
export LC_ALL=C   # '.' in $EPOCHREALTIME and in printf/awk numbers
SCRIPT_START=$EPOCHREALTIME

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT")/../.." && pwd)
# Bump when the source file recipe changes: the cache is keyed by it (and by the size).
SOURCE_VERSION=v1
BUCKET=bench
SRC_KEY=obj
AK=gdcloud-bench-ak
SK=gdcloud-bench-secret-key

PROGRESS=1
BENCH_VERBOSE=0
say() { if [[ $PROGRESS == 1 ]]; then printf '[storage-bench] %s\n' "$*" >&2; fi; }
log() { if [[ $BENCH_VERBOSE == 1 ]]; then printf '[storage-bench] %s\n' "$*" >&2; fi; }
die() { printf 'storage bench: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^#      TMPDIR/{s/^# \{0,1\}//;p}' "$SCRIPT"; }

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
RUNS=${RUNS:-3}
SIZE_MIB=1024
KEEP=0
ONLY=()
OURS_ARGS=()
SEED=multipart
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --size-mib) [[ $# -ge 2 ]] || die "--size-mib needs a value"; SIZE_MIB=$2; shift 2 ;;
    --size-mib=*) SIZE_MIB=${1#--size-mib=}; shift ;;
    --only) [[ $# -ge 2 ]] || die "--only needs a value"; IFS=, read -ra o <<<"$2"; ONLY+=("${o[@]}"); shift 2 ;;
    --only=*) IFS=, read -ra o <<<"${1#--only=}"; ONLY+=("${o[@]}"); shift ;;
    --ours-args) [[ $# -ge 2 ]] || die "--ours-args needs a value"; read -ra o <<<"$2"; OURS_ARGS+=("${o[@]}"); shift 2 ;;
    --ours-args=*) read -ra o <<<"${1#--ours-args=}"; OURS_ARGS+=("${o[@]}"); shift ;;
    --seed) [[ $# -ge 2 ]] || die "--seed needs a value"; SEED=$2; shift 2 ;;
    --seed=*) SEED=${1#--seed=}; shift ;;
    --keep) KEEP=1; shift ;;
    -q|--quiet) PROGRESS=0; shift ;;
    -v|--verbose) BENCH_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "--runs/RUNS must be an integer >= 1 (got '$RUNS')"
[[ $SIZE_MIB =~ ^[0-9]+$ && $SIZE_MIB -ge 1 ]] || die "--size-mib must be an integer >= 1 (got '$SIZE_MIB')"
SIZE_MIB=$((10#$SIZE_MIB))
SIZE_BYTES=$((SIZE_MIB * 1048576))
[[ $SEED == multipart || $SEED == single ]] || die "--seed takes multipart or single (got '$SEED')"
if [[ ${#ONLY[@]} -eq 0 ]]; then ONLY=(download upload); fi
for op in "${ONLY[@]}"; do
  case $op in download|upload) ;; *) die "--only takes download or upload (got '$op')" ;; esac
done
want() { local o; for o in "${ONLY[@]}"; do [[ $o == "$1" ]] && return 0; done; return 1; }

# No CA overrides for any tool (this machine may export them globally; everything here is plain
# HTTP on loopback, and a bundle path can change what a tool loads at start-up).
unset AWS_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE

# ---------------------------------------------------------------------------------------------
# Temp dir, cleanup (the server is killed whatever happens)
# ---------------------------------------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/storage-bench.XXXXXX")
SERVER_PID=
stop_server() { # stop s3s-fs (TERM, KILL after 5 s) and reap it
  local pid=$SERVER_PID i
  [[ -n $pid ]] || return 0
  if kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  SERVER_PID=
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  if [[ -n ${BUILD_TMP:-} ]]; then rm -f "$BUILD_TMP" 2>/dev/null || true; fi
  if [[ $KEEP == 1 ]]; then
    printf 'storage bench: temp dir kept: %s\n' "$T" >&2
  else
    rm -rf "$T" 2>/dev/null || { sleep 0.5; rm -rf "$T" 2>/dev/null || true; }
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Room for the stored object, one download and one uploaded object at a time (plus slack).
avail_kib=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
need_kib=$((3 * SIZE_BYTES / 1024 + 262144))
[[ $avail_kib -ge $need_kib ]] \
  || die "$T has $((avail_kib / 1024)) MiB free; the benchmark needs about $((need_kib / 1024)) MiB (set TMPDIR)"

# ---------------------------------------------------------------------------------------------
# Tools: s3s-fs and the peers from the test environment script; time and python3 from apt
# ---------------------------------------------------------------------------------------------
missing=()
for pair in /usr/bin/time:time python3:python3; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  say "installing: ${missing[*]}"
  sudo=()
  if [[ $(id -u) != 0 ]]; then command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root"; sudo=(sudo); fi
  { "${sudo[@]}" apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >"$T/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed: $(tail -n 20 "$T/apt.log")"
fi
command -v flock >/dev/null || die "flock (util-linux) not found"
say "s3s-fs, rclone, aws, curl: scripts/testenv/s3s-fs.sh (cached after the first run)"
S3S_FS=$(bash "$REPO_ROOT/scripts/testenv/s3s-fs.sh" 2>"$T/s3s-fs-install.log" | tail -n 1) \
  || die "scripts/testenv/s3s-fs.sh failed: $(tail -n 20 "$T/s3s-fs-install.log")"
[[ -x $S3S_FS ]] || die "scripts/testenv/s3s-fs.sh did not print an executable (got '$S3S_FS')"
for t in rclone aws curl sha256sum cmp; do command -v "$t" >/dev/null || die "$t not found in PATH"; done
RCLONE=$(command -v rclone)
AWS=$(command -v aws)
CURL=$(command -v curl)

# The ceiling needs curl's own SigV4 signing (curl >= 7.75). s3s-fs insists on the
# x-amz-content-sha256 header, which curl < 8.x does not add by itself: it is passed explicitly (and
# curl signs it).
CURL_VERSION=$("$CURL" --version | awk 'NR == 1 { print $2 }')
HAVE_SIGV4=0
if printf '7.75.0\n%s\n' "$CURL_VERSION" | sort -V -C && "$CURL" --help all 2>/dev/null | grep -q -- '--aws-sigv4'; then
  HAVE_SIGV4=1
fi

# ---------------------------------------------------------------------------------------------
# Our binary
# ---------------------------------------------------------------------------------------------
if [[ -n ${GDCLOUD_BIN_DIR:-} ]]; then
  OURS=$GDCLOUD_BIN_DIR/gdcloud-storage
else
  say "building gdcloud-storage (cargo build --release --locked -p gdcloud-storage)"
  (cd "$REPO_ROOT" && cargo build --release --locked -p gdcloud-storage) >"$T/cargo.log" 2>&1 \
    || die "cargo build --release --locked -p gdcloud-storage failed (or use GDCLOUD_BIN_DIR=DIR):
$(tail -n 30 "$T/cargo.log")"
  target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
    || target_dir=$(cd "$REPO_ROOT" && realpath -m "${CARGO_TARGET_DIR:-target}")
  OURS=$target_dir/release/gdcloud-storage
fi
[[ -x $OURS ]] || die "$OURS: not an executable file"
OURS=$(readlink -f "$OURS")
OURS_VERSION=$("$OURS" --version 2>/dev/null | head -n 1 || true)
"$OURS" cp --help >"$T/cp-help.txt" 2>&1 || die "$OURS cp --help failed: $(head -n 5 "$T/cp-help.txt")"
# The defaults the binary documents (shown in the header; the table is for defaults + --ours-args).
help_default() { # FLAG: the [default: X] of FLAG in `cp --help`, or "?"
  awk -v f="$1" '$0 ~ "^ *(-[a-zA-Z], )?" f "[ =]" { if (match($0, /\[default: [^]]*\]/)) { print substr($0, RSTART + 10, RLENGTH - 11); found = 1; exit } }
    END { if (!found) print "?" }' "$T/cp-help.txt"
}
OURS_DEFAULTS="--concurrency $(help_default --concurrency), --part-size-mib $(help_default --part-size-mib)"

# ---------------------------------------------------------------------------------------------
# The source file: random bytes, made once and cached (keyed by size)
# ---------------------------------------------------------------------------------------------
CACHE_ROOT=${BENCH_CACHE:-$HOME/.cache/gdcloud-kit/bench}
CACHE=$CACHE_ROOT/storage-random-${SIZE_MIB}MiB-$SOURCE_VERSION
SRC=$CACHE/data.bin
BUILD_NOTE="from the cache"
mkdir -p "$CACHE_ROOT"
if [[ ! -f $CACHE/complete ]]; then
  exec 9>"$CACHE_ROOT/.storage-random-${SIZE_MIB}MiB-$SOURCE_VERSION.lock"
  flock 9
  if [[ ! -f $CACHE/complete ]]; then
    say "writing the ${SIZE_MIB} MiB random source file into $CACHE (once)"
    b0=$EPOCHREALTIME
    mkdir -p "$CACHE"
    BUILD_TMP=$(mktemp "$CACHE/.data.bin.XXXXXX")
    head -c "$SIZE_BYTES" /dev/urandom >"$BUILD_TMP" || die "writing $BUILD_TMP failed"
    [[ $(stat -c %s "$BUILD_TMP") == "$SIZE_BYTES" ]] || die "$BUILD_TMP: short write"
    sha256sum "$BUILD_TMP" | awk '{ print $1 }' >"$CACHE/sha256"
    md5sum "$BUILD_TMP" | awk '{ print $1 }' >"$CACHE/md5"
    mv "$BUILD_TMP" "$SRC"
    BUILD_TMP=
    BUILD_NOTE="written now, in $(awk -v a="$b0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
    printf '%s %s MiB\nwritten %s from /dev/urandom\n' "$SOURCE_VERSION" "$SIZE_MIB" "$(date -u +%FT%TZ)" >"$CACHE/complete"
  fi
  exec 9>&-
fi
SRC_SHA256=$(cat "$CACHE/sha256")
SRC_MD5=$(cat "$CACHE/md5")
[[ $(stat -c %s "$SRC") == "$SIZE_BYTES" && $SRC_SHA256 =~ ^[0-9a-f]{64}$ && $SRC_MD5 =~ ^[0-9a-f]{32}$ ]] \
  || die "the cached source $CACHE is damaged; delete it to rewrite it"

# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------
DATA=$T/data
mkdir -p "$DATA/$BUCKET"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
for _ in 1 2 3; do
  PORT=$(free_port)
  RUST_LOG=error "$S3S_FS" --host 127.0.0.1 --port "$PORT" --access-key "$AK" --secret-key "$SK" "$DATA" \
    >>"$T/s3s-fs.log" 2>&1 </dev/null &
  SERVER_PID=$!
  up=0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  [[ $up == 1 ]] && break
  stop_server
done
[[ -n $SERVER_PID ]] || die "s3s-fs did not come up: $(tail -n 20 "$T/s3s-fs.log")"
ENDPOINT=http://127.0.0.1:$PORT
log "s3s-fs up on $ENDPOINT (pid $SERVER_PID, data $DATA)"
CLK_TCK=$(getconf CLK_TCK)
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }

# Each tool's environment: its own settings only.
: >"$T/aws-config"
: >"$T/rclone.conf"
mkdir -p "$T/gdcloud-config"
AWS_ENV=(env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK"
  AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE="$T/aws-config"
  AWS_SHARED_CREDENTIALS_FILE="$T/aws-config")
RCLONE_ENV=(env RCLONE_CONFIG="$T/rclone.conf" RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
  RCLONE_CONFIG_BENCH_ENDPOINT="$ENDPOINT" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$AK"
  RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$SK")
OURS_ENV=(env GDCLOUD_CONFIG="$T/gdcloud-config" GDCLOUD_STORAGE_S3_ACCESS_KEY_ID="$AK"
  GDCLOUD_STORAGE_S3_SECRET_ACCESS_KEY="$SK" GDCLOUD_STORAGE_S3_ENDPOINT="$ENDPOINT")
aws_api() { "${AWS_ENV[@]}" "$AWS" --endpoint-url "$ENDPOINT" "$@"; }
CURL_SIGV4=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

# Seed the downloaded object: multipart (aws s3 cp, 8 MiB parts) or one single-part PUT.
if want download; then
  if [[ $SEED == single ]]; then
    say "seeding s3://$BUCKET/$SRC_KEY (${SIZE_MIB} MiB, one PUT: aws s3api put-object)"
    aws_api s3api put-object --bucket "$BUCKET" --key "$SRC_KEY" --body "$SRC" >"$T/seed.log" 2>&1 \
      || die "seeding s3://$BUCKET/$SRC_KEY failed: $(tail -n 20 "$T/seed.log")"
  else
    say "seeding s3://$BUCKET/$SRC_KEY (${SIZE_MIB} MiB, multipart: aws s3 cp)"
    aws_api s3 cp --only-show-errors "$SRC" "s3://$BUCKET/$SRC_KEY" >"$T/seed.log" 2>&1 \
      || die "seeding s3://$BUCKET/$SRC_KEY failed: $(tail -n 20 "$T/seed.log")"
  fi
  aws_api s3api head-object --bucket "$BUCKET" --key "$SRC_KEY" >"$T/seed-head.json" 2>&1 \
    || die "HEAD s3://$BUCKET/$SRC_KEY failed: $(tail -n 20 "$T/seed-head.json")"
  SRC_ETAG=$(python3 - "$T/seed-head.json" "$SIZE_BYTES" "$SRC_MD5" "$SEED" <<'EOF'
import json, re, sys
h = json.load(open(sys.argv[1]))
etag = h.get("ETag", "").strip('"')
if h.get("ContentLength") != int(sys.argv[2]):
    print("size %s, want %s" % (h.get("ContentLength"), sys.argv[2])); sys.exit(1)
if sys.argv[4] == "single" and etag != sys.argv[3]:
    print("ETag %s, want the MD5 %s" % (etag, sys.argv[3])); sys.exit(1)
if sys.argv[4] == "multipart" and not re.fullmatch(r"[0-9a-f]{32}-[0-9]+", etag) and etag != sys.argv[3]:
    print("ETag %s is neither multipart nor the MD5" % etag); sys.exit(1)
print(etag)
EOF
  ) || die "the seeded object is not the source file: $SRC_ETAG"
  cmp -s "$SRC" "$DATA/$BUCKET/$SRC_KEY" || die "the server stored other bytes than the source file"
  case $SRC_ETAG in
    *-*) ETAG_NOTE="stored multipart, ETag $SRC_ETAG (not an MD5 of the bytes: no tool can check it)" ;;
    *) ETAG_NOTE="stored with one PUT, ETag $SRC_ETAG = its MD5 (ours and rclone check the bytes against it)" ;;
  esac
else
  ETAG_NOTE="upload only"
fi

# ---------------------------------------------------------------------------------------------
# Timing and checks
# ---------------------------------------------------------------------------------------------
RESULTS=$T/results.tsv
: >"$RESULTS"

# timed OP TOOL RUN LOGFILE CMD...: sync, then wall time, peak RSS and CPU of CMD, and the server's
# CPU time meanwhile; CMD must exit 0.
timed() {
  local op=$1 tool=$2 run=$3 logf=$4 rc=0 t0 t1 s0 s1 secs rss cpu srv usage
  shift 4
  sync
  s0=$(server_ticks)
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %U %S' -o "$logf.time" "$@" >"$logf" 2>&1 </dev/null || rc=$?
  t1=$EPOCHREALTIME
  s1=$(server_ticks)
  if [[ $rc != 0 ]]; then
    die "$op run $run, $tool failed (exit $rc): $*
$(tail -n 20 "$logf")"
  fi
  usage=$(tail -n 1 "$logf.time")
  [[ $usage =~ ^([0-9]+)\ ([0-9.]+)\ ([0-9.]+)$ ]] \
    || die "$op run $run, $tool: no peak RSS / CPU time from /usr/bin/time: $(cat "$logf.time")"
  rss=${BASH_REMATCH[1]}
  cpu=$(awk -v u="${BASH_REMATCH[2]}" -v s="${BASH_REMATCH[3]}" 'BEGIN { printf "%.2f", u + s }')
  srv=$(awk -v a="$s0" -v b="$s1" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / t }')
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$op" "$tool" "$run" "$secs" "$rss" "$cpu" "$srv" >>"$RESULTS"
  say "$(printf '%-8s run %d/%d  %-6s %8.3f s  CPU %6.2f s  server CPU %6.2f s  %7.1f MiB' "$op" "$run" "$RUNS" \
    "$tool" "$secs" "$cpu" "$srv" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')")"
}

# check_download DIR FILE WHO: DIR holds FILE only, and FILE has the source's bytes.
check_download() {
  local dir=$1 file=$2 who=$3 got listing
  listing=$(cd "$dir" && ls -A)
  [[ $listing == "$(basename "$file")" ]] || die "$who left other files beside the download in $dir: $listing"
  [[ $(stat -c %s "$file") == "$SIZE_BYTES" ]] || die "$who: $file has $(stat -c %s "$file") bytes, want $SIZE_BYTES"
  got=$(sha256sum "$file" | awk '{ print $1 }')
  [[ $got == "$SRC_SHA256" ]] || die "$who: $file has sha256 $got, want $SRC_SHA256"
}

# check_upload KEY WHO: the server's data dir holds KEY with the source's size and bytes.
check_upload() {
  local f=$DATA/$BUCKET/$1 who=$2 size
  [[ -f $f ]] || die "$who: no object $1 in the server's data dir"
  size=$(stat -c %s "$f")
  [[ $size == "$SIZE_BYTES" ]] || die "$who: object $1 has $size bytes on the server's disk, want $SIZE_BYTES"
  cmp -s "$SRC" "$f" || die "$who: object $1 has the right size but other bytes than the source"
}

# delete_object KEY: through the S3 API, then it must be gone from the disk too.
delete_object() {
  aws_api s3api delete-object --bucket "$BUCKET" --key "$1" >"$T/delete.log" 2>&1 \
    || die "deleting s3://$BUCKET/$1 failed: $(tail -n 20 "$T/delete.log")"
  [[ ! -e $DATA/$BUCKET/$1 ]] || die "s3://$BUCKET/$1 is still on the server's disk after DeleteObject"
}

# report OP: the table of one operation.
report() {
  python3 - "$RESULTS" "$1" "$SIZE_MIB" "$HAVE_SIGV4" <<'EOF'
import os, statistics, sys
path, op, size_mib, have_ceiling = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
res = {}
for o, tool, run, secs, rss, cpu, srv in rows:
    if o == op:
        res.setdefault(tool, []).append((float(secs), int(rss) / 1024.0, float(cpu), float(srv)))
med = lambda tool, k: statistics.median(r[k] for r in res[tool])
labels = {
    "ours": "ours (gdcloud-storage cp)",
    "rclone": "rclone copyto",
    "aws": "aws s3 cp",
    "curl": ("server ceiling (curl, 1 GET)" if op == "download" else "reference (curl, 1 PUT)"),
}
print()
print({"download": "download: s3://bench/obj -> local file (%d MiB)" % size_mib,
       "upload": "upload: local file -> s3://bench/objN (%d MiB; deleted after each run)" % size_mib}[op])
print("  %-29s %9s %7s  %-23s %7s %9s %10s" % ("tool", "median s", "MiB/s", "runs s", "CPU s", "srv CPU s", "peak RSS"))
for tool in ("ours", "rclone", "aws", "curl"):
    if tool not in res:
        continue
    r = res[tool]
    t = med(tool, 0)
    print("  %-29s %9.3f %7.0f  %-23s %7.2f %9.2f %6.1f MiB" % (labels[tool], t, size_mib / t,
          " ".join("%.2f" % x[0] for x in r), med(tool, 2), med(tool, 3), max(x[1] for x in r)))
if op == "download" and not have_ceiling:
    print("  %-29s skipped: the installed curl has no --aws-sigv4 (needs curl >= 7.75)" % labels["curl"])
o = med("ours", 0)
rss = max(x[1] for x in res["ours"])
for peer, target in (("rclone", 0.8), ("aws", 0.25)):
    ratio = o / med(peer, 0)
    print("  ratio ours/%-6s %5.2f  target <= %.2f: %s" % (peer, ratio, target, "met" if ratio <= target else "NOT met"))
print("  peak RSS (ours)   %5.1f MiB  target < 64: %s" % (rss, "met" if rss < 64 else "NOT met"))
if "curl" in res:
    print("  ours / %-9s %5.2f  (%s: %.3f s)" % ("curl", o / med("curl", 0), labels["curl"], med("curl", 0)))
print("  CPU ours/rclone   %5.2f  CPU ours/aws %5.2f  (client CPU time, medians)"
      % (med("ours", 2) / med("rclone", 2), med("ours", 2) / med("aws", 2)))
# What the server itself costs bounds every client: say how close to aws-cli's time anyone can get.
aws = med("aws", 0)
if op == "download":
    srv = min(x[3] for r in res.values() for x in r)
    ncpu = os.cpu_count() or 1
    print("  floor: the server used >= %.2f s of CPU per run; on %d CPUs no client finishes under %.3f s = %.2fx aws"
          % (srv, ncpu, srv / ncpu, srv / ncpu / aws))
elif "curl" in res:
    print("  floor: one PUT stream (server hashes it serially) takes %.3f s = %.2fx aws; multipart adds the server's serial CompleteMultipartUpload"
          % (med("curl", 0), med("curl", 0) / aws))
sys.stdout.flush()
EOF
}

done_with() { if [[ $KEEP == 0 || $2 != "$RUNS" ]]; then rm -rf "$1"; fi; } # PATH RUN

# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------
START=$EPOCHREALTIME
cpu=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
os_name=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
echo "gdcloud-storage cp vs rclone / aws s3 cp: $RUNS runs per tool per operation, alternating ours, rclone, aws, curl, ours ..."
echo "object: ${SIZE_MIB} MiB of random bytes, $ETAG_NOTE"
echo "        source $BUILD_NOTE: $SRC"
echo "server: s3s-fs $("$S3S_FS" --version 2>/dev/null | awk '{ print $NF }') on $ENDPOINT (loopback, plain HTTP), data dir in $T"
echo "ours:  $OURS ($OURS_VERSION); cp defaults $OURS_DEFAULTS; extra args: ${OURS_ARGS[*]:-(none)}"
echo "peers: $("$RCLONE" version 2>/dev/null | head -n 1) (defaults), $("$AWS" --version 2>&1 | head -n 1) (defaults), curl $CURL_VERSION"
echo "machine: nproc=$(nproc), CPU: ${cpu:-unknown}, ${os_name:-unknown OS}, kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "wall time: bash \$EPOCHREALTIME around the command; CPU (user+sys) and peak RSS: /usr/bin/time; server CPU: /proc; sync before each run"
# CPUs busy with other work just before the first run (1 s sample of /proc/stat, after our own
# writes, e.g. the seeding's, are flushed).
sync
cpu_ticks() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
read -r busy0 idle0 < <(cpu_ticks); sleep 1; read -r busy1 idle1 < <(cpu_ticks)
busy=$(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) -v n="$(nproc)" \
  'BEGIN { printf "%.2f", (b + i > 0) ? n * b / (b + i) : 0 }')
read -r load1 _ </proc/loadavg
echo "before the first run: $busy of $(nproc) CPUs busy with other work (1 s sample), load average $load1"
if awk -v b="$busy" 'BEGIN { exit !(b > 0.2) }'; then
  echo "WARNING: other work is running on this machine; it competes for the CPUs and disk, timings will be noisy"
fi

# ---------------------------------------------------------------------------------------------
# download: s3://bench/obj -> a fresh directory per run and tool
# ---------------------------------------------------------------------------------------------
if want download; then
  mkdir -p "$T/download"
  for ((i = 1; i <= RUNS; i++)); do
    for tool in ours rclone aws curl; do
      d=$T/download/$tool-$i
      f=$d/obj
      mkdir -p "$d"
      case $tool in
        ours) timed download ours "$i" "$d.log" \
                "${OURS_ENV[@]}" "$OURS" cp --quiet "${OURS_ARGS[@]}" "s3://$BUCKET/$SRC_KEY" "$f" ;;
        rclone) timed download rclone "$i" "$d.log" \
                "${RCLONE_ENV[@]}" "$RCLONE" copyto "bench:$BUCKET/$SRC_KEY" "$f" ;;
        aws) timed download aws "$i" "$d.log" \
                "${AWS_ENV[@]}" "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "s3://$BUCKET/$SRC_KEY" "$f" ;;
        curl) [[ $HAVE_SIGV4 == 1 ]] || { rmdir "$d"; continue; }
              timed download curl "$i" "$d.log" \
                "$CURL" -sS -f "${CURL_SIGV4[@]}" -r "0-$((SIZE_BYTES - 1))" "$ENDPOINT/$BUCKET/$SRC_KEY" -o "$f" ;;
      esac
      check_download "$d" "$f" "$tool (download run $i)"
      done_with "$d" "$i"
    done
  done
  report download
fi

# ---------------------------------------------------------------------------------------------
# upload: the source file -> a key that does not exist yet (deleted after each run)
# ---------------------------------------------------------------------------------------------
if want upload; then
  mkdir -p "$T/upload"
  for ((i = 1; i <= RUNS; i++)); do
    for tool in ours rclone aws curl; do
      l=$T/upload/$tool-$i.log
      case $tool in
        ours) key=obj3; timed upload ours "$i" "$l" \
                "${OURS_ENV[@]}" "$OURS" cp --quiet "${OURS_ARGS[@]}" "$SRC" "s3://$BUCKET/$key" ;;
        rclone) key=obj2; timed upload rclone "$i" "$l" \
                "${RCLONE_ENV[@]}" "$RCLONE" copyto "$SRC" "bench:$BUCKET/$key" ;;
        aws) key=obj4; timed upload aws "$i" "$l" \
                "${AWS_ENV[@]}" "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$SRC" "s3://$BUCKET/$key" ;;
        curl) [[ $HAVE_SIGV4 == 1 ]] || continue
              key=obj5; timed upload curl "$i" "$l" \
                "$CURL" -sS -f "${CURL_SIGV4[@]}" -T "$SRC" "$ENDPOINT/$BUCKET/$key" ;;
      esac
      check_upload "$key" "$tool (upload run $i)"
      if [[ $KEEP == 0 || $i != "$RUNS" ]]; then delete_object "$key"; fi
    done
  done
  report upload
fi

# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------
END=$EPOCHREALTIME
echo
echo "summary (median wall time; peak RSS = max over runs; benchmark $(awk -v a="$START" -v b="$END" 'BEGIN { printf "%.0f", b - a }') s, whole script $(awk -v a="$SCRIPT_START" -v b="$END" 'BEGIN { printf "%.0f", b - a }') s with source ${BUILD_NOTE})"
python3 - "$RESULTS" "${ONLY[@]}" <<'EOF'
import statistics, sys
path, ops = sys.argv[1], sys.argv[2:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
print("  %-9s %8s %8s %8s %8s %11s %9s %9s  %s" % ("op", "ours s", "rclone s", "aws s", "curl s",
      "ours/rclone", "ours/aws", "RSS ours", "result"))
lines = []
for op in ("download", "upload"):
    if op not in ops:
        continue
    t = {tool: [float(r[3]) for r in rows if r[0] == op and r[1] == tool] for tool in ("ours", "rclone", "aws", "curl")}
    m = {tool: statistics.median(v) if v else float("nan") for tool, v in t.items()}
    rss = max(int(r[4]) for r in rows if r[0] == op and r[1] == "ours") / 1024.0
    rr, ra = m["ours"] / m["rclone"], m["ours"] / m["aws"]
    ok_r, ok_a, ok_m = rr <= 0.8, ra <= 0.25, rss < 64
    res = "MET" if ok_r and ok_a and ok_m else "NOT MET"
    print("  %-9s %8.3f %8.3f %8.3f %8s %11.2f %9.2f %5.1f MiB  %s" % (op, m["ours"], m["rclone"], m["aws"],
          "%.3f" % m["curl"] if t["curl"] else "-", rr, ra, rss, res))
    lines.append("%s: %s (time %.2fx rclone, target <= 0.80x: %s; %.2fx aws-cli, target <= 0.25x: %s; "
                 "peak RSS %.1f MiB, target < 64 MiB: %s)" % (op, res, rr, "met" if ok_r else "not met",
                 ra, "met" if ok_a else "not met", rss, "met" if ok_m else "not met"))
print()
for l in lines:
    print(l)
EOF
