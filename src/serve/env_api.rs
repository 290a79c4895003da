//! The environments' API: `GET /api/v1/platforms`, `GET|POST
//! /api/v1/platforms/<p>/environments`, `GET|DELETE
//! /api/v1/environments/<p>/<e>`. Listings answer the same JSON as the
//! CLI's `--json`, filtered to what the user may see; creating and
//! destroying take the `--env PLATFORM` right (or admin), so a ticket
//! tracker's webhook can do both and nothing else.

use super::State;
use super::api::blocking;
use super::auth::{may_manage_environments, may_read};
use super::http::{Body, json, json_error};
use crate::catalog::UserRow;
use crate::ops::{self, Actor, EnvInitRequest, OpsError, Repo};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// Platforms the user may see.
pub fn platforms(repo: &mut Repo, user: &UserRow) -> Result<Response<Body>, OpsError> {
    let mut platforms = ops::list_platforms(repo)?;
    platforms.retain(|p| {
        may_manage_environments(user, &p.name)
            || repo
                .catalog
                .reader()
                .environments(Some(&p.name))
                .is_ok_and(|envs| envs.iter().any(|e| may_read(user, &e.channel)))
    });
    Ok(json(StatusCode::OK, &platforms))
}

/// A platform's environments the user may see.
pub fn environments(
    repo: &mut Repo,
    user: &UserRow,
    platform: &str,
) -> Result<Response<Body>, OpsError> {
    let mut envs = ops::list_environments(repo, Some(platform))?;
    envs.retain(|e| visible(user, &e.platform, &e.channel));
    Ok(json(StatusCode::OK, &envs))
}

/// One environment.
pub fn environment(
    repo: &mut Repo,
    user: &UserRow,
    platform: &str,
    env: &str,
) -> Result<Response<Body>, OpsError> {
    let view = ops::show_environment(repo, platform, env)?;
    if !visible(user, &view.platform, &view.channel) {
        return Ok(json_error(
            StatusCode::FORBIDDEN,
            &format!(
                "no read access to channel {} of this environment",
                view.channel
            ),
        ));
    }
    Ok(json(StatusCode::OK, &view))
}

fn visible(user: &UserRow, platform: &str, channel: &str) -> bool {
    may_manage_environments(user, platform) || may_read(user, channel)
}

fn no_right(platform: &str) -> Response<Body> {
    json_error(
        StatusCode::FORBIDDEN,
        &format!(
            "creating and destroying environments of platform {platform} needs the `--env {platform}` right"
        ),
    )
}

/// The body of `POST /api/v1/platforms/<p>/environments`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    sites: Option<Vec<String>>,
    channel: Option<String>,
}

/// `POST /api/v1/platforms/<p>/environments` with `{"name":"1161","sites":["v5"],"channel":"preprod"}`.
pub async fn create(
    state: Arc<State>,
    request: Request<Incoming>,
    user: UserRow,
    platform: String,
) -> Response<Body> {
    if !may_manage_environments(&user, &platform) {
        return no_right(&platform);
    }
    let body = match http_body_util::Limited::new(request.into_body(), 64 << 10)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let parsed: CreateBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            let text = format!(
                "request body: {e}; send {{\"name\":\"1161\",\"sites\":[\"v5\"],\"channel\":\"preprod\"}}"
            );
            return json_error(StatusCode::BAD_REQUEST, &text);
        }
    };
    blocking(state, move |repo| {
        repo.actor = Actor::Http(user.name);
        let request = EnvInitRequest {
            platform,
            name: parsed.name,
            sites: parsed.sites,
            channel: parsed.channel,
        };
        let view = ops::init_environment(repo, &request)?;
        Ok(json(StatusCode::CREATED, &view))
    })
    .await
}

/// `DELETE /api/v1/environments/<p>/<e>`.
pub fn destroy(
    repo: &mut Repo,
    user: UserRow,
    platform: &str,
    env: &str,
) -> Result<Response<Body>, OpsError> {
    if !may_manage_environments(&user, platform) {
        return Ok(no_right(platform));
    }
    repo.actor = Actor::Http(user.name);
    let name = crate::env::names::environment_name(env)?;
    ops::destroy_environment(repo, platform, env)?;
    let answer =
        serde_json::json!({ "platform": platform, "environment": name, "destroyed": true });
    Ok(json(StatusCode::OK, &answer))
}
