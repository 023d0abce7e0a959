#!/usr/bin/env bash
# Builds gdcloud-kit from this checkout and installs its binaries into ${PREFIX:-$HOME/.local}/bin.
#   ./install.sh [--prefix DIR]      build (cargo build --release --locked) and install
#   ./install.sh --uninstall         remove what a previous install put there
# Needs only a Rust toolchain and the crate registry. Safe to run again: unchanged binaries are kept.
set -euo pipefail

prefix="${PREFIX:-$HOME/.local}"
uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

bindir="$prefix/bin"
manifest="$prefix/share/gdcloud-kit/installed-files"
binaries=(docker-credential-gdcloud gdcloud-auth gdcloud-artifacts gdcloud-storage gdcloud-config)

if [ "$uninstall" = 1 ]; then
  if [ ! -f "$manifest" ]; then
    echo "Nothing to uninstall: no gdcloud-kit install found under $prefix." >&2
    exit 0
  fi
  while IFS= read -r f; do
    [ -n "$f" ] && rm -f -- "$f" && echo "removed $f"
  done < "$manifest"
  rm -f -- "$manifest"
  rmdir -- "$prefix/share/gdcloud-kit" 2>/dev/null || true
  exit 0
fi

command -v cargo >/dev/null || { echo "install.sh: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
cargo build --release --locked --workspace ${CARGO_BUILD_QUIET:+--quiet}
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo "$here/target")"

mkdir -p "$bindir" "$(dirname "$manifest")"
: > "$manifest.tmp"
for b in "${binaries[@]}"; do
  src="$target_dir/release/$b"
  [ -x "$src" ] || { echo "install.sh: build did not produce $src" >&2; exit 1; }
  dst="$bindir/$b"
  if ! cmp -s "$src" "$dst" 2>/dev/null; then
    install -m 0755 "$src" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
    echo "installed $dst"
  else
    echo "up to date $dst"
  fi
  echo "$dst" >> "$manifest.tmp"
done
mv -f "$manifest.tmp" "$manifest"

case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo
     echo "$bindir is not on your PATH. Add it, e.g.:"
     echo "  echo 'export PATH=\"$bindir:\$PATH\"' >> ~/.bashrc && export PATH=\"$bindir:\$PATH\"" ;;
esac
