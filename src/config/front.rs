//! The settings of a stateless frontend (`bess serve --from s3://…`):
//! `/etc/bess/frontend.toml`, with the store's endpoint and the `[serve]`
//! and `[boxes]` tables of a `bess.toml`. What the repository publishes
//! (channels, dists, users, keys) comes from the store, not from here.

use super::settings::{BoxSettings, ServeSettings};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where a frontend looks for its settings when `--config` is not given.
pub const DEFAULT_FRONTEND_CONFIG: &str = "/etc/bess/frontend.toml";

/// The whole frontend settings file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FrontSettings {
    pub store: StoreSettings,
    #[serde(default)]
    pub serve: ServeSettings,
    #[serde(default)]
    pub boxes: BoxSettings,
}

/// `[store]`: how to reach the bucket named by `--from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreSettings {
    /// The S3 endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// A file (mode 0600) holding `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`; without it they come from the environment.
    pub credentials_file: Option<PathBuf>,
    /// Seconds one request to the store may take.
    #[serde(default = "default_request_secs")]
    pub request_timeout_secs: u64,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_request_secs() -> u64 {
    30
}

impl FrontSettings {
    /// Reads and checks the settings file at `path`.
    pub fn load(path: &Path) -> Result<FrontSettings, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read {}: {e}; a frontend needs at least\n  [store]\n  endpoint = \"https://s3.example.com\"\nthere (or pass --config FILE)",
                path.display()
            )
        })?;
        FrontSettings::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks the text of a frontend settings file.
    pub fn parse(text: &str) -> Result<FrontSettings, String> {
        super::targets::refuse_secrets(text)?;
        let settings: FrontSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        super::settings::check_url("[store] endpoint", Some(&settings.store.endpoint))?;
        settings.serve.check_common()?;
        if settings.boxes.token_ttl_secs == 0 {
            return Err("[boxes] token-ttl-secs must be at least 1".into());
        }
        Ok(settings)
    }
}

/// `s3://bucket/prefix`, as `--from` names a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl StoreUrl {
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        let refuse = || {
            format!(
                "--from {text:?} must be s3://BUCKET or s3://BUCKET/PREFIX, as the primary's \
                 [[publish.target]] bucket and prefix"
            )
        };
        let rest = text.strip_prefix("s3://").ok_or_else(refuse)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bucket_ok = !bucket.is_empty()
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
        let prefix_ok = prefix.split('/').all(|s| !matches!(s, "." | ".."))
            && !prefix.contains("//")
            && !prefix.chars().any(|c| c.is_control() || c == '\\');
        if !bucket_ok || !prefix_ok {
            return Err(refuse());
        }
        Ok(StoreUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let url = StoreUrl::parse("s3://apt/company/repo/").unwrap();
        assert_eq!(url.bucket, "apt");
        assert_eq!(url.key("bess.json"), "company/repo/bess.json");
        assert_eq!(StoreUrl::parse("s3://apt").unwrap().key("x"), "x");
        for bad in ["apt/x", "s3://", "s3://Apt", "s3://a/../b", "http://a/b"] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_example_shipped_in_the_package_is_valid() {
        let settings = FrontSettings::parse(include_str!("../../conf/frontend.toml")).unwrap();
        assert_eq!(
            settings.serve.primary.as_deref(),
            Some("https://repo.example.com")
        );
    }

    #[test]
    fn settings_need_an_endpoint_and_refuse_secrets() {
        let good = "[store]\nendpoint = \"http://127.0.0.1:8333\"\n[serve]\nprimary = \"https://repo.example.com\"\ncache-max-gib = 2\n";
        let settings = FrontSettings::parse(good).unwrap();
        assert_eq!(settings.serve.cache_max_gib, 2);
        let err = FrontSettings::parse("[serve]\nlisten = \"0.0.0.0:80\"\n").unwrap_err();
        assert!(err.contains("store"), "{err}");
        let secret = "[store]\nendpoint = \"http://s3\"\nsecret-key = \"x\"\n";
        assert!(FrontSettings::parse(secret).is_err());
        let bad = "[store]\nendpoint = \"http://s3\"\n[serve]\nprimary = \"ftp://x\"\n";
        assert!(FrontSettings::parse(bad).unwrap_err().contains("primary"));
    }
}
