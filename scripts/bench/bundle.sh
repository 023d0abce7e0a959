#!/usr/bin/env bash
# Benchmark: load a whole signed bundle (one OCI layout, many `project/repo:tag` images with their
# cosign `.sig` tags) into an empty registry.
#   ours   gdcloud-artifacts load BUNDLE 127.0.0.1:PORT --concurrency C
#   peer   skopeo copy --all --preserve-digests oci:BUNDLE:REF docker://127.0.0.1:PORT/REF, once per
#          ref (signature refs included), C at a time through `xargs -P C` (the best scripted peer:
#          skopeo has no OCI-layout bundle source for `sync`)
#   rerun  ours again on the registry it just filled: everything is present, nothing to send
# Every timed load goes into a FRESH, EMPTY Distribution registry (plain HTTP, random port, own
# temp dir), started before and stopped after; runs alternate ours (+ rerun), peer, ours, peer ...
# After every load, untimed, the registry must serve every ref at the bundle's digest, and every
# manifest, platform manifest and blob of the bundle (HEAD, digest and size), so a fast wrong load
# cannot win.
# Targets (issue 11): load <= 0.5x the peer's time; a rerun that finds everything present <= 2 s
# per 1000 refs; peak RSS of ours < 128 MiB. Printed: median wall times, the ratio, seconds per
# 1000 refs, peak RSS of ours and skopeo's per-process peak (the largest single skopeo process:
# /usr/bin/time around xargs reports the max over its children), and MET / NOT MET per target.
#
# The bundle: scripts/bench/make-bundle.py, generated once per benchmark with fresh random bytes:
# N images of 3-5 gzip layers (layers 64 KiB-2 MiB by default, 2-3 shared base layers per
# platform), 10% of them linux/amd64+linux/arm64 indexes, each with its cosign signature ref.
#
# Usage: scripts/bench/bundle.sh [--images N] [--concurrency C] [--runs R] [--min-layer SIZE]
#                                [--max-layer SIZE] [--keep] [-q] [-v]
#   --images N        images in the bundle (default 200; refs = 2N with the signatures)
#   --concurrency C   ours --concurrency C, peer xargs -P C (default 4)
#   --runs R          timed runs per tool (default: $RUNS or 1)
#   --min-layer SIZE, --max-layer SIZE   layer sizes for make-bundle.py (default 64K, 2M)
#   --keep            keep the temp dir (bundle, registry storage, logs) and print its path
#   -q, --quiet       no per-run progress lines on stderr
#   -v, --verbose     also setup steps on stderr
# Env: GDCLOUD_BIN_DIR  directory holding gdcloud-artifacts (otherwise it is built with
#                       `cargo build --release --locked -p gdcloud-artifacts`, honouring CARGO_TARGET_DIR)
#      RUNS             default for --runs
#      TMPDIR           where the temp dir goes (default /tmp); it needs about 3x the bundle's size
# Installs missing tools with apt-get (runs `apt-get update` first only if something is missing):
# docker-registry, skopeo, time (/usr/bin/time), python3, openssl.
# When the binary has no `load` subcommand, the peer half still runs and is reported, and the
# script ends with an error saying so (exit 1).
set -euo pipefail
export LC_ALL=C   # '.' in $EPOCHREALTIME and in printf/awk numbers
SCRIPT_START=$EPOCHREALTIME

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_NAME=bundle
USAGE_END='^# docker-registry, skopeo'
# say, log, die, usage, the temp dir and cleanup, tools, our binary, registries, timed, header lines
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$SCRIPT")/lib.sh"

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
RUNS=${RUNS:-1}
IMAGES=200
CONCURRENCY=4
LAYER_ARGS=()
need() { [[ $1 -ge 2 ]] || die "$2 needs a value"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --images) need $# "$1"; IMAGES=$2; shift 2 ;;
    --images=*) IMAGES=${1#*=}; shift ;;
    --concurrency) need $# "$1"; CONCURRENCY=$2; shift 2 ;;
    --concurrency=*) CONCURRENCY=${1#*=}; shift ;;
    --runs) need $# "$1"; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#*=}; shift ;;
    --min-layer|--max-layer) need $# "$1"; LAYER_ARGS+=("$1" "$2"); shift 2 ;;
    --min-layer=*|--max-layer=*) LAYER_ARGS+=("$1"); shift ;;
    --keep) KEEP=1; shift ;;
    -q|--quiet) PROGRESS=0; shift ;;
    -v|--verbose) BENCH_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "--runs/RUNS must be an integer >= 1 (got '$RUNS')"
[[ $IMAGES =~ ^[0-9]+$ && $IMAGES -ge 1 ]] || die "--images must be an integer >= 1 (got '$IMAGES')"
[[ $CONCURRENCY =~ ^[0-9]+$ && $CONCURRENCY -ge 1 ]] || die "--concurrency must be an integer >= 1 (got '$CONCURRENCY')"

# ---------------------------------------------------------------------------------------------
# Temp dir, cleanup (registries are stopped whatever happens)
# ---------------------------------------------------------------------------------------------
bench_tmpdir

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing (apt-get update only then)
# ---------------------------------------------------------------------------------------------
install_missing docker-registry:docker-registry skopeo:skopeo /usr/bin/time:time python3:python3 openssl:openssl
set_skopeo

# ---------------------------------------------------------------------------------------------
# Our binary
# ---------------------------------------------------------------------------------------------
find_ours gdcloud-artifacts
# Our binary reads no user configuration here (no default registry, no credentials of the user's).
export GDCLOUD_CONFIG=$T/gdcloud-config
mkdir -p "$GDCLOUD_CONFIG"
HAVE_LOAD=1
"$OURS" load --help >"$T/load-help.log" 2>&1 || HAVE_LOAD=0
NO_LOAD="$OURS has no \`load\` subcommand (\`gdcloud-artifacts load --help\`: $(head -n 1 "$T/load-help.log")); build one that has it (issue 11) or point GDCLOUD_BIN_DIR at it"
if [[ $HAVE_LOAD == 0 ]]; then
  printf 'bundle bench: WARNING: %s. Only the peer half runs.\n' "$NO_LOAD" >&2
fi

# ---------------------------------------------------------------------------------------------
# The bundle, generated once (fresh random bytes) and described for the checks
# ---------------------------------------------------------------------------------------------
BUNDLE=$T/bundle
say "generating the bundle: $IMAGES images (make-bundle.py)"
g0=$EPOCHREALTIME
python3 "$SCRIPT_DIR/make-bundle.py" "$BUNDLE" --images "$IMAGES" --identity-registry 127.0.0.1 \
  "${LAYER_ARGS[@]}" --quiet >"$T/bundle.json" 2>"$T/make-bundle.log" \
  || die "make-bundle.py failed: $(tail -n 20 "$T/make-bundle.log")"
GEN_SECS=$(awk -v a="$g0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
REFS=$T/refs.txt     # one ref name a line, in index.json order
python3 - "$BUNDLE" "$T/bundle.json" >"$T/bundle.env" 3>"$REFS" <<'EOF' || die "the generated bundle $BUNDLE is unreadable"
import json, os, sys
root = sys.argv[1]
summary = json.load(open(sys.argv[2]))
idx = json.load(open(os.path.join(root, "index.json")))
names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in idx["manifests"]]
assert len(names) == len(set(names)) == summary["refs"], "ref names are not unique"
with os.fdopen(3, "w") as f:
    f.write("".join(n + "\n" for n in names))
print("REF_COUNT=%d" % len(names))
print("SIG_COUNT=%d" % sum(n.endswith(".sig") for n in names))
print("INDEX_COUNT=%d" % summary["indexes"])
print("BLOB_COUNT=%d" % summary["blobs"])
print("BUNDLE_MIB=%.1f" % (summary["bytes"] / 1048576))
EOF
# shellcheck disable=SC1091
source "$T/bundle.env"

# ---------------------------------------------------------------------------------------------
# Timing and checks
# ---------------------------------------------------------------------------------------------
# timed (lib.sh) prints its progress lines in this format.
TIMED_FORMAT='%-5s run %d/%d  %-4s %8.3f s  CPU %7.2f s  peak RSS %7.1f MiB'

# check_registry PORT WHO: the registry serves every ref of the bundle at the bundle's digest, and
# every manifest and blob below it (check-registry.py; expectations read from the bundle).
check_registry() {
  local c0=$EPOCHREALTIME
  python3 "$SCRIPT_DIR/check-registry.py" "$BUNDLE" "127.0.0.1:$1" --workers 8 >"$T/check.log" 2>&1 \
    || die "$2 left a wrong registry: $(tail -n 12 "$T/check.log")"
  log "$2: $(tail -n 1 "$T/check.log") (checked in $(awk -v a="$c0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
}

done_with() { if [[ $KEEP == 0 ]]; then rm -rf "$@"; fi; }

# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------
echo "gdcloud-artifacts load vs skopeo copy per ref (xargs -P $CONCURRENCY): $RUNS run(s) per tool, alternating"
echo "bundle: $IMAGES images ($INDEX_COUNT multi-platform indexes), $REF_COUNT refs ($SIG_COUNT signatures), $BLOB_COUNT blobs, $BUNDLE_MIB MiB; generated in $GEN_SECS s"
if [[ $HAVE_LOAD == 1 ]]; then
  echo "ours:  $OURS ($OURS_VERSION)"
else
  echo "ours:  $OURS ($OURS_VERSION): NO load subcommand, not measured"
fi
echo "peer:  $(skopeo --version), registry: $(docker-registry --version 2>/dev/null | awk '{print "distribution " $NF}')"
echo "machine: $(machine_info)"
echo "wall time: bash \$EPOCHREALTIME around the command; CPU (user+sys) and peak RSS: /usr/bin/time; sync before each run"
report_busy

# ---------------------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------------------
# ours_once RUN: load into a fresh registry, check; load again into the full registry, check.
ours_once() {
  local run=$1 dir=$T/runs/ours-$1
  start_registry "$dir"
  timed load ours "$run" "$dir/load.log" "$OURS" load --quiet "$BUNDLE" "127.0.0.1:$REG_PORT" --concurrency "$CONCURRENCY"
  check_registry "$REG_PORT" "ours (load run $run)"
  timed rerun ours "$run" "$dir/rerun.log" "$OURS" load --quiet "$BUNDLE" "127.0.0.1:$REG_PORT" --concurrency "$CONCURRENCY"
  check_registry "$REG_PORT" "ours (rerun $run)"
  stop_registry "$REG_PID"
  done_with "$dir"
}
# peer_once RUN: skopeo copy per ref, CONCURRENCY at a time, into a fresh registry; check.
peer_once() {
  local run=$1 dir=$T/runs/peer-$1
  start_registry "$dir"
  timed load peer "$run" "$dir/load.log" xargs -a "$REFS" -d '\n' -P "$CONCURRENCY" -I '{}' \
    "${SKOPEO[@]}" copy --all --preserve-digests --dest-tls-verify=false --quiet \
    "oci:$BUNDLE:{}" "docker://127.0.0.1:$REG_PORT/{}"
  check_registry "$REG_PORT" "skopeo (load run $run)"
  stop_registry "$REG_PID"
  done_with "$dir"
}
mkdir -p "$T/runs"
START=$EPOCHREALTIME
for ((i = 1; i <= RUNS; i++)); do
  if [[ $HAVE_LOAD == 1 ]]; then ours_once "$i"; fi
  peer_once "$i"
done
END=$EPOCHREALTIME

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
echo
python3 - "$RESULTS" "$REF_COUNT" "$HAVE_LOAD" <<'EOF'
import statistics, sys
path, refs, have_load = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
res = {}
for op, tool, run, secs, rss, cpu in rows:
    res.setdefault((op, tool), []).append((float(secs), int(rss) / 1024.0, float(cpu)))
def med(k, i=0):
    return statistics.median(r[i] for r in res[k])
def peak(*keys):
    return max(r[1] for k in keys for r in res[k])
def line(label, k):
    r = res[k]
    print("  %-34s %9.3f  %-22s %11.2f %13.1f" % (label, med(k), " ".join("%.2f" % t for t, _, _ in r),
                                                  med(k, 2), peak(k)))
print("load: OCI bundle (%d refs) -> fresh empty registry" % refs)
print("  %-34s %9s  %-22s %11s %13s" % ("tool", "median s", "runs s", "CPU s (med)", "peak RSS MiB"))
if have_load:
    line("ours (gdcloud-artifacts load)", ("load", "ours"))
    line("ours rerun (registry full)", ("rerun", "ours"))
line("peer (skopeo copy, per process)", ("load", "peer"))
print()
peer_s = med(("load", "peer"))
skopeo_rss = peak(("load", "peer"))
print("peer: %.3f s for %d refs (%.2f s per 1000 refs); skopeo per-process peak RSS %.1f MiB" % (
    peer_s, refs, peer_s * 1000 / refs, skopeo_rss))
if not have_load:
    print("ours: NOT MEASURED (no load subcommand)")
    sys.exit(0)
ours_s, rerun_s = med(("load", "ours")), med(("rerun", "ours"))
ratio, per_k = ours_s / peer_s, rerun_s * 1000 / refs
rss = peak(("load", "ours"), ("rerun", "ours"))
results = [
    ("load time ours/peer", "%.2fx (%.3f s vs %.3f s)" % (ratio, ours_s, peer_s), "<= 0.50x", ratio <= 0.5),
    ("rerun, everything present", "%.3f s per 1000 refs (%.3f s)" % (per_k, rerun_s), "<= 2 s per 1000 refs", per_k <= 2),
    ("peak RSS ours", "%.1f MiB (skopeo %.1f MiB, %.2fx)" % (rss, skopeo_rss, rss / skopeo_rss), "< 128 MiB", rss < 128),
]
for name, got, target, ok in results:
    print("%-28s %-44s target %-22s %s" % (name, got, target, "MET" if ok else "NOT MET"))
EOF
echo
echo "benchmark $(awk -v a="$START" -v b="$END" 'BEGIN { printf "%.0f", b - a }') s, whole script $(awk -v a="$SCRIPT_START" -v b="$END" 'BEGIN { printf "%.0f", b - a }') s (bundle generated in $GEN_SECS s)"
if [[ $HAVE_LOAD == 0 ]]; then
  die "ours not measured: $NO_LOAD"
fi
