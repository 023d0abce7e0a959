//! `install.sh` end to end, into a private HOME: binaries, each plugin's completions and man
//! pages where bash-completion, zsh, fish and man look, a second run that changes nothing, a run
//! that drops what is no longer shipped, and `--uninstall` that removes all of it. One test, one
//! install: the debug binaries are large. A stand-in `cargo` on PATH answers `build` (done) and
//! `metadata` (a target directory whose `release/` links to this build's binaries), so the test
//! runs the real script without a release build.

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

/// A directory holding the stand-in `cargo`, whose target directory's `release/` is this build.
fn fake_cargo(env: &TestEnv) -> PathBuf {
    let target = env.path().join("target");
    fs::create_dir_all(target.join("release")).unwrap();
    for b in BINARIES {
        std::os::unix::fs::symlink(bin_dir().join(b), target.join("release").join(b)).unwrap();
    }
    let dir = env.path().join("fake-cargo");
    fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  build) exit 0 ;;\n  metadata) printf '{{\"target_directory\":\"%s\"}}\\n' '{}' ;;\n  *) exit 1 ;;\nesac\n",
        target.display()
    );
    write_executable(&dir.join("cargo"), &script);
    dir
}

fn install_sh(env: &TestEnv, cargo_dir: &Path, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let path = format!("{}:/usr/bin:/bin", cargo_dir.display());
    Command::new("bash")
        .arg(script)
        .args(args)
        .env_clear()
        .env("HOME", &env.home)
        .env("PATH", path)
        .output()
        .unwrap()
}

/// Every file the install should put under `prefix`, for `man1` the pages `man DIR` writes.
fn expected_files(env: &TestEnv, prefix: &Path) -> Vec<PathBuf> {
    let share = prefix.join("share");
    let mut files: Vec<PathBuf> = BINARIES
        .iter()
        .map(|b| prefix.join("bin").join(b))
        .collect();
    for p in PLUGINS {
        files.push(share.join("bash-completion/completions").join(p));
        files.push(share.join("zsh/site-functions").join(format!("_{p}")));
        files.push(
            share
                .join("fish/vendor_completions.d")
                .join(format!("{p}.fish")),
        );
        let pages = env.path().join(format!("pages-{p}"));
        ok(&env.run(p, &["man", pages.to_str().unwrap()], b""));
        for page in fs::read_dir(&pages).unwrap() {
            files.push(share.join("man/man1").join(page.unwrap().file_name()));
        }
    }
    files.sort();
    files
}

/// What bash offers for `gdcloud-artifacts pull --sin` after bash-completion loads our script on
/// demand, the way an interactive shell does at the first TAB.
fn loaded_bash_completion(env: &TestEnv, prefix: &Path) -> String {
    let driver = r#"
source /usr/share/bash-completion/bash_completion || exit 90
__load_completion gdcloud-artifacts || exit 91
fn=$(complete -p gdcloud-artifacts | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_LINE="gdcloud-artifacts pull --sin"; COMP_POINT=${#COMP_LINE}
COMP_WORDS=(gdcloud-artifacts pull --sin); COMP_CWORD=2
"$fn" gdcloud-artifacts --sin pull
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", driver])
        .env("HOME", &env.home)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", prefix.join("bin").display()),
        )
        .env_remove("XDG_DATA_HOME")
        .env_remove("BASH_COMPLETION_USER_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "bash-completion: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn install_reinstall_uninstall_with_completions_and_man_pages() {
    let env = TestEnv::new();
    let cargo = fake_cargo(&env);
    // The default prefix, ~/.local, is where bash-completion looks for a user's completions.
    let prefix = env.home.join(".local");
    let o = install_sh(&env, &cargo, &[]);
    let log = ok(&o);
    let expected = expected_files(&env, &prefix);
    for f in &expected {
        assert!(f.is_file(), "not installed: {}\n{log}", f.display());
        assert!(log.contains(&format!("installed {}", f.display())), "{log}");
    }
    let manifest = prefix.join("share/gdcloud-kit/installed-files");
    let mut listed: Vec<PathBuf> = fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    listed.sort();
    assert_eq!(listed, expected, "the manifest lists what was installed");

    if Path::new("/usr/share/bash-completion/bash_completion").exists() {
        let offered = loaded_bash_completion(&env, &prefix);
        assert_eq!(offered, "--single-manifest-repo\n");
    } else {
        eprintln!("bash-completion not installed: skipping its loader (tests/run.sh installs it)");
    }
    let man = Command::new("man")
        .args(["-M", prefix.join("share/man").to_str().unwrap()])
        .arg("gdcloud-artifacts-pull")
        .env("MANWIDTH", "300")
        .env("HOME", &env.home)
        .output();
    match man {
        Ok(o) if o.status.success() => {
            assert!(
                stdout(&o).contains("--single-manifest-repo"),
                "{}",
                stdout(&o)
            )
        }
        Ok(o) => panic!("man gdcloud-artifacts-pull: {}", stderr(&o)),
        Err(_) => eprintln!("man not found: skipping the page lookup"),
    }

    // Again: nothing changes.
    let again = ok(&install_sh(&env, &cargo, &[]));
    assert!(!again.contains("installed "), "{again}");
    assert_eq!(
        again.matches("up to date ").count(),
        expected.len(),
        "{again}"
    );

    // A file an earlier install listed that this one no longer ships (a command removed) goes.
    let stale = prefix.join("share/man/man1/gdcloud-artifacts-gone.1");
    fs::write(&stale, "old page").unwrap();
    let mut text = fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!("{}\n", stale.display()));
    fs::write(&manifest, text).unwrap();
    let log = ok(&install_sh(&env, &cargo, &[]));
    assert!(!stale.exists(), "{log}");
    assert!(
        log.contains(&format!("removed {}", stale.display())),
        "{log}"
    );

    let gone = ok(&install_sh(&env, &cargo, &["--uninstall"]));
    for f in &expected {
        assert!(!f.exists(), "left behind: {}\n{gone}", f.display());
    }
    assert!(!manifest.exists());
    for d in ["bash-completion", "zsh", "fish", "man", "gdcloud-kit"] {
        assert!(!prefix.join("share").join(d).exists(), "left {d}/");
    }
}
