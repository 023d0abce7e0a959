//! The S3 client against a real S3 server (Garage, which checks SigV4 signatures, so every
//! successful round trip also proves the signer): small objects whole and by range, a 12 MiB
//! multipart upload read back and hashed, aborted uploads, listings with prefix, delimiter and
//! pagination, awkward keys, refused keys, missing objects, and TLS with and without the CA. The
//! retries on 429/5xx, which a healthy server never answers, run against a scripted tiny_http
//! server.

use crate::util;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use gdcloud::http::TlsOptions;
use gdcloud::s3::{Client, CompletedPart, Error, ListQuery};
use gdcloud::secret::Secret;
use sha2::{Digest as _, Sha256};
use util::s3::{S3Server, TestCa};

const MIB: usize = 1024 * 1024;

fn client_for(s: &S3Server, endpoint: &str, tls: TlsOptions) -> Client {
    Client::new(
        endpoint,
        &s.access_key,
        Secret::new(s.secret_key.clone()),
        None,
        &tls,
    )
    .expect("client")
}

fn client(s: &S3Server) -> Client {
    client_for(s, &s.endpoint, TlsOptions::default())
}

/// `data` as a stream of 64 KiB chunks, as a file reader would hand it out.
fn body(data: &[u8]) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

/// `data` as an upload body, without Content-MD5.
fn upload_of(
    data: &[u8],
) -> gdcloud::s3::Upload<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    gdcloud::s3::Upload {
        stream: body(data),
        len: data.len() as u64,
        md5: None,
    }
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_all(d: gdcloud::s3::Download) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = Box::pin(d.into_stream());
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("body chunk"));
    }
    out
}

async fn put(c: &Client, bucket: &str, key: &str, bytes: &[u8]) -> String {
    c.put_object(bucket, key, upload_of(bytes))
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
}

#[tokio::test]
async fn small_object_whole_and_by_range() {
    let s = S3Server::start();
    let c = client(&s);
    let b = &s.bucket;
    let content = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let etag = put(&c, b, "dir/small.txt", content).await;
    assert!(!etag.is_empty());
    assert_eq!(s.object(b, "dir/small.txt").unwrap(), content);

    let info = c.head_object(b, "dir/small.txt").await.unwrap();
    assert_eq!(info.size, content.len() as u64);
    assert_eq!(info.etag, etag);
    assert!(info.last_modified.is_some(), "{info:?}");

    let whole = c.get_object(b, "dir/small.txt").await.unwrap();
    assert_eq!((whole.start, whole.len, whole.info.size), (0, 36, 36));
    assert_eq!(read_all(whole).await, content);

    let last = content.len() as u64 - 1;
    for (a, z) in [
        (0, 0),
        (0, 9),
        (10, 19),
        (5, last),
        (last, last),
        (30, 1000),
    ] {
        let d = c.get_range(b, "dir/small.txt", a, z).await.unwrap();
        let want = &content[a as usize..=(z.min(last) as usize)];
        assert_eq!(d.start, a);
        assert_eq!(d.len, want.len() as u64);
        assert_eq!(
            d.info.size,
            content.len() as u64,
            "total size from Content-Range"
        );
        assert_eq!(d.info.etag, etag);
        assert_eq!(read_all(d).await, want, "bytes={a}-{z}");
    }
    let d = c
        .get_range_if_match(b, "dir/small.txt", 3, 5, &etag)
        .await
        .unwrap();
    assert_eq!(read_all(d).await, b"345");
    let stale = c
        .get_range_if_match(
            b,
            "dir/small.txt",
            3,
            5,
            "\"0123456789abcdef0123456789abcdef\"",
        )
        .await;
    assert!(matches!(stale, Err(Error::Changed { .. })), "{stale:?}");

    match c.get_range(b, "dir/small.txt", 100, 200).await {
        Err(Error::InvalidRange { range, .. }) => assert_eq!(range, "bytes=100-200"),
        other => panic!("expected InvalidRange, got {other:?}"),
    }

    // A small body signed with its real SHA-256 rather than UNSIGNED-PAYLOAD.
    let e2 = c
        .put_object_bytes(b, "dir/hashed.txt", Bytes::from_static(b"signed body"))
        .await
        .unwrap();
    assert_eq!(c.head_object(b, "dir/hashed.txt").await.unwrap().etag, e2);

    c.delete_object(b, "dir/small.txt").await.unwrap();
    assert!(matches!(
        c.head_object(b, "dir/small.txt").await,
        Err(Error::NoSuchKey { .. })
    ));
}

#[tokio::test]
async fn multipart_upload_round_trip() {
    let s = S3Server::start();
    let c = client(&s);
    let b = &s.bucket;
    let key = "big/multi part.bin";
    let content = data(12 * MIB + 12345, 42);
    let upload = c.create_multipart(b, key).await.unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in content.chunks(5 * MIB).enumerate() {
        let n = i as u32 + 1;
        let etag = c
            .upload_part(b, key, &upload, n, upload_of(chunk))
            .await
            .unwrap_or_else(|e| panic!("part {n}: {e}\n{}", s.logs()));
        parts.push(CompletedPart {
            part_number: n,
            etag,
        });
    }
    assert_eq!(parts.len(), 3);
    let etag = c.complete_multipart(b, key, &upload, &parts).await.unwrap();
    assert!(!etag.is_empty());

    let info = c.head_object(b, key).await.unwrap();
    assert_eq!(info.size, content.len() as u64);
    let got = read_all(c.get_object(b, key).await.unwrap()).await;
    assert_eq!(got.len(), content.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(&content));

    // Resuming across a part boundary reads the same bytes.
    let from = 5 * MIB as u64 - 7;
    let tail = read_all(
        c.get_range_if_match(b, key, from, content.len() as u64 + 100, &info.etag)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tail, &content[from as usize..]);
}

#[tokio::test]
async fn aborted_multipart_leaves_no_object() {
    let s = S3Server::start();
    let c = client(&s);
    let b = &s.bucket;
    let key = "aborted/obj.bin";
    let part = data(5 * MIB, 7);
    let upload = c.create_multipart(b, key).await.unwrap();
    let etag = c
        .upload_part(b, key, &upload, 1, upload_of(&part))
        .await
        .unwrap();
    c.abort_multipart(b, key, &upload).await.unwrap();

    assert!(matches!(
        c.head_object(b, key).await,
        Err(Error::NoSuchKey { .. })
    ));
    assert!(s.object(b, key).is_none());
    let page = c
        .list_objects_v2(
            b,
            &ListQuery {
                prefix: "aborted/",
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.objects.is_empty(), "{page:?}");
    let late = c
        .complete_multipart(
            b,
            key,
            &upload,
            &[CompletedPart {
                part_number: 1,
                etag,
            }],
        )
        .await;
    // S3 answers NoSuchUpload; some servers answer AccessDenied for an upload id they do not know.
    assert!(
        matches!(
            late,
            Err(Error::NoSuchUpload { .. } | Error::Refused { .. })
        ),
        "completing an aborted upload: {late:?}"
    );
}

#[tokio::test]
async fn listing_with_prefix_delimiter_and_pages() {
    let s = S3Server::start();
    let c = client(&s);
    let b = &s.bucket;
    let keys = [
        "logs/2024/a.txt",
        "logs/2024/b.txt",
        "logs/2025/c.txt",
        "logs/top-1.txt",
        "logs/top-2.txt",
        "logs/top-3.txt",
        "other/x.txt",
        "root.txt",
    ];
    for (i, k) in keys.iter().enumerate() {
        put(&c, b, k, &data(10 + i, i as u64)).await;
    }

    let page = c
        .list_objects_v2(
            b,
            &ListQuery {
                prefix: "logs/",
                delimiter: Some("/"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        names,
        ["logs/top-1.txt", "logs/top-2.txt", "logs/top-3.txt"]
    );
    assert_eq!(page.common_prefixes, ["logs/2024/", "logs/2025/"]);
    assert_eq!(page.next_token, None);
    assert_eq!(page.objects[0].size, 13);
    assert!(page.objects[0].last_modified.is_some());
    let head = c.head_object(b, "logs/top-1.txt").await.unwrap();
    // Some servers leave ETags out of listings; where a server sends one, it is HEAD's.
    if let Some(etag) = &page.objects[0].etag {
        assert_eq!(*etag, head.etag);
    }

    let top = c
        .list_objects_v2(
            b,
            &ListQuery {
                delimiter: Some("/"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(top.common_prefixes, ["logs/", "other/"]);
    assert_eq!(top.objects.len(), 1);
    assert_eq!(top.objects[0].key, "root.txt");

    // An empty delimiter is never sent (some servers take it as a real one): a full recursive list.
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_objects_v2(
                b,
                &ListQuery {
                    prefix: "",
                    delimiter: Some(""),
                    continuation: token.as_deref(),
                    max_keys: Some(3),
                },
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.objects.len() <= 3);
        all.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(all, keys);
    assert_eq!(pages, 3);

    assert!(matches!(
        c.list_objects_v2("no-such-bucket", &ListQuery::default())
            .await,
        Err(Error::NoSuchBucket { .. })
    ));
}

#[tokio::test]
async fn awkward_keys_round_trip() {
    let s = S3Server::start();
    let c = client(&s);
    let b = &s.bucket;
    let keys = [
        "spaces/a file name.txt",
        "unicode/ünïcødé €ß 日本.txt",
        "plus/a+b=c&d.txt",
        "chars/100% ~tilde! (1) 'q' ;,@$.txt",
    ];
    for (i, k) in keys.iter().enumerate() {
        let content = format!("content of {k}");
        put(&c, b, k, content.as_bytes()).await;
        assert_eq!(
            s.object(b, k).unwrap(),
            content.as_bytes(),
            "stored under its exact name"
        );
        assert_eq!(
            c.head_object(b, k).await.unwrap().size,
            content.len() as u64
        );
        assert_eq!(
            read_all(c.get_object(b, k).await.unwrap()).await,
            content.as_bytes()
        );
        let prefix = k.split('/').next().unwrap();
        let page = c
            .list_objects_v2(
                b,
                &ListQuery {
                    prefix: &format!("{prefix}/"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.objects.len(), 1, "{i}: {page:?}");
        assert_eq!(page.objects[0].key, *k);
    }
    // A listing prefix with the same characters.
    let page = c
        .list_objects_v2(
            b,
            &ListQuery {
                prefix: "plus/a+b",
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 1);
}

#[tokio::test]
async fn wrong_keys_are_refused_without_leaking_the_secret() {
    let s = S3Server::start();
    let wrong_secret = "WRONG-secret-value-0123456789";
    let c = Client::new(
        &s.endpoint,
        &s.access_key,
        Secret::new(wrong_secret),
        None,
        &TlsOptions::default(),
    )
    .unwrap();
    for result in [
        c.head_object(&s.bucket, "k").await.map(|_| ()),
        c.get_object(&s.bucket, "k").await.map(|_| ()),
        c.list_objects_v2(&s.bucket, &ListQuery::default())
            .await
            .map(|_| ()),
        c.put_object(&s.bucket, "k", upload_of(b"x"))
            .await
            .map(|_| ()),
    ] {
        let err = result.expect_err("wrong secret must fail");
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("the S3 keys were refused") && msg.contains("gdcloud storage configure"),
            "{msg}"
        );
        for shown in [msg, format!("{err:?}"), format!("{c:?}")] {
            assert!(!shown.contains(wrong_secret), "{shown}");
            assert!(!shown.contains(&s.secret_key), "{shown}");
        }
    }
    let unknown = Client::new(
        &s.endpoint,
        "NOSUCHACCESSKEY",
        Secret::new(s.secret_key.clone()),
        None,
        &TlsOptions::default(),
    )
    .unwrap();
    let err = unknown.head_object(&s.bucket, "k").await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(s.object(&s.bucket, "k").is_none());
}

#[tokio::test]
async fn missing_objects_are_typed() {
    let s = S3Server::start();
    let c = client(&s);
    match c.get_object(&s.bucket, "no/such key").await {
        Err(Error::NoSuchKey { bucket, key }) => {
            assert_eq!(
                (bucket.as_str(), key.as_str()),
                (s.bucket.as_str(), "no/such key")
            )
        }
        other => panic!("expected NoSuchKey, got {other:?}"),
    }
    assert!(matches!(
        c.head_object(&s.bucket, "nothing").await,
        Err(Error::NoSuchKey { .. })
    ));
    assert!(matches!(
        c.get_range(&s.bucket, "nothing", 0, 9).await,
        Err(Error::NoSuchKey { .. })
    ));
    let err = c.get_object("no-such-bucket", "k").await.unwrap_err();
    assert!(
        matches!(err, Error::NoSuchKey { .. } | Error::NoSuchBucket { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls_with_and_without_the_ca() {
    let ca = TestCa::generate("gdtest S3 CA");
    let s = S3Server::start_tls(&ca);
    let endpoint = s.tls_endpoint.clone().unwrap();
    let trusted = client_for(
        &s,
        &endpoint,
        TlsOptions {
            ca_files: vec![s.ca_cert.clone().unwrap()],
            ..Default::default()
        },
    );
    let content = data(MIB + 3, 9);
    put(&trusted, &s.bucket, "tls/obj.bin", &content).await;
    let got = read_all(trusted.get_object(&s.bucket, "tls/obj.bin").await.unwrap()).await;
    assert_eq!(got, content);
    let d = trusted
        .get_range(&s.bucket, "tls/obj.bin", 1000, 1999)
        .await
        .unwrap();
    assert_eq!(read_all(d).await, &content[1000..2000]);

    let untrusted = client_for(&s, &endpoint, TlsOptions::default());
    let t0 = std::time::Instant::now();
    let err = untrusted
        .head_object(&s.bucket, "tls/obj.bin")
        .await
        .unwrap_err();
    assert!(err.is_certificate(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("certificate") && msg.contains("--ca-cert-path"),
        "{msg}"
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "a certificate error is not retried"
    );

    let insecure = client_for(
        &s,
        &endpoint,
        TlsOptions {
            insecure: true,
            ..Default::default()
        },
    );
    assert_eq!(
        insecure
            .head_object(&s.bucket, "tls/obj.bin")
            .await
            .unwrap()
            .size,
        content.len() as u64
    );
}

/// A server of ours that answers `answers` in turn (status, body) and counts requests: S3 throttles
/// and fails with 503/500, which a local server never does.
fn scripted(
    answers: Vec<(u16, &'static str)>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", server.server_addr().to_ip().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok(mut req) = server.recv() else { return };
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(req.as_reader(), &mut sink);
            assert!(req.headers().iter().any(|h| h.field.equiv("authorization")));
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(status));
        }
    });
    (endpoint, count)
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let slow =
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let page = "<ListBucketResult><IsTruncated>false</IsTruncated>\
                <Contents><Key>k</Key><Size>3</Size></Contents></ListBucketResult>";
    let (endpoint, count) = scripted(vec![(503, slow), (500, ""), (429, ""), (200, page)]);
    let c = Client::new(
        &endpoint,
        "AK",
        Secret::new("sk"),
        None,
        &TlsOptions::default(),
    )
    .unwrap();
    let got = c.list_objects_v2("b", &ListQuery::default()).await.unwrap();
    assert_eq!(got.objects[0].key, "k");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 4);

    // Four failures in a row: the last answer is reported, with S3's code and message.
    let (endpoint, count) = scripted(vec![(503, slow); 4]);
    let c = Client::new(
        &endpoint,
        "AK",
        Secret::new("sk"),
        None,
        &TlsOptions::default(),
    )
    .unwrap();
    let err = c.head_object("b", "k").await.unwrap_err();
    assert!(matches!(err, Error::Service { status: 503, .. }), "{err:?}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 4);

    // A streamed body cannot be replayed: one attempt, the caller retries from its source.
    let (endpoint, count) = scripted(vec![(503, slow), (200, "")]);
    let c = Client::new(
        &endpoint,
        "AK",
        Secret::new("sk"),
        None,
        &TlsOptions::default(),
    )
    .unwrap();
    let err = c.put_object("b", "k", upload_of(b"abc")).await.unwrap_err();
    assert!(err.to_string().contains("SlowDown"), "{err}");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}
