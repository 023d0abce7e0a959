//! `gdcloud-artifacts load` into Harbor (issue 11, item 2): the fake Harbor (`util::harbor_fake`,
//! following Harbor's published REST API v2.0 swagger for projects and quotas; every test is
//! named `harbor_fake_api_*` to make plain it is a fake) in front of a real Distribution
//! registry, refusing pushes into missing projects and past quotas as Harbor does. The bundle is
//! the project's own generator's (`scripts/bench/make-bundle.py`: signed images, an index).
//!
//! What is proven: a missing project stops the load before anything reaches the registry, with
//! the one line that names it and `--create-projects`; `--dry-run --create-projects` creates
//! nothing; `--create-projects` creates it private and the load completes (a re-run skips
//! everything); a quota the new bytes would not fit refuses the load before anything is sent,
//! naming the project, and `--skip-quota-check` lets Harbor refuse it itself.

use crate::util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use util::env::*;
use util::harbor_fake::*;
use util::registry::{Registry, RegistryAuth, RegistryOptions};

/// A two-project signed bundle (`proj1/…`, `proj2/…`) of small images, one an index.
fn bundle(dir: &Path) -> PathBuf {
    let out = dir.join("bundle");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench/make-bundle.py");
    let status = Command::new("python3")
        .arg(script)
        .args([
            "--images",
            "4",
            "--indexes",
            "1",
            "--projects",
            "2",
            "--repos",
            "1",
        ])
        .args(["--min-layer", "1K", "--max-layer", "4K", "-q"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs scripts/bench/make-bundle.py");
    assert!(status.success(), "make-bundle.py failed");
    out
}

/// A real registry (htpasswd) behind the fake, whose projects are `projects`.
fn fronted(projects: Vec<FakeProject>) -> (Registry, HarborFake) {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let mut config = HarborConfig::new(projects);
    config.upstream = Some(Upstream {
        host: reg.host.clone(),
        username: reg.username.clone(),
        password: reg.password.clone(),
    });
    (reg, HarborFake::start(config))
}

fn load(env: &TestEnv, fake: &HarborFake, bundle: &Path, extra: &[&str]) -> Output {
    let exe = bin_dir().join("gdcloud-artifacts");
    let mut c = env.cmd(exe.to_str().unwrap());
    c.args(["--format", "json", "load"])
        .arg(bundle)
        .arg(fake.host())
        .args(["--username", ADMIN, "--password-stdin", "--quiet"])
        // One transfer (four HEADs) at a time: the fake answers one request at a time and,
        // with a dozen connections open at once, now and then never sees one of them (the
        // client then waits out its 60 s deadline). Concurrency is proven against Distribution
        // in tests/artifacts_load.rs.
        .args(["--concurrency", "1"])
        .args(extra);
    run_with_stdin(c, format!("{ADMIN_PASSWORD}\n").as_bytes())
}

fn report(o: &Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn statuses(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
    v.dedup();
    v
}

/// Writes that reached the real registry (uploads and manifest PUTs).
fn registry_writes(reg: &Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"PUT ") || l.contains("\"POST ") || l.contains("\"PATCH "))
        .count()
}

fn project_posts(fake: &HarborFake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v2.0/projects")
        .count()
}

#[test]
fn harbor_fake_api_missing_project_stops_the_load_until_created() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = bundle(tmp.path());
    let (reg, fake) = fronted(vec![FakeProject::private("proj1", vec![])]);
    let env = TestEnv::new();

    let out = load(&env, &fake, &bundle, &[]);
    let line = failed(&out);
    assert!(
        line.contains(&format!(
            "project proj2 does not exist in Harbor at {}; create it or load with --create-projects",
            fake.host()
        )),
        "{line}"
    );
    assert_eq!(registry_writes(&reg), 0, "nothing may be sent");

    let out = load(&env, &fake, &bundle, &["--create-projects", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    let projects: Vec<(String, String)> = r["harbor_projects"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        projects,
        [
            ("proj1".into(), "exists".into()),
            ("proj2".into(), "to_create".into())
        ]
    );
    assert_eq!(statuses(&r), ["planned"]);
    assert_eq!(project_posts(&fake), 0, "a dry run creates nothing");
    assert_eq!(fake.project_public("proj2"), None);
    assert_eq!(registry_writes(&reg), 0);

    let out = load(&env, &fake, &bundle, &["--create-projects"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(statuses(&r), ["pushed"]);
    assert_eq!(fake.project_public("proj2"), Some(false), "created private");
    assert_eq!(project_posts(&fake), 1);
    // Every pushed digest is the bundle's, read back through the front.
    for e in r["refs"].as_array().unwrap() {
        let reference = e["reference"].as_str().unwrap();
        let (path, tag) = reference.rsplit_once(':').unwrap();
        let (status, headers, _) = fake.raw(
            "HEAD",
            &format!("/v2/{path}/manifests/{tag}"),
            Some((ADMIN, ADMIN_PASSWORD)),
            &[(
                "Accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            )],
            b"",
        );
        assert_eq!(status, 200, "{reference}");
        let got = headers
            .iter()
            .find(|(k, _)| k == "docker-content-digest")
            .map(|(_, v)| v.clone());
        assert_eq!(got.as_deref(), e["digest"].as_str(), "{reference}");
    }

    let again = load(&env, &fake, &bundle, &["--create-projects"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(statuses(&report(&again)), ["skipped"]);
    assert_eq!(project_posts(&fake), 1, "nothing to create on a re-run");
}

#[test]
fn harbor_fake_api_quota_refuses_before_sending_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = bundle(tmp.path());
    let (reg, fake) = fronted(vec![
        FakeProject::private("proj1", vec![]).with_quota(1000),
        FakeProject::private("proj2", vec![]),
    ]);
    let env = TestEnv::new();

    let out = load(&env, &fake, &bundle, &[]);
    let line = failed(&out);
    assert!(
        line.contains("project proj1 needs ")
            && line.contains("but has 1000 B left of its 1000 B quota; raise the quota in Harbor or load with --skip-quota-check"),
        "{line}"
    );
    assert_eq!(registry_writes(&reg), 0, "refused before anything is sent");

    // Without the preflight, Harbor itself refuses proj1's pushes; proj2's go up.
    let out = load(
        &env,
        &fake,
        &bundle,
        &["--skip-quota-check", "--continue-on-error"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = report(&out);
    for e in r["refs"].as_array().unwrap() {
        let reference = e["reference"].as_str().unwrap();
        let status = e["status"].as_str().unwrap();
        if reference.starts_with("proj1/") {
            assert_eq!(status, "failed", "{reference}");
        } else {
            assert_eq!(status, "pushed", "{reference}");
        }
    }
}
