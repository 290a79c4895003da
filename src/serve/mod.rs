//! `bess serve`: the published trees for apt clients, uploads from CI and
//! a JSON API, over HTTP/1.1 with basic auth and per-channel rights.
//!
//! The server only reads the published trees; uploads and promotions go
//! through `ops` exactly as the CLI does, on blocking threads.

mod api;
mod auth;
mod beneath;
mod boxes;
mod brake;
mod cache;
mod client;
mod connections;
mod env_api;
mod files;
mod homepage;
mod http;
mod keys;
mod metrics;
mod path;
mod paths;
mod query;
mod repos;
mod sendfile;
mod tls;
mod upload;
mod verifier;

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
    pub config: RepoConfig,
    gate: auth::Gate,
    /// The public keys, as `bess key export` prints them.
    keys: keys::PublicKeys,
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
    /// Open repositories for the API's operations.
    repos: repos::Repos,
    /// The environments' homepage templates.
    pages: homepage::Pages,
    /// Whether each request is logged (`bess serve` without `--quiet`).
    log_requests: bool,
}

/// Runs the server until SIGTERM or SIGINT; prints `listening on http(s)://ADDR` first.
pub fn run(root: &Path, listen: Option<String>, log_requests: bool) -> anyhow::Result<()> {
    let config = RepoConfig::load(root)?;
    let listen = listen.unwrap_or_else(|| config.settings.serve.listen.clone());
    let keys = keys::PublicKeys::load(&config.layout)?;
    let files = cache::FileCache::new(config.settings.serve.file_cache_mib << 20);
    let box_secret = crate::boxes::TokenSecret::load_or_create(&config.layout.box_token_secret())?;
    let paths = paths::ResolvedPaths::open(&config.layout.public_dir());
    let metrics = metrics::Metrics::new(&config.settings.channels);
    let gate = auth::Gate::open(&config.layout, metrics.password_checks())?;
    let state = Arc::new(State {
        metrics,
        repos: repos::Repos::new(root),
        pages: homepage::Pages::new(),
        config,
        gate,
        keys,
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
    let per_address = connections::PerAddress::new(
        serve_settings.max_connections_per_address,
        serve_settings.trusted_proxies.clone(),
    );
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
        // Over its own cap, an address's new connection is closed at once,
        // before it can hold one of the shared permits.
        let Some(claim) = per_address.claim(remote.ip()) else {
            state.metrics.connection_refused();
            continue;
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
            drop((permit, claim));
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
async fn handle(state: Arc<State>, request: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let raw_path = request.uri().path().to_string();
    let trusted = &state.config.settings.serve.trusted_proxies;
    let ip = client::address(peer, request.headers(), trusted);
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
    let raw = request.uri().path();
    if raw == "/env" || raw.starts_with("/env/") {
        return homepage::handle(state, request, ip).await;
    }
    let Ok(segments) = path::segments(raw) else {
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
        return http::method_not_allowed("GET, HEAD");
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
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refusal = match state.gate.authenticate(header, ip).await {
        Ok(user) => return Ok(user),
        Err(refusal) => refusal,
    };
    let (status, text, wait) = match refusal {
        auth::Refusal::Unauthorized => {
            if header.is_some() {
                state.metrics.auth_failed(false);
            }
            return Err(unauthorized());
        }
        auth::Refusal::Throttled(wait) => {
            state.metrics.auth_failed(true);
            let text = "too many failed logins from this address or for this user; retry later\n";
            (StatusCode::TOO_MANY_REQUESTS, text, wait)
        }
        auth::Refusal::Busy => {
            state.metrics.auth_busy();
            let text = "too many logins are being checked; retry shortly\n";
            (
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                Duration::from_secs(1),
            )
        }
    };
    let mut response = respond(status, text);
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.into());
    Err(response)
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
    let (binary, _) = state.keys.get();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/pgp-keys")
        .header(header::CONTENT_LENGTH, binary.len())
        .body(http::full(binary.to_vec()))
        .expect("valid response")
}

/// A deb822 source for this channel, with the signing key inline.
fn sources_response(state: &State, channel: &str, request: &Request<Incoming>) -> Response<Body> {
    let Some(base) = public_base(state, request.headers()) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "the Host header is missing or not a host[:port]; set [serve] public-url\n",
        );
    };
    let (_, armored) = state.keys.get();
    let key: String = armored
        .lines()
        .map(|l| {
            if l.is_empty() {
                " .\n".to_string()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    let text = format!(
        "Types: deb\nURIs: {base}/{channel}\nSuites: {}\nComponents: {}\nSigned-By:\n{key}",
        state.config.dists.names().join(" "),
        state.config.settings.components.join(" "),
    );
    respond(StatusCode::OK, &text)
}

/// `scheme://host[:port]` of URLs handed to clients: `[serve] public-url`,
/// else the request's Host, refused unless it is a plain host[:port] (it
/// is written into files clients save, such as `bess.sources`).
pub(crate) fn public_base(state: &State, headers: &hyper::HeaderMap) -> Option<String> {
    let serve = &state.config.settings.serve;
    if let Some(url) = &serve.public_url {
        return Some(url.trim_end_matches('/').to_string());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if serve.tls_certificate.is_some() {
        "https"
    } else {
        "http"
    };
    is_host_and_port(host).then(|| format!("{scheme}://{host}"))
}

/// `name[:port]`, `1.2.3.4[:port]` or `[v6][:port]`, nothing else.
fn is_host_and_port(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (text, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::is_host_and_port;

    #[test]
    fn host_headers_are_plain_hosts_or_refused() {
        for good in [
            "repo",
            "repo.example.com:8080",
            "10.0.0.1",
            "[::1]:80",
            "[2001:db8::1]",
        ] {
            assert!(is_host_and_port(good), "{good}");
        }
        for bad in [
            "a b",
            "",
            "repo:",
            "repo:99999",
            "x/y",
            "-a.b",
            "a..b",
            "[::1",
            "u@h",
            "h:80:80",
        ] {
            assert!(!is_host_and_port(bad), "{bad}");
        }
    }
}
