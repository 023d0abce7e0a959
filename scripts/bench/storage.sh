#!/usr/bin/env bash
# Benchmark: gdcloud-storage cp against rclone and the aws CLI, on one object of random bytes
# (1 GiB by default) held by a local S3 server over loopback: Garage 2.5 (default; one node,
# compression off, scripts/testenv/garage.sh) or s3s-fs (--server s3s-fs, scripts/testenv/s3s-fs.sh):
#   download  s3://bench/obj -> file   ours: gdcloud-storage cp --quiet s3://bench/obj FILE
#                                      peers: rclone copyto bench:bench/obj FILE
#                                             aws s3 cp s3://bench/obj FILE
#                                      floor: one plain ranged GET stream of the whole object (curl)
#                                      floor: the same bytes written durably (dd conv=fdatasync)
#   upload    file -> s3://bench/objN  ours: gdcloud-storage cp --quiet FILE s3://bench/obj3
#                                      peers: rclone copyto FILE bench:bench/obj2
#                                             aws s3 cp FILE s3://bench/obj4
#                                      floor: one plain single-part PUT stream (curl) -> obj5
# Runs alternate (ours, rclone, aws, curl, ours, rclone, ...). Every upload sends fresh random bytes
# (Garage de-duplicates blocks it already holds, which would flatter later runs). Prints per
# operation the median wall time of each tool, the ratios ours/rclone and ours/aws, each tool's
# client CPU time and peak RSS, the server's CPU time, and the floors: the one-stream GET/PUT (curl)
# and the server's CPU per run over the CPUs available; then the targets of issue 12 (download
# <= 0.75x rclone, <= 0.5x aws-cli, within 1.3x of the CPU floor; upload <= 0.55x rclone, within
# 1.1x of one curl PUT; peak RSS < 64 MiB), each met or not.
# Downloads, durable: ours makes the file durable (fdatasync) before it takes its name; rclone, the
# aws CLI and curl leave it in the page cache. So after every download run `sync -d FILE` is timed
# too, and the report adds each tool's time until its file is durable (run + that sync), the
# durable-write floor (dd of the same bytes with conv=fdatasync: what this disk needs to make them
# durable) and the machine's CPU floor (server + our client CPU over the CPUs), and judges the
# download targets a second time on like terms: against the peers' durable times and the higher
# of those floors.
#
# Usage: scripts/bench/storage.sh [--runs N] [--size-mib N] [--only download|upload] [--ours-args ARGS]
#                                [--server garage|s3s-fs] [--seed multipart|single] [--keep] [-q] [-v]
#   --runs N          timed runs per tool per operation (default: $RUNS or 3)
#   --size-mib N      object size in MiB (default 1024)
#   --server S        the S3 server: garage (default) or s3s-fs
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
#      TMPDIR           where the temp dir goes (default /tmp); Garage keeps the blocks of deleted
#                       objects for 10 minutes, so it needs about (3 + 4 x runs) x the object size
# Tools: the server, rclone, awscli and curl come from scripts/testenv/{garage,s3s-fs}.sh (cached; a
# cold cache compiles the server: Garage ~13 min, s3s-fs ~4 min); /usr/bin/time (apt `time`) and
# python3 are apt-installed if missing.
#
# Wall time is taken by bash ($EPOCHREALTIME) around `/usr/bin/time -f '%M %U %S' CMD` (peak RSS and
# CPU time of CMD); the server's CPU time during the run comes from /proc/PID/stat. `sync` runs
# (untimed) before every timed command, so one run's writeback does not land in the next. No warmup:
# the source file and the stored object are in the page cache for every tool. The header says how
# busy the CPUs were with other work just before the first run.
# The downloaded object is stored once, before the first run, by the aws CLI (see --seed).
# Every timed command must exit 0 and its result is checked (untimed) before the next run: each
# downloaded file has the source's sha256 (and nothing else is left in its directory); each upload
# left an object of exactly the uploaded file's bytes (read back with curl), and is then deleted
# through the S3 API. The temp dir, and the server's data dir in it, is removed at the end.
# Every tool runs with only its own settings in the environment, and with AWS_CA_BUNDLE,
# SSL_CERT_FILE, SSL_CERT_DIR, CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE unset (plain HTTP on 127.0.0.1);
# the aws CLI and rclone read no user config file (empty ones in the temp dir), ours an empty
# GDCLOUD_CONFIG dir, so all three run with their default transfer settings.
set -euo pipefail
export LC_ALL=C   # '.' in $EPOCHREALTIME and in printf/awk numbers
SCRIPT_START=$EPOCHREALTIME

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_NAME=storage
USAGE_END='^#      TMPDIR'
# say, log, die, usage, want, the temp dir and cleanup, tools, our binary, free_port, timed, header lines
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$SCRIPT")/lib.sh"
# Bump when the source file recipe changes: the cache is keyed by it (and by the size).
SOURCE_VERSION=v1
BUCKET=bench
SRC_KEY=obj
# Keys in Garage's format (GK + 24 hex digits, a 64-digit secret); s3s-fs takes any.
AK=GK$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
SK=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
RUNS=${RUNS:-3}
SIZE_MIB=1024
ONLY=()
OURS_ARGS=()
SEED=multipart
SERVER=garage
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
    --server) [[ $# -ge 2 ]] || die "--server needs a value"; SERVER=$2; shift 2 ;;
    --server=*) SERVER=${1#--server=}; shift ;;
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
[[ $SERVER == garage || $SERVER == s3s-fs ]] || die "--server takes garage or s3s-fs (got '$SERVER')"
if [[ ${#ONLY[@]} -eq 0 ]]; then ONLY=(download upload); fi
for op in "${ONLY[@]}"; do
  case $op in download|upload) ;; *) die "--only takes download or upload (got '$op')" ;; esac
done

# No CA overrides for any tool (this machine may export them globally; everything here is plain
# HTTP on loopback, and a bundle path can change what a tool loads at start-up).
unset AWS_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE

# ---------------------------------------------------------------------------------------------
# Temp dir, cleanup (the server is killed whatever happens)
# ---------------------------------------------------------------------------------------------
bench_tmpdir
SERVER_PID=
stop_server() { # stop the server (TERM, KILL after 5 s) and reap it
  [[ -n $SERVER_PID ]] || return 0
  stop_process "$SERVER_PID"
  SERVER_PID=
}
CLEANUP_HOOKS+=(stop_server)

# Room for the stored object, one download, the fresh upload source, and every uploaded object
# (Garage frees deleted blocks only after 10 minutes), plus slack.
avail_kib=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
if [[ $SERVER == garage ]]; then
  need_kib=$(((3 + 4 * RUNS) * SIZE_BYTES / 1024 + 262144))
else
  need_kib=$((4 * SIZE_BYTES / 1024 + 262144))
fi
[[ $avail_kib -ge $need_kib ]] \
  || die "$T has $((avail_kib / 1024)) MiB free; the benchmark needs about $((need_kib / 1024)) MiB (set TMPDIR)"

# ---------------------------------------------------------------------------------------------
# Tools: s3s-fs and the peers from the test environment script; time and python3 from apt
# ---------------------------------------------------------------------------------------------
install_missing /usr/bin/time:time python3:python3
command -v flock >/dev/null || die "flock (util-linux) not found"
say "$SERVER, rclone, aws, curl: scripts/testenv/$SERVER.sh (cached after the first run)"
SERVER_BIN=$(bash "$REPO_ROOT/scripts/testenv/$SERVER.sh" 2>"$T/$SERVER-install.log" | tail -n 1) \
  || die "scripts/testenv/$SERVER.sh failed: $(tail -n 20 "$T/$SERVER-install.log")"
[[ -x $SERVER_BIN ]] || die "scripts/testenv/$SERVER.sh did not print an executable (got '$SERVER_BIN')"
for t in rclone aws curl sha256sum cmp; do command -v "$t" >/dev/null || die "$t not found in PATH"; done
RCLONE=$(command -v rclone)
AWS=$(command -v aws)
CURL=$(command -v curl)

# The floors (and the checks of uploads) need curl's own SigV4 signing (curl >= 7.75). The servers
# insist on the x-amz-content-sha256 header, which curl < 8.x does not add by itself: it is passed
# explicitly (and curl signs it).
CURL_VERSION=$("$CURL" --version | awk 'NR == 1 { print $2 }')
HAVE_SIGV4=0
if printf '7.75.0\n%s\n' "$CURL_VERSION" | sort -V -C && "$CURL" --help all 2>/dev/null | grep -q -- '--aws-sigv4'; then
  HAVE_SIGV4=1
fi

# ---------------------------------------------------------------------------------------------
# Our binary
# ---------------------------------------------------------------------------------------------
find_ours gdcloud-storage
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
start_s3sfs() { # PORT
  mkdir -p "$DATA/$BUCKET"
  RUST_LOG=error "$SERVER_BIN" --host 127.0.0.1 --port "$1" --access-key "$AK" --secret-key "$SK" "$DATA" \
    >>"$T/server.log" 2>&1 </dev/null &
  SERVER_PID=$!
}
start_garage() { # PORT: one node, compression off; its key and bucket are made at start
  local rpc
  rpc=$(free_port)
  mkdir -p "$DATA/meta" "$DATA/blocks"
  printf '%s\n' "metadata_dir = \"$DATA/meta\"" "data_dir = \"$DATA/blocks\"" 'db_engine = "lmdb"' \
    'replication_factor = 1' 'compression_level = "none"' \
    "rpc_bind_addr = \"127.0.0.1:$rpc\"" "rpc_public_addr = \"127.0.0.1:$rpc\"" \
    "rpc_secret = \"$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')\"" '' '[s3_api]' \
    "api_bind_addr = \"127.0.0.1:$1\"" 's3_region = "us-east-1"' >"$T/garage.toml"
  RUST_LOG=warn GARAGE_DEFAULT_ACCESS_KEY="$AK" GARAGE_DEFAULT_SECRET_KEY="$SK" GARAGE_DEFAULT_BUCKET="$BUCKET" \
    "$SERVER_BIN" -c "$T/garage.toml" server --single-node --default-bucket >>"$T/server.log" 2>&1 </dev/null &
  SERVER_PID=$!
}
for _ in 1 2 3; do
  PORT=$(free_port)
  if [[ $SERVER == garage ]]; then start_garage "$PORT"; else start_s3sfs "$PORT"; fi
  up=0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  [[ $up == 1 ]] && break
  stop_server
done
[[ -n $SERVER_PID ]] || die "$SERVER did not come up: $(tail -n 20 "$T/server.log")"
ENDPOINT=http://127.0.0.1:$PORT
log "$SERVER up on $ENDPOINT (pid $SERVER_PID, data $DATA)"
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
[[ $HAVE_SIGV4 == 1 ]] || die "curl $CURL_VERSION has no --aws-sigv4 (needs curl >= 7.75): it reads objects back and sets the floors"
object_sha256() { # KEY: the sha256 of the object as the server serves it
  "$CURL" -sS -f "${CURL_SIGV4[@]}" "$ENDPOINT/$BUCKET/$1" | sha256sum | awk '{ print $1 }'
}
# Ready: a signed request for the bucket succeeds (Garage makes its bucket just after it listens).
for ((i = 0; i < 100; i++)); do
  "$CURL" -s -f -o /dev/null "${CURL_SIGV4[@]}" -I "$ENDPOINT/$BUCKET" && break
  sleep 0.1
done

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
  [[ $(object_sha256 "$SRC_KEY") == "$SRC_SHA256" ]] || die "the server stored other bytes than the source file"
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
# timed (lib.sh) prints its progress lines in this format, with the server's CPU time.
TIMED_FORMAT='%-8s run %d/%d  %-6s %8.3f s  CPU %6.2f s  server CPU %6.2f s  %7.1f MiB'
TIMED_SERVER_TICKS=server_ticks

# check_download DIR FILE WHO: DIR holds FILE only, and FILE has the source's bytes.
check_download() {
  local dir=$1 file=$2 who=$3 got listing
  listing=$(cd "$dir" && ls -A)
  [[ $listing == "$(basename "$file")" ]] || die "$who left other files beside the download in $dir: $listing"
  [[ $(stat -c %s "$file") == "$SIZE_BYTES" ]] || die "$who: $file has $(stat -c %s "$file") bytes, want $SIZE_BYTES"
  got=$(sha256sum "$file" | awk '{ print $1 }')
  [[ $got == "$SRC_SHA256" ]] || die "$who: $file has sha256 $got, want $SRC_SHA256"
}

# check_upload KEY WHO: the server serves KEY with the uploaded file's bytes.
check_upload() {
  local got
  got=$(object_sha256 "$1")
  [[ $got == "$UP_SHA256" ]] || die "$2: object $1 has sha256 $got, want $UP_SHA256 (the uploaded file's)"
}

# delete_object KEY: through the S3 API; then a GET must find nothing.
delete_object() {
  aws_api s3api delete-object --bucket "$BUCKET" --key "$1" >"$T/delete.log" 2>&1 \
    || die "deleting s3://$BUCKET/$1 failed: $(tail -n 20 "$T/delete.log")"
  ! "$CURL" -s -f -o /dev/null "${CURL_SIGV4[@]}" "$ENDPOINT/$BUCKET/$1" \
    || die "s3://$BUCKET/$1 is still served after DeleteObject"
}

# fresh_upload_source: new random bytes for the next upload (no block the server already holds).
UP_SRC=$T/upload-source.bin
fresh_upload_source() {
  head -c "$SIZE_BYTES" /dev/urandom >"$UP_SRC" || die "writing $UP_SRC failed"
  UP_SHA256=$(sha256sum "$UP_SRC" | awk '{ print $1 }')
}

# timed_sync FILE TOOL RUN: how long `sync -d FILE` takes right after TOOL wrote FILE (what making
# its bytes durable still costs); a row of op download-sync.
timed_sync() {
  local t0 t1
  t0=$EPOCHREALTIME
  sync -d "$1" || die "sync -d $1 failed"
  t1=$EPOCHREALTIME
  printf 'download-sync\t%s\t%s\t%s\t0\t0\t0\n' "$2" "$3" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >>"$RESULTS"
}

# report OP: the table of one operation, its floors and the targets of issue 12.
report() {
  python3 - "$RESULTS" "$1" "$SIZE_MIB" <<'EOF'
import os, statistics, sys
path, op, size_mib = sys.argv[1], sys.argv[2], float(sys.argv[3])
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
    "curl": ("floor: curl, one GET stream" if op == "download" else "floor: curl, one PUT stream"),
    "disk": "floor: dd, durable write",
}
print()
print({"download": "download: s3://bench/obj -> local file (%d MiB)" % size_mib,
       "upload": "upload: fresh local file -> s3://bench/objN (%d MiB; deleted after each run)" % size_mib}[op])
print("  %-29s %9s %7s  %-23s %9s %9s %10s" % ("tool", "median s", "MiB/s", "runs s", "client CPU", "srv CPU s", "peak RSS"))
for tool in ("ours", "rclone", "aws", "curl", "disk"):
    if tool not in res:
        continue
    r = res[tool]
    t = med(tool, 0)
    print("  %-29s %9.3f %7.0f  %-23s %9.2fs %9.2f %6.1f MiB" % (labels[tool], t, size_mib / t,
          " ".join("%.2f" % x[0] for x in r), med(tool, 2), med(tool, 3), max(x[1] for x in r)))
o = med("ours", 0)
ncpu = os.cpu_count() or 1
srv = min(x[3] for t, r in res.items() if t != "disk" for x in r)
print("  floors: one stream (curl) %.3f s; server CPU >= %.2f s per run (%.2f s per GiB), over %d CPUs: %.3f s"
      % (med("curl", 0), srv, srv * 1024 / size_mib, ncpu, srv / ncpu))
if op == "download":
    syncs = {}
    for o2, tool, run, secs, *_ in rows:
        if o2 == "download-sync":
            syncs.setdefault(tool, {})[run] = float(secs)
    durable = {t: statistics.median(float(r[3]) + syncs[t][r[2]] for r in rows if r[0] == op and r[1] == t)
               for t in ("ours", "rclone", "aws", "curl") if t in res}
    print("  until durable (the run, then `sync -d FILE`): " + ", ".join("%s %.3f s" % (t, d) for t, d in durable.items())
          + "; ours/rclone %.2f, ours/aws %.2f" % (durable["ours"] / durable["rclone"], durable["ours"] / durable["aws"]))
    machine = (srv + med("ours", 2)) / ncpu
    print("  more floors: durable write (dd conv=fdatasync) %.3f s; server + our client CPU over %d CPUs %.3f s"
          % (med("disk", 0), ncpu, machine))
print("  ratios: ours/rclone %.2f, ours/aws %.2f, ours/curl %.2f, ours/CPU floor %.2f; client CPU ours/rclone %.2f, ours/aws %.2f"
      % (o / med("rclone", 0), o / med("aws", 0), o / med("curl", 0), o / (srv / ncpu),
         med("ours", 2) / med("rclone", 2), med("ours", 2) / med("aws", 2)))
sys.stdout.flush()
EOF
}

done_with() { if [[ $KEEP == 0 || $2 != "$RUNS" ]]; then rm -rf "$1"; fi; } # PATH RUN

# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------
START=$EPOCHREALTIME
echo "gdcloud-storage cp vs rclone / aws s3 cp: $RUNS runs per tool per operation, alternating ours, rclone, aws, curl, ours ..."
echo "object: ${SIZE_MIB} MiB of random bytes, $ETAG_NOTE"
echo "        source $BUILD_NOTE: $SRC"
echo "server: $SERVER $("$SERVER_BIN" --version 2>/dev/null | head -n 1 | awk '{ print $2 }') on $ENDPOINT (loopback, plain HTTP$([[ $SERVER == garage ]] && echo ", one node, compression off")), data dir in $T"
echo "ours:  $OURS ($OURS_VERSION); cp defaults $OURS_DEFAULTS; extra args: ${OURS_ARGS[*]:-(none)}"
echo "peers: $("$RCLONE" version 2>/dev/null | head -n 1) (defaults), $("$AWS" --version 2>&1 | head -n 1) (defaults), curl $CURL_VERSION"
echo "machine: $(machine_info), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "wall time: bash \$EPOCHREALTIME around the command; CPU (user+sys) and peak RSS: /usr/bin/time; server CPU: /proc; sync before each run"
# CPUs busy with other work just before the first run (1 s sample of /proc/stat, after our own
# writes, e.g. the seeding's, are flushed).
report_busy

# ---------------------------------------------------------------------------------------------
# download: s3://bench/obj -> a fresh directory per run and tool
# ---------------------------------------------------------------------------------------------
if want download; then
  mkdir -p "$T/download"
  for ((i = 1; i <= RUNS; i++)); do
    for tool in ours rclone aws curl disk; do
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
        curl) timed download curl "$i" "$d.log" \
                "$CURL" -sS -f "${CURL_SIGV4[@]}" -r "0-$((SIZE_BYTES - 1))" "$ENDPOINT/$BUCKET/$SRC_KEY" -o "$f" ;;
        disk) timed download disk "$i" "$d.log" dd if="$SRC" of="$f" bs=8M conv=fdatasync status=none ;;
      esac
      timed_sync "$f" "$tool" "$i"
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
      fresh_upload_source
      case $tool in
        ours) key=obj3; timed upload ours "$i" "$l" \
                "${OURS_ENV[@]}" "$OURS" cp --quiet "${OURS_ARGS[@]}" "$UP_SRC" "s3://$BUCKET/$key" ;;
        rclone) key=obj2; timed upload rclone "$i" "$l" \
                "${RCLONE_ENV[@]}" "$RCLONE" copyto "$UP_SRC" "bench:$BUCKET/$key" ;;
        aws) key=obj4; timed upload aws "$i" "$l" \
                "${AWS_ENV[@]}" "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$UP_SRC" "s3://$BUCKET/$key" ;;
        curl) key=obj5; timed upload curl "$i" "$l" \
                "$CURL" -sS -f "${CURL_SIGV4[@]}" -T "$UP_SRC" "$ENDPOINT/$BUCKET/$key" ;;
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
import os, statistics, sys
path, ops = sys.argv[1], sys.argv[2:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
ncpu = os.cpu_count() or 1
print("  %-9s %8s %8s %8s %8s %11s %9s %9s" % ("op", "ours s", "rclone s", "aws s", "curl s",
      "ours/rclone", "ours/aws", "RSS ours"))
lines = []
for op in ("download", "upload"):
    if op not in ops:
        continue
    t = {tool: [float(r[3]) for r in rows if r[0] == op and r[1] == tool] for tool in ("ours", "rclone", "aws", "curl", "disk")}
    m = {tool: statistics.median(v) if v else float("nan") for tool, v in t.items()}
    rss = max(int(r[4]) for r in rows if r[0] == op and r[1] == "ours") / 1024.0
    srv = min(float(r[6]) for r in rows if r[0] == op and r[1] != "disk")
    rr, ra, rc = m["ours"] / m["rclone"], m["ours"] / m["aws"], m["ours"] / m["curl"]
    print("  %-9s %8.3f %8.3f %8.3f %8.3f %11.2f %9.2f %5.1f MiB" % (op, m["ours"], m["rclone"], m["aws"],
          m["curl"], rr, ra, rss))
    if op == "download":
        floor = srv / ncpu
        checks = [("%.2fx rclone" % rr, "<= 0.75x", rr <= 0.75), ("%.2fx aws-cli" % ra, "<= 0.5x", ra <= 0.5),
                  ("%.2fx the CPU floor (%.3f s)" % (m["ours"] / floor, floor), "<= 1.3x", m["ours"] / floor <= 1.3)]
        # The same targets on like terms: every tool's file durable, and the higher of the floors
        # that bind ours (the disk's durable write; server and client on the same CPUs).
        sync = {}
        for r in rows:
            if r[0] == "download-sync":
                sync[(r[1], r[2])] = float(r[3])
        dur = {tool: statistics.median(float(r[3]) + sync[(tool, r[2])] for r in rows if r[0] == op and r[1] == tool)
               for tool in ("ours", "rclone", "aws")}
        cpu_ours = statistics.median(float(r[5]) for r in rows if r[0] == op and r[1] == "ours")
        hard = max(m["disk"], (srv + cpu_ours) / ncpu)
        dr, da = dur["ours"] / dur["rclone"], dur["ours"] / dur["aws"]
        durable_checks = [("%.2fx rclone + sync" % dr, "<= 0.75x", dr <= 0.75),
                          ("%.2fx aws-cli + sync" % da, "<= 0.5x", da <= 0.5),
                          ("%.2fx the higher floor (%.3f s)" % (dur["ours"] / hard, hard), "<= 1.3x",
                           dur["ours"] / hard <= 1.3)]
    else:
        checks = [("%.2fx rclone" % rr, "<= 0.55x", rr <= 0.55),
                  ("%.2fx one curl PUT (%.3f s)" % (rc, m["curl"]), "<= 1.1x", rc <= 1.1)]
    checks.append(("peak RSS %.1f MiB" % rss, "< 64 MiB", rss < 64))
    res = "MET" if all(c[2] for c in checks) else "NOT MET"
    lines.append("%s: %s (%s)" % (op, res, "; ".join("%s, target %s: %s" % (a, b, "met" if c else "not met")
                                                        for a, b, c in checks)))
    if op == "download":
        res = "MET" if all(c[2] for c in durable_checks) else "NOT MET"
        lines.append("download, every file durable: %s (%s)" % (res, "; ".join(
            "%s, target %s: %s" % (a, b, "met" if c else "not met") for a, b, c in durable_checks)))
print()
for l in lines:
    print(l)
EOF
