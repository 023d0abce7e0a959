//! Finding the organisation's registry and Harbor's admin login in the cluster, as the runbook does
//! by hand: a real kube-apiserver holding the HarborCluster, the dnssuffix configmap and the
//! harbor-admin secret, the real plugins reading them, and Harbor's API played by the fake that
//! follows Harbor's published swagger (no real Harbor can run here).

use crate::util;

use std::process::Output;

use util::env::*;
use util::harbor_fake::{
    FakeArtifact, FakeProject, FakeRepository, HarborConfig, HarborFake, ADMIN_PASSWORD,
};
use util::kube::{GdcFixtures, KubeCluster, ADMIN};

fn run(env: &TestEnv, bin: &str, args: &[&str]) -> Output {
    let mut c = env.cmd(bin_dir().join(bin).to_str().unwrap());
    c.args(args).env_remove("KUBECONFIG");
    run_with_stdin(c, b"")
}

#[test]
fn configure_docker_and_host_less_references_use_the_clusters_registry() {
    let harbor = HarborFake::start(HarborConfig::new(vec![FakeProject::private(
        "proj",
        vec![FakeRepository::new(
            "app",
            vec![
                FakeArtifact::image("old", 1_700_000_000_000).tag("1.0", 1_700_000_000_000),
                FakeArtifact::image("new", 1_700_000_900_000).tag("2.0", 1_700_000_900_000),
            ],
        )],
    )]));
    let cluster = KubeCluster::start();
    cluster.install_gdc_fixtures_with(&GdcFixtures {
        harbor_external_url: format!("http://{}", harbor.host()),
        harbor_admin_password: ADMIN_PASSWORD.to_string(),
        ..GdcFixtures::default()
    });
    let kubeconfig = cluster.kubeconfig_for(ADMIN);
    let kc = kubeconfig.to_str().unwrap();
    let env = TestEnv::new();

    // configure-docker with neither --registries nor artifacts/registry: the HarborCluster's host.
    let o = run(&env, AUTH, &["configure-docker", "--kubeconfig", kc]);
    ok(&o);
    let config = std::fs::read_to_string(env.docker_config_file()).unwrap();
    assert!(
        config.contains(&format!("\"{}\": \"gdcloud\"", harbor.host())),
        "{config}"
    );
    // What it discovered is recorded, and it says so: later commands need no --kubeconfig for it.
    assert!(
        stderr(&o).contains(&format!(
            "Set artifacts/registry to {} in configuration default (from the cluster's Harbor)",
            harbor.host()
        )),
        "{}",
        stderr(&o)
    );
    let o = run(&env, "gdcloud-config", &["get", "artifacts/registry"]);
    assert_eq!(ok(&o).trim(), harbor.host());
    ok(&run(&env, AUTH, &["configure-docker"]));

    // list-versions of a host-less repository with Harbor's admin login from the cluster.
    let o = run(
        &env,
        "gdcloud-artifacts",
        &[
            "list-versions",
            "proj/app",
            "--latest",
            "--credentials-from-cluster",
            "--kubeconfig",
            kc,
        ],
    );
    assert_eq!(ok(&o).trim(), "2.0");
    assert!(!stdout(&o).contains(ADMIN_PASSWORD) && !stderr(&o).contains(ADMIN_PASSWORD));
    assert!(
        harbor.requests().iter().any(|r| r.is_artifact_list()
            && r.username.as_deref() == Some("admin")
            && r.status == 200),
        "Harbor's API was called with the admin login from the cluster"
    );
}

#[test]
fn without_a_harbor_cluster_the_dns_suffix_names_the_registry() {
    let cluster = KubeCluster::start();
    cluster.install_gdc_fixtures_with(&GdcFixtures::default());
    // Drop the HarborCluster object so only the DNS suffix is left.
    cluster.kubectl_ok([
        "-n",
        "harbor-system",
        "delete",
        "harborclusters.goharbor.io",
        "harbor",
        "--ignore-not-found",
    ]);
    let env = TestEnv::new();
    let kubeconfig = cluster.kubeconfig_for(ADMIN);
    let o = run(
        &env,
        AUTH,
        &[
            "configure-docker",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--verbosity",
            "debug",
        ],
    );
    ok(&o);
    assert!(
        stderr(&o)
            .contains(": no HarborCluster; registry harbor.org.example.test from the dnsSuffix"),
        "--verbosity debug tells what discovery found: {}",
        stderr(&o)
    );
    let config = std::fs::read_to_string(env.docker_config_file()).unwrap();
    assert!(
        config.contains("\"harbor.org.example.test\": \"gdcloud\""),
        "{config}"
    );

    // A dnsSuffix with a userinfo part would make the registry host `evil.test`: refused.
    cluster.kubectl_ok([
        "-n",
        "gpc-system",
        "patch",
        "configmap",
        "dnssuffix",
        "--type=merge",
        "-p",
        r#"{"data":{"dnsSuffix":"x@evil.test:443/"}}"#,
    ]);
    let env = TestEnv::new();
    let o = run(
        &env,
        AUTH,
        &[
            "configure-docker",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );
    let msg = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!o.status.success(), "a hostile dnsSuffix was used: {msg}");
    assert!(
        msg.contains("gpc-system/dnssuffix") && msg.contains("x@evil.test:443/"),
        "{msg}"
    );
    let config = std::fs::read_to_string(env.docker_config_file()).unwrap_or_default();
    assert!(!config.contains("evil"), "{config}");
}
