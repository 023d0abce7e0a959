//! The fake's own minimal, read-only distribution API over the configured artifacts (when no
//! real registry is behind it): `/v2/` ping, `tags/list`, manifests, config blobs.

use super::*;

pub(super) fn unauthorized_v2() -> Answer {
    Answer::error(401, "UNAUTHORIZED", "unauthorized: unauthorized")
        .header("WWW-Authenticate", "Basic realm=\"harbor\"")
        .header("Docker-Distribution-API-Version", "registry/2.0")
}

/// The distribution API, minimally: `tags/list` (with `n` and `last`), manifests by tag or
/// digest, blobs (configs only).
pub(super) fn distribution(
    state: &State,
    rest: &str,
    query: &str,
    presented: &Presented,
) -> Answer {
    let (name, kind, reference) = if let Some(name) = rest.strip_suffix("/tags/list") {
        (name, "tags", "")
    } else if let Some((name, r)) = rest.rsplit_once("/manifests/") {
        (name, "manifests", r)
    } else if let Some((name, r)) = rest.rsplit_once("/blobs/") {
        (name, "blobs", r)
    } else {
        return Answer::error(404, "NOT_FOUND", &format!("no route for /v2/{rest}"));
    };
    let project = name.split('/').next().and_then(|p| state.project(p));
    match presented {
        Presented::Valid(_) => {}
        Presented::None if project.is_some_and(|p| p.public) => {}
        _ => return unauthorized_v2(),
    }
    let Some(repository) = state.repository_by_full_name(name) else {
        return Answer::error(
            404,
            "NAME_UNKNOWN",
            &format!("repository name not known to registry: {name}"),
        );
    };
    match kind {
        "tags" => {
            let params = parse_query(query);
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let mut tags: Vec<String> = repository
                .artifacts
                .iter()
                .flat_map(|a| a.tags.iter().map(|t| t.name.clone()))
                .collect();
            tags.sort();
            if let Some(last) = get("last") {
                tags.retain(|t| *t > last);
            }
            let n = get("n").and_then(|n| n.parse::<usize>().ok());
            let mut answer_link = None;
            if let Some(n) = n {
                if tags.len() > n {
                    tags.truncate(n);
                    answer_link = Some(format!(
                        "</v2/{name}/tags/list?last={}&n={n}>; rel=\"next\"",
                        tags[n - 1]
                    ));
                }
            }
            let mut a = Answer::json(200, &json!({"name": name, "tags": tags}));
            if let Some(l) = answer_link {
                a = a.header("Link", &l);
            }
            a
        }
        "manifests" => {
            let found = repository
                .artifacts
                .iter()
                .find(|a| a.digest == reference || a.tags.iter().any(|t| t.name == reference));
            match found {
                Some(a) => Answer {
                    status: 200,
                    body: a.manifest.clone(),
                    headers: vec![
                        ("Content-Type".into(), OCI_MANIFEST.into()),
                        ("Docker-Content-Digest".into(), a.digest.clone()),
                    ],
                },
                None => Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            }
        }
        _ => match repository
            .artifacts
            .iter()
            .find(|a| a.config_digest == reference)
        {
            Some(a) => Answer {
                status: 200,
                body: a.config.clone(),
                headers: vec![
                    ("Content-Type".into(), "application/octet-stream".into()),
                    ("Docker-Content-Digest".into(), a.config_digest.clone()),
                ],
            },
            None => Answer::error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
        },
    }
}
