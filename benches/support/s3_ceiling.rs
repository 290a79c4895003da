//! How fast the store itself takes small PUTs, at a few numbers of
//! requests in flight: the ceiling no publisher can pass on this machine,
//! so a publish's time can be read against it (store-bound or not, and
//! whether sending more at once would help).

use anyhow::{Context, Result};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use std::time::Instant;

/// Where the probe writes, and with which identity.
pub struct Store<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
}

/// PUTs a second of `count` distinct objects of `size` bytes, `in_flight`
/// at a time, under `prefix/`.
pub fn put_rate(
    store: &Store,
    prefix: &str,
    count: usize,
    in_flight: usize,
    size: usize,
) -> Result<f64> {
    // reqwest is built without a TLS provider of its own (as in bess).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = AmazonS3Builder::new()
        .with_endpoint(store.endpoint)
        .with_bucket_name(store.bucket)
        .with_region("us-east-1")
        .with_access_key_id(store.access_key)
        .with_secret_access_key(store.secret_key)
        .with_allow_http(true)
        .build()
        .context("an S3 client for the ceiling probe")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let mut puts = futures::stream::iter((0..count).map(|i| {
            let client = &client;
            async move {
                // Distinct bytes per object, as distinct packages are.
                let mut body = vec![b'x'; size];
                body[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let key = Key::from(format!("{prefix}/{i:06}"));
                client.put(&key, body.into()).await
            }
        }))
        .buffer_unordered(in_flight);
        while let Some(put) = puts.next().await {
            put.context("a ceiling probe PUT")?;
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    })
}
