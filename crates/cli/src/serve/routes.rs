//! The HTTP API and its guard.
//!
//! | request | what |
//! |---|---|
//! | `GET /`, `/studio.js`, `/studio.css`, `/samples/NAME` | the page and the sample images (embedded) |
//! | `GET /api/config` | limits, backend, the options' defaults and presets, the samples |
//! | `GET /api/state` | queue, running job, gallery (as the `state` event) |
//! | `GET /api/events` | Server-Sent Events: `state`, `progress`, `preview`, `result`, `failed` |
//! | `POST /api/uploads?name=N` | an image as the body → `{id,name,width,height}` |
//! | `GET /api/uploads/ID/thumb.png` | its thumbnail |
//! | `POST /api/jobs` | `{content, styles, init?, options, strengths?}` → `{jobs: [ID…]}` |
//! | `POST /api/jobs/ID/stop` | stop a running job (kept) or cancel a queued one |
//! | `GET /api/jobs/ID/preview.png` | the running job's latest preview |
//! | `GET /api/gallery/ID/image.png` / `image.jpg` / `thumb.png` | a result |
//!
//! Every request must name this server in `Host` (an IP address, `localhost`
//! or an `--allow-origin`, at this port): a page of another site that
//! resolves its name to this machine (DNS rebinding) is refused (421). Every
//! request must then carry the server's token (`auth.rs`; 401 without it or
//! with a wrong one, unless `--no-token`); a GET with the right `?token=` is
//! answered with the cookie and a redirect (303) to the same URL without it.
//! Every request that changes state (any method but GET/HEAD) must carry an
//! `Origin` that is this server's; a form or script on another site is
//! refused with 403. Uploads are read at most [`READS`] at a time and decoded
//! at most [`DECODES`] at a time (memory); a body that does not arrive within
//! `--body-timeout` is answered 408. Errors are JSON `{"error": "..."}`.

use super::assets;
use super::auth::Verdict;
use super::jobs::{self, JobRequest};
use super::uploads::Refused;
use super::Studio;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<Studio>>;

/// Uploads whose bodies are read at once (each at most `--max-upload-mib`).
pub(crate) const READS: usize = 4;
/// Uploads decoded at once (each at most `--max-upload-megapixels`).
pub(crate) const DECODES: usize = 2;

/// Who sent a request (set by the guard): its browser session, or "token"
/// for scripts, or its address with `--no-token`.
#[derive(Clone, Debug)]
pub(crate) struct Client(pub(crate) String);

pub(crate) fn router(studio: Arc<Studio>) -> Router {
    let max = studio.uploads.max_bytes() as usize;
    Router::new()
        .route("/", get(|| async { assets::page("index.html") }))
        .route("/studio.js", get(|| async { assets::page("studio.js") }))
        .route("/studio.css", get(|| async { assets::page("studio.css") }))
        .route("/samples/{name}", get(sample))
        .route("/api/config", get(config))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route(
            "/api/uploads",
            post(upload)
                .layer(DefaultBodyLimit::max(max))
                .layer(middleware::from_fn_with_state(studio.clone(), read_permit)),
        )
        .route("/api/uploads/{id}/thumb.png", get(upload_thumb))
        .route("/api/jobs", post(submit))
        .route("/api/jobs/{id}/stop", post(stop))
        .route("/api/jobs/{id}/preview.png", get(preview))
        .route("/api/gallery/{id}/{file}", get(gallery_file))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .layer(middleware::from_fn_with_state(studio.clone(), guard))
        .layer(DefaultBodyLimit::max(256 << 10))
        .with_state(studio)
}

/// A JSON error.
pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

/// `scheme://host[:port]`, lowercased, from an `--allow-origin` value.
pub(crate) fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("`{s}`: an origin starts with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "`{s}`: an origin is scheme://host[:port], nothing more"
        ));
    }
    Ok(s)
}

/// The host part and the port of a `Host` header (`[::1]:8080`, `a:80`, `a`).
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (host, None),
    }
}

/// Whether `Host` names this server.
fn host_ok(st: &Studio, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if st
        .args
        .allow_origin
        .iter()
        .filter_map(|o| parse_origin(o).ok())
        .any(|o| o.split_once("://").map(|(_, a)| a) == Some(host.as_str()))
    {
        return true;
    }
    let (name, port) = split_host(&host);
    let port_ok = match port {
        Some(p) => p.parse::<u16>().ok() == Some(st.port),
        None => st.port == 80,
    };
    port_ok && (name == "localhost" || name.parse::<std::net::IpAddr>().is_ok())
}

/// Whether `Origin` is this server's (given an accepted `Host`).
fn origin_ok(st: &Studio, origin: &str, host: &str) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    origin == format!("http://{}", host.to_ascii_lowercase())
        || st
            .args
            .allow_origin
            .iter()
            .filter_map(|o| parse_origin(o).ok())
            .any(|o| o == origin)
}

async fn guard(State(st): St, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return with_headers(error(StatusCode::BAD_REQUEST, "no Host header"));
    };
    let host = host.as_str();
    if !host_ok(&st, host) {
        return with_headers(error(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this studio does not answer to `{host}` (start it with --allow-origin http://{host})"),
        ));
    }
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let verdict = st.auth.check(get, req.uri().query(), headers);
    let client = match verdict {
        Verdict::Allowed(c) if c.is_empty() => req
            .extensions()
            .get::<super::net::Peer>()
            .map(|p| p.0.ip().to_string())
            .unwrap_or_default(),
        Verdict::Allowed(c) => c,
        Verdict::Exchange => {
            let to = super::auth::without_token(req.uri().path(), req.uri().query());
            let mut res =
                (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            if let Some(c) = st.auth.set_cookie() {
                res.headers_mut().insert(header::SET_COOKIE, c);
            }
            return with_headers(res);
        }
        Verdict::Missing => return with_headers(error(
            StatusCode::UNAUTHORIZED,
            "this studio needs its token: open the URL it printed at start-up (http://…/?token=…)",
        )),
        Verdict::Wrong => {
            return with_headers(error(
                StatusCode::UNAUTHORIZED,
                "wrong token: open the URL this studio printed at start-up (http://…/?token=…)",
            ))
        }
    };
    req.extensions_mut().insert(Client(client));
    let headers = req.headers();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => {
                return with_headers(error(
                    StatusCode::FORBIDDEN,
                    "a request that changes state must carry this server's Origin",
                ))
            }
            Some(o) if !origin_ok(&st, o, host) => {
                return with_headers(error(
                    StatusCode::FORBIDDEN,
                    format!("Origin `{o}` is not this studio"),
                ))
            }
            Some(_) => {}
        }
    }
    with_headers(next.run(req).await)
}

/// The security headers of every response.
fn with_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn bytes(content_type: &'static str, body: Vec<u8>, download: Option<String>) -> Response {
    let mut res = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    if let Some(name) = download {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    res
}

fn parse_id(s: &str) -> Option<u64> {
    s.parse().ok()
}

async fn sample(Path(name): Path<String>) -> Response {
    match assets::sample(&name) {
        Some(b) => bytes("image/jpeg", b.to_vec(), None),
        None => error(StatusCode::NOT_FOUND, "no such sample"),
    }
}

async fn config(State(st): St) -> Response {
    let defaults = serde_json::to_value(neural_style::Options::default()).unwrap_or_default();
    let presets: serde_json::Map<String, serde_json::Value> = neural_style::Preset::ALL
        .iter()
        .map(|&p| {
            let name = serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (
                name,
                serde_json::to_value(neural_style::Options::preset(p)).unwrap_or_default(),
            )
        })
        .collect();
    Json(serde_json::json!({
        "max_size": st.args.max_size,
        "max_upload_bytes": st.uploads.max_bytes(),
        "backend": st.args.backend.clone().unwrap_or_else(|| neural_style::backends::DEFAULT.to_string()),
        "preview_every": st.args.preview_every,
        "max_strengths": super::jobs::MAX_STRENGTHS,
        "max_iterations": st.args.max_iterations,
        "max_upload_megapixels": st.args.max_upload_megapixels,
        "defaults": defaults,
        "presets": presets,
        "samples": assets::SAMPLES.iter().map(|s| serde_json::json!({"name": s.name, "kind": s.kind, "title": s.title})).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn state(State(st): St) -> Response {
    let e = st.jobs.snapshot();
    ([(header::CONTENT_TYPE, "application/json")], e.data).into_response()
}

async fn events(State(st): St) -> Response {
    let jobs = st.jobs.clone();
    st.hub.stream(move || jobs.snapshot()).into_response()
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// 408: the body did not arrive within `--body-timeout`.
fn body_timeout(st: &Studio) -> Response {
    error(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request's body did not arrive within {} s (`neural-style serve --body-timeout`)",
            st.args.body_timeout
        ),
    )
}

/// One of the [`READS`] permits to read an upload's body (waited for at most
/// `--body-timeout`), held until the upload is answered.
async fn read_permit(State(st): St, req: Request, next: Next) -> Response {
    let wait = std::time::Duration::from_secs(st.args.body_timeout);
    match tokio::time::timeout(wait, st.reads.acquire()).await {
        Ok(Ok(_permit)) => next.run(req).await,
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the studio is busy with other uploads: try again",
        ),
    }
}

async fn upload(
    State(st): St,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let max = st.uploads.max_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the image is larger than this studio's limit of {} MiB",
                max >> 20
            ),
        )
    };
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return too_large(),
        Err(e) if super::net::timed_out(&e) => return body_timeout(&st),
        Err(e) => return error(e.status(), e.body_text()),
    };
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the upload is empty");
    }
    let name = q.name.unwrap_or_default();
    let Ok(_decoding) = st.decodes.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the studio is stopping");
    };
    let studio = st.clone();
    let added = tokio::task::spawn_blocking(move || studio.uploads.add(&name, &body)).await;
    match added {
        Ok(Ok(u)) => (StatusCode::CREATED, Json(&*u)).into_response(),
        Ok(Err(Refused::TooLarge(m))) => error(StatusCode::PAYLOAD_TOO_LARGE, m),
        Ok(Err(Refused::NotAnImage(m))) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
        Ok(Err(Refused::Full(m))) => error(StatusCode::INSUFFICIENT_STORAGE, m),
        Ok(Err(Refused::Io(m))) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the upload failed"),
    }
}

async fn upload_thumb(State(st): St, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|id| st.uploads.get(id)) {
        Some(u) => bytes("image/png", u.thumb.clone(), None),
        None => error(StatusCode::NOT_FOUND, "no such upload"),
    }
}

async fn submit(
    State(st): St,
    Extension(client): Extension<Client>,
    req: Result<Json<JobRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match req {
        Ok(r) => r,
        Err(e) if super::net::timed_out(&e) => return body_timeout(&st),
        Err(e) => return error(e.status(), e.body_text()),
    };
    let studio = st.clone();
    let submitted =
        tokio::task::spawn_blocking(move || studio.jobs.submit(&req, &studio.uploads, &client.0));
    match submitted.await {
        Ok(Ok(ids)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "jobs": ids })),
        )
            .into_response(),
        Ok(Err(jobs::Refused::Bad(m))) => error(StatusCode::BAD_REQUEST, m),
        Ok(Err(jobs::Refused::Busy(m))) => error(StatusCode::TOO_MANY_REQUESTS, m),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the job could not be queued",
        ),
    }
}

async fn stop(State(st): St, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Some(id) if st.jobs.stop(id) => Json(serde_json::json!({ "stopping": id })).into_response(),
        _ => error(StatusCode::NOT_FOUND, "no such job in the queue"),
    }
}

async fn preview(State(st): St, Path(id): Path<String>) -> Response {
    match parse_id(&id).and_then(|id| st.jobs.preview(id)) {
        Some((_, png)) => bytes("image/png", png.to_vec(), None),
        None => error(StatusCode::NOT_FOUND, "no preview of that job"),
    }
}

async fn gallery_file(State(st): St, Path((id, file)): Path<(String, String)>) -> Response {
    let Some(item) = parse_id(&id).and_then(|id| st.jobs.item(id)) else {
        return error(StatusCode::NOT_FOUND, "no such result");
    };
    let name = format!("neural-style-{}", item.id);
    match file.as_str() {
        "image.png" => bytes("image/png", item.png.clone(), Some(format!("{name}.png"))),
        "thumb.png" => bytes("image/png", item.thumb.clone(), None),
        "image.jpg" => {
            // Encoded when asked from the PNG (the gallery keeps one copy).
            let jpg = tokio::task::spawn_blocking(move || {
                image::load_from_memory_with_format(&item.png, image::ImageFormat::Png)
                    .map(|i| super::uploads::encode(&i.into_rgb8(), image::ImageFormat::Jpeg))
            })
            .await;
            match jpg {
                Ok(Ok(jpg)) => bytes("image/jpeg", jpg, Some(format!("{name}.jpg"))),
                _ => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the JPEG"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_split() {
        assert_eq!(split_host("127.0.0.1:8080"), ("127.0.0.1", Some("8080")));
        assert_eq!(split_host("[::1]:8080"), ("::1", Some("8080")));
        assert_eq!(split_host("localhost"), ("localhost", None));
        assert_eq!(split_host("::1"), ("::1", None));
    }

    #[test]
    fn origins_parse() {
        assert_eq!(
            parse_origin("http://Studio.lan:8080/").unwrap(),
            "http://studio.lan:8080"
        );
        assert!(parse_origin("studio.lan").is_err());
        assert!(parse_origin("http://a/b").is_err());
        assert!(parse_origin("http://").is_err());
    }
}
