//! `gdcloud-artifacts list-versions` against a fake Harbor (`util::harbor_fake`) that follows
//! Harbor's published REST API v2.0 swagger: artifacts listed with their tags and push times,
//! paged by `page`/`page_size` with `Link` and `X-Total-Count`, `repository_name` double-encoded,
//! HTTP Basic auth, `{"errors":[…]}` bodies. No real Harbor can run on the test machines, so every
//! test here is named `harbor_fake_api_*` to make plain that the server is a fake following the
//! published API (and, where noted, Harbor's handler code), not Harbor itself. The fake records
//! each request, so the tests check what our client sent (pages followed, encoding, credentials)
//! as well as what it printed.

use crate::util;

use std::process::Output;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use util::env::*;
use util::harbor_fake::*;

/// 2024-05-01T00:00:00.000Z.
const T0: u64 = 1_714_521_600_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

fn artifacts_bin() -> String {
    bin_dir()
        .join("gdcloud-artifacts")
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

/// Runs `gdcloud-artifacts ARGS`, the credential helper (if configured) on its file store.
fn artifacts(env: &TestEnv, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = env.cmd(&artifacts_bin());
    c.args(args).env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file");
    run_with_stdin(c, stdin)
}

/// `list-versions REPO EXTRA… --username admin --password-stdin`.
fn list_as_admin(env: &TestEnv, repo: &str, extra: &[&str]) -> Output {
    let mut args = vec!["list-versions", repo];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--username", ADMIN, "--password-stdin"]);
    artifacts(env, &args, format!("{ADMIN_PASSWORD}\n").as_bytes())
}

/// Non-empty stderr lines.
fn stderr_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Asserts failure with exactly one `ERROR:` line on stderr and nothing on stdout; returns it.
#[track_caller]
fn single_error(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    let lines = stderr_lines(o);
    assert_eq!(lines.len(), 1, "expected one stderr line: {lines:#?}");
    assert!(lines[0].starts_with("ERROR: "), "{lines:#?}");
    assert_eq!(stdout(o), "", "nothing on stdout on failure");
    lines[0].clone()
}

/// Cosign's legacy signature tags (`sha256-<64 hex>.sig`), recognised independently of our code.
fn is_sig(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .and_then(|r| r.strip_suffix(".sig"))
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What `list-versions` should print: every listed tag, newest push first.
fn expected(harbor: &HarborFake, project: &str, repo: &str, with_sigs: bool) -> Vec<ListedTag> {
    let mut tags = harbor.listed_tags(project, repo);
    if !with_sigs {
        tags.retain(|t| !is_sig(&t.name));
    }
    tags.sort_by_key(|t| std::cmp::Reverse(t.push_time_ms));
    tags
}

fn as_text(tags: &[ListedTag]) -> String {
    tags.iter()
        .map(|t| format!("{}\t{}\t{}\n", t.name, t.push_time, t.digest))
        .collect()
}

/// 250 images pushed hourly from T0: every tenth untagged (i % 10 == 3), the rest tagged `1.0.i`
/// at push, every seventh also `stable-i` half an hour later. Image 5 — among the oldest, so on
/// the last page of Harbor's default order (push_time descending) — was retagged `hotfix` at
/// T0+300h with Harbor's `createTag` API, which dates the tag and leaves the artifact's push time
/// alone: the newest tag is on the last page. Three legacy cosign signatures (tagged
/// `sha256-….sig`) follow, the one of image 5 newest of all; image 249 also has a signature Harbor
/// recognised as an accessory (never listed). 253 artifacts: pages of 100, 100 and 53.
fn busy_repository(name: &str) -> FakeRepository {
    let mut images: Vec<FakeArtifact> = (0..250u64)
        .map(|i| {
            let pushed = T0 + i * HOUR;
            let mut a = FakeArtifact::image(&format!("{name}-{i}"), pushed);
            if i % 10 != 3 {
                a = a.tag(&format!("1.0.{i}"), pushed + 250);
                if i % 7 == 0 {
                    a = a.tag(&format!("stable-{i}"), pushed + 30 * MINUTE);
                }
            }
            a
        })
        .collect();
    images[5] = images[5].clone().tag("hotfix", T0 + 300 * HOUR);
    images[249] = images[249]
        .clone()
        .cosign_accessory(T0 + 249 * HOUR + 5 * MINUTE);
    let signatures = [
        FakeArtifact::legacy_cosign_signature(&images[5], T0 + 300 * HOUR + MINUTE),
        FakeArtifact::legacy_cosign_signature(&images[120], T0 + 120 * HOUR + 2 * MINUTE),
        FakeArtifact::legacy_cosign_signature(&images[249], T0 + 249 * HOUR + 2 * MINUTE),
    ];
    images.extend(signatures);
    FakeRepository::new(name, images)
}

fn busy_harbor() -> HarborFake {
    HarborFake::start(HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![busy_repository("app")],
    )]))
}

/// A few images in `proj/REPO`, pushed in one order and built (config `created`) in another.
fn small_repository(name: &str) -> FakeRepository {
    let a = FakeArtifact::image(&format!("{name}-a"), T0 + HOUR)
        .created("2024-04-03T00:00:00Z")
        .tag("1.0", T0 + HOUR);
    let b = FakeArtifact::image(&format!("{name}-b"), T0 + 2 * HOUR)
        .created("2024-04-01T00:00:00Z")
        .tag("1.1", T0 + 2 * HOUR);
    let c = FakeArtifact::image(&format!("{name}-c"), T0 + 3 * HOUR)
        .created("2024-04-02T00:00:00Z")
        .tag("1.2", T0 + 3 * HOUR)
        .tag("latest", T0 + 3 * HOUR + 500);
    let sig = FakeArtifact::legacy_cosign_signature(&c, T0 + 3 * HOUR + MINUTE);
    FakeRepository::new(name, vec![a, b, c, sig])
}

#[test]
fn harbor_fake_api_orders_by_tag_push_time_across_pages() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let out = list_as_admin(&env, &repo, &[]);
    let text = ok(&out);

    let want = expected(&harbor, "proj", "app", false);
    let mut times: Vec<u64> = want.iter().map(|t| t.push_time_ms).collect();
    times.dedup();
    assert_eq!(times.len(), want.len(), "test data: push times are unique");
    assert_eq!(
        want[0].name, "hotfix",
        "test data: the newest tag is hotfix"
    );
    assert_eq!(text, as_text(&want), "newest tag push first, every page");
    assert!(
        text.starts_with("hotfix\t2024-05-13T12:00:00.000Z\tsha256:"),
        "{text}"
    );

    // Three pages, the second and third exactly the `Link: rel="next"` targets of the one before.
    let lists = harbor.artifact_list_requests();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    for (i, r) in lists.iter().enumerate() {
        assert_eq!(r.path, "/api/v2.0/projects/proj/repositories/app/artifacts");
        assert_eq!(r.param("page"), Some((i + 1).to_string()), "{r:?}");
        assert_eq!(r.param("page_size").as_deref(), Some("100"), "{r:?}");
        assert_eq!(r.param("with_tag").as_deref(), Some("true"), "{r:?}");
        assert_eq!(r.username.as_deref(), Some(ADMIN), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(lists[0].link_next.as_deref(), Some(lists[1].url.as_str()));
    assert_eq!(lists[1].link_next.as_deref(), Some(lists[2].url.as_str()));
    assert_eq!(lists[2].link_next, None);

    // The precondition the order depends on: `hotfix` is served on the last page.
    let (status, headers, body) = harbor.raw_get(&lists[2].url, Some((ADMIN, ADMIN_PASSWORD)));
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("x-total-count".into(), "253".into())),
        "{headers:?}"
    );
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page.as_array().map(Vec::len), Some(53));
    assert!(String::from_utf8_lossy(&body).contains("\"name\":\"hotfix\""));

    // The fake's paging headers, as Harbor's `BaseAPI.Links` writes them.
    let (status, headers, _) = harbor.raw_get(&lists[1].url, Some((ADMIN, ADMIN_PASSWORD)));
    assert_eq!(status, 200);
    let base = "/api/v2.0/projects/proj/repositories/app/artifacts";
    let link = format!(
        "<{base}?page=1&page_size=100&with_tag=true>; rel=\"prev\" , \
         <{base}?page=3&page_size=100&with_tag=true>; rel=\"next\""
    );
    assert!(headers.contains(&("link".into(), link)), "{headers:?}");
    let (status, _, _) = harbor.raw_get(
        &format!("{base}?page=1&page_size=101"),
        Some((ADMIN, ADMIN_PASSWORD)),
    );
    assert_eq!(status, 422, "page_size has a maximum of 100");
}

#[test]
fn harbor_fake_api_latest_prints_only_the_newest_tag() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let out = list_as_admin(&env, &repo, &["--latest"]);
    assert_eq!(ok(&out), "hotfix\n");

    // Counting signatures, the newest tag is the signature of the hotfix image.
    let newest = expected(&harbor, "proj", "app", true).remove(0);
    assert!(is_sig(&newest.name), "test data: {newest:?}");
    let out = list_as_admin(&env, &repo, &["--latest", "--include-signatures"]);
    assert_eq!(ok(&out), format!("{}\n", newest.name));
}

#[test]
fn harbor_fake_api_signature_tags_hidden_unless_included() {
    let repository = busy_repository("app");
    let accessory = FakeArtifact::legacy_cosign_signature(
        &repository.artifacts[249],
        T0 + 249 * HOUR + 5 * MINUTE,
    )
    .digest();
    let harbor = HarborFake::start(HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![repository],
    )]));
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let hidden = ok(&list_as_admin(&env, &repo, &[]));
    assert!(
        !hidden.lines().any(|l| l.starts_with("sha256-")),
        "{hidden}"
    );
    assert!(!hidden.contains(&accessory), "accessories are never listed");

    let shown = ok(&list_as_admin(&env, &repo, &["--include-signatures"]));
    let want = expected(&harbor, "proj", "app", true);
    assert_eq!(want.iter().filter(|t| is_sig(&t.name)).count(), 3);
    assert_eq!(shown, as_text(&want));
    assert!(!shown.contains(&accessory), "accessories are never listed");
}

#[test]
fn harbor_fake_api_double_encodes_repository_with_slash() {
    let harbor = HarborFake::start(HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![busy_repository("team/app")],
    )]));
    let env = TestEnv::new();
    let repo = format!("{}/proj/team/app", harbor.host());

    let text = ok(&list_as_admin(&env, &repo, &["--api", "harbor"]));
    assert_eq!(text, as_text(&expected(&harbor, "proj", "team/app", false)));

    // Every page, the `Link`-followed ones included, with the name encoded twice.
    let lists = harbor.artifact_list_requests();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    for r in &lists {
        assert_eq!(
            r.path, "/api/v2.0/projects/proj/repositories/team%252Fapp/artifacts",
            "{r:?}"
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    for r in harbor.requests() {
        assert!(
            !r.path.contains("team%2F") && !r.path.contains("repositories/team/"),
            "a wrongly encoded request: {r:?}"
        );
    }

    // The fake is strict, as Harbor's router is: only the double encoding finds the repository.
    let auth = Some((ADMIN, ADMIN_PASSWORD));
    let base = "/api/v2.0/projects/proj/repositories";
    let q = "?page=1&page_size=100&with_tag=true";
    for wrong in ["team%2Fapp", "team/app"] {
        let (status, _, body) = harbor.raw_get(&format!("{base}/{wrong}/artifacts{q}"), auth);
        assert_eq!(status, 404, "{wrong}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _, _) = harbor.raw_get(&format!("{base}/team%252Fapp/artifacts{q}"), auth);
    assert_eq!(status, 200);
}

#[test]
fn harbor_fake_api_host_from_configured_registry() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    env.set_property("artifacts", "registry", &harbor.host());

    let out = list_as_admin(&env, "proj/app", &["--latest"]);
    assert_eq!(ok(&out), "hotfix\n");
    assert_eq!(harbor.artifact_list_requests().len(), 3);
}

/// Harbor repositories always live in a project; `--api harbor` on `HOST/app` must say so in one
/// error line, not crash.
#[test]
fn harbor_fake_api_harbor_mode_needs_a_project() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/app", harbor.host());

    let out = list_as_admin(&env, &repo, &["--api", "harbor"]);
    let err = single_error(&out);
    assert!(err.contains("app"), "{err}");
    assert!(harbor.artifact_list_requests().is_empty());
}

#[test]
fn harbor_fake_api_credentials_from_credential_helper() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let host = harbor.host();
    ok(&env.run(AUTH, &["configure-docker", "--registries", &host], b""));
    let login = serde_json::json!({"ServerURL": host, "Username": ADMIN, "Secret": ADMIN_PASSWORD});
    ok(&env.helper("store", &login.to_string()));
    let config = std::fs::read_to_string(env.docker_config_file()).unwrap();
    assert!(!config.contains(ADMIN_PASSWORD), "{config}");

    let repo = format!("{host}/proj/app");
    let out = artifacts(&env, &["list-versions", &repo, "--latest"], b"");
    assert_eq!(ok(&out), "hotfix\n");

    let lists = harbor.artifact_list_requests();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    for r in &lists {
        assert!(r.auth_present, "{r:?}");
        assert_eq!(r.username.as_deref(), Some(ADMIN), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[test]
fn harbor_fake_api_credentials_from_password_stdin() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    // Without credentials the private project answers 401.
    let err = single_error(&artifacts(&env, &["list-versions", &repo], b""));
    assert!(err.contains("401"), "{err}");

    let out = list_as_admin(&env, &repo, &["--latest"]);
    assert_eq!(ok(&out), "hotfix\n");
    let lists = harbor.artifact_list_requests();
    assert_eq!(
        lists.len(),
        4,
        "one anonymous attempt, then three pages: {lists:#?}"
    );
    assert!(!lists[0].auth_present);
    assert_eq!(lists[0].status, 401);
    for r in &lists[1..] {
        assert_eq!(r.username.as_deref(), Some(ADMIN), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[test]
fn harbor_fake_api_public_project_reads_anonymously() {
    let harbor = HarborFake::start(HarborConfig::new(vec![FakeProject::public(
        "pub",
        vec![small_repository("app")],
    )]));
    let env = TestEnv::new();
    let repo = format!("{}/pub/app", harbor.host());

    let text = ok(&artifacts(&env, &["list-versions", &repo], b""));
    assert_eq!(text, as_text(&expected(&harbor, "pub", "app", false)));
    for r in harbor.artifact_list_requests() {
        assert!(!r.auth_present, "{r:?}");
    }
}

#[test]
fn harbor_fake_api_wrong_password_fails_without_leaking_it() {
    const WRONG: &str = "not-Harbor12345-xyzzy";
    let basic = STANDARD.encode(format!("{ADMIN}:{WRONG}"));
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());
    let stdin = format!("{WRONG}\n");

    let out = artifacts(
        &env,
        &[
            "list-versions",
            &repo,
            "--username",
            ADMIN,
            "--password-stdin",
        ],
        stdin.as_bytes(),
    );
    let err = single_error(&out);
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("credentials"), "{err}");
    assert!(err.contains("proj/app"), "{err}");
    assert!(
        err.contains("--username/--password-stdin"),
        "names where they came from: {err}"
    );

    // Not even in the HTTP log.
    let logged = artifacts(
        &env,
        &[
            "list-versions",
            &repo,
            "--username",
            ADMIN,
            "--password-stdin",
            "--log-http",
        ],
        stdin.as_bytes(),
    );
    assert!(!logged.status.success());
    assert!(
        stderr(&logged).contains("HTTP GET"),
        "the log is on: {}",
        stderr(&logged)
    );
    for o in [&out, &logged] {
        for stream in [stdout(o), stderr(o)] {
            assert!(!stream.contains(WRONG), "password printed: {stream}");
            assert!(
                !stream.contains(&basic),
                "Basic credentials printed: {stream}"
            );
        }
    }

    let lists = harbor.artifact_list_requests();
    assert_eq!(lists.len(), 2, "one attempt per run, no retry: {lists:#?}");
    for r in &lists {
        assert_eq!(r.username.as_deref(), Some(ADMIN), "{r:?}");
        assert_eq!(r.status, 401, "{r:?}");
    }

    // Same from the credential helper: the error names where the credentials came from.
    let host = harbor.host();
    ok(&env.run(AUTH, &["configure-docker", "--registries", &host], b""));
    let login = serde_json::json!({"ServerURL": host, "Username": ADMIN, "Secret": WRONG});
    ok(&env.helper("store", &login.to_string()));
    let out = artifacts(&env, &["list-versions", &repo], b"");
    let err = single_error(&out);
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    assert!(err.contains("credHelpers"), "{err}");
    assert!(!err.contains(WRONG) && !err.contains(&basic), "{err}");
}

#[test]
fn harbor_fake_api_unknown_repository_is_manifest_unknown() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/proj/missing", harbor.host());

    let err = single_error(&list_as_admin(&env, &repo, &[]));
    assert!(err.contains("manifest unknown"), "{err}");
    assert!(err.contains("proj/missing"), "{err}");
    let lists = harbor.artifact_list_requests();
    assert_eq!(lists.len(), 1, "{lists:#?}");
    assert_eq!(lists[0].status, 404);
}

/// Harbor's `ListArtifacts` handler does not check that the repository exists (it filters
/// artifacts by repository name): an unknown repository is an empty list, an unknown project a
/// failed permission check (403). Both must still end in one clear error naming the repository.
#[test]
fn harbor_fake_api_unknown_repository_like_harbor_handler() {
    let mut config = HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![small_repository("app")],
    )]);
    config.missing = Missing::LikeHandler;
    let harbor = HarborFake::start(config);
    let env = TestEnv::new();

    let repo = format!("{}/proj/missing", harbor.host());
    let err = single_error(&list_as_admin(&env, &repo, &[]));
    assert!(err.contains(&format!("{repo} has no tags")), "{err}");

    let repo = format!("{}/nosuch/app", harbor.host());
    let err = single_error(&list_as_admin(&env, &repo, &[]));
    assert!(err.contains("403") && err.contains("nosuch/app"), "{err}");

    let statuses: Vec<u16> = harbor
        .artifact_list_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 403]);
}

#[test]
fn harbor_fake_api_json_output() {
    let harbor = busy_harbor();
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let out = list_as_admin(&env, &repo, &["--format", "json"]);
    let v: Value = serde_json::from_str(&ok(&out)).expect("JSON on stdout");
    assert_eq!(v["repository"], repo);
    assert_eq!(v["source"], "harbor");
    let got: Vec<(String, String, String)> = v["versions"]
        .as_array()
        .expect("versions[]")
        .iter()
        .map(|x| {
            (
                x["tag"].as_str().unwrap().to_string(),
                x["time"].as_str().unwrap().to_string(),
                x["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = expected(&harbor, "proj", "app", false)
        .into_iter()
        .map(|t| (t.name, t.push_time, t.digest))
        .collect();
    assert_eq!(got, want);

    let out = list_as_admin(&env, &repo, &["--format", "json", "--latest"]);
    let v: Value = serde_json::from_str(&ok(&out)).expect("JSON on stdout");
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["versions"][0]["tag"], "hotfix");
}

#[test]
fn harbor_fake_api_registry_mode_uses_tags_list() {
    let harbor = HarborFake::start(HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![small_repository("app")],
    )]));
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let out = list_as_admin(&env, &repo, &["--api", "registry", "--format", "json"]);
    let v: Value = serde_json::from_str(&ok(&out)).expect("JSON on stdout");
    assert_eq!(v["source"], "registry");
    // Ordered by image creation; `1.2` and `latest` share one image: on a tie a version comes
    // before `latest` (issue 10: `--latest` must print something to pin).
    let got: Vec<(&str, &str)> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["tag"].as_str().unwrap(), x["time"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("1.0", "2024-04-03T00:00:00Z"),
            ("1.2", "2024-04-02T00:00:00Z"),
            ("latest", "2024-04-02T00:00:00Z"),
            ("1.1", "2024-04-01T00:00:00Z"),
        ]
    );
    let requests = harbor.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/v2/proj/app/tags/list" && r.status == 200),
        "{requests:#?}"
    );
    assert!(harbor.artifact_list_requests().is_empty(), "{requests:#?}");

    // The same repository through Harbor's API: push order instead.
    let out = list_as_admin(&env, &repo, &["--latest"]);
    assert_eq!(ok(&out), "latest\n");
}

/// Central European time in autumn 2024: +02:00 until 2024-10-27T01:00:00Z, +01:00 after.
fn berlin_autumn_2024(unix_ms: u64) -> i32 {
    if unix_ms < DST_END_2024 {
        120
    } else {
        60
    }
}

/// 2024-10-27T01:00:00Z, when Central European summer time ended.
const DST_END_2024: u64 = 1_729_990_800_000;

/// A Harbor whose core runs with a local `TZ` writes times with its offset; across the end of
/// daylight saving time the wall clock goes back, so the text of a newer time can sort before an
/// older one. The order must follow the instants.
#[test]
fn harbor_fake_api_orders_by_instant_across_a_dst_change() {
    let artifact = FakeArtifact::image("dst", DST_END_2024 - 13 * HOUR)
        .tag("older", DST_END_2024 - 13 * HOUR)
        .tag("before", DST_END_2024 - 30 * MINUTE)
        .tag("after", DST_END_2024 + 10 * MINUTE);
    let mut config = HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![FakeRepository::new("app", vec![artifact])],
    )]);
    config.utc_offset_minutes = berlin_autumn_2024;
    let harbor = HarborFake::start(config);
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let text = ok(&list_as_admin(&env, &repo, &[]));
    let got: Vec<(&str, &str)> = text
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("after", "2024-10-27T02:10:00.000+01:00"),
            ("before", "2024-10-27T02:30:00.000+02:00"),
            ("older", "2024-10-26T14:00:00.000+02:00"),
        ]
    );
    assert_eq!(ok(&list_as_admin(&env, &repo, &["--latest"])), "after\n");
}

/// The registry client retries 408/429/5xx with backoff (`Client::send_raw`); the nginx in front
/// of Harbor's core answers 502/503 while the core restarts, and the artifact list deserves the
/// same patience as the distribution API.
#[test]
fn harbor_fake_api_retries_a_transient_503() {
    let harbor = busy_harbor();
    harbor.fail_next_artifact_lists(&[503]);
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", harbor.host());

    let out = list_as_admin(&env, &repo, &["--latest"]);
    assert_eq!(ok(&out), "hotfix\n");
    let statuses: Vec<u16> = harbor
        .artifact_list_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 200, 200, 200]);
}
