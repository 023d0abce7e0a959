//! The fake's HTTP plumbing: the front door (answers a TLS `ClientHello` with a plain-HTTP 400),
//! the request loop that logs every request, Basic auth, and the routing to the handlers.

use super::*;

/// Accepts connections on the public port. Our client tries `https://` first even on loopback;
/// tiny_http would wait for a request line in the TLS `ClientHello` until the client's read
/// timeout (two minutes), so a handshake is answered at once with a plain-HTTP 400, as an HTTP
/// server does, and everything else is piped to tiny_http unchanged.
pub(super) fn front_door(listener: &TcpListener, inner_port: u16, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let _ = std::thread::Builder::new()
            .name("harbor-fake-pipe".into())
            .spawn(move || pipe(client, inner_port));
    }
}

pub(super) fn pipe(client: TcpStream, inner_port: u16) {
    let mut first = [0u8; 1];
    match client.peek(&mut first) {
        Ok(1) if first[0] == 0x16 => {
            let _ = (&client).write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Ok(1) => {}
        _ => return,
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", inner_port)) else {
        return;
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut &client2, &mut &server2);
        let _ = server2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut &server, &mut &client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// What a handler answers.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    pub(super) headers: Vec<(String, String)>,
}

impl Answer {
    pub(super) fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(value).expect("JSON serialises"),
            headers: vec![("Content-Type".into(), "application/json".into())],
        }
    }

    pub(super) fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            &json!({"errors": [{"code": code, "message": message}]}),
        )
    }

    pub(super) fn header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// The same status without a body (201, HEAD answers).
    pub(super) fn no_body(mut self) -> Answer {
        self.body.clear();
        self.headers.clear();
        self
    }
}

/// The credentials a request presented.
pub(super) enum Presented {
    None,
    Valid(String),
    /// Wrong password, unknown user or not Basic; the user name if one could be decoded.
    Invalid(Option<String>),
}

pub(super) fn serve(server: &tiny_http::Server, state: &State, log: &Mutex<Vec<HarborRequest>>) {
    let mut request_id = 0u64;
    // `recv` returns an error once `unblock` was called by Drop.
    while let Ok(mut req) = server.recv() {
        request_id += 1;
        let url = req.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (url.clone(), String::new()),
        };
        let method = req.method().as_str().to_string();
        let authorization = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str().to_string());
        let presented = check_auth(state, authorization.as_deref());
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let mut body = Vec::new();
        if req.as_reader().read_to_end(&mut body).is_err() {
            continue;
        }
        let call = projects::Call {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: &body,
            presented: &presented,
        };
        let answer = if let Some(a) = projects::route(state, &call) {
            a
        } else if let Some(up) = state.upstream.as_ref().filter(|_| path.starts_with("/v2")) {
            let f = upstream::Forward {
                method: &method,
                url: &url,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
                presented: &presented,
            };
            upstream::forward(state, up, &f)
        } else if method != "GET" {
            Answer::error(405, "METHOD_NOT_ALLOWED", "the fake Harbor only serves GET")
        } else {
            route(state, &path, &query, &presented)
        };
        let link_next = answer
            .headers
            .iter()
            .find(|(k, _)| k == "Link")
            .and_then(|(_, v)| next_of(v));
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(HarborRequest {
                method,
                url: url.clone(),
                path,
                query,
                auth_present: authorization.is_some(),
                username: match &presented {
                    Presented::None => None,
                    Presented::Valid(u) => Some(u.clone()),
                    Presented::Invalid(u) => u.clone(),
                },
                status: answer.status,
                link_next,
            });
        // Whole bodies with their `Content-Length` (a forwarded HEAD keeps the blob's).
        let mut resp = tiny_http::Response::from_data(answer.body)
            .with_status_code(answer.status)
            .with_chunked_threshold(usize::MAX);
        resp.add_header(header("X-Request-Id", &format!("fake-{request_id}")));
        for (k, v) in &answer.headers {
            resp.add_header(header(k, v));
        }
        let _ = req.respond(resp);
    }
}

pub(super) fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

pub(super) fn check_auth(state: &State, authorization: Option<&str>) -> Presented {
    let Some(v) = authorization else {
        return Presented::None;
    };
    let decoded = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
        return Presented::Invalid(None);
    };
    if state.users.iter().any(|(u, p)| u == user && p == password) {
        Presented::Valid(user.to_string())
    } else {
        Presented::Invalid(Some(user.to_string()))
    }
}

pub(super) fn route(state: &State, path: &str, query: &str, presented: &Presented) -> Answer {
    if path == "/api/v2.0/ping" {
        // `getPing`: anonymous, text/plain `Pong`.
        return Answer {
            status: 200,
            body: b"Pong".to_vec(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v2.0/projects/") {
        // The router splits the once-decoded path on `/`: a raw or single-encoded slash in the
        // repository name makes more segments, which no route matches.
        let segments: Vec<&str> = rest.split('/').collect();
        if let [project, "repositories", repository, "artifacts"] = segments[..] {
            return list_artifacts(state, path, project, repository, query, presented);
        }
        return Answer::error(404, "NOT_FOUND", &format!("no route for {path}"));
    }
    if path == "/v2" || path == "/v2/" {
        return match presented {
            Presented::Valid(_) => Answer::json(200, &json!({})),
            _ => unauthorized_v2(),
        };
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return distribution(state, rest, query, presented);
    }
    Answer::error(404, "NOT_FOUND", &format!("no route for {path}"))
}

/// Whether the caller may read `project` (Harbor's rules: Basic credentials must be right when
/// given; a private project needs them).
pub(super) fn api_access(
    project: Option<&StoredProject>,
    presented: &Presented,
) -> Result<(), Answer> {
    match presented {
        Presented::Invalid(_) => Err(Answer::error(401, "UNAUTHORIZED", "unauthorized")),
        Presented::Valid(_) => Ok(()),
        Presented::None if project.is_some_and(|p| p.public) => Ok(()),
        Presented::None => Err(Answer::error(401, "UNAUTHORIZED", "unauthorized")),
    }
}
