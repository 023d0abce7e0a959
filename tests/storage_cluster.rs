//! `gdcloud-storage cp` against a three-node Garage cluster (one `rpc_secret`, replication factor
//! 3, one zone per node; issue 12): an object written through node 1 is read through node 2, and
//! a download through a surviving node completes with the right bytes while another node is
//! killed half-way.

use crate::util;

use std::time::{Duration, Instant};

use util::env::{ok, run_timed, TestEnv};
use util::garage::Cluster;
use util::proxy::Proxy;
use util::storage::{env_with_keys, path_str, pseudo_random, storage, storage_cmd};

const MIB: usize = 1024 * 1024;

fn env_for(c: &Cluster, endpoint: &str) -> TestEnv {
    env_with_keys(&c.access_key, &c.secret_key, endpoint)
}

#[test]
fn three_nodes_write_read_and_survive_a_node_going_away() {
    let mut cluster = Cluster::start("gdtest-cluster");
    let content = pseudo_random(48 * MIB + 11, 0x3333);
    let env1 = env_for(&cluster, &cluster.nodes[0].endpoint);
    let src = env1.path().join("obj.bin");
    std::fs::write(&src, &content).unwrap();
    let url = format!("s3://{}/c/obj.bin", cluster.bucket);

    // Write through node 1 (multipart: 8 MiB parts), read through node 2.
    let up = storage(&env1, &["cp", "--part-size-mib", "8", path_str(&src), &url]);
    assert!(
        up.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&up.stderr),
        cluster.logs()
    );
    let env2 = env_for(&cluster, &cluster.nodes[1].endpoint);
    let back = env2.path().join("back.bin");
    ok(&storage(&env2, &["cp", &url, path_str(&back)]));
    assert_eq!(
        std::fs::read(&back).unwrap(),
        content,
        "read through node 2"
    );

    // Download through node 3 (behind a proxy, to see it under way); node 2 is killed half-way.
    let proxy = Proxy::start(cluster.nodes[2].endpoint.trim_start_matches("http://"));
    let env3 = env_for(&cluster, &format!("http://{}", proxy.host));
    let target = env3.path().join("during.bin");
    let cmd = storage_cmd(
        &env3,
        &[
            "cp",
            "--concurrency",
            "2",
            "--part-size-mib",
            "4",
            &url,
            path_str(&target),
        ],
    );
    let out = std::thread::scope(|sc| {
        let h = sc.spawn(|| run_timed(cmd, b"", Duration::from_secs(180)));
        let deadline = Instant::now() + Duration::from_secs(60);
        // Half-way: about half of the object's GETs have been sent.
        while proxy
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .count()
            < 6
            && Instant::now() < deadline
            && !h.is_finished()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            !h.is_finished(),
            "the download ended before a node could be stopped"
        );
        cluster.nodes[1].stop();
        h.join().unwrap()
    });
    assert!(
        out.status.success(),
        "download with a node gone: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        content,
        "bytes after the node went away"
    );
}
