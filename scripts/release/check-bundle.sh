#!/usr/bin/env bash
# Installs the release bundle $1 (a .tar.gz from scripts/release.sh) the way an air-gapped host
# does: unpacked into a fresh directory, install.sh run under `env -i` with PATH=/usr/bin:/bin (no
# cargo, no ~/.cargo/bin) into a fresh prefix, then every binary's `--version` run the same way.
# tests/run.sh (CI) runs it on the bundle it builds; tests/release_bundle.rs goes further
# (completion, upgrade, uninstall, a tampered bundle).
set -Eeuo pipefail
bundle="${1:?usage: check-bundle.sh BUNDLE.tar.gz}"
log() { printf '[check-bundle.sh] %s\n' "$*" >&2; }
die() { printf '[check-bundle.sh] ERROR: %s\n' "$*" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/home" "$work/unpacked"
tar -xzf "$bundle" -C "$work/unpacked"
dir="$(find "$work/unpacked" -mindepth 1 -maxdepth 1 -type d)"
[ -x "$dir/install.sh" ] || die "$bundle holds no install.sh at its top level"
clean=(/usr/bin/env -i "HOME=$work/home" "PATH=/usr/bin:/bin")
! "${clean[@]}" sh -c 'command -v cargo' >/dev/null || die "cargo is on /usr/bin:/bin; the check would not prove anything"
"${clean[@]}" bash "$dir/install.sh" --prefix "$work/prefix" > "$work/install.log" ||
  { cat "$work/install.log" >&2; die "install.sh from the bundle failed"; }
log "installed $(wc -l < "$work/prefix/share/gdcloud-kit/installed-files") files into a fresh prefix without cargo"
for b in docker-credential-gdcloud gdcloud-auth gdcloud-artifacts gdcloud-storage gdcloud-config; do
  v="$(/usr/bin/env -i "HOME=$work/home" "PATH=$work/prefix/bin:/usr/bin:/bin" "$b" --version)" ||
    die "$b --version failed after installing from the bundle"
  log "$v"
done
