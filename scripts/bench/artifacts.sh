#!/usr/bin/env bash
# Benchmark: gdcloud-artifacts pull / push / extract against their peers, on one 512 MiB image:
#   pull     registry -> OCI layout      ours: gdcloud-artifacts pull   peer: skopeo copy docker:// oci:
#   push     OCI layout -> registry      ours: gdcloud-artifacts push   peer: skopeo copy oci: docker://
#            (a FRESH, EMPTY Distribution registry on a new port for every run of either tool, so
#            nothing can be skipped or mounted; started before and killed after the timed command)
#   push-archive  docker save tarball (docker-archive, plain-tar layers) -> registry, same tools and
#            fresh registries; both gzip every layer on the way (ours by default, skopeo always
#            for a registry), so both do the same work; the bytes each sent (the pushed manifest's
#            config + layer sizes) are printed beside the times. `--only push` runs both pushes.
#   extract  OCI layout -> root fs       ours: gdcloud-artifacts extract  peer: umoci unpack --rootless
# Runs alternate (ours, peer, ours, peer, ...). Prints per operation the median wall time of each tool,
# the ratio ours/peer next to its target (pull, push <= 0.6; extract <= 0.5), the peak RSS of each
# tool (target for ours: < 64 MiB), and a final MET / NOT MET line per operation.
#
# The image: 4 layers of 128 MiB each (uncompressed), gzip-compressed by umoci:
#   1. one 128 MiB file of random bytes        3. another 128 MiB random file
#   2. 2048 text files of 64 KiB (32 dirs)     4. one 128 MiB text (log-like) file
# Text is seeded pseudo-random log lines (gzip ratio about 2.5:1). Built once with umoci and cached
# under $BENCH_CACHE/<image version>; the build takes about 30 s.
#
# Usage: scripts/bench/artifacts.sh [--runs N] [--only pull|push|push-archive|extract] [--keep] [-q] [-v]
#   --runs N        timed runs per tool per operation (default: $RUNS or 3)
#   --only OP       run only this operation (repeatable, or comma-separated: --only pull,push)
#   --keep          keep the temp dir (every run's output, registry storage, logs) and print its path
#   -q, --quiet     no per-run progress lines on stderr
#   -v, --verbose   also setup steps (cache build, registries) on stderr
# Env: GDCLOUD_BIN_DIR  directory holding gdcloud-artifacts (otherwise it is built with
#                       `cargo build --release --locked -p gdcloud-artifacts`, honouring CARGO_TARGET_DIR)
#      BENCH_CACHE      cache dir for the built image (default: ~/.cache/gdcloud-kit/bench)
#      RUNS             default for --runs
#      TMPDIR           where the temp dir goes (default /tmp); it needs about 2 GiB (much more with --keep)
# Installs missing tools with apt-get (runs `apt-get update` first only if something is missing):
# docker-registry, skopeo, umoci, time (/usr/bin/time), python3.
# Wall time is taken by bash ($EPOCHREALTIME) around `/usr/bin/time -f '%M %U %S' CMD` (peak RSS and
# CPU time of CMD); hyperfine is not used because it runs all runs of one command before the next
# and reports no memory. `sync` runs (untimed) before every timed command, so one run's writeback
# does not land in the next. No warmup: page cache is warm for both tools (the layout was just read
# or written). The header says how busy the CPUs were with other work just before the first run.
# Every timed command must exit 0 and its result is checked (untimed) before the next run: pulled
# layouts hold the manifest and all blobs with the right digests; pushed registries serve the manifest
# and every blob; extracted trees hold exactly the image's files with the right sizes and contents.
set -euo pipefail
export LC_ALL=C   # '.' in $EPOCHREALTIME and in printf/awk numbers
SCRIPT_START=$EPOCHREALTIME

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
BENCH_NAME=artifacts
USAGE_END='^# docker-registry, skopeo'
# say, log, die, usage, want, the temp dir and cleanup, tools, our binary, registries, timed, header lines
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$SCRIPT")/lib.sh"
# Bump when the image recipe below changes: the cache is keyed by it.
IMAGE_VERSION=artifacts-4x128MiB-r2t2-v1
REPO_PATH=bench/big
TAG=v1

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
RUNS=${RUNS:-3}
ONLY=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --only) [[ $# -ge 2 ]] || die "--only needs a value"; IFS=, read -ra o <<<"$2"; ONLY+=("${o[@]}"); shift 2 ;;
    --only=*) IFS=, read -ra o <<<"${1#--only=}"; ONLY+=("${o[@]}"); shift ;;
    --keep) KEEP=1; shift ;;
    -q|--quiet) PROGRESS=0; shift ;;
    -v|--verbose) BENCH_VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "--runs/RUNS must be an integer >= 1 (got '$RUNS')"
if [[ ${#ONLY[@]} -eq 0 ]]; then ONLY=(pull push extract); fi
for op in "${ONLY[@]}"; do
  case $op in
    pull|push-archive|extract) ;;
    push) ONLY+=(push-archive) ;;
    *) die "--only takes pull, push, push-archive or extract (got '$op')" ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# Temp dir, cleanup (registries are killed whatever happens)
# ---------------------------------------------------------------------------------------------
bench_tmpdir

# ---------------------------------------------------------------------------------------------
# Tools: install what is missing (apt-get update only then)
# ---------------------------------------------------------------------------------------------
install_missing docker-registry:docker-registry skopeo:skopeo umoci:umoci /usr/bin/time:time python3:python3
command -v flock >/dev/null || die "flock (util-linux) not found"
set_skopeo

# ---------------------------------------------------------------------------------------------
# Our binary
# ---------------------------------------------------------------------------------------------
find_ours gdcloud-artifacts
HAVE_EXTRACT=1
"$OURS" extract --help >"$T/extract-help.log" 2>&1 || HAVE_EXTRACT=0

# ---------------------------------------------------------------------------------------------
# The image, built once and cached
# ---------------------------------------------------------------------------------------------
CACHE_ROOT=${BENCH_CACHE:-$HOME/.cache/gdcloud-kit/bench}
CACHE=$CACHE_ROOT/$IMAGE_VERSION
LAYOUT=$CACHE/layout
EXPECTED=$CACHE/expected.json

# gen_text.py files DIR SEED | big FILE SEED: deterministic log-like text (about 2.5:1 with gzip).
write_text_generator() {
  cat >"$1" <<'EOF'
import os, random, sys

def make_chunk(seed):
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    freq = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
            2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
    words = sorted({"".join(rng.choices(letters, weights=freq, k=rng.randint(2, 11))) for _ in range(6000)})
    rng.shuffle(words)
    cum, acc = [], 0.0
    for i in range(len(words)):            # Zipf-distributed word use
        acc += 1.0 / (i + 1)
        cum.append(acc)
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    comps = ["[" + w + "]" for w in words[:40]]
    clock = [rng.randrange(1_600_000_000, 1_700_000_000)]

    def chunk(nbytes):
        out, n = [], 0
        while n < nbytes:
            clock[0] += rng.randrange(0, 3)
            line = "%d.%06d %s %s %s id=%08x n=%d\n" % (
                clock[0], rng.randrange(1000000), rng.choice(levels), rng.choice(comps),
                " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(4, 18))),
                rng.getrandbits(32), rng.randrange(100000))
            out.append(line)
            n += len(line)
        return "".join(out).encode()[:nbytes]
    return chunk

mode, dest, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk = make_chunk(seed)
if mode == "files":                       # 2048 files of 64 KiB in 32 directories
    for d in range(32):
        sub = os.path.join(dest, "d%02d" % d)
        os.makedirs(sub)
        for f in range(64):
            with open(os.path.join(sub, "f%04d.txt" % (d * 64 + f)), "wb") as fh:
                fh.write(chunk(64 * 1024))
elif mode == "big":                       # one 128 MiB file
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as fh:
        for _ in range(16):
            fh.write(chunk(8 * 1024 * 1024))
else:
    sys.exit("unknown mode " + mode)
EOF
}

# describe_tree.py ROOT OUT.json: every path below ROOT with type, size and sha256 of regular files.
write_tree_describer() {
  cat >"$1" <<'EOF'
import hashlib, json, os, stat, sys

def describe(root):
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while True:
                        b = f.read(4 * 1024 * 1024)
                        if not b:
                            break
                        h.update(b)
                tree[rel] = ["file", st.st_size, h.hexdigest()]
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ["dir"]
            elif stat.S_ISLNK(st.st_mode):
                tree[rel] = ["symlink", os.readlink(p)]
            else:
                tree[rel] = ["other"]
    return tree

if __name__ == "__main__":
    with open(sys.argv[2], "w") as f:
        json.dump(describe(sys.argv[1]), f, sort_keys=True)
EOF
}

build_image() {
  local w=$1 gen=$1/gen_text.py
  mkdir -p "$w"
  write_text_generator "$gen"
  write_tree_describer "$w/describe_tree.py"
  umoci init --layout "$w/layout"
  umoci new --image "$w/layout:$TAG"
  umoci unpack --rootless --image "$w/layout:$TAG" "$w/bundle" >/dev/null
  local root=$w/bundle/rootfs/bench
  mkdir -p "$root"
  log "cache build: layer 1/4 (128 MiB random)"
  head -c 128M /dev/urandom >"$root/random-1.bin"
  umoci repack --refresh-bundle --history.created_by "bench layer 1: 128 MiB random" --image "$w/layout:$TAG" "$w/bundle"
  log "cache build: layer 2/4 (2048 text files of 64 KiB)"
  python3 "$gen" files "$root/text" 2
  umoci repack --refresh-bundle --history.created_by "bench layer 2: 2048 x 64 KiB text" --image "$w/layout:$TAG" "$w/bundle"
  log "cache build: layer 3/4 (128 MiB random)"
  head -c 128M /dev/urandom >"$root/random-3.bin"
  umoci repack --refresh-bundle --history.created_by "bench layer 3: 128 MiB random" --image "$w/layout:$TAG" "$w/bundle"
  log "cache build: layer 4/4 (one 128 MiB text file)"
  python3 "$gen" big "$root/log/app.log" 4
  umoci repack --refresh-bundle --history.created_by "bench layer 4: 128 MiB text file" --image "$w/layout:$TAG" "$w/bundle"
  umoci gc --layout "$w/layout"
  python3 "$w/describe_tree.py" "$w/bundle/rootfs" "$w/expected.json"
  rm -rf "$w/bundle"
}

BUILD_NOTE="from the cache"
mkdir -p "$CACHE_ROOT"
if [[ ! -f $CACHE/complete ]]; then
  exec 9>"$CACHE_ROOT/.$IMAGE_VERSION.lock"
  flock 9
  if [[ ! -f $CACHE/complete ]]; then
    say "building the benchmark image into $CACHE (once; about 30 s)"
    rm -rf "$CACHE"
    BUILD_TMP=$(mktemp -d "$CACHE_ROOT/.$IMAGE_VERSION.build.XXXXXX")
    b0=$EPOCHREALTIME
    build_image "$BUILD_TMP" >"$T/build.log" 2>&1 || die "building the image failed: $(tail -n 20 "$T/build.log")"
    BUILD_NOTE="built now, in $(awk -v a="$b0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
    mkdir -p "$CACHE"
    mv "$BUILD_TMP/layout" "$LAYOUT"
    mv "$BUILD_TMP/expected.json" "$EXPECTED"
    rm -rf "$BUILD_TMP"
    BUILD_TMP=
    printf '%s\nbuilt %s with %s\n' "$IMAGE_VERSION" "$(date -u +%FT%TZ)" "$(umoci --version)" >"$CACHE/complete"
  fi
  exec 9>&-
fi

# Helper scripts for this run (the describer is needed for the extract checks).
write_tree_describer "$T/describe_tree.py"

# The image as the layout holds it: manifest digest, blobs (config + layers), sizes.
python3 - "$LAYOUT" "$TAG" >"$T/image.env" <<'EOF' || die "the cached layout $LAYOUT is damaged; delete $(dirname "$LAYOUT") to rebuild it"
import json, os, sys
layout, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(layout, "index.json")))
m = [d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
assert len(m) == 1, "no manifest tagged " + tag
digest = m[0]["digest"]
def blob(d):
    return os.path.join(layout, "blobs", *d.split(":", 1))
man = json.load(open(blob(digest)))
layers = man["layers"]
assert len(layers) == 4, "expected 4 layers, found %d" % len(layers)
for d in [man["config"]] + layers:
    assert os.path.getsize(blob(d["digest"])) == d["size"], d["digest"]
print("MANIFEST_DIGEST=%s" % digest)
print("LAYER_BYTES=%d" % sum(l["size"] for l in layers))
print("LAYER_SIZES='%s'" % " ".join("%.1f" % (l["size"] / 1048576) for l in layers))
EOF
# shellcheck disable=SC1091
source "$T/image.env"

# ---------------------------------------------------------------------------------------------
# Timing and checks
# ---------------------------------------------------------------------------------------------
# timed (lib.sh) prints its progress lines in this format.
TIMED_FORMAT='%-7s run %d/%d  %-4s %8.3f s  CPU %6.2f s  %7.1f MiB'

# check_layout DIR WHO: an OCI layout holding our image's manifest and all its blobs, intact.
check_layout() {
  python3 - "$1" "$LAYOUT" "$MANIFEST_DIGEST" <<'EOF' || die "$2 produced a bad layout in $1"
import hashlib, json, os, sys
dest, src, digest = sys.argv[1:4]
def blob(root, d):
    return os.path.join(root, "blobs", *d.split(":", 1))
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(4 << 20)
            if not b:
                return "sha256:" + h.hexdigest()
            h.update(b)
try:
    idx = json.load(open(os.path.join(dest, "index.json")))
except Exception as e:
    sys.exit("index.json: %s" % e)
found = [d["digest"] for d in idx.get("manifests", [])]
if digest not in found:
    # An index pointing at the manifest is fine too.
    for d in found:
        try:
            sub = json.load(open(blob(dest, d)))
        except Exception:
            continue
        if digest in [m["digest"] for m in sub.get("manifests", [])]:
            break
    else:
        sys.exit("index.json does not lead to manifest %s (it lists %s)" % (digest, found))
man = json.load(open(blob(src, digest)))
for d in [{"digest": digest}, man["config"]] + man["layers"]:
    p = blob(dest, d["digest"])
    if not os.path.isfile(p):
        sys.exit("blob %s missing" % d["digest"])
    if sha(p) != d["digest"]:
        sys.exit("blob %s has the wrong content" % d["digest"])
EOF
}

# check_registry PORT WHO: the registry serves the manifest under the tag, and every blob.
check_registry() {
  python3 - "$1" "$LAYOUT" "$MANIFEST_DIGEST" "$REPO_PATH" "$TAG" <<'EOF' || die "$2 left the registry without the image"
import hashlib, json, os, sys, urllib.request
port, src, digest, repo, tag = sys.argv[1:6]
base = "http://127.0.0.1:%s/v2/%s" % (port, repo)
accept = ", ".join(["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])
def get(url, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers, (r.read() if method == "GET" else b"")
_, body = get("%s/manifests/%s" % (base, tag))
got = "sha256:" + hashlib.sha256(body).hexdigest()
if got != digest:
    m = json.loads(body)
    if digest not in [d["digest"] for d in m.get("manifests", [])]:
        sys.exit("tag %s is %s, not the image's manifest %s" % (tag, got, digest))
    get("%s/manifests/%s" % (base, digest), "HEAD")
man = json.load(open(os.path.join(src, "blobs", *digest.split(":", 1))))
for d in [man["config"]] + man["layers"]:
    h, _ = get("%s/blobs/%s" % (base, d["digest"]), "HEAD")
    if int(h.get("Content-Length", -1)) != d["size"]:
        sys.exit("blob %s: size %s, want %d" % (d["digest"], h.get("Content-Length"), d["size"]))
EOF
}

# check_tree ROOT WHO: ROOT holds exactly the image's files (paths, types, sizes, contents).
check_tree() {
  python3 - "$1" "$EXPECTED" "$T/describe_tree.py" <<'EOF' || die "$2 extracted a wrong tree into $1"
import json, sys, importlib.util
root, expected, describer = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("describe_tree", describer)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
want = json.load(open(expected))
got = {k: v for k, v in mod.describe(root).items()}
bad = []
for k in sorted(set(want) | set(got)):
    if want.get(k) != got.get(k):
        bad.append("%s: want %s, got %s" % (k, want.get(k), got.get(k)))
if bad:
    sys.exit("%d differences, e.g.:\n  %s" % (len(bad), "\n  ".join(bad[:10])))
EOF
}

done_with() { if [[ $KEEP == 0 ]]; then rm -rf "$@"; fi; }

# report OP PEER_LABEL TARGET: the table of one operation.
report() {
  python3 - "$RESULTS" "$1" "$2" "$3" <<'EOF'
import statistics, sys
path, op, peer, target = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
res = {}
for o, tool, run, secs, rss, cpu in rows:
    if o == op:
        res.setdefault(tool, []).append((float(secs), int(rss) / 1024.0, float(cpu)))
print()
print("%s" % {"pull": "pull: registry -> OCI layout",
              "push": "push: OCI layout -> fresh empty registry",
              "push-archive": "push-archive: docker save tarball -> fresh empty registry, both gzip the layers",
              "extract": "extract: OCI layout -> root filesystem"}[op])
print("  %-26s %9s  %-24s %10s %13s" % ("tool", "median s", "runs s", "CPU s (med)", "peak RSS MiB"))
for tool, label in (("ours", "ours (gdcloud-artifacts)"), ("peer", peer)):
    r = res[tool]
    print("  %-26s %9.3f  %-24s %10.2f %13.1f" % (label, statistics.median(t for t, _, _ in r),
          " ".join("%.2f" % t for t, _, _ in r), statistics.median(c for _, _, c in r), max(m for _, m, _ in r)))
o, p = (statistics.median(t for t, _, _ in res[k]) for k in ("ours", "peer"))
ratio = o / p
rss = max(m for _, m, _ in res["ours"])
print("  %-26s %9.2f  target <= %.2f: %s;  peak RSS (ours) %.1f MiB, target < 64: %s" % (
    "ratio ours/peer", ratio, target, "met" if ratio <= target else "NOT met",
    rss, "met" if rss < 64 else "NOT met"))
sys.stdout.flush()
EOF
}

# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------
START=$EPOCHREALTIME
echo "gdcloud-artifacts vs skopeo / umoci: $RUNS runs per tool per operation, alternating ours, peer, ours, peer ..."
echo "image: $IMAGE_VERSION, 4 layers x 128 MiB uncompressed (random, 2048 x 64 KiB text, random, 128 MiB text),"
echo "       gzip layers $LAYER_SIZES MiB = $(awk -v b="$LAYER_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB; $BUILD_NOTE: $CACHE"
echo "ours:  $OURS ($OURS_VERSION)"
echo "peers: $(skopeo --version), $(umoci --version), $(docker-registry --version 2>/dev/null | awk '{print "distribution " $NF}')"
echo "machine: $(machine_info)"
echo "wall time: bash \$EPOCHREALTIME around the command; CPU (user+sys) and peak RSS: /usr/bin/time; sync before each run"
# CPUs busy with other work just before the first run (1 s sample of /proc/stat, after our own
# writes, e.g. the image build's, are flushed).
report_busy

# ---------------------------------------------------------------------------------------------
# pull: registry -> OCI layout
# ---------------------------------------------------------------------------------------------
if want pull; then
  say "pull: starting the source registry and pushing the image into it (skopeo)"
  start_registry "$T/src-registry"
  SRC_PORT=$REG_PORT SRC_PID=$REG_PID
  SRC_REF=127.0.0.1:$SRC_PORT/$REPO_PATH:$TAG
  "${SKOPEO[@]}" copy --dest-tls-verify=false "oci:$LAYOUT:$TAG" "docker://$SRC_REF" >"$T/seed.log" 2>&1 \
    || die "seeding the source registry failed: $(tail -n 20 "$T/seed.log")"
  check_registry "$SRC_PORT" "seeding (skopeo)"
  mkdir -p "$T/pull"
  for ((i = 1; i <= RUNS; i++)); do
    d=$T/pull/ours-$i
    timed pull ours "$i" "$T/pull/ours-$i.log" "$OURS" pull --quiet "$SRC_REF" "$d"
    check_layout "$d" "ours (pull run $i)"
    done_with "$d"
    d=$T/pull/peer-$i
    timed pull peer "$i" "$T/pull/peer-$i.log" \
      "${SKOPEO[@]}" copy --src-tls-verify=false "docker://$SRC_REF" "oci:$d:$TAG"
    check_layout "$d" "skopeo (pull run $i)"
    done_with "$d"
  done
  stop_registry "$SRC_PID"
  report pull "skopeo copy" 0.6
fi

# ---------------------------------------------------------------------------------------------
# push: OCI layout -> a fresh, empty registry (new port, new storage) for every run
# ---------------------------------------------------------------------------------------------
# push_once TOOL RUN
push_once() {
  local tool=$1 run=$2 dir=$T/push/$1-$2 ref
  start_registry "$dir"
  ref=127.0.0.1:$REG_PORT/$REPO_PATH:$TAG
  if [[ $tool == ours ]]; then
    timed push ours "$run" "$dir.log" "$OURS" push --quiet "$LAYOUT" "$ref"
  else
    timed push peer "$run" "$dir.log" \
      "${SKOPEO[@]}" copy --dest-tls-verify=false "oci:$LAYOUT:$TAG" "docker://$ref"
  fi
  check_registry "$REG_PORT" "$tool (push run $run)"
  stop_registry "$REG_PID"
  done_with "$dir"
}
if want push; then
  mkdir -p "$T/push"
  for ((i = 1; i <= RUNS; i++)); do
    push_once ours "$i"
    push_once peer "$i"
  done
  report push "skopeo copy" 0.6
fi

# ---------------------------------------------------------------------------------------------
# push-archive: docker save tarball -> a fresh, empty registry for every run; both compress
# ---------------------------------------------------------------------------------------------
SENT=$T/sent.tsv
: >"$SENT"

# check_archive_push PORT TOOL RUN: the registry serves under the tag a manifest with the archive's
# config and, for each of its diff_ids, a gzip layer that decompresses (every member) to that
# diff_id; records the bytes the registry holds for the image (config + layers) in $SENT.
check_archive_push() {
  python3 - "$1" "$ARCHIVE_INFO" "$REPO_PATH" "$TAG" "$2" "$3" >>"$SENT" <<'EOF' || die "$2 (push-archive run $3) left a wrong image in the registry"
import gzip, hashlib, json, sys, urllib.request
port, info, repo, tag, tool, run = sys.argv[1:7]
info = json.load(open(info))
base = "http://127.0.0.1:%s/v2/%s" % (port, repo)
accept = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])
def get(url):
    return urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=60)
with get("%s/manifests/%s" % (base, tag)) as r:
    man = json.load(r)
if man["config"]["digest"] != info["config"]:
    sys.exit("config %s, want the archive's %s" % (man["config"]["digest"], info["config"]))
layers = man["layers"]
if len(layers) != len(info["diff_ids"]):
    sys.exit("%d layers, want %d" % (len(layers), len(info["diff_ids"])))
class Tee:
    """Hashes and counts the compressed bytes as gzip reads them."""
    def __init__(self, r):
        self.r, self.sha, self.n = r, hashlib.sha256(), 0
    def read(self, k=-1):
        b = self.r.read(k)
        self.sha.update(b)
        self.n += len(b)
        return b
for layer, diff_id in zip(layers, info["diff_ids"]):
    if not layer["mediaType"].endswith(("+gzip", ".tar.gzip")):
        sys.exit("layer %s is %s, not gzip" % (layer["digest"], layer["mediaType"]))
    plain = hashlib.sha256()
    with get("%s/blobs/%s" % (base, layer["digest"])) as r:
        tee = Tee(r)
        with gzip.GzipFile(fileobj=tee) as g:
            while True:
                b = g.read(4 << 20)
                if not b:
                    break
                plain.update(b)
        tee.read()
    if "sha256:" + tee.sha.hexdigest() != layer["digest"] or tee.n != layer["size"]:
        sys.exit("blob %s does not match its digest or size" % layer["digest"])
    if "sha256:" + plain.hexdigest() != diff_id:
        sys.exit("layer %s does not decompress to diff_id %s" % (layer["digest"], diff_id))
print("%s\t%s\t%d" % (tool, run, man["config"]["size"] + sum(l["size"] for l in layers)))
EOF
}

# push_archive_once TOOL RUN
push_archive_once() {
  local tool=$1 run=$2 dir=$T/push-archive/$1-$2 ref
  start_registry "$dir"
  ref=127.0.0.1:$REG_PORT/$REPO_PATH:$TAG
  if [[ $tool == ours ]]; then
    timed push-archive ours "$run" "$dir.log" "$OURS" push --quiet "$ARCHIVE" "$ref"
  else
    timed push-archive peer "$run" "$dir.log" \
      "${SKOPEO[@]}" copy --dest-tls-verify=false "docker-archive:$ARCHIVE" "docker://$ref"
  fi
  check_archive_push "$REG_PORT" "$tool" "$run"
  stop_registry "$REG_PID"
  done_with "$dir"
}
if want push-archive; then
  mkdir -p "$T/push-archive"
  ARCHIVE=$T/push-archive/image.tar
  ARCHIVE_INFO=$T/push-archive/image.json
  say "push-archive: writing the image as a docker save tarball (skopeo, untimed)"
  "${SKOPEO[@]}" copy "oci:$LAYOUT:$TAG" "docker-archive:$ARCHIVE:$REPO_PATH:$TAG" >"$T/archive.log" 2>&1 \
    || die "writing the docker-archive failed: $(tail -n 20 "$T/archive.log")"
  python3 - "$ARCHIVE" >"$ARCHIVE_INFO" <<'EOF' || die "the docker-archive $ARCHIVE is unreadable"
import hashlib, json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = json.load(t.extractfile("manifest.json"))[0]
    config = t.extractfile(m["Config"]).read()
    print(json.dumps({"config": "sha256:" + hashlib.sha256(config).hexdigest(),
                      "diff_ids": json.loads(config)["rootfs"]["diff_ids"]}))
EOF
  for ((i = 1; i <= RUNS; i++)); do
    push_archive_once ours "$i"
    push_archive_once peer "$i"
  done
  report push-archive "skopeo copy" 0.6
  python3 - "$SENT" "$(stat -c %s "$ARCHIVE")" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
sent = {t: sorted({int(b) for tool, _, b in rows if tool == t}) for t in ("ours", "peer")}
mib = lambda b: "%.1f MiB" % (b / 1048576)
print("  %-26s ours %s, skopeo %s (the docker-archive: %s; one figure per tool = the same bytes every run)" % (
    "bytes sent (config+layers)", " / ".join(mib(b) for b in sent["ours"]),
    " / ".join(mib(b) for b in sent["peer"]), mib(int(sys.argv[2]))))
EOF
  done_with "$ARCHIVE"
fi

# ---------------------------------------------------------------------------------------------
# extract: OCI layout -> root filesystem
# ---------------------------------------------------------------------------------------------
if want extract; then
  if [[ $HAVE_EXTRACT == 0 ]]; then
    echo
    echo "extract: not available in this build (\`gdcloud-artifacts extract --help\` failed: $(head -n 1 "$T/extract-help.log"))"
  else
    mkdir -p "$T/extract"
    for ((i = 1; i <= RUNS; i++)); do
      d=$T/extract/ours-$i
      timed extract ours "$i" "$d.log" "$OURS" extract --quiet "$LAYOUT:$TAG" "$d"
      check_tree "$d" "ours (extract run $i)"
      done_with "$d"
      d=$T/extract/peer-$i
      timed extract peer "$i" "$d.log" umoci unpack --rootless --image "$LAYOUT:$TAG" "$d"
      check_tree "$d/rootfs" "umoci (extract run $i)"
      done_with "$d"
    done
    report extract "umoci unpack --rootless" 0.5
  fi
fi

# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------
END=$EPOCHREALTIME
echo
echo "summary (median wall time; peak RSS = max over runs; benchmark $(awk -v a="$START" -v b="$END" 'BEGIN { printf "%.0f", b - a }') s, whole script $(awk -v a="$SCRIPT_START" -v b="$END" 'BEGIN { printf "%.0f", b - a }') s with image ${BUILD_NOTE})"
python3 - "$RESULTS" "$HAVE_EXTRACT" "${ONLY[@]}" <<'EOF'
import statistics, sys
path, have_extract, ops = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
targets = {"pull": (0.6, "skopeo"), "push": (0.6, "skopeo"), "push-archive": (0.6, "skopeo"),
           "extract": (0.5, "umoci")}
print("  %-12s %8s %8s %7s %8s %10s %10s  %s" % ("op", "ours s", "peer s", "ratio", "target", "RSS ours", "RSS peer", "result"))
lines = []
for op in ("pull", "push", "push-archive", "extract"):
    if op not in ops:
        continue
    if op == "extract" and not have_extract:
        print("  %-12s %s" % (op, "not available in this build"))
        lines.append("extract: not available in this build")
        continue
    t = {tool: [float(r[3]) for r in rows if r[0] == op and r[1] == tool] for tool in ("ours", "peer")}
    m = {tool: max(int(r[4]) for r in rows if r[0] == op and r[1] == tool) / 1024.0 for tool in ("ours", "peer")}
    o, p = statistics.median(t["ours"]), statistics.median(t["peer"])
    target, peer = targets[op]
    ok_t, ok_m = o / p <= target, m["ours"] < 64
    res = "MET" if ok_t and ok_m else "NOT MET"
    print("  %-12s %8.3f %8.3f %7.2f %8s %10.1f %10.1f  %s" % (op, o, p, o / p, "<= %.2f" % target, m["ours"], m["peer"], res))
    lines.append("%s: %s (time %.2fx %s, target <= %.2fx: %s; peak RSS %.1f MiB, target < 64 MiB: %s)" % (
        op, res, o / p, peer, target, "met" if ok_t else "not met", m["ours"], "met" if ok_m else "not met"))
print()
for l in lines:
    print(l)
EOF
