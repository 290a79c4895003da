//! `/api/v1/…`: uploads, listings and promotions, as JSON. Every call runs
//! the same `ops` functions as the CLI, on a blocking thread.

use super::auth::{may_read, may_upload};
use super::http::{self, Body, json, json_error};
use super::query::Query;
use super::upload::{BodyReader, declared_length, pump_body};
use super::{State, authenticate};
use crate::catalog::UserRow;
use crate::ops::{self, Actor, IngestRequest, OpsError, PromoteRequest, Repo, Selector};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

type Reply = (Response<Body>, Option<String>);

/// Handles `/api/<rest>` for an authenticated user.
pub async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    rest: &[String],
    ip: IpAddr,
) -> Reply {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let Some(endpoint) = Endpoint::of(&rest) else {
        return (
            json_error(StatusCode::NOT_FOUND, "no such API endpoint"),
            None,
        );
    };
    // HEAD is GET without the body (hyper leaves the body out).
    let method = match request.method() {
        &Method::HEAD => Method::GET,
        other => other.clone(),
    };
    if !endpoint.methods().contains(&method) {
        return (http::method_not_allowed(endpoint.allow()), None);
    }
    let user = match authenticate(&state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let name = Some(user.name.clone());
    let query = match Query::parse(request.uri().query(), endpoint.parameters(&method)) {
        Ok(query) => query,
        Err(text) => return (json_error(StatusCode::BAD_REQUEST, &text), name),
    };
    let response = match (method, endpoint) {
        (Method::POST, Endpoint::Packages) => upload(state, request, user, query).await,
        (_, Endpoint::Packages) => blocking(state, move |repo| list(repo, &user, &query)).await,
        (_, Endpoint::Versions) => {
            let package = rest[2].to_string();
            blocking(state, move |repo| versions(repo, &user, &package)).await
        }
        (_, Endpoint::Diff) => blocking(state, move |repo| diff(repo, &user, &query)).await,
        (_, Endpoint::Promote) => promote(state, request, user).await,
        (_, Endpoint::BoxUpload) => {
            let arch = query.first("arch").map(str::to_string);
            super::boxes::upload(state, request, user, &rest[2..], arch).await
        }
        (_, Endpoint::Boxes) => {
            let channel = query.first("channel").map(str::to_string);
            blocking(state, move |repo| {
                super::boxes::list(repo, &user, channel.as_deref())
            })
            .await
        }
        (_, Endpoint::Platforms) => {
            blocking(state, move |repo| super::env_api::platforms(repo, &user)).await
        }
        (Method::POST, Endpoint::PlatformEnvironments) => {
            let platform = rest[2].to_string();
            super::env_api::create(state, request, user, platform).await
        }
        (_, Endpoint::PlatformEnvironments) => {
            let platform = rest[2].to_string();
            blocking(state, move |repo| {
                super::env_api::environments(repo, &user, &platform)
            })
            .await
        }
        (Method::DELETE, Endpoint::Environment) => {
            let (platform, env) = (rest[2].to_string(), rest[3].to_string());
            blocking(state, move |repo| {
                super::env_api::destroy(repo, user, &platform, &env)
            })
            .await
        }
        (_, Endpoint::Environment) => {
            let (platform, env) = (rest[2].to_string(), rest[3].to_string());
            blocking(state, move |repo| {
                super::env_api::environment(repo, &user, &platform, &env)
            })
            .await
        }
    };
    (response, name)
}

/// The API's resources, each with its methods and query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Packages,
    Versions,
    Diff,
    Promote,
    Boxes,
    BoxUpload,
    Platforms,
    PlatformEnvironments,
    Environment,
}

impl Endpoint {
    fn of(path: &[&str]) -> Option<Endpoint> {
        Some(match path {
            ["v1", "packages"] => Endpoint::Packages,
            ["v1", "versions", _] => Endpoint::Versions,
            ["v1", "diff"] => Endpoint::Diff,
            ["v1", "promote"] => Endpoint::Promote,
            ["v1", "boxes"] => Endpoint::Boxes,
            ["v1", "boxes", _, ..] => Endpoint::BoxUpload,
            ["v1", "platforms"] => Endpoint::Platforms,
            ["v1", "platforms", _, "environments"] => Endpoint::PlatformEnvironments,
            ["v1", "environments", _, _] => Endpoint::Environment,
            _ => return None,
        })
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Endpoint::Packages => &[Method::GET, Method::POST],
            Endpoint::Versions | Endpoint::Diff | Endpoint::Boxes | Endpoint::Platforms => {
                &[Method::GET]
            }
            Endpoint::Promote | Endpoint::BoxUpload => &[Method::POST],
            Endpoint::PlatformEnvironments => &[Method::GET, Method::POST],
            Endpoint::Environment => &[Method::GET, Method::DELETE],
        }
    }

    /// The `Allow` header of a 405.
    fn allow(self) -> &'static str {
        match self {
            Endpoint::Packages => "GET, HEAD, POST",
            Endpoint::Versions | Endpoint::Diff | Endpoint::Boxes | Endpoint::Platforms => {
                "GET, HEAD"
            }
            Endpoint::Promote | Endpoint::BoxUpload => "POST",
            Endpoint::PlatformEnvironments => "GET, HEAD, POST",
            Endpoint::Environment => "GET, HEAD, DELETE",
        }
    }

    fn parameters(self, method: &Method) -> &'static [&'static str] {
        match (self, method) {
            (Endpoint::Packages, &Method::POST) => &["dist", "component", "filename"],
            (Endpoint::Packages, _) => &["channel", "dist"],
            (Endpoint::Diff, _) => &["from", "to", "dist"],
            (Endpoint::Boxes, _) => &["channel"],
            (Endpoint::BoxUpload, _) => &["arch"],
            (Endpoint::Versions | Endpoint::Promote, _) => &[],
            (Endpoint::Platforms | Endpoint::PlatformEnvironments | Endpoint::Environment, _) => {
                &[]
            }
        }
    }
}

/// Runs an operation on an open repository, off the async threads.
pub(super) async fn blocking<F>(state: Arc<State>, work: F) -> Response<Body>
where
    F: FnOnce(&mut Repo) -> Result<Response<Body>, OpsError> + Send + 'static,
{
    let shared = state.clone();
    let result = tokio::task::spawn_blocking(move || shared.repos.with(work)).await;
    match result {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error_response(&state, &error),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the operation panicked"),
    }
}

/// Refusals map to 4xx with the message the CLI prints, less the server's
/// own paths; failures to 500 with a pointer to the server log, which
/// gets the whole message (paths, system errors) instead of the client.
pub(super) fn error_response(state: &State, error: &OpsError) -> Response<Body> {
    let status = match error {
        OpsError::Invalid(_) | OpsError::Usage(_) => StatusCode::BAD_REQUEST,
        OpsError::Conflict(_) => StatusCode::CONFLICT,
        OpsError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let text = error.to_string();
    if status.is_server_error() {
        eprintln!("bess serve: API request failed: {text}");
        let kind = match error {
            OpsError::Io { source, .. } => format!(" ({})", source.kind()),
            _ => String::new(),
        };
        let text = format!("the server could not do this{kind}; its log has the details");
        return json_error(status, &text);
    }
    json_error(status, &without_server_paths(state, &text))
}

/// `text` with the repository's directory left out of every path in it,
/// so `/srv/bess/bess.toml` reads `bess.toml`.
fn without_server_paths(state: &State, text: &str) -> String {
    let root = state.config.layout.root().display().to_string();
    let root = root.trim_end_matches('/');
    text.replace(&format!("{root}/"), "")
        .replace(root, "the repository")
}

fn forbidden(what: &str) -> Result<Response<Body>, OpsError> {
    Ok(json_error(StatusCode::FORBIDDEN, what))
}

fn list(repo: &mut Repo, user: &UserRow, query: &Query) -> Result<Response<Body>, OpsError> {
    let channel = query.first("channel");
    let dists = query.all("dist");
    let mut listings = ops::list(repo, channel, &dists)?;
    listings.retain(|l| may_read(user, &l.channel));
    if channel.is_some_and(|c| !may_read(user, c)) {
        return forbidden("no read access to this channel");
    }
    Ok(json(StatusCode::OK, &listings))
}

fn versions(repo: &mut Repo, user: &UserRow, package: &str) -> Result<Response<Body>, OpsError> {
    let mut versions = ops::versions(repo, package)?;
    for v in &mut versions {
        v.placements.retain(|p| may_read(user, &p.channel));
    }
    versions.retain(|v| user.admin || !v.placements.is_empty());
    if versions.is_empty() {
        return Err(OpsError::NotFound(format!(
            "no package named `{package}` in a channel you may read"
        )));
    }
    Ok(json(StatusCode::OK, &versions))
}

fn diff(repo: &mut Repo, user: &UserRow, query: &Query) -> Result<Response<Body>, OpsError> {
    let (Some(from), Some(to)) = (query.first("from"), query.first("to")) else {
        return Err(OpsError::Usage(
            "diff needs ?from=CHANNEL&to=CHANNEL".into(),
        ));
    };
    if !may_read(user, from) || !may_read(user, to) {
        return forbidden("no read access to both channels");
    }
    let dists = query.all("dist");
    Ok(json(StatusCode::OK, &ops::diff(repo, from, to, &dists)?))
}

/// `POST /api/v1/packages?dist=…&component=…&filename=…`: the body is one
/// `.deb`, streamed to a file (never held in memory) and refused at its
/// first bytes when they are not a package's.
async fn upload(
    state: Arc<State>,
    request: Request<Incoming>,
    user: UserRow,
    query: Query,
) -> Response<Body> {
    let first_channel = state.config.first_channel().to_string();
    if !may_upload(&user, &first_channel) {
        return json_error(
            StatusCode::FORBIDDEN,
            &format!("no upload access to `{first_channel}`"),
        );
    }
    let limit = state.config.settings.serve.max_upload_mib << 20;
    if declared_length(request.headers()).is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let name = upload_name(query.first("filename"));
    let tmp = state.config.layout.tmp_dir();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let staging = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || stage_upload(&tmp, &name, BodyReader::new(rx)))
    };
    let timeout = std::time::Duration::from_secs(state.config.settings.serve.body_timeout_secs);
    // The body is pumped on its own task, so that a refusal at the first
    // bytes is answered at once while the rest is read and dropped.
    let pump = tokio::spawn(pump_body(
        request.into_body(),
        tx,
        (limit, too_large),
        timeout,
    ));
    let staged = match staging.await {
        Ok(Ok(staged)) => staged,
        Ok(Err(error @ OpsError::Invalid(_))) => return error_response(&state, &error),
        // The writer failed because the body did (too large, stalled,
        // cut): the pump has the reply.
        Ok(Err(error)) => {
            return match pump.await {
                Ok(Some(response)) => response,
                _ => error_response(&state, &error),
            };
        }
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "the upload panicked"),
    };
    if let Ok(Some(response)) = pump.await {
        return response;
    }
    let ingest = IngestRequest {
        paths: vec![staged.path().join(&name)],
        dists: query.all("dist"),
        component: query.first("component").map(str::to_string),
        publish: false,

        ..IngestRequest::default()
    };
    let shared = state.clone();
    blocking(state, move |repo| {
        repo.actor = Actor::Http(user.name);
        let outcome = ops::ingest(repo, &ingest);
        let outcome = outcome.map_err(|e| rename_upload(e, staged.path(), &name))?;
        let targets = outcome
            .packages
            .iter()
            .filter(|p| p.placements_added > 0)
            .flat_map(|p| p.dists.iter().map(|d| (p.channel.clone(), d.clone())));
        publish_timed(&shared, repo, targets.collect())?;
        Ok(json(StatusCode::OK, &outcome.packages))
    })
    .await
}

fn too_large(limit: u64) -> Response<Body> {
    let text = format!(
        "uploads are limited to {} MiB ([serve] max-upload-mib)",
        limit >> 20
    );
    json_error(StatusCode::PAYLOAD_TOO_LARGE, &text)
}

/// A plain file name for the upload, so error messages can name it.
fn upload_name(given: Option<&str>) -> String {
    let plain = given.filter(|n| {
        !n.is_empty()
            && n.len() < 256
            && n.ends_with(".deb")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+~-%".contains(c))
    });
    plain.unwrap_or("upload.deb").to_string()
}

/// Writes the body under the repository's tmp/ (same filesystem as the
/// pool), refusing it as soon as its first bytes are not an `ar` archive:
/// a 400 MB upload of anything else costs eight bytes of reading.
fn stage_upload(
    tmp: &std::path::Path,
    name: &str,
    mut body: impl std::io::Read,
) -> Result<tempfile::TempDir, OpsError> {
    let dir = tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(tmp)
        .map_err(OpsError::io("create a directory in", tmp))?;
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).map_err(OpsError::io("create", &path))?;
    let mut magic = [0u8; 8];
    let read = read_up_to(&mut body, &mut magic).map_err(OpsError::io("receive", name))?;
    crate::deb::check_magic(&magic[..read])
        .map_err(|e| OpsError::Invalid(vec![format!("{name}: {e}")]))?;
    file.write_all(&magic[..read])
        .and_then(|()| std::io::copy(&mut body, &mut file))
        .map_err(OpsError::io("receive", name))?;
    Ok(dir)
}

/// Reads until `buf` is full or the body ends.
fn read_up_to(body: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match body.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Error messages name the uploaded file, not where the server staged it.
fn rename_upload(error: OpsError, staged: &std::path::Path, name: &str) -> OpsError {
    let from = staged.join(name).display().to_string();
    let fix = |m: String| m.replace(&from, name);
    match error {
        OpsError::Invalid(lines) => OpsError::Invalid(lines.into_iter().map(fix).collect()),
        OpsError::Conflict(m) => OpsError::Conflict(fix(m)),
        OpsError::NotFound(m) => OpsError::NotFound(fix(m)),
        OpsError::Usage(m) => OpsError::Usage(fix(m)),
        other => other,
    }
}

/// The body of `POST /api/v1/promote`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    packages: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    dists: Vec<String>,
}

async fn promote(state: Arc<State>, request: Request<Incoming>, user: UserRow) -> Response<Body> {
    if !user.admin {
        return json_error(StatusCode::FORBIDDEN, "promotion needs an admin user");
    }
    let body = match http_body_util::Limited::new(request.into_body(), 1 << 20)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let parsed: PromoteBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("request body: {e}")),
    };
    let shared = state.clone();
    blocking(state, move |repo| {
        repo.actor = Actor::Http(user.name);
        let selectors = parsed
            .packages
            .iter()
            .map(|p| Selector::parse(p))
            .collect::<Result<_, _>>()?;
        let request = PromoteRequest {
            selectors,
            from: parsed.from,
            to: parsed.to,
            dists: parsed.dists,
            publish: false,
        };
        let changes = ops::promote(repo, &request)?;
        let targets = changes
            .iter()
            .filter(|c| c.changed)
            .map(|c| (c.channel.clone(), c.dist.clone()));
        publish_timed(&shared, repo, targets.collect())?;
        Ok(json(StatusCode::OK, &changes))
    })
    .await
}

/// Publishes what an API call changed (as the CLI does before returning),
/// timed for `bess_publish_duration_seconds`.
fn publish_timed(
    state: &State,
    repo: &mut Repo,
    targets: std::collections::BTreeSet<(String, String)>,
) -> Result<(), OpsError> {
    if targets.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let request = ops::PublishRequest {
        targets: targets.into_iter().collect(),
        refresh: false,
    };
    let publication = ops::publish_everywhere(repo, &request)?;
    state.metrics.published(started.elapsed().as_secs_f64());
    // The call did what it was asked and the local publication is
    // complete: a store left behind is the server's to catch up (the
    // refresher tries every round), not a failure of the upload.
    for error in publication.targets.iter().filter_map(|t| t.error.as_ref()) {
        eprintln!("bess serve: {error}");
    }
    Ok(())
}
