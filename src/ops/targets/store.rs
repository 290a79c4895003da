//! The S3 connection of a publish target: credentials, retries, and a
//! count of every HTTP request and byte sent (the figures a publish reports).

use super::TargetError;
use crate::config::PublishTarget;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Requests and bytes sent to one target, retries included.
#[derive(Debug, Default)]
pub struct Traffic {
    pub requests: AtomicU64,
    /// PUT requests: whole objects, multipart parts and server-side copies.
    pub puts: AtomicU64,
    /// Request body bytes.
    pub bytes: AtomicU64,
}

/// Counts each request, then hands it to reqwest.
#[derive(Debug)]
struct CountedHttp {
    inner: HttpClient,
    traffic: Arc<Traffic>,
}

#[async_trait::async_trait]
impl HttpService for CountedHttp {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.traffic.requests.fetch_add(1, Ordering::Relaxed);
        if req.method().as_str() == "PUT" {
            self.traffic.puts.fetch_add(1, Ordering::Relaxed);
        }
        let sent = req.body().content_length() as u64;
        self.traffic.bytes.fetch_add(sent, Ordering::Relaxed);
        self.inner.execute(req).await
    }
}

/// Makes reqwest clients whose requests are counted.
#[derive(Debug)]
struct CountingConnector {
    traffic: Arc<Traffic>,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountedHttp {
            inner,
            traffic: self.traffic.clone(),
        }))
    }
}

/// The S3 client of `target`, counting into `traffic`.
pub fn connect(target: &PublishTarget, traffic: Arc<Traffic>) -> Result<AmazonS3, TargetError> {
    // reqwest is built without a TLS provider of its own: it uses the ring
    // provider bess's server already links (no second crypto library).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (key_id, secret) = credentials(target)?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(target.retry_timeout_secs),
    };
    let options = ClientOptions::new()
        .with_allow_http(target.endpoint.starts_with("http://"))
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(target.request_timeout_secs));
    AmazonS3Builder::new()
        .with_endpoint(&target.endpoint)
        .with_bucket_name(&target.bucket)
        .with_region(&target.region)
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_retry(retry)
        .with_client_options(options)
        .with_http_connector(CountingConnector { traffic })
        .build()
        .map_err(|source| TargetError::Connect {
            endpoint: target.endpoint.clone(),
            source,
        })
}

/// The access key id and secret of a target.
fn credentials(target: &PublishTarget) -> Result<(String, String), TargetError> {
    s3_credentials(target.credentials_file.as_deref(), || {
        format!(
            "target `{name}` has no credentials: set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY in bess's environment, or write them to \
             /etc/bess/s3-{name}.credentials (mode 0600) and set credentials-file in bess.toml",
            name = target.name
        )
    })
}

/// The access key id and secret: from `file` when given, else from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; `missing` says what to
/// do when neither has them.
pub(crate) fn s3_credentials(
    file: Option<&Path>,
    missing: impl FnOnce() -> String,
) -> Result<(String, String), TargetError> {
    if let Some(file) = file {
        return credentials_file(file);
    }
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(TargetError::Credentials(missing())),
    }
}

/// Reads `AWS_ACCESS_KEY_ID = …` and `AWS_SECRET_ACCESS_KEY = …` lines (the
/// names in any case, `#` comments) from a file only its owner may read.
fn credentials_file(file: &Path) -> Result<(String, String), TargetError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = file.display();
    let unreadable =
        |e: std::io::Error| TargetError::Credentials(format!("cannot read {shown}: {e}"));
    let mode = std::fs::metadata(file)
        .map_err(unreadable)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TargetError::Credentials(format!(
            "{shown} holds secrets but others may read it (mode {:o}); run `chmod 600 {shown}`",
            mode & 0o777
        )));
    }
    let text = std::fs::read_to_string(file).map_err(unreadable)?;
    let mut found = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(TargetError::Credentials(format!(
                "{shown}: `{}…` is not `NAME = value`",
                line.chars().take(12).collect::<String>()
            )));
        };
        let value = value.trim().trim_matches('"').to_string();
        match name.trim().to_ascii_uppercase().as_str() {
            "AWS_ACCESS_KEY_ID" => found.0 = Some(value),
            "AWS_SECRET_ACCESS_KEY" => found.1 = Some(value),
            other => {
                return Err(TargetError::Credentials(format!(
                    "{shown}: unknown name `{other}`; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )));
            }
        }
    }
    match found {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(TargetError::Credentials(format!(
            "{shown} must set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_credentials_file_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3-mirror.credentials");
        std::fs::write(
            &file,
            "AWS_ACCESS_KEY_ID = id\naws_secret_access_key=\"s\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = credentials_file(&file).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", file.display())),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(credentials_file(&file).unwrap(), ("id".into(), "s".into()));
    }
}
