//! A frontend's answers: the channels' trees, box catalogs and files,
//! `/key.gpg` and `bess.sources` from the publication read from the
//! store, with the same rights as the primary; writes and the API go to
//! the primary by redirect.

use super::Front;
use super::snapshot::{ChannelView, ObjectRef, Publication, by_hash_key};
use crate::boxes::BoxIdentity;
use crate::pool::Sha256;
use crate::publish::store_manifest::object_key;
use crate::serve::auth::may_read;
use crate::serve::boxes::{UnsignedOffer, signed_catalog};
use crate::serve::files::{self, FileRequest, RangeRequest};
use crate::serve::http::{Body, empty, json, json_error, respond};
use crate::serve::{State, authenticate, path};
use futures::StreamExt;
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

type Reply = (Response<Body>, Option<String>);

/// Routes one request on a frontend.
pub async fn route(
    state: &Arc<State>,
    front: &Arc<Front>,
    request: Request<Incoming>,
    ip: IpAddr,
) -> Reply {
    let raw = request.uri().path();
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let api = raw == "/env" || raw.starts_with("/env/") || raw.starts_with("/api/");
    if api || !reads {
        return (to_primary(front, &request), None);
    }
    let Ok(segments) = path::segments(raw) else {
        return (respond(StatusCode::BAD_REQUEST, "bad path\n"), None);
    };
    if segments == ["key.gpg"] {
        return (keyring(front, &request), None);
    }
    if segments == ["metrics"] {
        let metrics =
            super::super::metrics::response_with(&state.metrics, &state.config, ip, || {
                front.metrics()
            });
        return (metrics, None);
    }
    let publication = front.publication();
    let channels = &publication.manifest.channels;
    let Some((channel, rest, by_host)) = channel_of(state, channels, &request, &segments) else {
        return (respond(StatusCode::NOT_FOUND, "not found\n"), None);
    };
    let Some(view) = publication.channels.get(&channel).cloned() else {
        return (respond(StatusCode::NOT_FOUND, "not found\n"), None);
    };
    if !state.config.settings.serve.allows(&channel, ip) {
        let text = "forbidden from this address\n";
        return (respond(StatusCode::FORBIDDEN, text), None);
    }
    if rest.first().map(String::as_str) == Some("boxes") {
        return box_route(state, front, &request, (&channel, &view), &rest[1..], ip).await;
    }
    let user = match authenticate(state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let who = Some(user.name.clone());
    if !may_read(&user, &channel) {
        let text = "no read access to this channel\n";
        return (respond(StatusCode::FORBIDDEN, text), who);
    }
    if rest == ["bess.sources"] {
        let text = sources(state, &publication, &request, &channel, by_host);
        return (text, who);
    }
    (
        tree_file(state, front, &request, &channel, &view, rest).await,
        who,
    )
}

/// The channel a request is for, the path inside its tree, and whether it
/// came by a `[serve.hosts]` name.
fn channel_of<'a>(
    state: &State,
    channels: &[String],
    request: &Request<Incoming>,
    segments: &'a [String],
) -> Option<(String, &'a [String], bool)> {
    let first = segments.first()?;
    if channels.contains(first) {
        return Some((first.clone(), &segments[1..], false));
    }
    let in_tree = matches!(first.as_str(), "dists" | "pool" | "boxes" | "bess.sources");
    let host = super::super::request_host(request).filter(|_| in_tree)?;
    let channel = state.config.settings.serve.hosts.get(&host)?.clone();
    Some((channel, segments, true))
}

/// `307` to the same path and query on the primary: uploads, promotions
/// and every API call are the primary's.
fn to_primary(front: &Front, request: &Request<Incoming>) -> Response<Body> {
    let Some(primary) = &front.primary else {
        let text = "this frontend serves reads only and knows no primary; set [serve] primary \
                    in its settings, or send writes to the primary\n";
        return respond(StatusCode::SERVICE_UNAVAILABLE, text);
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(
            header::LOCATION,
            format!("{}{target}", primary.trim_end_matches('/')),
        )
        .header(header::CONTENT_LENGTH, 0)
        .body(empty())
        .expect("valid response")
}

fn keyring(front: &Front, request: &Request<Incoming>) -> Response<Body> {
    let publication = front.publication();
    let Some((loaded, _)) = &publication.keyring else {
        return respond(StatusCode::NOT_FOUND, "the store holds no key yet\n");
    };
    let wanted = FileRequest {
        path: std::path::Path::new("key.gpg"),
        method: request.method(),
        headers: request.headers(),
    };
    let mut response = files::serve_loaded(loaded, &wanted);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/pgp-keys"),
    );
    response
}

fn sources(
    state: &State,
    publication: &Publication,
    request: &Request<Incoming>,
    channel: &str,
    by_host: bool,
) -> Response<Body> {
    let base = match by_host {
        true => super::super::host_base(state, request.headers()),
        false => super::super::public_base(state, request.headers()),
    };
    let Some(base) = base else {
        let text = "the Host header is missing or not a host[:port]; set [serve] public-url\n";
        return respond(StatusCode::BAD_REQUEST, text);
    };
    let uri = match by_host {
        true => base,
        false => format!("{base}/{channel}"),
    };
    let manifest = &publication.manifest;
    let text = super::super::sources_text(
        &uri,
        &manifest.dists,
        &manifest.components,
        &publication.armored,
    );
    respond(StatusCode::OK, &text)
}

/// A file of the channel's tree: Release files from memory, the indices
/// they list and pool files from the cache (or the store), by hash.
async fn tree_file(
    state: &State,
    front: &Front,
    request: &Request<Incoming>,
    channel: &str,
    view: &ChannelView,
    rest: &[String],
) -> Response<Body> {
    let relative: PathBuf = rest.iter().collect();
    let wanted = FileRequest {
        path: &relative,
        method: request.method(),
        headers: request.headers(),
    };
    let not_found = || respond(StatusCode::NOT_FOUND, "not found\n");
    let (object, key) = match rest.first().map(String::as_str) {
        Some("pool") => match view.pool.get(&rest.join("/")) {
            Some(object) => (*object, object_key(&object.sha256.to_hex())),
            None => return not_found(),
        },
        Some("dists") if rest.len() >= 3 => {
            let Some(dist) = view.dists.get(&rest[1]) else {
                return not_found();
            };
            let inner = rest[2..].join("/");
            if let Some(loaded) = dist.releases.get(inner.as_str()) {
                return files::serve_loaded(loaded, &wanted);
            }
            let base = format!("{channel}/dists/{}", rest[1]);
            match by_hash(&base, &inner).or_else(|| {
                let object = dist.files.get(&inner)?;
                Some((*object, by_hash_key(&base, &inner, object)))
            }) {
                Some(found) => found,
                None => return not_found(),
            }
        }
        _ => return not_found(),
    };
    object_response(state, front, &wanted, object, &key).await
}

/// A `…/by-hash/SHA256/<hex>` path: its bytes are named by the path, so
/// any generation the store still holds is served.
fn by_hash(base: &str, inner: &str) -> Option<(ObjectRef, String)> {
    let (_, hex) = inner.rsplit_once("by-hash/SHA256/")?;
    let sha256 = Sha256::from_hex(hex)?;
    let object = ObjectRef { sha256, size: 0 };
    Some((object, format!("{base}/{inner}")))
}

/// A content-addressed file: from the disk cache, fetched into it first
/// if needed; one too large for the cache is streamed from the store.
async fn object_response(
    state: &State,
    front: &Front,
    wanted: &FileRequest<'_>,
    object: ObjectRef,
    key: &str,
) -> Response<Body> {
    let tag = object.sha256.to_hex();
    if object.size > 0 && !front.cache.admits(object.size) {
        return streamed(front, wanted, &tag, object.size, key).await;
    }
    match front
        .cache
        .open_file(&front.store, object.sha256, key)
        .await
    {
        Ok(file) => files::serve_named(file, &tag, wanted, &state.files),
        Err(super::disk_cache::CacheError::Store(super::store::StoreError::Missing { .. })) => {
            respond(StatusCode::NOT_FOUND, "not found\n")
        }
        Err(e) => {
            eprintln!("bess serve: {e}");
            respond(
                StatusCode::BAD_GATEWAY,
                "the store could not give this file\n",
            )
        }
    }
}

/// A file larger than the cache keeps, passed through from the store: a
/// single byte range (apt and vagrant resume with one) is asked of the
/// store as such.
async fn streamed(
    front: &Front,
    wanted: &FileRequest<'_>,
    tag: &str,
    size: u64,
    key: &str,
) -> Response<Body> {
    // Named by its hash, the file never changes: its ETag is the hash, and
    // no date is given (If-Range by date then asks for the whole file).
    let info = files::FileInfo {
        size,
        modified: httpdate::HttpDate::from(std::time::UNIX_EPOCH),
        etag: format!("\"{tag}\""),
    };
    if files::not_modified(wanted.headers, &info, false) {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, &info.etag)
            .body(empty())
            .expect("valid response");
    }
    let (status, range) = match files::requested_range(wanted.headers, &info, false) {
        RangeRequest::Full => (StatusCode::OK, 0..size),
        RangeRequest::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start..end),
        RangeRequest::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(empty())
                .expect("valid response");
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, files::content_type(wanted.path))
        .header(header::CONTENT_LENGTH, range.end - range.start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &info.etag);
    if status == StatusCode::PARTIAL_CONTENT {
        let last = range.end - 1;
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{last}/{size}", range.start),
        );
    }
    if wanted.method == Method::HEAD {
        return builder.body(empty()).expect("valid response");
    }
    let part = (status == StatusCode::PARTIAL_CONTENT).then_some(range);
    match front.store.stream_range(key, part).await {
        Ok(result) => builder.body(body_of(result)).expect("valid response"),
        Err(e) => {
            eprintln!("bess serve: {e}");
            respond(
                StatusCode::BAD_GATEWAY,
                "the store could not give this file\n",
            )
        }
    }
}

/// A response body of the store's stream. It is not Sync, so a task
/// hands its pieces over a channel.
fn body_of(result: object_store::GetResult) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut pieces = result.into_stream();
    tokio::spawn(async move {
        while let Some(piece) = pieces.next().await {
            let frame = piece.map(Frame::data).map_err(std::io::Error::other);
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    files::channel_body(rx)
}

/// `/<channel>/boxes/…`: a catalog or a box file.
async fn box_route(
    state: &Arc<State>,
    front: &Front,
    request: &Request<Incoming>,
    (channel, view): (&str, &ChannelView),
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    match rest.len() {
        1 | 2 => box_catalog(state, request, channel, view, rest, ip).await,
        3 | 4 => box_file(state, front, request, channel, view, rest, ip).await,
        _ => (respond(StatusCode::NOT_FOUND, "not found\n"), None),
    }
}

/// The Vagrant catalog of one box name, as the primary builds it.
async fn box_catalog(
    state: &Arc<State>,
    request: &Request<Incoming>,
    channel: &str,
    view: &ChannelView,
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    let user = match authenticate(state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let who = Some(user.name.clone());
    if !may_read(&user, channel) {
        let text = "no read access to this channel";
        return (json_error(StatusCode::FORBIDDEN, text), who);
    }
    let name = rest.join("/");
    let Some(base) = super::super::public_base(state, request.headers()) else {
        let text = "the Host header is missing or not a host name; set [serve] public-url";
        return (json_error(StatusCode::BAD_REQUEST, text), who);
    };
    let offered: Vec<UnsignedOffer> = view
        .boxes
        .iter()
        .filter(|b| b.name == name)
        .filter_map(|b| {
            let identity = BoxIdentity::new(&b.name, &b.version, &b.provider, &b.arch).ok()?;
            Some(UnsignedOffer {
                file: identity.file_path(),
                version: b.version.clone(),
                provider: b.provider.clone(),
                arch: b.arch.clone(),
                sha256: b.sha256.clone(),
            })
        })
        .collect();
    let response = if offered.is_empty() {
        json_error(StatusCode::NOT_FOUND, "no such box in this channel")
    } else {
        let catalog = signed_catalog(state, (&user, channel), &name, &base, offered);
        json(StatusCode::OK, &catalog)
    };
    (
        super::super::boxes::head_aware(response, request.method()),
        who,
    )
}

/// A box file, for the holder of its token or of credentials.
async fn box_file(
    state: &Arc<State>,
    front: &Front,
    request: &Request<Incoming>,
    channel: &str,
    view: &ChannelView,
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    let granted = super::super::boxes::granted_box_file(state, request, channel, rest, ip);
    let (file, who) = match granted.await {
        Ok(granted) => granted,
        Err(refused) => return refused,
    };
    let placed = view.boxes.iter().find(|b| {
        BoxIdentity::new(&b.name, &b.version, &b.provider, &b.arch)
            .is_ok_and(|i| i.file_path() == file)
    });
    let object = placed.and_then(|b| {
        let sha256 = Sha256::from_hex(&b.sha256)?;
        Some(ObjectRef {
            sha256,
            size: b.size,
        })
    });
    let Some(object) = object else {
        return (respond(StatusCode::NOT_FOUND, "not found\n"), who);
    };
    let relative = PathBuf::from("boxes").join(&file);
    let wanted = FileRequest {
        path: &relative,
        method: request.method(),
        headers: request.headers(),
    };
    let key = object_key(&object.sha256.to_hex());
    (
        object_response(state, front, &wanted, object, &key).await,
        who,
    )
}
