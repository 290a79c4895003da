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
mod front;
mod homepage;
mod http;
mod incoming;
mod keys;
mod metrics;
mod path;
mod paths;
mod query;
mod refresher;
mod repos;
// Large published files are mapped (memmap2's map is unsafe) so that their
// slices can be sent by sendfile(2).
#[allow(unsafe_code)]
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

/// What every request handler shares. A reload (SIGHUP) builds a new
/// `State` from the new settings, sharing the parts that outlive settings
/// (credentials checked, caches, counters); connections keep the `State`
/// they started with, so requests in flight finish under the old settings.
pub struct State {
    pub config: RepoConfig,
    gate: Arc<auth::Gate>,
    /// The public keys, as `bess key export` prints them.
    keys: Arc<keys::PublicKeys>,
    /// Small published files, in memory.
    files: Arc<cache::FileCache>,
    /// The channels' published trees, open.
    trees: Arc<cache::TreeRoots>,
    /// Paths whose files are in `files`, resolved moments ago.
    paths: Arc<paths::ResolvedPaths>,
    /// Signs and checks the download tokens of box URLs.
    box_secret: Arc<crate::boxes::TokenSecret>,
    /// Counters for `/metrics`.
    metrics: Arc<metrics::Metrics>,
    /// Open repositories for the API's operations.
    repos: repos::Repos,
    /// Open connections per address, capped by these settings.
    per_address: connections::PerAddress,
    /// HTTPS, when `[serve]` names a certificate and key.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The environments' homepage templates.
    pages: Arc<homepage::Pages>,
    /// Whether each request is logged (`bess serve` without `--quiet`).
    log_requests: bool,
    /// On a frontend (`bess serve --from`), the store it serves.
    front: Option<Arc<front::Front>>,
}

impl State {
    /// The state of a server starting on the repository at `root`.
    fn start(root: &Path, log_requests: bool) -> anyhow::Result<State> {
        let config = RepoConfig::load(root)?;
        let layout = &config.layout;
        let metrics = Arc::new(metrics::Metrics::new(&config.settings.channels));
        let serve = &config.settings.serve;
        Ok(State {
            gate: Arc::new(auth::Gate::open(layout, metrics.password_checks())?),
            keys: Arc::new(keys::PublicKeys::load(layout)?),
            files: Arc::new(cache::FileCache::new(serve.file_cache_mib << 20)),
            trees: Arc::default(),
            paths: Arc::new(paths::ResolvedPaths::open(&layout.public_dir())),
            box_secret: Arc::new(crate::boxes::TokenSecret::load_or_create(
                &layout.box_token_secret(),
            )?),
            repos: repos::Repos::new(root),
            pages: Arc::new(homepage::Pages::new()),
            per_address: connections::PerAddress::new(
                serve.max_connections_per_address,
                serve.trusted_proxies.clone(),
            ),
            tls: tls_acceptor(&config)?,
            metrics,
            config,
            log_requests,
            front: None,
        })
    }

    /// The state of a frontend serving `front`, with `settings` from its
    /// settings file and the channels and dists the store publishes.
    fn start_front(
        settings: &crate::config::FrontSettings,
        front: Arc<front::Front>,
        log_requests: bool,
    ) -> anyhow::Result<State> {
        let config = front_config(settings, &front);
        let serve = &config.settings.serve;
        let metrics = Arc::new(metrics::Metrics::new(&config.settings.channels));
        let box_secret = match &serve.box_token_key {
            Some(path) => crate::boxes::TokenSecret::load(path)?,
            None => {
                eprintln!(
                    "bess serve: no [serve] box-token-key: box URLs this frontend hands out \
                     work on it alone; copy the primary's keys/box-token.secret to every \
                     frontend and set it"
                );
                crate::boxes::TokenSecret::ephemeral()
            }
        };
        Ok(State {
            gate: Arc::new(auth::Gate::published(
                front.users(),
                metrics.password_checks(),
            )?),
            keys: Arc::new(keys::PublicKeys::none()),
            files: Arc::new(cache::FileCache::new(serve.file_cache_mib << 20)),
            trees: Arc::default(),
            paths: Arc::new(paths::ResolvedPaths::disabled()),
            box_secret: Arc::new(box_secret),
            repos: repos::Repos::new(&serve.cache_dir),
            pages: Arc::new(homepage::Pages::new()),
            per_address: connections::PerAddress::new(
                serve.max_connections_per_address,
                serve.trusted_proxies.clone(),
            ),
            tls: tls_acceptor(&config)?,
            metrics,
            config,
            log_requests,
            front: Some(front),
        })
    }

    /// A state with the settings and certificate as they are now on disk,
    /// or why they cannot be used (the running state is then kept).
    fn reloaded(&self) -> anyhow::Result<State> {
        if self.front.is_some() {
            anyhow::bail!(
                "a frontend reads its settings file at start; restart it to apply changes \
                 (what the store publishes is read again every reload-interval-secs)"
            );
        }
        let config = RepoConfig::load(self.config.layout.root())?;
        warn_unreloadable(&self.config, &config);
        let serve = &config.settings.serve;
        Ok(State {
            gate: self.gate.clone(),
            keys: self.keys.clone(),
            files: self.files.clone(),
            trees: self.trees.clone(),
            paths: self.paths.clone(),
            box_secret: self.box_secret.clone(),
            metrics: self.metrics.clone(),
            repos: repos::Repos::new(config.layout.root()),
            pages: self.pages.clone(),
            per_address: self.per_address.with_limits(
                serve.max_connections_per_address,
                serve.trusted_proxies.clone(),
            ),
            tls: tls_acceptor(&config)?,
            config,
            log_requests: self.log_requests,
            front: self.front.clone(),
        })
    }
}

/// A frontend's settings as the server reads them: its own `[serve]` and
/// `[boxes]`, the store's channels, components, dists and architectures.
fn front_config(settings: &crate::config::FrontSettings, front: &front::Front) -> RepoConfig {
    let manifest = front.publication().manifest.clone();
    let base = crate::config::Settings {
        channels: manifest.channels,
        components: manifest.components,
        serve: settings.serve.clone(),
        boxes: settings.boxes.clone(),
        ..Default::default()
    };
    RepoConfig {
        layout: crate::config::Layout::new(&settings.serve.cache_dir),
        settings: base,
        dists: crate::config::NameList::from_names(manifest.dists),
        archs: crate::config::NameList::from_names(manifest.archs),
    }
}

fn tls_acceptor(config: &RepoConfig) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    let serve = &config.settings.serve;
    Ok(match (&serve.tls_certificate, &serve.tls_key) {
        (Some(certificate), Some(key)) => Some(tls::acceptor(certificate, key)?),
        _ => None,
    })
}

/// Says which changed settings a reload cannot apply (they size what the
/// running server already built).
fn warn_unreloadable(old: &RepoConfig, new: &RepoConfig) {
    let (a, b) = (&old.settings.serve, &new.settings.serve);
    let changed = [
        ("[serve] listen", a.listen != b.listen),
        (
            "[serve] max-connections",
            a.max_connections != b.max_connections,
        ),
        (
            "[serve] file-cache-mib",
            a.file_cache_mib != b.file_cache_mib,
        ),
        ("channels", old.settings.channels != new.settings.channels),
        (
            "the TLS setting (on or off)",
            a.tls_certificate.is_some() != b.tls_certificate.is_some(),
        ),
    ];
    for (what, _) in changed.iter().filter(|(_, changed)| *changed) {
        eprintln!("bess serve: {what} changed; it takes effect when bess serve is restarted");
    }
}

/// Runs the server until SIGTERM or SIGINT; prints `listening on http(s)://ADDR`
/// first. SIGHUP reloads `bess.toml` and the TLS certificate.
pub fn run(root: &Path, listen: Option<String>, log_requests: bool) -> anyhow::Result<()> {
    // What a kernel or seccomp filter without openat2 gets, forced for tests.
    if std::env::var_os("BESS_NO_OPENAT2").is_some_and(|v| v == "1") {
        beneath::force_walk();
    }
    let state = State::start(root, log_requests)?;
    // Uploads dropped by scp/sftp, processed beside the server, never in its way.
    incoming::spawn(root);
    refresher::spawn(root);
    let listen = listen.unwrap_or_else(|| state.config.settings.serve.listen.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(Arc::new(state), &listen))
}

/// Runs a stateless frontend of the publication at `from`
/// (`s3://bucket/prefix`) with the settings file `config`, until SIGTERM
/// or SIGINT.
pub fn run_front(
    from: &str,
    config: &Path,
    listen: Option<String>,
    log_requests: bool,
) -> anyhow::Result<()> {
    let url = crate::config::StoreUrl::parse(from).map_err(anyhow::Error::msg)?;
    let settings = crate::config::FrontSettings::load(config).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let front = Arc::new(front::Front::start(&settings, url).await?);
        front.watch();
        let state = State::start_front(&settings, front, log_requests)?;
        let listen = listen.unwrap_or_else(|| state.config.settings.serve.listen.clone());
        serve(Arc::new(state), &listen).await
    })
}

async fn serve(mut state: Arc<State>, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; set [serve] listen in bess.toml or pass --listen")
        })?;
    let scheme = if state.tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    let occupancy = connections::Occupancy::new(state.config.settings.serve.max_connections);
    // Server-wide shutdown: each connection holds a receiver until it ends.
    let (closing, _) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
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
            _ = hangup.recv() => {
                state = reload(state);
                continue;
            }
            _ = &mut shutdown => break,
        };
        // Over its own cap, an address's new connection is closed at once,
        // before it can hold one of the shared slots.
        let Some(claim) = state.per_address.claim(remote.ip()) else {
            state.metrics.connection_refused();
            continue;
        };
        let occupant = loop {
            tokio::select! {
                occupant = occupancy.admit() => break Some(occupant),
                _ = hangup.recv() => state = reload(state),
                _ = &mut shutdown => break None,
            }
        };
        let Some(occupant) = occupant else { break };
        let _ = stream.set_nodelay(true);
        let (state, shutting_down) = (state.clone(), closing.subscribe());
        tokio::spawn(async move {
            let occupant = Arc::new(occupant);
            serve_stream(state, stream, remote.ip(), occupant, shutting_down).await;
            drop(claim);
        });
    }
    eprintln!("bess serve: shutting down; finishing requests in flight");
    let _ = closing.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), closing.closed()).await;
    Ok(())
}

/// One accepted connection, in plain HTTP or after its TLS handshake.
async fn serve_stream(
    state: Arc<State>,
    stream: tokio::net::TcpStream,
    ip: IpAddr,
    occupant: Arc<connections::Occupant>,
    closing: tokio::sync::watch::Receiver<()>,
) {
    let Some(acceptor) = state.tls.clone() else {
        let stream = occupant.outgoing(sendfile::SendfileStream::new(stream));
        return serve_io(state, TokioIo::new(stream), ip, occupant, closing).await;
    };
    let deadline = Duration::from_secs(state.config.settings.serve.header_timeout_secs);
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(deadline, acceptor.accept(stream)) => handshake,
        // Part-way through its handshake, it has nothing to answer yet.
        _ = occupant.evicted() => {
            state.metrics.connection_evicted();
            return;
        }
    };
    if let Ok(Ok(stream)) = handshake {
        let stream = occupant.outgoing(stream);
        serve_io(state, TokioIo::new(stream), ip, occupant, closing).await;
    }
}

/// The state after SIGHUP: the new settings, or the old ones when the new
/// cannot be used (the reason, with the file and line, goes to the log).
fn reload(state: Arc<State>) -> Arc<State> {
    match state.reloaded() {
        Ok(fresh) => {
            eprintln!(
                "bess serve: reloaded bess.toml and the TLS certificate; new connections use them"
            );
            Arc::new(fresh)
        }
        Err(e) => {
            eprintln!("bess serve: reload refused, the running settings stay: {e:#}");
            state
        }
    }
}

/// The most a request line and its headers may take.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// One HTTP/1.1 connection: keep-alive and pipelining, with a deadline on
/// headers so stalled clients cannot hold connections forever, until the
/// client leaves, the server shuts down or a newcomer needs its slot.
async fn serve_io<I>(
    state: Arc<State>,
    io: TokioIo<I>,
    ip: IpAddr,
    occupant: Arc<connections::Occupant>,
    mut closing: tokio::sync::watch::Receiver<()>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = Duration::from_secs(state.config.settings.serve.header_timeout_secs);
    let metrics = state.metrics.clone();
    let counted = occupant.clone();
    let service = hyper::service::service_fn(move |request| {
        let (state, in_flight) = (state.clone(), counted.request());
        async move {
            let response = handle(state, request, ip).await;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| http::Holding::new(body, in_flight)),
            )
        }
    });
    // No `pipeline_flush`: hyper then copies every body into one flat
    // buffer before writing it, which cost a quarter of the throughput on
    // an 840 KB Packages.xz; without it bodies go out by writev straight
    // from the file cache, and pipelined requests are still answered.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        // apt's requests carry well under 1 KiB of headers; a client that
        // sends more than 32 KiB of them gets 431, not a buffer that size.
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.changed() => {}
        _ = occupant.evicted() => {
            metrics.connection_evicted();
            if occupant.is_idle() {
                return;
            }
        }
    }
    // Closes at once when idle, after the response in flight otherwise,
    // and in both cases after flushing what hyper still buffers.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
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
    if let Some(front) = &state.front {
        return front::route(state, front, request, ip).await;
    }
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
        return (metrics::response(&state.metrics, &state.config, ip), None);
    }
    if segments.first().map(String::as_str) == Some("api") {
        return api::handle(state.clone(), request, &segments[1..], ip).await;
    }
    let Some(target) = channel_target(state, &request, &segments) else {
        return (respond(StatusCode::NOT_FOUND, "not found\n"), None);
    };
    let channel = &target.channel;
    if !state.config.settings.serve.allows(channel, ip) {
        return (
            respond(StatusCode::FORBIDDEN, "forbidden from this address\n"),
            None,
        );
    }
    if target.rest.first().map(String::as_str) == Some("boxes") {
        let channel = channel.clone();
        return boxes::handle(state, request, &channel, &target.rest[1..], ip).await;
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
    (channel_response(state, &target, &request), name)
}

/// The channel a request is for, and the path inside its tree.
struct ChannelTarget<'a> {
    channel: String,
    rest: &'a [String],
    /// Reached as a `[serve.hosts]` name, whose tree is at `/`.
    by_host: bool,
}

/// `/<channel>/…` on any name; or, on a name of `[serve.hosts]`, the
/// tree's own top-level paths at `/`.
fn channel_target<'a>(
    state: &State,
    request: &Request<Incoming>,
    segments: &'a [String],
) -> Option<ChannelTarget<'a>> {
    let first = segments.first()?;
    if state.config.settings.channels.contains(first) {
        let channel = first.clone();
        let rest = &segments[1..];
        return Some(ChannelTarget {
            channel,
            rest,
            by_host: false,
        });
    }
    let in_tree = matches!(first.as_str(), "dists" | "pool" | "boxes" | "bess.sources");
    let host = request_host(request).filter(|_| in_tree)?;
    let channel = state.config.settings.serve.hosts.get(&host)?.clone();
    Some(ChannelTarget {
        channel,
        rest: segments,
        by_host: true,
    })
}

/// The name a request was sent to: the authority of an absolute-form
/// target (as sent through a proxy) or the Host header, lowercased,
/// without port or trailing dot.
fn request_host(request: &Request<Incoming>) -> Option<String> {
    let host = match request.uri().host() {
        Some(host) => host.to_string(),
        None => {
            let header = request.headers().get(header::HOST)?.to_str().ok()?;
            let authority: hyper::http::uri::Authority = header.parse().ok()?;
            authority.host().to_string()
        }
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

fn channel_response(
    state: &State,
    target: &ChannelTarget<'_>,
    request: &Request<Incoming>,
) -> Response<Body> {
    if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
        return http::method_not_allowed("GET, HEAD");
    }
    let (channel, rest) = (target.channel.as_str(), target.rest);
    if rest == ["bess.sources"] {
        return sources_response(state, target, request);
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

/// A deb822 source for this channel, with the signing key inline; on a
/// `[serve.hosts]` name, its URI is the name itself.
fn sources_response(
    state: &State,
    target: &ChannelTarget<'_>,
    request: &Request<Incoming>,
) -> Response<Body> {
    // A channel's own name is the base of its URIs, whatever public-url says.
    let base = match target.by_host {
        true => host_base(state, request.headers()),
        false => public_base(state, request.headers()),
    };
    let Some(base) = base else {
        return respond(
            StatusCode::BAD_REQUEST,
            "the Host header is missing or not a host[:port]; set [serve] public-url\n",
        );
    };
    let (_, armored) = state.keys.get();
    let uri = match target.by_host {
        true => base,
        false => format!("{base}/{}", target.channel),
    };
    let text = sources_text(
        &uri,
        state.config.dists.names(),
        &state.config.settings.components,
        &armored,
    );
    respond(StatusCode::OK, &text)
}

/// A deb822 source for `uri`, with the signing key inline.
fn sources_text(uri: &str, dists: &[String], components: &[String], armored: &str) -> String {
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
    format!(
        "Types: deb\nURIs: {uri}\nSuites: {}\nComponents: {}\nSigned-By:\n{key}",
        dists.join(" "),
        components.join(" "),
    )
}

/// `scheme://host[:port]` of URLs handed to clients: `[serve] public-url`,
/// else the request's Host, refused unless it is a plain host[:port] (it
/// is written into files clients save, such as `bess.sources`).
pub(crate) fn public_base(state: &State, headers: &hyper::HeaderMap) -> Option<String> {
    let serve = &state.config.settings.serve;
    if let Some(url) = &serve.public_url {
        return Some(url.trim_end_matches('/').to_string());
    }
    host_base(state, headers)
}

/// `scheme://Host` of the request (the scheme of `public-url` when set,
/// else whether bess serves TLS), for a Host that is a plain host[:port].
fn host_base(state: &State, headers: &hyper::HeaderMap) -> Option<String> {
    let serve = &state.config.settings.serve;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = match (&serve.public_url, &serve.tls_certificate) {
        (Some(url), _) if url.starts_with("https://") => "https",
        (Some(_), _) | (None, None) => "http",
        (None, Some(_)) => "https",
    };
    is_host_and_port(host).then(|| format!("{scheme}://{host}"))
}

/// Fuzzing entry: what a client controls in a request, through every
/// parser that reads it (path, query, Range, credentials, Host, the
/// forwarding headers). Lines of `text`: target, Range, Authorization,
/// Host, X-Forwarded-For, Forwarded.
#[doc(hidden)]
pub fn fuzz_request(text: &str) {
    let mut lines = text.splitn(6, '\n');
    let mut next = || lines.next().unwrap_or("");
    let (target, range, authorization) = (next(), next(), next());
    let (host, forwarded_for, forwarded) = (next(), next(), next());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Ok(segments) = path::segments(path) {
        assert!(
            segments
                .iter()
                .all(|s| !s.is_empty() && s != ".." && s != ".")
        );
    }
    let _ = query::Query::parse(Some(query), &["dist", "channel", "from", "to"]);
    files::fuzz_range(range, 1 << 20);
    let _ = auth::basic_credentials(authorization);
    let _ = is_host_and_port(host);
    let mut headers = hyper::HeaderMap::new();
    for (name, value) in [("x-forwarded-for", forwarded_for), ("forwarded", forwarded)] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    let trusted = [crate::config::Cidr::parse("127.0.0.0/8").expect("a network")];
    let _ = client::address(IpAddr::from([127, 0, 0, 1]), &headers, &trusted);
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
        None => crate::config::is_host_name(host),
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
