//! `gdcloud-storage` against a Garage whose region is not `us-east-1`, and with the bucket in the
//! host name (issue 12): the client learns the region the server names, retries once and says
//! which region it used; a server that keeps refusing gets an error naming the region mismatch,
//! not the keys; `storage/s3_addressing_style = virtual` sends `BUCKET.localhost:PORT` requests
//! that Garage (`root_domain = ".localhost"`) serves; and an invalid endpoint names the property
//! or variable it came from.

use crate::util;

use std::process::Output;

use util::env::{ok, stderr, TestEnv};
use util::proxy::Proxy;
use util::s3::{HostileS3, S3Server, Script};
use util::storage::{assert_contains, fails, storage, storage_cmd};

fn env_for(s3: &S3Server, endpoint: &str) -> TestEnv {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", &s3.access_key);
    env.set_property("storage", "s3_secret_access_key", &s3.secret_key);
    env.set_property("storage", "s3_endpoint", endpoint);
    env
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The status line of a run that learned `region`.
fn learned(o: &Output, region: &str) -> bool {
    stderr(o).contains(&format!("Signed for region {region}"))
}

#[test]
fn the_region_is_learned_from_the_server_and_named() {
    let s3 = S3Server::start_in_region("garage");
    let env = env_for(&s3, &s3.endpoint);
    let src = env.path().join("up.txt");
    std::fs::write(&src, b"signed for garage\n").unwrap();
    let dest = format!("s3://{}/region/up.txt", s3.bucket);

    // Nothing configured: signed for us-east-1, refused, learned, retried; the run says so.
    let up = storage(&env, &["cp", s(&src), &dest]);
    ok(&up);
    assert!(learned(&up, "garage"), "{}", stderr(&up));
    assert_contains(&stderr(&up), &["storage/s3_region"]);
    assert_eq!(
        s3.object(&s3.bucket, "region/up.txt").as_deref(),
        Some(&b"signed for garage\n"[..])
    );
    // A download starts with a HEAD, whose refusal has no body: learned through ?location.
    let back = env.path().join("back.txt");
    let down = storage(&env, &["cp", &dest, s(&back)]);
    ok(&down);
    assert!(learned(&down, "garage"), "{}", stderr(&down));
    assert_eq!(std::fs::read(&back).unwrap(), b"signed for garage\n");
    let ls = storage(&env, &["ls", &format!("s3://{}/region/", s3.bucket)]);
    assert_contains(&ok(&ls), &["up.txt"]);
    assert!(learned(&ls, "garage"), "{}", stderr(&ls));

    // Configured right: nothing to learn, nothing said.
    env.set_property("storage", "s3_region", "garage");
    let o = storage(&env, &["cp", &dest, s(&env.path().join("again.txt"))]);
    ok(&o);
    assert!(!stderr(&o).contains("Signed for region"), "{}", stderr(&o));

    // Configured wrong: learned as well.
    env.set_property("storage", "s3_region", "moon-1");
    let o = storage(&env, &["ls", &format!("s3://{}/", s3.bucket)]);
    ok(&o);
    assert!(learned(&o, "garage"), "{}", stderr(&o));

    // Wrong keys in the wrong region: once the region is right, it is the keys that are refused.
    env.set_property(
        "storage",
        "s3_secret_access_key",
        "0123456789abcdef0123456789abcdef",
    );
    let o = storage(&env, &["cp", &dest, s(&env.path().join("never.txt"))]);
    let msg = fails(&o);
    assert_contains(&msg, &["the S3 keys were refused"]);
    assert!(!msg.contains("0123456789abcdef0123456789abcdef"), "{msg}");
}

#[test]
fn a_server_that_never_agrees_gets_a_region_error_not_a_keys_error() {
    let fake = HostileS3::start_with("bkt", Vec::new(), Script::WrongRegion);
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", "GKAAAAAAAA");
    env.set_property("storage", "s3_secret_access_key", "secret-value-0123456789");
    env.set_property("storage", "s3_endpoint", &fake.endpoint);
    for args in [
        vec!["ls", "s3://bkt/"],
        vec!["cp", "s3://bkt/k.txt", "out.txt"],
    ] {
        let o = storage(&env, &args);
        let msg = fails(&o);
        assert_contains(&msg, &["region", "storage/s3_region"]);
        assert!(!msg.contains("keys were refused"), "{args:?}: {msg}");
    }
    // One retry per request, not a loop: a handful of requests for two commands.
    let n = fake.listings.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=8).contains(&n), "{n} requests");
}

#[test]
fn virtual_host_addressing_against_garage() {
    let s3 = S3Server::start();
    // The bucket goes in front of the host: the endpoint must be a name (localhost), not an IP.
    let proxy = Proxy::start(s3.endpoint.trim_start_matches("http://"));
    let port = proxy.host.rsplit(':').next().unwrap().to_string();
    let env = env_for(&s3, &format!("http://localhost:{port}"));
    env.set_property("storage", "s3_addressing_style", "virtual");
    let src = env.path().join("v.txt");
    std::fs::write(&src, b"virtual host\n").unwrap();
    let dest = format!("s3://{}/vh/v.txt", s3.bucket);
    ok(&storage(&env, &["cp", s(&src), &dest]));
    assert_eq!(
        s3.object(&s3.bucket, "vh/v.txt").as_deref(),
        Some(&b"virtual host\n"[..])
    );
    let back = env.path().join("back.txt");
    ok(&storage(&env, &["cp", &dest, s(&back)]));
    assert_eq!(std::fs::read(&back).unwrap(), b"virtual host\n");
    assert_contains(
        &ok(&storage(&env, &["ls", &format!("s3://{}/vh/", s3.bucket)])),
        &["v.txt"],
    );
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let host = r.header("host").unwrap_or_default();
        assert!(
            host.starts_with(&format!("{}.localhost", s3.bucket)),
            "not virtual-host style: {}",
            r.describe()
        );
        assert!(
            !r.target.starts_with(&format!("/{}", s3.bucket)),
            "the bucket is still in the path: {}",
            r.describe()
        );
    }

    // `auto` keeps the path for an IP endpoint (no subdomains there).
    proxy.clear_requests();
    env.set_property("storage", "s3_endpoint", &format!("http://{}", proxy.host));
    env.set_property("storage", "s3_addressing_style", "auto");
    ok(&storage(
        &env,
        &["cp", &dest, s(&env.path().join("auto.txt"))],
    ));
    assert!(proxy
        .requests()
        .iter()
        .all(|r| r.target.starts_with(&format!("/{}/", s3.bucket))));

    // A value no style has is refused, naming the property.
    env.set_property("storage", "s3_addressing_style", "vhost");
    let msg = fails(&storage(&env, &["ls", &format!("s3://{}/", s3.bucket)]));
    assert_contains(
        &msg,
        &["storage/s3_addressing_style", "path, virtual or auto"],
    );
}

#[test]
fn endpoint_errors_name_where_the_endpoint_came_from() {
    let env = TestEnv::new();
    env.set_property("storage", "s3_access_key_id", "GKAAAAAAAA");
    env.set_property("storage", "s3_secret_access_key", "secret-value-0123456789");
    env.set_property("storage", "s3_endpoint", "ftp://objects.example");
    let msg = fails(&storage(&env, &["ls", "s3://b/"]));
    assert_contains(&msg, &["storage/s3_endpoint in configuration default"]);

    // Unreachable, from the environment variable.
    let port = util::kube::free_port();
    let mut c = storage_cmd(&env, &["ls", "s3://b/"]);
    c.env(
        "GDCLOUD_STORAGE_S3_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    let msg = fails(&util::env::run_with_stdin(c, b""));
    assert_contains(&msg, &["cannot reach", "GDCLOUD_STORAGE_S3_ENDPOINT"]);

    // From the flag.
    let msg = fails(&storage(&env, &["ls", "--endpoint", "http://", "s3://b/"]));
    assert_contains(&msg, &["--endpoint"]);
}
