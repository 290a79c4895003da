//! A counting HTTP proxy in front of an S3 endpoint, on `127.0.0.1:0`:
//! every tool under test talks to the store through it, so requests and
//! bytes are counted the same way for all of them, whatever each tool
//! says about itself. Each client connection gets its own upstream
//! connection, so the store sees the clients' own parallelism and
//! connection reuse. Headers pass unchanged: the `Host` a client signed
//! (SigV4) is the one the store checks. It can also hold each request
//! back a fixed time, as a store across a network would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;

/// What went through the proxy since the last [`CountingProxy::take`].
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub requests: u64,
    /// Request body bytes: what the clients uploaded.
    pub bytes_sent: u64,
    /// Response body bytes: listings, copies' replies, downloads.
    pub bytes_received: u64,
    /// Requests by S3 operation (`put`, `copy`, `list`, …).
    pub operations: BTreeMap<&'static str, u64>,
    /// From the last `take` to the first request: the tool's work before
    /// it talks to the store (a publish: its local indices).
    pub before_first: Option<Duration>,
    /// From the first request to the start of the last one: the time the
    /// tool spends talking to the store.
    pub talking: Option<Duration>,
}

impl Traffic {
    /// `put 60012, copy 4, list 2`, largest first.
    pub fn operations_summary(&self) -> String {
        let mut counts: Vec<_> = self.operations.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
        parts.join(", ")
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    operations: Mutex<BTreeMap<&'static str, u64>>,
    /// When the counters were last taken, and when the first and the
    /// latest request since then arrived.
    times: Mutex<Times>,
}

#[derive(Default)]
struct Times {
    since: Option<Instant>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Where the proxy relays to, and how long it holds each request back
/// first (zero: loopback as is; a few milliseconds: a store's round trip
/// across a network).
#[derive(Debug, Clone, Copy)]
pub struct Upstream {
    pub address: SocketAddr,
    pub latency: Duration,
}

/// A running proxy; it stops with its runtime when dropped.
pub struct CountingProxy {
    address: SocketAddr,
    counters: Arc<Counters>,
    _runtime: tokio::runtime::Runtime,
}

impl CountingProxy {
    /// Listens on a free loopback port and relays to `upstream`.
    pub fn start(upstream: Upstream) -> Result<CountingProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the proxy's runtime")?;
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("binding the proxy")?;
        let address = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let accepting = counters.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = accepting.clone();
                tokio::spawn(async move {
                    // A client that hangs up mid-request is its own business.
                    let _ = relay(client, upstream, counters).await;
                });
            }
        });
        Ok(CountingProxy {
            address,
            counters,
            _runtime: runtime,
        })
    }

    /// The URL clients use instead of the store's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// What was counted since the last call; the counters start again at zero.
    pub fn take(&self) -> Traffic {
        let c = &self.counters;
        let times = std::mem::replace(
            &mut *c.times.lock().unwrap(),
            Times {
                since: Some(Instant::now()),
                ..Times::default()
            },
        );
        let first = times.first;
        Traffic {
            before_first: first.zip(times.since).map(|(f, s)| f - s),
            talking: first.zip(times.last).map(|(f, l)| l - f),
            requests: c.requests.swap(0, Ordering::Relaxed),
            bytes_sent: c.sent.swap(0, Ordering::Relaxed),
            bytes_received: c.received.swap(0, Ordering::Relaxed),
            operations: std::mem::take(&mut *c.operations.lock().unwrap()),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Counters {
    /// Counts a request as it arrives, before its body.
    fn count(&self, request: &Request<Incoming>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut times = self.times.lock().unwrap();
        times.first.get_or_insert(now);
        times.last = Some(now);
        drop(times);
        *self
            .operations
            .lock()
            .unwrap()
            .entry(operation(request))
            .or_default() += 1;
    }
}

/// Serves one client connection, forwarding each request upstream.
async fn relay(
    client: TcpStream,
    upstream: Upstream,
    counters: Arc<Counters>,
) -> Result<(), BoxError> {
    client.set_nodelay(true)?;
    let connection = Arc::new(tokio::sync::Mutex::new(None));
    let service = hyper::service::service_fn(move |request| {
        forward(request, upstream, connection.clone(), counters.clone())
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}

/// One request upstream, counted, over the connection's upstream link
/// (opened again when the store closed it).
async fn forward(
    request: Request<Incoming>,
    upstream: Upstream,
    connection: Arc<tokio::sync::Mutex<Option<SendRequest<Body>>>>,
    counters: Arc<Counters>,
) -> Result<Response<Body>, BoxError> {
    counters.count(&request);
    if !upstream.latency.is_zero() {
        tokio::time::sleep(upstream.latency).await;
    }
    let sent = counters.clone();
    let request = request.map(|body| {
        body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                sent.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .boxed()
    });
    let mut link = connection.lock().await;
    if link.as_mut().is_none_or(|sender| sender.is_closed()) {
        *link = Some(connect(upstream.address).await?);
    }
    let sender = link.as_mut().expect("connected just above");
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let received = counters.clone();
    Ok(response.map(|body| {
        body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                received
                    .received
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .boxed()
    }))
}

async fn connect(upstream: SocketAddr) -> Result<SendRequest<Body>, BoxError> {
    let stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The S3 operation a request is, from its method, query and headers
/// (path-style addressing: `/<bucket>` alone is the bucket).
fn operation(request: &Request<Incoming>) -> &'static str {
    let query = request.uri().query().unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let on_bucket = request.uri().path().trim_matches('/').split('/').count() <= 1;
    match *request.method() {
        Method::PUT if request.headers().contains_key("x-amz-copy-source") => "copy",
        Method::PUT if has("partNumber") => "part",
        Method::PUT => "put",
        Method::POST if has("delete") => "delete-many",
        Method::POST => "multipart",
        Method::GET if on_bucket => "list",
        Method::GET => "get",
        Method::HEAD => "head",
        Method::DELETE => "delete",
        _ => "other",
    }
}
