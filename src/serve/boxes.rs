//! Vagrant over HTTP: box catalogs under `/<channel>/boxes/<name>`, box
//! files reached with a signed token or credentials, and box uploads.
//!
//! The catalog JSON is built from the catalog on every request rather than
//! published as a file: each box URL in it carries a token for the asking
//! user and the host it asked, so no one file could serve two users, and
//! the rows of one box name are few.

use super::auth::{may_read, may_upload};
use super::http::{Body, empty, json, json_error, respond};
use super::upload::{BodyReader, declared_length, pump_body};
use super::{State, authenticate, beneath};
use crate::boxes::{self, BoxIdentity, Grant, Offer, TokenError, VagrantCatalog};
use crate::catalog::UserRow;
use crate::ops::{self, BoxAddRequest, BoxPlacement, OpsError, Repo};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Reply = (Response<Body>, Option<String>);

/// The architecture of a box uploaded without `?arch=`.
pub const DEFAULT_ARCH: &str = "amd64";

/// `GET`/`HEAD /<channel>/boxes/<rest>`: a catalog (`name`, `org/name`) or
/// a box file (`<name>/<version>/<provider>-<arch>.box`).
pub async fn handle(
    state: &Arc<State>,
    request: Request<Incoming>,
    channel: &str,
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (
            respond(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n"),
            None,
        );
    }
    match rest.len() {
        1 | 2 => catalog(state, request, channel, rest, ip).await,
        3 | 4 => box_file(state, request, channel, rest, ip).await,
        _ => (respond(StatusCode::NOT_FOUND, "not found\n"), None),
    }
}

/// The Vagrant catalog of one box name, for a user who may read the channel.
async fn catalog(
    state: &Arc<State>,
    request: Request<Incoming>,
    channel: &str,
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    let user = match authenticate(state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let name = rest.join("/");
    let who = Some(user.name.clone());
    if !may_read(&user, channel) {
        let text = "no read access to this channel";
        return (json_error(StatusCode::FORBIDDEN, text), who);
    }
    if boxes::check_name(&name).is_err() {
        return (json_error(StatusCode::NOT_FOUND, "no such box"), who);
    }
    let Some(base) = super::public_base(state, request.headers()) else {
        let text = "the Host header is missing or not a host name; set [serve] public-url";
        return (json_error(StatusCode::BAD_REQUEST, text), who);
    };
    let (shared, channel_owned) = (state.clone(), channel.to_string());
    let built = tokio::task::spawn_blocking(move || {
        let state = &shared;
        state.repos.with(|repo| {
            let placed = ops::list_boxes(repo, Some(&channel_owned), Some(&name))?;
            if placed.is_empty() {
                return Err(OpsError::NotFound(format!(
                    "no box named `{name}` in channel `{channel_owned}`"
                )));
            }
            vagrant_catalog(state, &user, &channel_owned, &name, &base, &placed)
        })
    })
    .await;
    let response = match built {
        Ok(Ok(catalog)) => json(StatusCode::OK, &catalog),
        Ok(Err(error)) => super::api::error_response(state, &error),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the catalog panicked"),
    };
    (head_aware(response, request.method()), who)
}

/// The catalog of the placed boxes of `name`.
fn vagrant_catalog(
    state: &State,
    user: &UserRow,
    channel: &str,
    name: &str,
    base: &str,
    placed: &[BoxPlacement],
) -> Result<VagrantCatalog, OpsError> {
    let mut boxes = Vec::with_capacity(placed.len());
    for p in placed {
        boxes.push(UnsignedOffer {
            file: ops::box_file_path(p)?,
            version: p.version.clone(),
            provider: p.provider.clone(),
            arch: p.architecture.clone(),
            sha256: p.sha256.clone(),
        });
    }
    Ok(signed_catalog(state, (user, channel), name, base, boxes))
}

/// A box file a catalog offers, before its URL is signed.
pub(super) struct UnsignedOffer {
    /// Its path under the channel's `boxes/`.
    pub file: String,
    pub version: String,
    pub provider: String,
    pub arch: String,
    pub sha256: String,
}

/// The Vagrant catalog of `name`, for `user` reading `channel`: each box
/// URL carries a token that grants that user that file only.
pub(super) fn signed_catalog(
    state: &State,
    (user, channel): (&UserRow, &str),
    name: &str,
    base: &str,
    boxes: Vec<UnsignedOffer>,
) -> VagrantCatalog {
    let expires = boxes::expiry(unix_now(), state.config.settings.boxes.token_ttl_secs);
    let offers = boxes
        .into_iter()
        .map(|b| {
            let token = state.box_secret.sign(&Grant {
                user: &user.name,
                channel,
                file: &b.file,
                expires,
            });
            Offer {
                url: format!("{base}/{channel}/boxes/{}?token={token}", b.file),
                version: b.version,
                provider: b.provider,
                arch: b.arch,
                sha256: b.sha256,
            }
        })
        .collect();
    let description = format!("{name} in channel {channel}, served by bess");
    VagrantCatalog::new(name, description, offers)
}

/// Catalogs hold per-user tokens: never cached. HEAD answers the same
/// headers as GET (vagrant tells a catalog from a box by HEAD's
/// Content-Type) without the body.
pub(super) fn head_aware(mut response: Response<Body>, method: &Method) -> Response<Body> {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if method == Method::HEAD {
        *response.body_mut() = empty();
    }
    response
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A box file, for the holder of its token or of credentials that may
/// read the channel. A token is checked against the user's current rights.
async fn box_file(
    state: &Arc<State>,
    request: Request<Incoming>,
    channel: &str,
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    let (file, who) = match granted_box_file(state, &request, channel, rest, ip).await {
        Ok(granted) => granted,
        Err(refused) => return refused,
    };
    let relative = PathBuf::from("boxes").join(&file);
    let root = state.trees.get(&state.config.layout.channel_dir(channel));
    let response = match root.and_then(|root| beneath::open(&root, &relative)) {
        Some(opened) => {
            let wanted = super::files::FileRequest {
                path: &relative,
                method: request.method(),
                headers: request.headers(),
            };
            super::files::serve_file(opened, &wanted, &state.files)
        }
        None => respond(StatusCode::NOT_FOUND, "not found\n"),
    };
    (response, who)
}

/// The box file `rest` names (`<name>/<version>/<provider>-<arch>.box`)
/// and who is reading it, if they may; the refusal otherwise.
pub(super) async fn granted_box_file(
    state: &Arc<State>,
    request: &Request<Incoming>,
    channel: &str,
    rest: &[String],
    ip: IpAddr,
) -> Result<(String, Option<String>), Reply> {
    let Some(identity) = BoxIdentity::from_file_segments(rest) else {
        return Err((respond(StatusCode::NOT_FOUND, "not found\n"), None));
    };
    let file = identity.file_path();
    let (user, who) = match box_reader(state, request, channel, &file, ip).await {
        Ok(granted) => granted,
        Err(response) => return Err((response, None)),
    };
    if !may_read(&user, channel) {
        let text = "no read access to this channel\n";
        return Err((respond(StatusCode::FORBIDDEN, text), who));
    }
    Ok((file, who))
}

/// Who asks for a box file, by token (when no credentials are sent) or by
/// credentials, and how they are named in the log line.
async fn box_reader(
    state: &Arc<State>,
    request: &Request<Incoming>,
    channel: &str,
    file: &str,
    ip: IpAddr,
) -> Result<(UserRow, Option<String>), Response<Body>> {
    let token = token_parameter(request.uri().query().unwrap_or(""));
    let has_credentials = request.headers().contains_key(header::AUTHORIZATION);
    match token {
        Some(token) if !has_credentials => match token_user(state, &token, channel, file).await {
            Ok(user) => {
                let who = format!("{}/token", user.name);
                Ok((user, Some(who)))
            }
            Err(text) => Err(respond(StatusCode::FORBIDDEN, &text)),
        },
        _ => {
            let user = authenticate(state, request.headers(), ip).await?;
            let who = user.name.clone();
            Ok((user, Some(who)))
        }
    }
}

/// The `token` query parameter (tokens are URL-safe: no decoding needed).
fn token_parameter(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_string)
}

/// The user a token was issued to, as they are now; the text of a refusal otherwise.
async fn token_user(
    state: &Arc<State>,
    token: &str,
    channel: &str,
    file: &str,
) -> Result<UserRow, String> {
    let user = state
        .box_secret
        .verify(token, channel, file, unix_now())
        .map_err(|e: TokenError| format!("{e}\n"))?;
    let shared = state.clone();
    let current = tokio::task::spawn_blocking(move || shared.gate.current_user(&user))
        .await
        .ok()
        .flatten();
    current.ok_or_else(|| "the token's user no longer exists\n".to_string())
}

/// `POST /api/v1/boxes/<name>/<version>/<provider>?arch=…`: the body is one
/// box file, streamed into the pool (never held in memory) and added to
/// the first channel by the same code as `bess box add`.
pub async fn upload(
    state: Arc<State>,
    request: Request<Incoming>,
    user: UserRow,
    path: &[&str],
    arch: Option<String>,
) -> Response<Body> {
    let first_channel = state.config.first_channel().to_string();
    if !may_upload(&user, &first_channel) {
        let text = format!("no upload access to `{first_channel}`");
        return json_error(StatusCode::FORBIDDEN, &text);
    }
    let box_request = match upload_request(path, arch) {
        Ok(box_request) => box_request,
        Err(text) => return json_error(StatusCode::BAD_REQUEST, &text),
    };
    let limit = state.config.settings.serve.max_box_upload_mib << 20;
    if declared_length(request.headers()).is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let adding = start_adding(&state, &user.name, box_request, rx);
    let timeout = Duration::from_secs(state.config.settings.serve.body_timeout_secs);
    let cut = pump_body(request.into_body(), tx, (limit, too_large), timeout).await;
    let added = adding.await;
    match (cut, added) {
        (Some(response), _) => response,
        (None, Ok(Ok(change))) => json(StatusCode::OK, &change),
        (None, Ok(Err(error))) => super::api::error_response(&state, &error),
        (None, Err(_)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the upload panicked"),
    }
}

/// Adds the box on a blocking thread, reading the body as it arrives.
fn start_adding(
    state: &Arc<State>,
    user: &str,
    request: BoxAddRequest,
    rx: tokio::sync::mpsc::Receiver<super::upload::Piece>,
) -> tokio::task::JoinHandle<Result<ops::BoxChange, OpsError>> {
    let shared = state.clone();
    let label = format!(
        "upload of {} {} ({})",
        request.name, request.version, request.provider
    );
    let actor = ops::Actor::Http(user.to_string());
    tokio::task::spawn_blocking(move || {
        shared.repos.with(|repo| {
            repo.actor = actor;
            ops::add_box(repo, &request, &mut BodyReader::new(rx), &label)
        })
    })
}

/// `<name>/<version>/<provider>` of the URL, or why it is not one.
fn upload_request(path: &[&str], arch: Option<String>) -> Result<BoxAddRequest, String> {
    let shape = "upload to /api/v1/boxes/<name or org/name>/<version>/<provider>?arch=<arch>";
    let (provider, rest) = path.split_last().ok_or(shape)?;
    let (version, name) = rest.split_last().ok_or(shape)?;
    if name.is_empty() || name.len() > 2 {
        return Err(shape.to_string());
    }
    let request = BoxAddRequest {
        name: name.join("/"),
        version: version.to_string(),
        provider: provider.to_string(),
        arch: arch.unwrap_or_else(|| DEFAULT_ARCH.to_string()),
    };
    BoxIdentity::new(
        &request.name,
        &request.version,
        &request.provider,
        &request.arch,
    )
    .map_err(|e| e.to_string())?;
    Ok(request)
}

fn too_large(limit: u64) -> Response<Body> {
    let text = format!(
        "box uploads are limited to {} MiB ([serve] max-box-upload-mib)",
        limit >> 20
    );
    json_error(StatusCode::PAYLOAD_TOO_LARGE, &text)
}

/// `GET /api/v1/boxes?channel=…`: the box placements the user may read.
pub fn list(
    repo: &Repo,
    user: &UserRow,
    channel: Option<&str>,
) -> Result<Response<Body>, OpsError> {
    if channel.is_some_and(|c| !may_read(user, c)) {
        return Ok(json_error(
            StatusCode::FORBIDDEN,
            "no read access to this channel",
        ));
    }
    let mut placed = ops::list_boxes(repo, channel, None)?;
    placed.retain(|p| may_read(user, &p.channel));
    Ok(json(StatusCode::OK, &placed))
}
