//! `/env/…`: the homepages of platforms and environments, as server-rendered
//! HTML (no JavaScript; readable on a phone) for users who may read an
//! environment's channel, users with the `--env` right on its platform,
//! and admins.
//!
//! `/env/` lists platforms, `/env/<platform>/` its environments,
//! `/env/<platform>/<env>/` one environment: sites and tools with links,
//! machines, packages with their installed and available versions, and
//! the last provisioning.

use super::auth::{may_manage_environments, may_read};
use super::http::{self, Body, respond};
use super::{State, authenticate, path};
use crate::catalog::UserRow;
use crate::ops::{self, EnvironmentView, OpsError, PlatformView, Repo};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;

type Reply = (Response<Body>, Option<String>);

/// The page templates, parsed once.
pub struct Pages {
    engine: minijinja::Environment<'static>,
}

impl Pages {
    pub fn new() -> Pages {
        let mut engine = minijinja::Environment::new();
        engine.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in [
            ("base.html", include_str!("homepage/base.html")),
            ("index.html", include_str!("homepage/index.html")),
            ("platform.html", include_str!("homepage/platform.html")),
            (
                "environment.html",
                include_str!("homepage/environment.html"),
            ),
        ] {
            engine
                .add_template(name, text)
                .expect("the homepage templates are valid");
        }
        Pages { engine }
    }

    fn render(&self, name: &str, context: serde_json::Value) -> Result<String, OpsError> {
        let template = self
            .engine
            .get_template(name)
            .map_err(|e| OpsError::Usage(format!("homepage template {name}: {e}")))?;
        template.render(context).map_err(|e| OpsError::Io {
            action: "render the homepage",
            path: name.into(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

impl Default for Pages {
    fn default() -> Pages {
        Pages::new()
    }
}

/// Handles `GET /env…`.
pub async fn handle(state: &Arc<State>, request: Request<Incoming>, ip: IpAddr) -> Reply {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (http::method_not_allowed("GET, HEAD"), None);
    }
    let raw = request.uri().path().to_string();
    // Pages end in `/`, so the links inside them resolve as written.
    let Some(trimmed) = raw.strip_suffix('/') else {
        return (redirect(&format!("{raw}/")), None);
    };
    let Ok(segments) = path::segments(trimmed) else {
        return (respond(StatusCode::BAD_REQUEST, "bad path\n"), None);
    };
    if segments.len() > 3 {
        return (respond(StatusCode::NOT_FOUND, "not found\n"), None);
    }
    let user = match authenticate(state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let name = Some(user.name.clone());
    let shared = state.clone();
    let page = tokio::task::spawn_blocking(move || {
        let state = &shared;
        state
            .repos
            .with(|repo| page(state, repo, &user, &segments[1..]))
    })
    .await;
    let response = match page {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => refusal(&error),
        Err(_) => respond(StatusCode::INTERNAL_SERVER_ERROR, "the page panicked\n"),
    };
    (response, name)
}

fn page(
    state: &State,
    repo: &mut Repo,
    user: &UserRow,
    path: &[String],
) -> Result<Response<Body>, OpsError> {
    match path {
        [] => {
            let platforms: Vec<PlatformView> = ops::list_platforms(repo)?
                .into_iter()
                .filter(|p| platform_visible(repo, user, p))
                .collect();
            html(
                state
                    .pages
                    .render("index.html", json!({ "platforms": platforms }))?,
            )
        }
        [platform] => {
            let view = ops::show_platform(repo, platform)?;
            if !platform_visible(repo, user, &view) {
                return Err(no_platform(platform));
            }
            let environments: Vec<EnvironmentView> = ops::list_environments(repo, Some(platform))?
                .into_iter()
                .filter(|e| environment_visible(user, &e.platform, &e.channel))
                .collect();
            let context = json!({ "platform": view, "environments": environments });
            html(state.pages.render("platform.html", context)?)
        }
        [platform, env] => {
            let view = ops::show_environment(repo, platform, env)?;
            if !environment_visible(user, &view.platform, &view.channel) {
                return Ok(respond(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "no read access to channel {} of this environment\n",
                        view.channel
                    ),
                ));
            }
            html(
                state
                    .pages
                    .render("environment.html", json!({ "env": view }))?,
            )
        }
        _ => Err(OpsError::NotFound("no such page".into())),
    }
}

fn no_platform(name: &str) -> OpsError {
    OpsError::NotFound(format!("no platform named `{name}` that you may see"))
}

/// Admins, users with the `--env` right on it, and readers of the channel
/// of one of its environments see a platform.
fn platform_visible(repo: &Repo, user: &UserRow, platform: &PlatformView) -> bool {
    if may_manage_environments(user, &platform.name) {
        return true;
    }
    repo.catalog
        .reader()
        .environments(Some(&platform.name))
        .is_ok_and(|envs| envs.iter().any(|e| may_read(user, &e.channel)))
}

fn environment_visible(user: &UserRow, platform: &str, channel: &str) -> bool {
    may_manage_environments(user, platform) || may_read(user, channel)
}

fn html(text: String) -> Result<Response<Body>, OpsError> {
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .header(header::CACHE_CONTROL, "no-store")
        .body(http::full(text))
        .expect("valid response"))
}

fn redirect(to: &str) -> Response<Body> {
    let mut response = respond(StatusCode::MOVED_PERMANENTLY, "moved\n");
    if let Ok(value) = header::HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Refusals as plain text with their message; failures logged in full
/// on the server and only pointed at for the client.
fn refusal(error: &OpsError) -> Response<Body> {
    let status = match error {
        OpsError::Invalid(_) | OpsError::Usage(_) => StatusCode::BAD_REQUEST,
        OpsError::Conflict(_) => StatusCode::CONFLICT,
        OpsError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        eprintln!("bess serve: homepage failed: {error}");
        return respond(
            status,
            "the server could not show this page; its log has the details\n",
        );
    }
    respond(status, &format!("{error}\n"))
}
