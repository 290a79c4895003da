//! `GET /metrics`: the server's counters in Prometheus' text exposition
//! format (version 0.0.4), written by hand: requests and response bytes
//! per channel and status code, failed logins, publish durations.
//!
//! Scrapers do not log in: `/metrics` answers only addresses allowed by
//! `[serve] metrics-allow` (CIDRs), which defaults to loopback.

use super::http::{Body, full, respond};
use crate::config::Cidr;
use hyper::{Response, StatusCode, header};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the publish-duration histogram's buckets.
const PUBLISH_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Request areas that are not channels; channel names cannot take these.
const OTHER_AREAS: [&str; 5] = ["api", "env", "key.gpg", "metrics", "other"];

/// Counters shared by every connection.
pub struct Metrics {
    /// Label values: the channels, then [`OTHER_AREAS`].
    areas: Vec<String>,
    /// (area, status code) → (requests, body bytes).
    requests: Mutex<BTreeMap<(usize, u16), (u64, u64)>>,
    auth_invalid: AtomicU64,
    auth_throttled: AtomicU64,
    auth_busy: AtomicU64,
    /// argon2 checks run, counted by the verifying threads.
    password_checks: Arc<AtomicU64>,
    connections_refused: AtomicU64,
    connections_evicted: AtomicU64,
    publishes: Mutex<Histogram>,
}

#[derive(Default)]
struct Histogram {
    /// Observations at most each bound of [`PUBLISH_BUCKETS`] (not cumulative).
    buckets: [u64; PUBLISH_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counters for a server of these channels.
    pub fn new(channels: &[String]) -> Metrics {
        let mut areas = channels.to_vec();
        areas.extend(OTHER_AREAS.iter().map(|a| a.to_string()));
        Metrics {
            areas,
            requests: Mutex::default(),
            auth_invalid: AtomicU64::new(0),
            auth_throttled: AtomicU64::new(0),
            auth_busy: AtomicU64::new(0),
            password_checks: Arc::default(),
            connections_refused: AtomicU64::new(0),
            connections_evicted: AtomicU64::new(0),
            publishes: Mutex::default(),
        }
    }

    /// Counts an answered request for `path` (its first segment names the area).
    pub fn request(&self, path: &str, status: u16, bytes: u64) {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let area = self
            .areas
            .iter()
            .position(|a| a == first)
            .unwrap_or(self.areas.len() - 1);
        let mut requests = self.requests.lock().expect("metrics lock");
        let tally = requests.entry((area, status)).or_default();
        tally.0 += 1;
        tally.1 += bytes;
    }

    /// The counter the verifying threads add their argon2 checks to.
    pub fn password_checks(&self) -> Arc<AtomicU64> {
        self.password_checks.clone()
    }

    /// Counts a connection closed because its address had too many open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an idle connection closed to free a slot for a new one.
    pub fn connection_evicted(&self) {
        self.connections_evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a login refused because every checking thread was busy.
    pub fn auth_busy(&self) {
        self.auth_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed login: wrong credentials, or refused while braked.
    pub fn auth_failed(&self, throttled: bool) {
        let counter = if throttled {
            &self.auth_throttled
        } else {
            &self.auth_invalid
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a publication took.
    pub fn published(&self, seconds: f64) {
        let mut histogram = self.publishes.lock().expect("metrics lock");
        if let Some(i) = PUBLISH_BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        family(&mut out, "bess_build_info", "gauge", "The running bess.");
        let version = env!("CARGO_PKG_VERSION");
        let _ = writeln!(out, "bess_build_info{{version=\"{version}\"}} 1");
        self.render_requests(&mut out);
        family(
            &mut out,
            "bess_auth_failures_total",
            "counter",
            "Failed logins: invalid credentials, refused while the address or user name was braked, or refused while every checking thread was busy.",
        );
        for (reason, counter) in [
            ("invalid", &self.auth_invalid),
            ("throttled", &self.auth_throttled),
            ("busy", &self.auth_busy),
        ] {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "bess_auth_failures_total{{reason=\"{reason}\"}} {n}");
        }
        family(
            &mut out,
            "bess_password_checks_total",
            "counter",
            "argon2 password checks run (unknown user names are checked against a dummy hash, so they count too).",
        );
        let n = self.password_checks.load(Ordering::Relaxed);
        let _ = writeln!(out, "bess_password_checks_total {n}");
        family(
            &mut out,
            "bess_connections_refused_total",
            "counter",
            "Connections closed at once because their address had max-connections-per-address open.",
        );
        let n = self.connections_refused.load(Ordering::Relaxed);
        let _ = writeln!(out, "bess_connections_refused_total {n}");
        family(
            &mut out,
            "bess_connections_evicted_total",
            "counter",
            "Idle connections (no request in flight) closed to make room for a new one at max-connections.",
        );
        let n = self.connections_evicted.load(Ordering::Relaxed);
        let _ = writeln!(out, "bess_connections_evicted_total {n}");
        self.render_publishes(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let requests = self.requests.lock().expect("metrics lock").clone();
        family(
            out,
            "bess_http_requests_total",
            "counter",
            "Requests answered, by channel (or api, key.gpg, metrics, other) and status code.",
        );
        for ((area, code), (count, _)) in &requests {
            let channel = escape(&self.areas[*area]);
            let _ = writeln!(
                out,
                "bess_http_requests_total{{channel=\"{channel}\",code=\"{code}\"}} {count}"
            );
        }
        family(
            out,
            "bess_http_response_bytes_total",
            "counter",
            "Response body bytes, by channel and status code.",
        );
        for ((area, code), (_, bytes)) in &requests {
            let channel = escape(&self.areas[*area]);
            let _ = writeln!(
                out,
                "bess_http_response_bytes_total{{channel=\"{channel}\",code=\"{code}\"}} {bytes}"
            );
        }
    }

    fn render_publishes(&self, out: &mut String) {
        let histogram = self.publishes.lock().expect("metrics lock");
        let name = "bess_publish_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Seconds to publish after an upload or a promotion through the API.",
        );
        let mut cumulative = 0;
        for (bound, n) in PUBLISH_BUCKETS.iter().zip(histogram.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", histogram.count);
        let _ = writeln!(out, "{name}_sum {}", histogram.sum);
        let _ = writeln!(out, "{name}_count {}", histogram.count);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whether `ip` may read `/metrics`: listed in `allow`, or loopback when
/// the list is empty.
pub fn allowed(allow: &[Cidr], ip: IpAddr) -> bool {
    if allow.is_empty() {
        return ip.to_canonical().is_loopback();
    }
    allow.iter().any(|net| net.contains(ip))
}

/// The gauge of the nearest `Valid-Until`, read from the published
/// Release files at each scrape (a handful of small reads).
fn release_validity(config: &crate::config::RepoConfig) -> String {
    let mut out = String::new();
    let (found, _unreadable) = crate::ops::validities(config);
    let nearest = found.iter().filter_map(|v| v.valid_until).min();
    let Some(nearest) = nearest else {
        return out;
    };
    family(
        &mut out,
        "bess_release_valid_seconds",
        "gauge",
        "Seconds until the nearest Valid-Until of a published Release (negative once expired).",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let left = nearest as i64 - now as i64;
    let _ = writeln!(out, "bess_release_valid_seconds {left}");
    out
}

/// The `/metrics` response for `ip`.
pub fn response(
    metrics: &Metrics,
    config: &crate::config::RepoConfig,
    ip: IpAddr,
) -> Response<Body> {
    response_with(metrics, config, ip, String::new)
}

/// [`response`] with the lines `extra` gives after the server's own.
pub fn response_with(
    metrics: &Metrics,
    config: &crate::config::RepoConfig,
    ip: IpAddr,
    extra: impl FnOnce() -> String,
) -> Response<Body> {
    let allow = &config.settings.serve.metrics_allow;
    if !allowed(allow, ip) {
        return respond(
            StatusCode::FORBIDDEN,
            "metrics are served only to [serve] metrics-allow (default: loopback)\n",
        );
    }
    let text = metrics.render() + &release_validity(config) + &extra();
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .header(header::CONTENT_LENGTH, text.len())
        .body(full(text))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_area_and_code() {
        let metrics = Metrics::new(&["preprod".into(), "prod".into()]);
        metrics.request("/prod/dists/bookworm/InRelease", 200, 100);
        metrics.request("/prod/pool/x.deb", 200, 50);
        metrics.request("/nowhere", 404, 10);
        metrics.auth_failed(false);
        metrics.published(0.3);
        let text = metrics.render();
        assert!(text.contains("bess_http_requests_total{channel=\"prod\",code=\"200\"} 2\n"));
        assert!(
            text.contains("bess_http_response_bytes_total{channel=\"prod\",code=\"200\"} 150\n")
        );
        assert!(text.contains("bess_http_requests_total{channel=\"other\",code=\"404\"} 1\n"));
        assert!(text.contains("bess_auth_failures_total{reason=\"invalid\"} 1\n"));
        assert!(text.contains("bess_publish_duration_seconds_bucket{le=\"0.25\"} 0\n"));
        assert!(text.contains("bess_publish_duration_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("bess_publish_duration_seconds_count 1\n"));
    }

    #[test]
    fn loopback_by_default() {
        assert!(allowed(&[], "127.0.0.1".parse().unwrap()));
        assert!(allowed(&[], "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!allowed(&[], "10.1.2.3".parse().unwrap()));
        let nets = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert!(allowed(&nets, "10.1.2.3".parse().unwrap()));
        assert!(!allowed(&nets, "127.0.0.1".parse().unwrap()));
    }
}
