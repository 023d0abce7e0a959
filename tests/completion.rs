//! Shell completion, man pages and `version` of every plugin binary, tested through the shells and
//! tools a user has: the bash script is sourced into a real bash and its registered completion
//! function is called the way readline calls it (COMP_WORDS, COMP_CWORD, COMP_LINE, COMP_POINT),
//! the fish script answers `complete -C`, an interactive zsh (under zpty) completes with the zsh
//! script, and the man pages are rendered by groff. A shell or tool that is not installed skips
//! its part with a note (tests/run.sh installs bash, zsh, fish and groff).

use crate::util;
use util::env::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const PLUGINS: [&str; 3] = ["gdcloud-artifacts", "gdcloud-auth", "gdcloud-storage"];

/// The completion script `bin completion shell` prints, written into the test's directory.
fn script(env: &TestEnv, bin: &str, shell: &str) -> PathBuf {
    let text = ok(&env.run(bin, &["completion", shell], b""));
    let file = env.path().join(format!("{bin}.{shell}"));
    fs::write(&file, text).unwrap();
    file
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What bash offers for `line` (the cursor at its end): the script is sourced, the function
/// `complete -p BIN` registered is called with the arguments readline passes, COMPREPLY printed.
fn bash_complete(env: &TestEnv, bin: &str, line: &str) -> Vec<String> {
    let file = script(env, bin, "bash");
    let driver = r#"
source "$1" || exit 90
spec=$(complete -p "$2") || exit 91
fn=$(printf '%s\n' "$spec" | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_LINE="$3"
COMP_POINT=${#COMP_LINE}
read -r -a COMP_WORDS <<< "$COMP_LINE"
# A line ending in a space completes a new, empty word.
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
cur="${COMP_WORDS[COMP_CWORD]}"
prev="${COMP_WORDS[COMP_CWORD-1]}"
COMPREPLY=()
"$fn" "$2" "$cur" "$prev"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", driver, "driver"])
        .arg(&file)
        .args([bin, line])
        .output()
        .expect("run bash");
    assert!(
        o.status.success(),
        "bash driver for {line:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[track_caller]
fn assert_offers(env: &TestEnv, bin: &str, line: &str, want: &str) {
    let offered = bash_complete(env, bin, line);
    assert!(
        offered.iter().any(|w| w == want),
        "bash: `{line}<TAB>` offers {offered:?}, not {want}"
    );
}

#[test]
fn bash_completes_flags_below_the_top_level() {
    let env = TestEnv::new();
    assert_offers(
        &env,
        "gdcloud-artifacts",
        "gdcloud-artifacts pull --sin",
        "--single-manifest-repo",
    );
    let only = bash_complete(&env, "gdcloud-artifacts", "gdcloud-artifacts pull --sin");
    assert_eq!(only, ["--single-manifest-repo"]);
    assert_offers(
        &env,
        "gdcloud-artifacts",
        "gdcloud-artifacts list-versions --la",
        "--latest",
    );
    assert_offers(
        &env,
        "gdcloud-storage",
        "gdcloud-storage cp --",
        "--recursive",
    );
    assert_offers(
        &env,
        "gdcloud-storage",
        "gdcloud-storage cp --",
        "--no-clobber",
    );
    assert_offers(
        &env,
        "gdcloud-auth",
        "gdcloud-auth configure-docker --reg",
        "--registries",
    );
    // Global flags are offered after the subcommand too, where they are accepted.
    assert_offers(
        &env,
        "gdcloud-auth",
        "gdcloud-auth login --verb",
        "--verbosity",
    );
}

#[test]
fn bash_completes_subcommands_and_values() {
    let env = TestEnv::new();
    assert_offers(&env, "gdcloud-artifacts", "gdcloud-artifacts pu", "pull");
    assert_offers(&env, "gdcloud-artifacts", "gdcloud-artifacts pu", "push");
    assert_offers(&env, "gdcloud-storage", "gdcloud-storage ", "version");
    assert_offers(
        &env,
        "gdcloud-auth",
        "gdcloud-auth completion pow",
        "powershell",
    );
    assert_offers(
        &env,
        "gdcloud-storage",
        "gdcloud-storage ls --format ",
        "json",
    );
}

#[test]
fn fish_completes_flags_below_the_top_level() {
    if !have("fish") {
        eprintln!("fish not found: skipping (tests/run.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    for (bin, line, want) in [
        (
            "gdcloud-artifacts",
            "gdcloud-artifacts pull --sin",
            "--single-manifest-repo",
        ),
        ("gdcloud-storage", "gdcloud-storage cp --rec", "--recursive"),
        (
            "gdcloud-auth",
            "gdcloud-auth configure-docker --reg",
            "--registries",
        ),
    ] {
        let file = script(&env, bin, "fish");
        let o = Command::new("fish")
            .args([
                "--no-config",
                "-c",
                "source $argv[1]; and complete -C $argv[2]",
            ])
            .arg(&file)
            .arg(line)
            .env("HOME", &env.home)
            .output()
            .unwrap();
        assert!(o.status.success(), "fish: {}", stderr(&o));
        let offered: Vec<&str> = std::str::from_utf8(&o.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').next().unwrap_or(""))
            .collect();
        assert!(offered.contains(&want), "fish: `{line}` offers {offered:?}");
    }
}

#[test]
fn zsh_scripts_load_under_compinit() {
    if !have("zsh") {
        eprintln!("zsh not found: skipping (tests/run.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    for bin in PLUGINS {
        let file = script(&env, bin, "zsh");
        let dir = env.path().join(format!("zfunc-{bin}"));
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&file, dir.join(format!("_{bin}"))).unwrap();
        // compinit reads `#compdef` from the fpath file and binds the function to the command.
        let check = r#"fpath=("$1" $fpath); autoload -Uz compinit && compinit -u -d "$1/.zcompdump" || exit 90
[[ "${_comps[$2]}" == "_$2" ]] || { print -u2 "not bound: ${_comps[$2]}"; exit 91; }
autoload -Uz "_$2" && functions "_$2" >/dev/null || exit 92"#;
        let o = Command::new("zsh")
            .args(["-f", "-c", check, "zsh"])
            .arg(&dir)
            .arg(bin)
            .env("HOME", &env.home)
            .output()
            .unwrap();
        assert!(o.status.success(), "zsh {bin}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "zsh {bin}: {}", stderr(&o));
        let n = Command::new("zsh").arg("-n").arg(&file).output().unwrap();
        assert!(n.status.success(), "zsh -n {bin}: {}", stderr(&n));
    }
}

/// Types `line` and TAB into an interactive zsh (under zpty) whose `compinit` found our scripts in
/// `fpath`, and returns what the terminal showed once `want` appeared (or after 5 s).
const ZSH_TAB: &str = r#"zmodload zsh/zpty || exit 90
zpty z 'zsh -f -i' || exit 91
zpty -w z "PS1='> '; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -d ${(q)1}/.zcompdump"
zpty -w -n z "$2"$'\t'
out=""
for i in {1..50}; do
  while zpty -r -t z chunk; do out+=$chunk; done
  [[ "$out" == *"$3"* ]] && break
  sleep 0.1
done
zpty -d z
print -r -- "$out""#;

#[test]
fn zsh_completes_flags_below_the_top_level() {
    if !have("zsh") {
        eprintln!("zsh not found: skipping (tests/run.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    let dir = env.path().join("zfunc");
    fs::create_dir_all(&dir).unwrap();
    for bin in PLUGINS {
        fs::copy(script(&env, bin, "zsh"), dir.join(format!("_{bin}"))).unwrap();
    }
    for (line, want) in [
        ("gdcloud-artifacts pull --sin", "--single-manifest-repo"),
        ("gdcloud-storage cp --rec", "--recursive"),
        ("gdcloud-auth configure-docker --reg", "--registries"),
    ] {
        let mut c = Command::new("zsh");
        c.args(["-f", "-c", ZSH_TAB, "zsh"])
            .arg(&dir)
            .args([line, want])
            .env("HOME", &env.home)
            .env("TERM", "dumb");
        let o = run_timed(c, b"", std::time::Duration::from_secs(30));
        assert!(o.status.success(), "zsh: {}", stderr(&o));
        assert!(
            stdout(&o).contains(want),
            "zsh: `{line}<TAB>` showed {:?}",
            stdout(&o)
        );
    }
}

#[test]
fn powershell_script_registers_the_binary() {
    let env = TestEnv::new();
    for bin in PLUGINS {
        let text = fs::read_to_string(script(&env, bin, "powershell")).unwrap();
        assert!(
            text.contains(&format!(
                "Register-ArgumentCompleter -Native -CommandName '{bin}'"
            )),
            "{bin}: {text}"
        );
    }
    let text = fs::read_to_string(script(&env, "gdcloud-artifacts", "powershell")).unwrap();
    assert!(text.contains("'gdcloud-artifacts;pull'"), "no pull case");
    assert!(text.contains("--single-manifest-repo"), "no pull flags");
}

// ---------------------------------------------------------------------------------------------
// Man pages
// ---------------------------------------------------------------------------------------------

/// The visible subcommands `bin --help` lists (before the `help` entry).
fn subcommands(env: &TestEnv, bin: &str) -> Vec<String> {
    let help = ok(&env.run(bin, &["--help"], b""));
    let list = help.split("Commands:\n").nth(1).expect("no Commands:");
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

/// Every `--long` flag `help` names.
fn long_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2 && !w.ends_with('-'))
        .map(String::from)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// The page as `man` renders it for a terminal (`-k`: preconv, as man-db does, for the UTF-8 in
/// the help text), wide enough that no flag is hyphenated.
fn render(page: &Path) -> String {
    let o = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-P-cbou", "-rLL=300n"])
        .arg(page)
        .output()
        .expect("run groff");
    assert!(
        o.status.success(),
        "groff {}: {}",
        page.display(),
        stderr(&o)
    );
    assert!(
        stderr(&o).is_empty(),
        "groff {}: {}",
        page.display(),
        stderr(&o)
    );
    stdout(&o)
}

#[test]
fn man_pages_name_every_flag_of_every_command() {
    let env = TestEnv::new();
    let groff = have("groff");
    if !groff {
        eprintln!("groff not found: checking the roff source only");
    }
    for bin in PLUGINS {
        let dir = env.path().join(format!("man-{bin}"));
        let printed = ok(&env.run(bin, &["man", dir.to_str().unwrap()], b""));
        let top = dir.join(format!("{bin}.1"));
        let subs = subcommands(&env, bin);
        assert!(subs.iter().any(|s| s == "version"), "{bin}: {subs:?}");
        let mut expected = vec![top.clone()];
        for sub in &subs {
            let page = dir.join(format!("{bin}-{sub}.1"));
            let help = ok(&env.run(bin, &[sub, "--help"], b""));
            let text = if groff {
                render(&page)
            } else {
                fs::read_to_string(&page).unwrap().replace("\\-", "-")
            };
            assert!(text.contains(&format!("{bin}-{sub}")), "{}", page.display());
            for flag in long_flags(&help) {
                assert!(text.contains(&flag), "{}: no {flag}", page.display());
            }
            expected.push(page);
        }
        let mut found: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "{bin}: one page per visible command");
        let mut printed: Vec<PathBuf> = printed.lines().map(PathBuf::from).collect();
        printed.sort();
        assert_eq!(printed, expected, "{bin}: prints the pages it wrote");
        let top_text = fs::read_to_string(&top).unwrap();
        assert!(
            !top_text.contains("gdcloud\\-plugin\\-metadata"),
            "hidden command paged"
        );
    }
}

#[test]
fn man_is_hidden_from_help() {
    let env = TestEnv::new();
    for bin in PLUGINS {
        let help = ok(&env.run(bin, &["--help"], b""));
        assert!(!help.contains("  man "), "{bin}: {help}");
    }
}

// ---------------------------------------------------------------------------------------------
// version
// ---------------------------------------------------------------------------------------------

#[test]
fn version_text_and_json() {
    let env = TestEnv::new();
    let version = env!("CARGO_PKG_VERSION");
    for bin in PLUGINS {
        let o = env.run(bin, &["version"], b"");
        assert_eq!(ok(&o), format!("{bin} {version}\n"));
        for args in [
            ["version", "--format", "json"],
            ["--format", "json", "version"],
        ] {
            let o = env.run(bin, &args, b"");
            let v: Value = serde_json::from_str(&ok(&o)).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"version": version, "binary": bin}),
                "{bin} {args:?}"
            );
            assert!(stderr(&o).is_empty(), "{bin}: {}", stderr(&o));
        }
    }
}
