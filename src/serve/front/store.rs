//! The frontend's read-only connection to the store: whole small files
//! with their ETag, HEAD for change checks, and streams of large objects.

use crate::config::{FrontSettings, StoreUrl};
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt,
    RetryConfig,
};
use std::time::Duration;

/// Why something could not be read from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key} is not in the store")]
    Missing { key: String },
    #[error("cannot read {key} from the store: {source}")]
    Read {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// A file read whole, with the ETag it had.
pub struct Fetched {
    pub bytes: Bytes,
    pub etag: Option<String>,
    pub modified: std::time::SystemTime,
}

/// The bucket and prefix a frontend serves.
pub struct Store {
    client: AmazonS3,
    url: StoreUrl,
}

impl Store {
    /// Connects to the bucket of `url` with the frontend's `[store]` settings.
    pub fn connect(settings: &FrontSettings, url: StoreUrl) -> Result<Store, StoreError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = &settings.store;
        let (id, secret) = credentials(store.credentials_file.as_deref())?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: Duration::from_secs(store.request_timeout_secs),
        };
        let options = ClientOptions::new()
            .with_allow_http(store.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(store.request_timeout_secs));
        let client = AmazonS3Builder::new()
            .with_endpoint(&store.endpoint)
            .with_bucket_name(&url.bucket)
            .with_region(&store.region)
            .with_access_key_id(id)
            .with_secret_access_key(secret)
            .with_retry(retry)
            .with_client_options(options)
            .build()
            .map_err(|e| StoreError::Setup(format!("cannot use {}: {e}", store.endpoint)))?;
        Ok(Store { client, url })
    }

    /// The full key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> String {
        self.url.key(rel)
    }

    /// The whole file at `rel`.
    pub async fn get(&self, rel: &str) -> Result<Fetched, StoreError> {
        let result = self.stream(rel).await?;
        let (etag, modified) = (result.meta.e_tag.clone(), result.meta.last_modified);
        let bytes = result.bytes().await.map_err(read_error(&self.key(rel)))?;
        Ok(Fetched {
            bytes,
            etag,
            modified: modified.into(),
        })
    }

    /// The file at `rel`, or `None` when the store has none.
    pub async fn get_optional(&self, rel: &str) -> Result<Option<Fetched>, StoreError> {
        match self.get(rel).await {
            Ok(fetched) => Ok(Some(fetched)),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ETag of `rel` now, `None` when the store has no such file.
    pub async fn etag(&self, rel: &str) -> Result<Option<String>, StoreError> {
        let key = self.key(rel);
        match self.client.head(&parse(&key)?).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_default())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(StoreError::Read { key, source }),
        }
    }

    /// The file at `rel`, as a stream of its bytes.
    pub async fn stream(&self, rel: &str) -> Result<GetResult, StoreError> {
        self.stream_range(rel, None).await
    }

    /// Bytes `range` of the file at `rel` (all of them without), as a stream.
    pub async fn stream_range(
        &self,
        rel: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<GetResult, StoreError> {
        let key = self.key(rel);
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        self.client
            .get_opts(&parse(&key)?, options)
            .await
            .map_err(read_error(&key))
    }
}

fn parse(key: &str) -> Result<Key, StoreError> {
    Key::parse(key).map_err(|e| StoreError::Setup(format!("`{key}` is not a valid key: {e}")))
}

fn read_error(key: &str) -> impl FnOnce(object_store::Error) -> StoreError {
    let key = key.to_string();
    move |source| match source {
        object_store::Error::NotFound { .. } => StoreError::Missing { key },
        source => StoreError::Read { key, source },
    }
}

/// The access key id and secret: from `[store] credentials-file`, else
/// from the AWS_* environment variables.
fn credentials(file: Option<&std::path::Path>) -> Result<(String, String), StoreError> {
    let missing = || {
        "the frontend has no store credentials: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY in its environment, or write them to a file of mode 0600 \
         and set [store] credentials-file"
            .to_string()
    };
    crate::ops::s3_credentials(file, missing).map_err(|e| StoreError::Setup(e.to_string()))
}
