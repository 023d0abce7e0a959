//! The release bundle on an air-gapped host (issue 10, item 4): unpacked, its `install.sh` runs
//! under `env -i` with PATH=/usr/bin:/bin (no cargo, no ~/.cargo), checks SHA256SUMS and installs
//! into a fresh prefix; every binary answers `--version`; bash-completion loads our script and
//! completes `gdcloud-artifacts pull --sin<TAB>`; a tampered bundle is refused; a newer bundle
//! upgrades in place (changed files replaced, dropped files removed); `--uninstall` leaves nothing.
//!
//! The bundle is `GDCLOUD_TEST_BUNDLE` when set (tests/run.sh builds the real one, zig-linked
//! against the glibc baseline); otherwise this test packages this build's binaries itself with
//! `scripts/release.sh --bins target/debug --no-glibc-check`.

use crate::util;
use util::env::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARIES: [&str; 5] = [
    "docker-credential-gdcloud",
    "gdcloud-auth",
    "gdcloud-artifacts",
    "gdcloud-storage",
    "gdcloud-config",
];
const PLUGINS: [&str; 4] = [
    "gdcloud-auth",
    "gdcloud-artifacts",
    "gdcloud-storage",
    "gdcloud-config",
];
/// What an air-gapped host has: the system's tools, no Rust toolchain.
const CLEAN_PATH: &str = "/usr/bin:/bin";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundle's .tar.gz: the one tests/run.sh built, or one packaged here from this build.
fn bundle(env: &TestEnv) -> PathBuf {
    if let Some(b) = std::env::var_os("GDCLOUD_TEST_BUNDLE") {
        return PathBuf::from(b);
    }
    let out = env.path().join("dist");
    let o = Command::new("bash")
        .arg(repo().join("scripts/release.sh"))
        .arg("--bins")
        .arg(bin_dir())
        .args(["--no-glibc-check", "--no-vendored-src", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let path = ok(&o).lines().last().unwrap_or_default().to_string();
    PathBuf::from(path)
}

/// Unpacks `tarball` into `dest` and returns the bundle's one top-level directory.
fn unpack(tarball: &Path, dest: &Path) -> PathBuf {
    fs::create_dir_all(dest).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(dest),
    );
    let mut dirs: Vec<PathBuf> = fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one top-level directory: {dirs:?}");
    dirs.pop().unwrap()
}

/// `cmd` run the way an air-gapped host runs it: `env -i`, a fresh HOME, PATH without cargo.
fn clean(env: &TestEnv, path: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/env");
    c.arg("-i")
        .arg(format!("HOME={}", env.home.display()))
        .arg(format!("PATH={path}"))
        .args(cmd);
    c
}

fn install_sh(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let script = dir.join("install.sh");
    let mut cmd = vec!["bash", script.to_str().unwrap()];
    cmd.extend_from_slice(args);
    clean(env, CLEAN_PATH, &cmd).output().unwrap()
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let o = run_ok(
        Command::new("find")
            .arg(dir)
            .args(["-type", "f", "-printf", "%P\\n"]),
    );
    let mut v: Vec<String> = String::from_utf8(o)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Rewrites the bundle's SHA256SUMS for its current files, as release.sh writes it.
fn reseal(dir: &Path) {
    let script = "find . -type f ! -name SHA256SUMS -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum > SHA256SUMS";
    run_ok(Command::new("sh").args(["-c", script]).current_dir(dir));
}

/// What bash offers for `gdcloud-artifacts pull --sin` once bash-completion has loaded our script
/// from the prefix on demand, as at an interactive shell's first TAB.
fn complete_sin(env: &TestEnv, prefix: &Path) -> String {
    let driver = r#"
source /usr/share/bash-completion/bash_completion || exit 90
__load_completion gdcloud-artifacts || exit 91
fn=$(complete -p gdcloud-artifacts | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_LINE="gdcloud-artifacts pull --sin"; COMP_POINT=${#COMP_LINE}
COMP_WORDS=(gdcloud-artifacts pull --sin); COMP_CWORD=2
"$fn" gdcloud-artifacts --sin pull
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let path = format!("{}:{CLEAN_PATH}", prefix.join("bin").display());
    let dirs = format!(
        "XDG_DATA_DIRS={}:/usr/share",
        prefix.join("share").display()
    );
    let o = clean(
        env,
        &path,
        &[&dirs, "bash", "--norc", "--noprofile", "-c", driver],
    )
    .output()
    .unwrap();
    ok(&o)
}

#[test]
fn bundle_installs_without_cargo_upgrades_and_uninstalls() {
    let env = TestEnv::new();
    let no_cargo = clean(&env, CLEAN_PATH, &["sh", "-c", "command -v cargo"])
        .output()
        .unwrap();
    assert!(!no_cargo.status.success(), "cargo is on {CLEAN_PATH}");

    let tarball = bundle(&env);
    let name = tarball.file_name().unwrap().to_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("gdcloud-kit-{version}-linux-")) && name.ends_with(".tar.gz"),
        "{name}"
    );
    let checked = Command::new("sha256sum")
        .args(["--check", &format!("{name}.sha256")])
        .current_dir(tarball.parent().unwrap())
        .output()
        .unwrap();
    ok(&checked);
    let dir = unpack(&tarball, &env.path().join("unpacked"));
    let shipped = files_under(&dir);
    for f in ["install.sh", "README.md", "SHA256SUMS"] {
        assert!(shipped.iter().any(|s| s == f), "no {f} in {shipped:?}");
    }
    for b in BINARIES {
        assert!(shipped.contains(&format!("bin/{b}")), "no bin/{b}");
    }
    for p in PLUGINS {
        for f in [
            format!("completions/bash/{p}"),
            format!("completions/zsh/_{p}"),
            format!("completions/fish/{p}.fish"),
            format!("completions/powershell/{p}.ps1"),
            format!("man/man1/{p}.1"),
        ] {
            assert!(shipped.contains(&f), "no {f} in the bundle");
        }
    }
    let sums = fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| &l[66..]).collect();
    let unsummed: Vec<&String> = shipped.iter().filter(|f| *f != "SHA256SUMS").collect();
    assert_eq!(listed, unsummed, "SHA256SUMS lists every shipped file");

    // A changed file stops the install before anything is written.
    let tampered = unpack(&tarball, &env.path().join("tampered"));
    let mut helper = fs::OpenOptions::new()
        .append(true)
        .open(tampered.join("bin/gdcloud-auth"))
        .unwrap();
    std::io::Write::write_all(&mut helper, b"x").unwrap();
    drop(helper);
    let prefix = env.path().join("prefix");
    let refused = install_sh(&env, &tampered, &["--prefix", prefix.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("does not match its SHA256SUMS"));
    assert!(!prefix.exists(), "a refused install wrote into the prefix");

    let log = ok(&install_sh(
        &env,
        &dir,
        &["--prefix", prefix.to_str().unwrap()],
    ));
    for b in BINARIES {
        let path = format!("{}:{CLEAN_PATH}", prefix.join("bin").display());
        let o = clean(&env, &path, &[b, "--version"]).output().unwrap();
        let line = ok(&o);
        assert!(line.contains(b) && line.contains(version), "{b}: {line}");
    }
    let manifest = prefix.join("share/gdcloud-kit/installed-files");
    let installed = fs::read_to_string(&manifest).unwrap();
    assert!(
        installed.lines().count() > BINARIES.len() + 3 * PLUGINS.len(),
        "{log}"
    );
    for f in installed.lines() {
        assert!(Path::new(f).is_file(), "listed but missing: {f}");
        assert!(log.contains(&format!("installed {f}")), "{log}");
    }
    if Path::new("/usr/share/bash-completion/bash_completion").exists() {
        assert_eq!(complete_sin(&env, &prefix), "--single-manifest-repo\n");
    } else {
        eprintln!("bash-completion not installed: skipping its loader (tests/run.sh installs it)");
    }

    // A newer bundle: one completion changed, one man page dropped.
    let newer = unpack(&tarball, &env.path().join("newer"));
    let changed = newer.join("completions/bash/gdcloud-storage");
    let mut text = fs::read_to_string(&changed).unwrap();
    text.push_str("# newer\n");
    fs::write(&changed, text).unwrap();
    let dropped = newer.join("man/man1/gdcloud-storage-ls.1");
    fs::remove_file(&dropped).unwrap();
    reseal(&newer);
    let log = ok(&install_sh(
        &env,
        &newer,
        &["--prefix", prefix.to_str().unwrap()],
    ));
    let share = prefix.join("share");
    let done = share.join("bash-completion/completions/gdcloud-storage");
    assert!(
        log.contains(&format!("installed {}", done.display())),
        "{log}"
    );
    assert!(fs::read_to_string(&done).unwrap().ends_with("# newer\n"));
    let gone = share.join("man/man1/gdcloud-storage-ls.1");
    assert!(
        log.contains(&format!("removed {}", gone.display())),
        "{log}"
    );
    assert!(!gone.exists());
    for b in BINARIES {
        let up = format!("up to date {}", prefix.join("bin").join(b).display());
        assert!(log.contains(&up), "{log}");
    }

    let log = ok(&install_sh(
        &env,
        &newer,
        &["--prefix", prefix.to_str().unwrap(), "--uninstall"],
    ));
    assert_eq!(files_under(&prefix), Vec::<String>::new(), "{log}");
    for d in ["bash-completion", "zsh", "fish", "man", "gdcloud-kit"] {
        assert!(!share.join(d).exists(), "left share/{d}/");
    }
}

/// release.sh refuses binaries that need a newer glibc than the baseline: this build's binaries,
/// linked against the host's glibc, reference GLIBC_2.18 or later (Debian 12: 2.34).
#[test]
fn release_refuses_binaries_above_the_glibc_baseline() {
    let env = TestEnv::new();
    let o = Command::new("bash")
        .arg(repo().join("scripts/release.sh"))
        .arg("--bins")
        .arg(bin_dir())
        .args(["--glibc", "2.17", "--no-vendored-src", "--out"])
        .arg(env.path().join("dist"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("bin/docker-credential-gdcloud needs GLIBC_2.")
            && err.contains("newer than the baseline 2.17"),
        "{err}"
    );
    assert!(!env.path().join("dist").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tar.gz")));
}
