//! `/api/v1/…`: uploads, listings and promotions, as JSON. Every call runs
//! the same `ops` functions as the CLI, on a blocking thread.

use super::auth::{may_read, may_upload};
use super::http::{Body, json, json_error};
use super::{State, authenticate};
use crate::catalog::UserRow;
use crate::ops::{self, Actor, IngestRequest, OpsError, PromoteRequest, Repo, Selector};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
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
    let user = match authenticate(&state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let name = Some(user.name.clone());
    let query = query_pairs(request.uri().query().unwrap_or(""));
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let response = match (request.method().clone(), rest.as_slice()) {
        (Method::POST, ["v1", "packages"]) => upload(state, request, user, query).await,
        (Method::GET, ["v1", "packages"]) => {
            blocking(state, move |repo| list(repo, &user, &query)).await
        }
        (Method::GET, ["v1", "versions", package]) => {
            let package = package.to_string();
            blocking(state, move |repo| versions(repo, &user, &package)).await
        }
        (Method::GET, ["v1", "diff"]) => {
            blocking(state, move |repo| diff(repo, &user, &query)).await
        }
        (Method::POST, ["v1", "promote"]) => promote(state, request, user).await,
        (Method::POST, ["v1", "boxes", path @ ..]) => {
            let arch = first(&query, "arch").map(str::to_string);
            super::boxes::upload(state, request, user, path, arch).await
        }
        (Method::GET, ["v1", "boxes"]) => {
            let channel = first(&query, "channel").map(str::to_string);
            blocking(state, move |repo| {
                super::boxes::list(repo, &user, channel.as_deref())
            })
            .await
        }
        _ => json_error(StatusCode::NOT_FOUND, "no such API endpoint"),
    };
    (response, name)
}

fn query_pairs(query: &str) -> HashMap<String, Vec<String>> {
    let mut pairs: HashMap<String, Vec<String>> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            super::path::segments(&format!("/{}", s.replace('+', " ")))
                .ok()
                .and_then(|v| v.into_iter().next())
        };
        if let (Some(key), Some(value)) = (decode(key), decode(value)) {
            pairs.entry(key).or_default().push(value);
        }
    }
    pairs
}

fn first<'a>(query: &'a HashMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    query.get(key).and_then(|v| v.first()).map(String::as_str)
}

/// Runs an operation on a freshly opened repository, off the async threads.
async fn blocking<F>(state: Arc<State>, work: F) -> Response<Body>
where
    F: FnOnce(&mut Repo) -> Result<Response<Body>, OpsError> + Send + 'static,
{
    let root = state.root.clone();
    let result =
        tokio::task::spawn_blocking(move || Repo::open(&root).and_then(|mut repo| work(&mut repo)))
            .await;
    match result {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error_response(&error),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the operation panicked"),
    }
}

/// Refusals map to 4xx with the message the CLI prints; failures to 500.
pub(super) fn error_response(error: &OpsError) -> Response<Body> {
    let status = match error {
        OpsError::Invalid(_) | OpsError::Usage(_) => StatusCode::BAD_REQUEST,
        OpsError::Conflict(_) => StatusCode::CONFLICT,
        OpsError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, &error.to_string())
}

fn forbidden(what: &str) -> Result<Response<Body>, OpsError> {
    Ok(json_error(StatusCode::FORBIDDEN, what))
}

fn list(
    repo: &mut Repo,
    user: &UserRow,
    query: &HashMap<String, Vec<String>>,
) -> Result<Response<Body>, OpsError> {
    let channel = first(query, "channel");
    let dists = query.get("dist").cloned().unwrap_or_default();
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

fn diff(
    repo: &mut Repo,
    user: &UserRow,
    query: &HashMap<String, Vec<String>>,
) -> Result<Response<Body>, OpsError> {
    let (Some(from), Some(to)) = (first(query, "from"), first(query, "to")) else {
        return Err(OpsError::Usage(
            "diff needs ?from=CHANNEL&to=CHANNEL".into(),
        ));
    };
    if !may_read(user, from) || !may_read(user, to) {
        return forbidden("no read access to both channels");
    }
    let dists = query.get("dist").cloned().unwrap_or_default();
    Ok(json(StatusCode::OK, &ops::diff(repo, from, to, &dists)?))
}

/// `POST /api/v1/packages?dist=…&component=…&filename=…`: the body is one `.deb`.
async fn upload(
    state: Arc<State>,
    request: Request<Incoming>,
    user: UserRow,
    query: HashMap<String, Vec<String>>,
) -> Response<Body> {
    let first_channel = state.config.first_channel().to_string();
    if !may_upload(&user, &first_channel) {
        return json_error(
            StatusCode::FORBIDDEN,
            &format!("no upload access to `{first_channel}`"),
        );
    }
    let limit = state.config.settings.serve.max_upload_mib << 20;
    let body = match http_body_util::Limited::new(request.into_body(), limit as usize)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("uploads are limited to {} MiB", limit >> 20),
            );
        }
    };
    let name = upload_name(first(&query, "filename"));
    let dists = query.get("dist").cloned().unwrap_or_default();
    let component = first(&query, "component").map(str::to_string);
    let shared = state.clone();
    blocking(state, move |repo| {
        repo.actor = Actor::Http(user.name);
        let staged = stage_upload(repo, &name, &body)?;
        let request = IngestRequest {
            paths: vec![staged.path().join(&name)],
            dists,
            component,
            publish: false,
        };
        let outcome = ops::ingest(repo, &request);
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

/// Writes the body under the repository's tmp/ (same filesystem as the pool).
fn stage_upload(repo: &Repo, name: &str, body: &[u8]) -> Result<tempfile::TempDir, OpsError> {
    let tmp = repo.config.layout.tmp_dir();
    let dir = tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(&tmp)
        .map_err(OpsError::io("create a directory in", &tmp))?;
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).map_err(OpsError::io("create", &path))?;
    file.write_all(body).map_err(OpsError::io("write", &path))?;
    Ok(dir)
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
    ops::publish(repo, &request)?;
    state.metrics.published(started.elapsed().as_secs_f64());
    Ok(())
}
