//! Harbor projects and quotas before a load (issue 11): `ops::harbor_projects` against the fake
//! Harbor (`util::harbor_fake`), which follows Harbor's published REST API v2.0 swagger for
//! projects and quotas; every test is named `harbor_fake_api_*` to make plain that the server is
//! a fake following the published API, not Harbor itself. The last tests put the fake in front
//! of a real registry (Distribution) and push through it with real clients (our
//! `gdcloud-artifacts push`, skopeo), proving the front refuses what Harbor refuses: a push into
//! a missing project, a push past a project's quota.

use crate::util;

use gdcloud::ops::harbor_projects::{self as hp, Created, Options, ProjectStatus, ProjectsReport};
use gdcloud::ops::{ClientOptions, Credentials};
use gdcloud::secret::Secret;
use serde_json::Value;

use util::env::*;
use util::harbor_fake::*;
use util::image::{skopeo_cmd, tiny_image_layout, TAG};
use util::registry::{Registry, RegistryAuth, RegistryOptions};

const GIB: u64 = 1 << 30;
const DEV: &str = "dev";
const DEV_PASSWORD: &str = "dev-pass";

fn login(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: user.to_string(),
        password: Secret::new(password),
    }
}

fn options(fake: &HarborFake, creds: Credentials, create: bool, check_quota: bool) -> Options {
    Options {
        registry: fake.host(),
        client: ClientOptions {
            credentials: Some(creds.clone()),
            ..ClientOptions::default()
        },
        admin: Some(creds),
        create,
        check_quota,
        ..Options::default()
    }
}

fn prepare(opts: &Options, needs: &[(&str, u64)]) -> Result<ProjectsReport, hp::Error> {
    let needs: Vec<(String, u64)> = needs.iter().map(|(p, n)| (p.to_string(), *n)).collect();
    let rt = gdcloud::plugin::cli::runtime().expect("tokio runtime");
    rt.block_on(hp::prepare(opts, &needs))
}

fn as_admin(fake: &HarborFake, create: bool, check_quota: bool) -> Options {
    options(fake, login(ADMIN, ADMIN_PASSWORD), create, check_quota)
}

/// A fake with private projects `app` (unlimited) and `small` (1000 bytes), and user `dev`
/// (not a system admin).
fn fake() -> HarborFake {
    let mut config = HarborConfig::new(vec![
        FakeProject::private("app", vec![]),
        FakeProject::private("small", vec![]).with_quota(1000),
    ]);
    config.users.push((DEV.into(), DEV_PASSWORD.into()));
    HarborFake::start(config)
}

fn methods_on(fake: &HarborFake, method: &str, path: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

#[test]
fn harbor_fake_api_existing_projects_and_their_quotas() {
    let fake = fake();
    let report = prepare(
        &as_admin(&fake, false, true),
        &[("app", GIB), ("small", 400), ("small", 600)],
    )
    .expect("both exist and fit");
    let summary: Vec<_> = report
        .projects
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.id,
                p.status,
                p.need,
                p.quota.map(|q| (q.hard, q.used)),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("app", Some(2), ProjectStatus::Exists, GIB, Some((-1, 0))),
            (
                "small",
                Some(3),
                ProjectStatus::Exists,
                1000,
                Some((1000, 0))
            )
        ]
    );
    let quota_reads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v2.0/quotas")
        .map(|r| (r.param("reference"), r.param("reference_id"), r.username))
        .collect();
    assert_eq!(
        quota_reads,
        [
            (Some("project".into()), Some("2".into()), Some(ADMIN.into())),
            (Some("project".into()), Some("3".into()), Some(ADMIN.into()))
        ]
    );
    assert_eq!(methods_on(&fake, "POST", "/api/v2.0/projects"), 0);
}

#[test]
fn harbor_fake_api_missing_project_is_refused_without_create() {
    let fake = fake();
    let err = prepare(
        &as_admin(&fake, false, true),
        &[("app", 1), ("newproj", 1), ("other", 1)],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        format!(
            "project newproj, other does not exist in Harbor at {}; create it or load with --create-projects",
            fake.host()
        )
    );
    assert_eq!(fake.project_public("newproj"), None);
    assert_eq!(methods_on(&fake, "POST", "/api/v2.0/projects"), 0);
}

#[test]
fn harbor_fake_api_creates_missing_projects_private() {
    let fake = fake();
    let report = prepare(&as_admin(&fake, true, true), &[("app", 1), ("newproj", 5)])
        .expect("newproj is created");
    let new = report
        .projects
        .iter()
        .find(|p| p.name == "newproj")
        .unwrap();
    assert_eq!((new.status, new.id), (ProjectStatus::Created, Some(4)));
    assert_eq!(new.quota.map(|q| (q.hard, q.used)), Some((-1, 0)));
    assert_eq!(fake.project_public("newproj"), Some(false));
    let posts: Vec<u16> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [201]);
    // Harbor's view of it, through its own API.
    let (status, _, body) = fake.raw(
        "GET",
        "/api/v2.0/projects/newproj",
        Some((ADMIN, ADMIN_PASSWORD)),
        &[("X-Is-Resource-Name", "true")],
        b"",
    );
    assert_eq!(status, 200);
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(p["metadata"]["public"], "false");
    assert_eq!(p["owner_name"], ADMIN);
}

#[test]
fn harbor_fake_api_conflict_means_another_loader_created_it() {
    let fake = fake();
    let body = br#"{"project_name":"race","metadata":{"public":"false"}}"#;
    let (status, headers, _) = fake.raw(
        "POST",
        "/api/v2.0/projects",
        Some((ADMIN, ADMIN_PASSWORD)),
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!(status, 201);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "location" && v == "/api/v2.0/projects/4"));
    let rt = gdcloud::plugin::cli::runtime().unwrap();
    let got = rt
        .block_on(hp::create(&as_admin(&fake, true, true), "race"))
        .unwrap();
    assert_eq!(got, Created::AlreadyExisted);
    let statuses: Vec<u16> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [201, 409]);
}

#[test]
fn harbor_fake_api_wrong_password_and_non_admin_are_told_to_use_the_admin_login() {
    let fake = fake();
    let wrong = options(&fake, login(ADMIN, "not-it"), false, true);
    let err = prepare(&wrong, &[("app", 1)]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("Harbor at {} refused reading project app (HTTP 401): the login is not a Harbor admin; use the harbor-admin login (--credentials-from-cluster) or an admin's --username with --password-stdin", fake.host())
    );
    // A plain user may read its projects but not the quotas.
    let dev = options(&fake, login(DEV, DEV_PASSWORD), false, true);
    let err = prepare(&dev, &[("library", 1)]).unwrap_err().to_string();
    assert!(
        err.contains(
            "refused reading the quota of project 1 (HTTP 403): the login is not a Harbor admin"
        ),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn harbor_fake_api_preflight_refuses_naming_the_project() {
    let fake = fake();
    let err = prepare(
        &as_admin(&fake, true, true),
        &[("app", GIB), ("small", 1500), ("fresh", 1)],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "project small needs 1.5 KiB more but has 1000 B left of its 1000 B quota; raise the quota in Harbor or load with --skip-quota-check"
    );
    assert_eq!(
        fake.project_public("fresh"),
        None,
        "nothing is created while an existing project's quota refuses the load"
    );
    let report = prepare(&as_admin(&fake, false, false), &[("small", 1500)]).expect("no check");
    assert_eq!(report.projects[0].quota, None);
}

#[test]
fn harbor_fake_api_new_projects_count_against_the_default_quota() {
    let mut config = HarborConfig::new(vec![]);
    config.storage_per_project = 1000;
    let fake = HarborFake::start(config);
    let err = prepare(&as_admin(&fake, true, true), &[("fresh", 2048)])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "project fresh needs 2 KiB more but has 1000 B left of its 1000 B quota; raise the quota in Harbor or load with --skip-quota-check"
    );
}

#[test]
fn harbor_fake_api_dry_run_changes_nothing_and_checks_the_default_quota() {
    let mut config = HarborConfig::new(vec![FakeProject::private("app", vec![])]);
    config.storage_per_project = 1000;
    let fake = HarborFake::start(config);
    let mut opts = as_admin(&fake, true, true);
    opts.dry_run = true;
    let report = prepare(&opts, &[("app", 5), ("fresh", 1000)]).expect("fits");
    let summary: Vec<_> = report
        .projects
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.id,
                p.status,
                p.quota.map(|q| (q.hard, q.used)),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("app", Some(2), ProjectStatus::Exists, Some((1000, 0))),
            ("fresh", None, ProjectStatus::ToCreate, Some((1000, 0)))
        ]
    );
    let err = prepare(&opts, &[("fresh", 1001)]).unwrap_err().to_string();
    assert!(
        err.starts_with("project fresh needs 1001 B more but has 1000 B left"),
        "{err}"
    );
    assert_eq!(fake.project_public("fresh"), None);
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "a dry run only reads"
    );
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.path == "/api/v2.0/configurations"));
}

#[test]
fn harbor_fake_api_refuses_a_name_harbor_would_refuse_before_sending_it() {
    let fake = fake();
    let err = prepare(&as_admin(&fake, true, true), &[("Team/App\u{1b}", 1)])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Team/App\\x1b is not a Harbor project name"),
        "{err}"
    );
    assert!(fake.requests().iter().all(|r| !r.path.starts_with("/api/")));
}

/// The fake's projects API itself, against the swagger's status codes.
#[test]
fn harbor_fake_api_projects_and_quotas_answer_as_the_swagger_says() {
    let fake = fake();
    let admin = Some((ADMIN, ADMIN_PASSWORD));
    let dev = Some((DEV, DEV_PASSWORD));
    let status =
        |m: &str, p: &str, a: Option<(&str, &str)>, body: &[u8]| fake.raw(m, p, a, &[], body).0;
    assert_eq!(
        status("HEAD", "/api/v2.0/projects?project_name=app", admin, b""),
        200
    );
    assert_eq!(
        status("HEAD", "/api/v2.0/projects?project_name=nope", admin, b""),
        404
    );
    assert_eq!(
        status("HEAD", "/api/v2.0/projects?project_name=app", None, b""),
        401
    );
    assert_eq!(status("GET", "/api/v2.0/projects/app", None, b""), 401);
    assert_eq!(status("GET", "/api/v2.0/projects/app", dev, b""), 403);
    assert_eq!(status("GET", "/api/v2.0/projects/2", admin, b""), 200);
    assert_eq!(status("GET", "/api/v2.0/projects/library", None, b""), 200);
    assert_eq!(
        status(
            "POST",
            "/api/v2.0/projects",
            admin,
            br#"{"project_name":"app"}"#
        ),
        409
    );
    assert_eq!(
        status(
            "POST",
            "/api/v2.0/projects",
            admin,
            br#"{"project_name":"Bad"}"#
        ),
        400
    );
    assert_eq!(
        status(
            "POST",
            "/api/v2.0/projects",
            None,
            br#"{"project_name":"x"}"#
        ),
        401
    );
    assert_eq!(
        status(
            "POST",
            "/api/v2.0/projects",
            dev,
            br#"{"project_name":"mine"}"#
        ),
        201
    );
    assert_eq!(
        status("GET", "/api/v2.0/quotas?reference=project", dev, b""),
        403
    );
    assert_eq!(status("DELETE", "/api/v2.0/projects/app", admin, b""), 405);
    assert_eq!(status("GET", "/api/v2.0/configurations", dev, b""), 403);
    assert_eq!(status("GET", "/api/v2.0/configurations", None, b""), 401);
    // What the fake does not implement is refused loudly, never ignored.
    let (s, _, body) = fake.raw("GET", "/api/v2.0/quotas?sort=used.storage", admin, &[], b"");
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("does not implement the query parameter sort"));
    let (s, _, body) = fake.raw(
        "POST",
        "/api/v2.0/projects",
        admin,
        &[],
        br#"{"project_name":"p","registry_id":1}"#,
    );
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("does not implement ProjectReq.registry_id"));
    // The list: anonymous sees public projects; an admin all, with X-Total-Count.
    let (s, headers, body) = fake.raw_get("/api/v2.0/projects?page_size=2", admin);
    assert_eq!(s, 200);
    let names: Vec<String> = serde_json::from_slice::<Vec<Value>>(&body)
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["library", "app"]);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-total-count" && v == "4"),
        "{headers:?}"
    );
    let (_, _, body) = fake.raw_get("/api/v2.0/projects", None);
    let anonymous: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(anonymous.len(), 1, "only library is public");
    // Quotas: one per project, the hard limit as configured.
    let (_, _, body) = fake.raw_get("/api/v2.0/quotas?reference=project&reference_id=3", admin);
    let q: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(q[0]["ref"]["name"], "small");
    assert_eq!(
        (
            q[0]["hard"]["storage"].as_i64(),
            q[0]["used"]["storage"].as_i64()
        ),
        (Some(1000), Some(0))
    );
}

// ------------------------------------------------------------- the fake in front of a registry

/// A real registry (htpasswd, plain HTTP) and the fake in front of it, with private projects
/// `app` (unlimited) and `small` (`small_quota` bytes).
fn fronted(small_quota: i64) -> (Registry, HarborFake) {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let mut config = HarborConfig::new(vec![
        FakeProject::private("app", vec![]),
        FakeProject::private("small", vec![]).with_quota(small_quota),
    ]);
    config.upstream = Some(Upstream {
        host: reg.host.clone(),
        username: reg.username.clone(),
        password: reg.password.clone(),
    });
    (reg, HarborFake::start(config))
}

/// The sizes of the tiny image's manifest, config and layers, from its layout.
fn tiny_image_bytes() -> i64 {
    let layout = tiny_image_layout();
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == TAG)
        .expect("the tiny image's tag")
        .clone();
    let hex = desc["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    let blobs: i64 = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().unwrap())
        .map(|d| d["size"].as_i64().unwrap())
        .sum();
    desc["size"].as_i64().unwrap() + blobs
}

fn gdcloud_push(dest: &str) -> std::process::Output {
    let env = TestEnv::new();
    let mut c = env.cmd(bin_dir().join("gdcloud-artifacts").to_str().unwrap());
    c.args(["push", &tiny_image_layout().display().to_string(), dest])
        .args(["--username", ADMIN, "--password-stdin"]);
    run_with_stdin(c, format!("{ADMIN_PASSWORD}\n").as_bytes())
}

#[test]
fn harbor_fake_api_front_refuses_a_push_into_a_missing_project() {
    let (reg, fake) = fronted(-1);
    let out = gdcloud_push(&format!("{}/missing/tiny:{TAG}", fake.host()));
    let line = failed(&out);
    // Our push reads Harbor's 401 as a refused login; the load's preflight is what names the
    // missing project.
    assert!(line.contains("of missing/tiny (401)"), "{line}");
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/missing/"))
        .map(|r| r.status)
        .collect();
    assert!(
        !refused.is_empty() && refused.iter().all(|s| *s == 401),
        "{refused:?}"
    );
    // Harbor's answer, exactly.
    let (s, headers, body) = fake.raw(
        "POST",
        "/v2/missing/tiny/blobs/uploads/",
        Some((ADMIN, ADMIN_PASSWORD)),
        &[],
        b"",
    );
    assert_eq!(s, 401);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v == "Basic realm=\"harbor\""));
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(
        e["errors"][0]["message"],
        "project missing not found: project missing not found"
    );
    assert!(
        !reg.log().contains("missing/tiny"),
        "nothing reached the registry"
    );

    // The same push into a project that exists goes through to the registry, and its quota
    // grows by every byte stored.
    let dest = format!("{}/app/tiny:{TAG}", fake.host());
    let out = gdcloud_push(&dest);
    assert!(ok(&out).starts_with(&dest), "{}", stdout(&out));
    assert_eq!(fake.quota("app"), Some((-1, tiny_image_bytes())));
    let inspect = skopeo_cmd()
        .args(["inspect", "--tls-verify=false", "--creds", &reg.creds()])
        .arg(format!("docker://{}/app/tiny:{TAG}", reg.host))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    // A second push stores nothing new and costs nothing.
    ok(&gdcloud_push(&dest));
    assert_eq!(fake.quota("app"), Some((-1, tiny_image_bytes())));
}

#[test]
fn harbor_fake_api_front_refuses_a_push_past_the_quota_as_harbor_does() {
    let need = tiny_image_bytes();
    let (_reg, fake) = fronted(need - 1);
    let out = skopeo_cmd()
        .args(["copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("{ADMIN}:{ADMIN_PASSWORD}")])
        .arg(format!("oci:{}:{TAG}", tiny_image_layout().display()))
        .arg(format!("docker://{}/small/tiny:{TAG}", fake.host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the push must not fit");
    assert!(
        stderr.contains("will exceed the configured upper limit of"),
        "{stderr}"
    );
    let denied: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    let (hard, used) = fake.quota("small").unwrap();
    assert!(used <= hard, "used {used} of {hard}");

    // With room for it, the same copy succeeds and fills the quota to the byte.
    let (_reg, fake) = fronted(need);
    let out = skopeo_cmd()
        .args(["copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("{ADMIN}:{ADMIN_PASSWORD}")])
        .arg(format!("oci:{}:{TAG}", tiny_image_layout().display()))
        .arg(format!("docker://{}/small/tiny:{TAG}", fake.host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.quota("small"), Some((need, need)));
}
