//! Self-test of the real test components that `gdcloud-storage` and `gdcloud artifacts` tests
//! build on: a real kube-apiserver + etcd (tests/util/kube.rs) with token users, RBAC and the GDC
//! fixture objects, and a real S3 server (tests/util/s3.rs, Garage) driven by the aws CLI over
//! plain HTTP and through its TLS front. When these fail, the fixtures are broken, not the product.

use crate::util;

use std::process::Output;

use util::kube::{GdcFixtures, KubeCluster, ADMIN, KEYS_NAMESPACE, NOBODY, READER};
use util::s3::{S3Server, TestCa};

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn kube_cluster_serves_gdc_fixtures_with_rbac() {
    let kube = KubeCluster::start();
    let (etcd_rss, api_rss) = kube.rss_kib();
    eprintln!(
        "kube: ready in {:?}; RSS etcd {} MiB, kube-apiserver {} MiB",
        kube.started_in,
        etcd_rss / 1024,
        api_rss / 1024
    );
    let fx = GdcFixtures::default();
    let t = std::time::Instant::now();
    kube.install_gdc_fixtures_with(&fx);
    eprintln!("kube: GDC fixtures installed in {:?}", t.elapsed());
    let key = &fx.access_keys[0];

    // Admin reads the bucket key: data, subject annotation, storage-class label.
    let secret: serde_json::Value = serde_json::from_str(&kube.kubectl_ok([
        "get",
        "secret",
        &key.name,
        "-n",
        KEYS_NAMESPACE,
        "-o",
        "json",
    ]))
    .unwrap();
    let b64 = |v: &serde_json::Value| {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a base64 string"))
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    assert_eq!(b64(&secret["data"]["access-key-id"]), key.access_key_id);
    assert_eq!(
        b64(&secret["data"]["secret-access-key"]),
        key.secret_access_key
    );
    assert_eq!(
        secret["metadata"]["annotations"]["object.gdc.goog/subject"],
        key.subject.as_str()
    );
    assert_eq!(
        secret["metadata"]["labels"]["object.gdc.goog/storage-class"],
        "standard"
    );

    // `reader` may get the secret (with its own kubeconfig); `nobody` is forbidden.
    let get_secret = ["get", "secret", key.name.as_str(), "-n", KEYS_NAMESPACE];
    for (user, allowed) in [(READER, true), (NOBODY, false)] {
        let kubeconfig = kube.kubeconfig_for(user);
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(kube.dir().join(format!("cache-{user}")))
            .args(get_secret)
            .args(["-o", "jsonpath={.data.access-key-id}"])
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        if allowed {
            assert!(out.status.success(), "{user}: {}", text(&out));
            assert_eq!(
                b64(&String::from_utf8_lossy(&out.stdout).into()),
                key.access_key_id
            );
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("(Forbidden)"),
                "{user} must get 403: {}",
                text(&out)
            );
        }
    }
    // The same 403 as raw HTTP status, and `reader` still cannot list other namespaces.
    let raw = kube.kubectl_as(
        NOBODY,
        [
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{KEYS_NAMESPACE}/secrets/{}", key.name),
            "-v=6",
        ],
    );
    assert!(
        String::from_utf8_lossy(&raw.stderr).contains("403 Forbidden"),
        "{}",
        text(&raw)
    );
    let other = kube.kubectl_as(READER, ["get", "secrets", "-n", "harbor-system"]);
    assert!(!other.status.success(), "{}", text(&other));

    // The DNS suffix, the HarborCluster's external URL and the Harbor admin password read back.
    assert_eq!(
        kube.kubectl_ok([
            "get",
            "configmap",
            "dnssuffix",
            "-n",
            "gpc-system",
            "-o",
            "jsonpath={.data.dnsSuffix}"
        ]),
        fx.dns_suffix
    );
    assert_eq!(
        kube.kubectl_ok([
            "get",
            "harborcluster",
            "harbor",
            "-n",
            "harbor-system",
            "-o",
            "jsonpath={.spec.externalURL}"
        ]),
        fx.harbor_external_url
    );
    assert_eq!(
        b64(&kube
            .kubectl_ok([
                "get",
                "secret",
                "harbor-admin",
                "-n",
                "harbor-system",
                "-o",
                "jsonpath={.data.secret}"
            ])
            .into()),
        fx.harbor_admin_password
    );
    let (etcd_rss, api_rss) = kube.rss_kib();
    eprintln!(
        "kube: after fixtures RSS etcd {} MiB, kube-apiserver {} MiB; admin is {ADMIN}",
        etcd_rss / 1024,
        api_rss / 1024
    );
}

#[test]
fn s3_server_answers_aws_cli_over_http_and_tls() {
    let ca = TestCa::generate("gdtest-s3-ca");
    let s3 = S3Server::start_tls(&ca);
    let (rss, front_rss) = s3.rss_kib();
    eprintln!(
        "s3: ready (with TLS front) in {:?}; RSS garage {} MiB, stunnel4 {} MiB",
        s3.started_in,
        rss / 1024,
        front_rss / 1024
    );
    let file = s3.dir().join("hello.txt");
    std::fs::write(&file, b"hello, s3\n").unwrap();

    for (tls, key) in [(false, "plain/hello.txt"), (true, "tls/hello.txt")] {
        let dest = format!("s3://{}/{key}", s3.bucket);
        let out = s3
            .aws(tls)
            .args(["s3", "cp"])
            .arg(&file)
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws s3 cp (tls={tls}): {}\n{}",
            text(&out),
            s3.logs()
        );
        assert_eq!(s3.object(&s3.bucket, key).unwrap(), b"hello, s3\n");
        let ls = s3
            .aws(tls)
            .args(["s3", "ls", "--recursive", &format!("s3://{}/", s3.bucket)])
            .output()
            .unwrap();
        assert!(ls.status.success(), "aws s3 ls (tls={tls}): {}", text(&ls));
        assert!(
            String::from_utf8_lossy(&ls.stdout).contains(key),
            "{key} not listed: {}",
            text(&ls)
        );
    }

    // rclone (for benchmarks) lists through the TLS front.
    for prefix in ["plain", "tls"] {
        let lsf = s3
            .rclone(true)
            .args(["lsf", &format!("gdtest:{}/{prefix}/", s3.bucket)])
            .output()
            .unwrap();
        assert!(
            lsf.status.success() && String::from_utf8_lossy(&lsf.stdout).trim() == "hello.txt",
            "rclone lsf {prefix}/: {}",
            text(&lsf)
        );
    }

    // Without our CA the front's certificate is refused: TLS is really verified.
    let untrusted = s3
        .aws(true)
        .env_remove("AWS_CA_BUNDLE")
        .args(["s3", "ls", &format!("s3://{}/", s3.bucket)])
        .output()
        .unwrap();
    assert!(
        !untrusted.status.success()
            && String::from_utf8_lossy(&untrusted.stderr).contains("CERTIFICATE_VERIFY_FAILED"),
        "an unknown CA was accepted: {}",
        text(&untrusted)
    );

    // A wrong secret is refused: the server really checks SigV4.
    let bad = s3
        .aws(false)
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .args(["s3", "ls", &format!("s3://{}/", s3.bucket)])
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "a wrong key was accepted: {}",
        text(&bad)
    );
}
