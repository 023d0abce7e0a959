#!/usr/bin/env bash
# Builds the release artifacts for hosts without cargo or network (issue 10, item 4):
#   dist/gdcloud-kit-VERSION-linux-ARCH.tar.gz     the five binaries, completions (bash, zsh, fish,
#       PowerShell) and man pages the binaries generate themselves, install.sh, README.md, LICENSE
#       (if any) and SHA256SUMS, which install.sh checks before installing; beside it its .sha256
#   dist/gdcloud-kit-VERSION-vendored-src.tar.gz   the sources with every dependency (`cargo vendor`)
#       and a .cargo/config.toml pointing at vendor/: `cargo build --offline --locked` builds it
# The binaries are linked against glibc GLIBC (default 2.28: RHEL 8, Debian 10, Ubuntu 20.04 and
# later) with zig (scripts/release/zig-toolchain.sh), whatever glibc this host has, and the script
# fails when a binary references a newer glibc symbol version (objdump -T).
#   scripts/release.sh [--profile PROFILE] [--out DIR] [--glibc X.Y] [--no-vendored-src]
#                      [--bins DIR --no-glibc-check]
#   --profile PROFILE   cargo profile of the binaries (default release; CI uses ci-bundle, a cheap one)
#   --bins DIR          package the binaries already in DIR instead of building (tests do this with
#                       target/debug; such binaries are host-linked, so pass --no-glibc-check too)
# Tars are reproducible for one commit: sorted entries, owner 0:0, mtime = the commit's time
# (SOURCE_DATE_EPOCH if set), gzip without a timestamp. The last line on stdout is the bundle's path.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

log() { printf '[release.sh] %s\n' "$*" >&2; }
die() { printf '[release.sh] ERROR: %s\n' "$*" >&2; exit 1; }

profile=release out=dist glibc=2.28 vendored=1 bins="" glibc_check=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a cargo profile}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --glibc) glibc="${2:?--glibc needs a version like 2.28}"; shift 2 ;;
    --bins) bins="${2:?--bins needs a directory}"; shift 2 ;;
    --no-vendored-src) vendored=0; shift ;;
    --no-glibc-check) glibc_check=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$glibc" =~ ^2\.[0-9]+$ ]] || die "--glibc $glibc: give a version like 2.28"

binaries=(docker-credential-gdcloud gdcloud-auth gdcloud-artifacts gdcloud-storage gdcloud-config)
plugins=(gdcloud-auth gdcloud-artifacts gdcloud-storage gdcloud-config)
version="$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="gdcloud-kit"))')"
arch="$(uname -m)"
name="gdcloud-kit-$version-linux-$arch"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Writes a reproducible .tar.gz of directory $2 (inside $1) to $3.
reproducible_tar() {
  local parent="$1" dir="$2" dest="$3"
  (cd "$parent" && tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --mode='u+rw,go-w,go+rX' --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -cf - "$dir") | gzip -n -6 > "$dest.tmp" && mv -f "$dest.tmp" "$dest"
}

# The highest GLIBC_x.y symbol version binary $1 references, or nothing for a static binary.
glibc_needed() {
  objdump -T "$1" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/^GLIBC_//' | sort -uV | tail -n1
}

# 1. The binaries.
if [ -z "$bins" ]; then
  eval "$(bash scripts/release/zig-toolchain.sh | grep -E '^(ZIG|CARGO_ZIGBUILD)=')"
  export PATH="$(dirname "$ZIG"):$PATH"
  triple="$arch-unknown-linux-gnu"
  log "cargo zigbuild --profile $profile --target $triple.$glibc"
  start=$(date +%s)
  "$CARGO_ZIGBUILD" zigbuild --locked --workspace --bins --profile "$profile" --target "$triple.$glibc" \
    ${CARGO_BUILD_QUIET:+--quiet} >&2 || die "cargo zigbuild failed (see above)"
  log "built in $(( $(date +%s) - start )) s"
  target_dir="$(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  profile_dir="$profile"; [ "$profile" = dev ] && profile_dir=debug
  bins="$target_dir/$triple/$profile_dir"
fi

stage_root="$(mktemp -d)"
trap 'rm -rf -- "$stage_root"' EXIT
stage="$stage_root/$name"
mkdir -p "$stage/bin" "$stage/man/man1"
for b in "${binaries[@]}"; do
  [ -x "$bins/$b" ] || die "no binary $bins/$b"
  install -m 0755 "$bins/$b" "$stage/bin/$b"
  # Debug info is of no use on the target host (the release profile strips it already).
  strip --strip-debug "$stage/bin/$b"
  if [ "$glibc_check" = 1 ]; then
    needed="$(glibc_needed "$stage/bin/$b")"
    if [ -n "$needed" ] && [ "$(printf '%s\n%s\n' "$needed" "$glibc" | sort -V | tail -n1)" != "$glibc" ]; then
      die "bin/$b needs GLIBC_$needed, newer than the baseline $glibc (objdump -T bin/$b)"
    fi
    log "bin/$b: highest glibc symbol version ${needed:-none (static)} <= $glibc"
  fi
done

# 2. Completions and man pages, from the binaries themselves (the hidden `completion`/`man` builtins).
for sh in bash zsh fish powershell; do mkdir -p "$stage/completions/$sh"; done
for p in "${plugins[@]}"; do
  "$stage/bin/$p" completion bash > "$stage/completions/bash/$p"
  "$stage/bin/$p" completion zsh > "$stage/completions/zsh/_$p"
  "$stage/bin/$p" completion fish > "$stage/completions/fish/$p.fish"
  "$stage/bin/$p" completion powershell > "$stage/completions/powershell/$p.ps1"
  "$stage/bin/$p" man "$stage/man/man1" >/dev/null
done
install -m 0755 install.sh "$stage/install.sh"
install -m 0644 README.md "$stage/README.md"
for f in LICENSE LICENSE-APACHE LICENSE.md; do
  [ -f "$f" ] && install -m 0644 "$f" "$stage/$f"
done
(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS)

bundle="$out/$name.tar.gz"
reproducible_tar "$stage_root" "$name" "$bundle"
# Published beside the bundle, so the download can be checked before it is unpacked.
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
log "wrote $bundle ($(du -h "$bundle" | cut -f1))"

# 3. The vendored sources: the commit's tree (git archive HEAD), its dependencies and the cargo
# configuration that makes cargo take them from vendor/ instead of the registry.
if [ "$vendored" = 1 ]; then
  [ -z "$(git status --porcelain --untracked-files=no)" ] || log "warning: uncommitted changes are not in the source tarball (it is HEAD)"
  src="gdcloud-kit-$version"
  mkdir -p "$stage_root/src/$src/.cargo"
  git archive --format=tar HEAD | tar -xf - -C "$stage_root/src/$src"
  log "cargo vendor --locked"
  # Its stdout is the configuration to use (which `--quiet` would suppress); its stderr one line a crate.
  (cd "$stage_root/src/$src" && cargo vendor --locked vendor > .cargo/config.toml.new 2> "$stage_root/vendor.log") ||
    { cat "$stage_root/vendor.log" >&2; die "cargo vendor failed (see above)"; }
  grep -q '^replace-with = "vendored-sources"' "$stage_root/src/$src/.cargo/config.toml.new" ||
    die "cargo vendor printed no source replacement for vendor/"
  mv "$stage_root/src/$src/.cargo/config.toml.new" "$stage_root/src/$src/.cargo/config.toml"
  src_tar="$out/gdcloud-kit-$version-vendored-src.tar.gz"
  reproducible_tar "$stage_root/src" "$src" "$src_tar"
  log "wrote $src_tar ($(du -h "$src_tar" | cut -f1)); build it with: cargo build --offline --locked --release"
fi
echo "$bundle"
