//! `bess serve`: the published trees for apt clients, uploads from CI and
//! a JSON API, over HTTP/1.1 with basic auth and per-channel rights.
//!
//! The server only reads the published trees; uploads and promotions go
//! through `ops` exactly as the CLI does, on blocking threads.

mod api;
mod auth;
mod beneath;
mod boxes;
mod cache;
mod files;
mod http;
mod metrics;
mod path;
mod paths;
mod sendfile;
mod tls;

use crate::catalog::UserRow;
use crate::config::RepoConfig;
use anyhow::Context;
use http::{Body, respond};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every request handler shares.
pub struct State {
    pub root: PathBuf,
    pub config: RepoConfig,
    gate: auth::Gate,
    /// The public key, as `bess key export` prints it.
    key: Vec<u8>,
    /// Small published files, in memory.
    files: cache::FileCache,
    /// The channels' published trees, open.
    trees: cache::TreeRoots,
    /// Paths whose files are in `files`, resolved moments ago.
    paths: paths::ResolvedPaths,
    /// Signs and checks the download tokens of box URLs.
    box_secret: crate::boxes::TokenSecret,
    /// Counters for `/metrics`.
    metrics: metrics::Metrics,
    /// Whether each request is logged (`bess serve` without `--quiet`).
    log_requests: bool,
}

/// Runs the server until SIGTERM or SIGINT; prints `listening on http(s)://ADDR` first.
pub fn run(root: &Path, listen: Option<String>, log_requests: bool) -> anyhow::Result<()> {
    let config = RepoConfig::load(root)?;
    let listen = listen.unwrap_or_else(|| config.settings.serve.listen.clone());
    let key = crate::sign::KeyStore::open(config.layout.root()).export_public(false)?;
    let files = cache::FileCache::new(config.settings.serve.file_cache_mib << 20);
    let box_secret = crate::boxes::TokenSecret::load_or_create(&config.layout.box_token_secret())?;
    let paths = paths::ResolvedPaths::open(&config.layout.public_dir());
    let state = Arc::new(State {
        root: root.to_path_buf(),
        metrics: metrics::Metrics::new(&config.settings.channels),
        config,
        gate: auth::Gate::default(),
        key,
        files,
        trees: cache::TreeRoots::default(),
        paths,
        box_secret,
        log_requests,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(state, &listen))
}

async fn serve(state: Arc<State>, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; set [serve] listen in bess.toml or pass --listen")
        })?;
    let serve_settings = &state.config.settings.serve;
    let tls = match (&serve_settings.tls_certificate, &serve_settings.tls_key) {
        (Some(certificate), Some(key)) => Some(tls::acceptor(certificate, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(serve_settings.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit?,
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was taken: the next accept may well succeed, and the
                    // connections already open must go on being served.
                    eprintln!("bess serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (state, tls, watcher) = (state.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let deadline = Duration::from_secs(state.config.settings.serve.header_timeout_secs);
            match tls {
                None => {
                    let stream = sendfile::SendfileStream::new(stream);
                    serve_io(state, TokioIo::new(stream), remote.ip(), watcher).await
                }
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(deadline, acceptor.accept(stream)).await
                    {
                        serve_io(state, TokioIo::new(stream), remote.ip(), watcher).await;
                    }
                }
            }
            drop(permit);
        });
    }
    eprintln!("bess serve: shutting down; finishing requests in flight");
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// One HTTP/1.1 connection: keep-alive and pipelining, with a deadline on
/// headers so stalled clients cannot hold connections forever.
async fn serve_io<I>(
    state: Arc<State>,
    io: TokioIo<I>,
    ip: IpAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = Duration::from_secs(state.config.settings.serve.header_timeout_secs);
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(state, request, ip).await) }
    });
    // No `pipeline_flush`: hyper then copies every body into one flat
    // buffer before writing it, which cost a quarter of the throughput on
    // an 840 KB Packages.xz; without it bodies go out by writev straight
    // from the file cache, and pipelined requests are still answered.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    let _ = watcher.watch(connection).await;
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Routes one request and logs it.
async fn handle(state: Arc<State>, request: Request<Incoming>, ip: IpAddr) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let raw_path = request.uri().path().to_string();
    let (response, user) = route(&state, request, ip).await;
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let sent = if method == hyper::Method::HEAD {
        0
    } else {
        bytes.parse().unwrap_or(0)
    };
    let status = response.status().as_u16();
    state.metrics.request(&raw_path, status, sent);
    if !state.log_requests {
        return response;
    }
    // One write per line: stderr is unbuffered, and eprintln! would issue
    // a system call for every piece of the format.
    let line = format!(
        "{ip} {} \"{method} {}\" {} {bytes} {:.1}ms\n",
        user.as_deref().unwrap_or("-"),
        raw_path.escape_debug(),
        status,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    response
}

async fn route(
    state: &Arc<State>,
    request: Request<Incoming>,
    ip: IpAddr,
) -> (Response<Body>, Option<String>) {
    let Ok(segments) = path::segments(request.uri().path()) else {
        return (respond(StatusCode::BAD_REQUEST, "bad path\n"), None);
    };
    if segments == ["key.gpg"] {
        return (key_response(state), None);
    }
    if segments == ["metrics"] {
        let allow = &state.config.settings.serve.metrics_allow;
        return (metrics::response(&state.metrics, allow, ip), None);
    }
    if segments.first().map(String::as_str) == Some("api") {
        return api::handle(state.clone(), request, &segments[1..], ip).await;
    }
    let Some(channel) = segments
        .first()
        .filter(|c| state.config.settings.channels.contains(c))
    else {
        return (respond(StatusCode::NOT_FOUND, "not found\n"), None);
    };
    if !state.config.settings.serve.allows(channel, ip) {
        return (
            respond(StatusCode::FORBIDDEN, "forbidden from this address\n"),
            None,
        );
    }
    if segments.get(1).map(String::as_str) == Some("boxes") {
        let channel = channel.clone();
        return boxes::handle(state, request, &channel, &segments[2..], ip).await;
    }
    let user = match authenticate(state, request.headers(), ip).await {
        Ok(user) => user,
        Err(response) => return (response, None),
    };
    let name = Some(user.name.clone());
    if !auth::may_read(&user, channel) {
        return (
            respond(StatusCode::FORBIDDEN, "no read access to this channel\n"),
            name,
        );
    }
    (
        channel_response(state, channel, &segments[1..], &request),
        name,
    )
}

fn channel_response(
    state: &State,
    channel: &str,
    rest: &[String],
    request: &Request<Incoming>,
) -> Response<Body> {
    if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
    }
    if rest == ["bess.sources"] {
        return sources_response(state, channel, request);
    }
    let published = matches!(
        rest.first().map(String::as_str),
        Some("dists") | Some("pool")
    );
    // Names starting with a dot are bess's own (generations, temp files).
    if !published || rest.iter().any(|s| s.starts_with('.')) {
        return respond(StatusCode::NOT_FOUND, "not found\n");
    }
    let relative: PathBuf = rest.iter().collect();
    let wanted = files::FileRequest {
        path: &relative,
        method: request.method(),
        headers: request.headers(),
    };
    let (resolved, ticket) = state.paths.get(channel, &relative);
    if let Some(loaded) = resolved {
        return files::serve_loaded(&loaded, &wanted);
    }
    let root = state.trees.get(&state.config.layout.channel_dir(channel));
    let Some(file) = root.and_then(|root| beneath::open(&root, &relative)) else {
        return respond(StatusCode::NOT_FOUND, "not found\n");
    };
    let Ok(meta) = file.metadata() else {
        return respond(StatusCode::NOT_FOUND, "not found\n");
    };
    let in_memory = meta
        .is_file()
        .then(|| files::Loaded::from_cache(&state.files, &meta))
        .flatten();
    match in_memory {
        Some(loaded) => {
            let response = files::serve_loaded(&loaded, &wanted);
            state.paths.remember(ticket, channel, &relative, loaded);
            response
        }
        // The metadata read above serves for the response too.
        None => files::serve_open(file, meta, &wanted, &state.files),
    }
}

/// Checks basic auth, with the brake on repeated failures.
pub(crate) async fn authenticate(
    state: &State,
    headers: &hyper::HeaderMap,
    ip: IpAddr,
) -> Result<UserRow, Response<Body>> {
    if let Some(wait) = state.gate.retry_after(ip) {
        state.metrics.auth_failed(true);
        let mut response = respond(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins; retry later\n",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.into());
        return Err(response);
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(header) = header else {
        return Err(unauthorized());
    };
    if let Some(user) = state.gate.cached(&header) {
        return Ok(user);
    }
    let turn = state.gate.verification_turn(&header);
    let _turn = turn.lock().await;
    if let Some(user) = state.gate.cached(&header) {
        return Ok(user);
    }
    let root = state.root.clone();
    let check = header.clone();
    let verified = tokio::task::spawn_blocking(move || verify(&root, &check))
        .await
        .ok()
        .flatten();
    state.gate.verified(&header);
    match verified {
        Some(user) => {
            state.gate.remember(&header, &user);
            Ok(user)
        }
        None => {
            state.gate.failed(ip);
            state.metrics.auth_failed(false);
            Err(unauthorized())
        }
    }
}

/// Looks the user up and runs argon2 (a blocking, deliberately slow check).
fn verify(root: &Path, header: &str) -> Option<UserRow> {
    let (name, password) = auth::basic_credentials(header)?;
    let config = RepoConfig::load(root).ok()?;
    let catalog = crate::catalog::Catalog::open(&config.layout.catalog_file()).ok()?;
    let user = catalog.reader().user(&name).ok()??;
    crate::ops::verify_password(&password, &user.password_hash).then_some(user)
}

fn unauthorized() -> Response<Body> {
    let mut response = respond(StatusCode::UNAUTHORIZED, "credentials required\n");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"bess\""),
    );
    response
}

fn key_response(state: &State) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/pgp-keys")
        .header(header::CONTENT_LENGTH, state.key.len())
        .body(http::full(state.key.clone()))
        .expect("valid response")
}

/// A deb822 source for this channel, with the signing key inline.
fn sources_response(state: &State, channel: &str, request: &Request<Incoming>) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let armored = crate::sign::KeyStore::open(state.config.layout.root())
        .export_public(true)
        .unwrap_or_default();
    let key: String = String::from_utf8_lossy(&armored)
        .lines()
        .map(|l| {
            if l.is_empty() {
                " .\n".to_string()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    let scheme = if state.config.settings.serve.tls_certificate.is_some() {
        "https"
    } else {
        "http"
    };
    let text = format!(
        "Types: deb\nURIs: {scheme}://{host}/{channel}\nSuites: {}\nComponents: {}\nSigned-By:\n{key}",
        state.config.dists.names().join(" "),
        state.config.settings.components.join(" "),
    );
    respond(StatusCode::OK, &text)
}
