//! `[[publish.target]]`: remote stores every publication is copied to,
//! next to the local tree (which stays the source of truth).

use serde::Deserialize;
use std::path::PathBuf;

/// One `[[publish.target]]` table: an S3-compatible bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublishTarget {
    /// What kind of store; only `s3` so far.
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// Names the target in reports and in its upload record.
    pub name: String,
    /// The S3 endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    pub bucket: String,
    /// Keys are written under `<prefix>/`; empty means the bucket's root.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// How the publication is laid out in the bucket.
    #[serde(default)]
    pub layout: TargetLayout,
    /// A file (mode 0600) holding `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`; without it they come from the environment.
    pub credentials_file: Option<PathBuf>,
    /// Seconds a failing request is retried, with backoff, before the
    /// target's upload is reported as failed (the next publish resumes it).
    #[serde(default = "default_retry_secs")]
    pub retry_timeout_secs: u64,
    /// Seconds one request may take, its body included, before it counts
    /// as failed (and is retried).
    #[serde(default = "default_request_secs")]
    pub request_timeout_secs: u64,
    /// Files at least this large (MiB) are uploaded in parts, so a failed
    /// request costs a part, not the whole file.
    #[serde(default = "default_multipart_mib")]
    pub multipart_threshold_mib: u64,
    /// Hours a pool object stays in the store after `bess repo gc` first
    /// finds no channel referencing it: frontends may still serve an index
    /// that lists it. 0 deletes it at the first gc.
    #[serde(default = "default_gc_grace_hours")]
    pub gc_grace_hours: u64,
}

/// The store protocol of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    S3,
}

/// How a publication is laid out in a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetLayout {
    /// Pool files once under `objects/<sha256>`, dists under `<channel>/dists/`.
    #[default]
    Objects,
    /// Also the apt paths (`<channel>/pool/…`, `<channel>/boxes/…`), made
    /// by server-side copies of the objects, for a bucket served as is.
    Tree,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_retry_secs() -> u64 {
    180
}

fn default_request_secs() -> u64 {
    30
}

fn default_multipart_mib() -> u64 {
    64
}

fn default_gc_grace_hours() -> u64 {
    168
}

/// Keys that would put a secret into `bess.toml`, which is world-readable
/// and often kept in version control.
const SECRET_KEYS: [&str; 3] = ["access-key", "secret-key", "session-token"];

/// Refuses secrets written into a `[[publish.target]]`, before serde would
/// answer with a bare "unknown field".
pub(super) fn refuse_secrets(text: &str) -> Result<(), String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Ok(()); // serde reports the syntax error with its position
    };
    let targets = table
        .get("publish")
        .and_then(|p| p.get("target"))
        .and_then(|t| t.as_array());
    for (at, target) in targets.into_iter().flatten().enumerate() {
        let name = target.get("name").and_then(|n| n.as_str()).unwrap_or("");
        for key in SECRET_KEYS {
            if target.get(key).is_some() {
                return Err(format!(
                    "[[publish.target]] #{} \"{name}\": `{key}` is refused: secrets do not belong in \
                     bess.toml. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in bess's \
                     environment, or write them to /etc/bess/s3-{name}.credentials (mode 0600) \
                     and name that file in credentials-file",
                    at + 1
                ));
            }
        }
    }
    Ok(())
}

/// Checks every target and that their names differ.
pub(super) fn validate(targets: &[PublishTarget]) -> Result<(), String> {
    for (at, target) in targets.iter().enumerate() {
        target.validate()?;
        if targets[..at].iter().any(|t| t.name == target.name) {
            return Err(format!(
                "[[publish.target]] name = \"{}\" is used twice; give each target its own name",
                target.name
            ));
        }
    }
    Ok(())
}

impl PublishTarget {
    fn validate(&self) -> Result<(), String> {
        let at = format!("[[publish.target]] \"{}\"", self.name);
        if !is_target_name(&self.name) {
            return Err(format!(
                "[[publish.target]] name = {:?} must be letters, digits, `-` or `_` (it names \
                 the target's credentials and upload record)",
                self.name
            ));
        }
        super::settings::check_url(&format!("{at}: endpoint"), Some(&self.endpoint))?;
        if !is_bucket_name(&self.bucket) {
            return Err(format!(
                "{at}: bucket = {:?} is not an S3 bucket name: 3 to 63 lowercase letters, \
                 digits, `.` and `-`, starting and ending with a letter or digit",
                self.bucket
            ));
        }
        if !is_prefix(&self.prefix) {
            return Err(format!(
                "{at}: prefix = {:?} must be empty or `/`-separated names without `.`/`..` \
                 segments, leading or trailing `/`, e.g. \"apt\" or \"repos/apt\"",
                self.prefix
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "{at}: region = {:?} must be a region name such as \"us-east-1\"",
                self.region
            ));
        }
        self.validate_rest(&at)
    }

    fn validate_rest(&self, at: &str) -> Result<(), String> {
        if let Some(file) = &self.credentials_file
            && !file.is_absolute()
        {
            return Err(format!(
                "{at}: credentials-file = {:?} must be an absolute path, e.g. \
                 \"/etc/bess/s3-{}.credentials\"",
                file.display().to_string(),
                self.name
            ));
        }
        if self.multipart_threshold_mib == 0 {
            return Err(format!(
                "{at}: multipart-threshold-mib = 0 is not a size; use at least 1 (default 64)"
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(format!(
                "{at}: request-timeout-secs = 0 would fail every request; use at least 1 \
                 (default 30)"
            ));
        }
        if self.retry_timeout_secs == 0 {
            return Err(format!(
                "{at}: retry-timeout-secs = 0 would give up on the first failed request; use at \
                 least 1 (default 180)"
            ));
        }
        Ok(())
    }

    /// The key of `rel` in the bucket: `<prefix>/<rel>`.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

fn is_target_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

fn is_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || prefix.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(extra: &str) -> String {
        format!(
            "[[publish.target]]\ntype = \"s3\"\nname = \"mirror\"\nendpoint = \"http://127.0.0.1:8333\"\nbucket = \"apt\"\n{extra}"
        )
    }

    #[test]
    fn a_target_gets_its_defaults() {
        let settings = crate::config::Settings::parse(&target("")).unwrap();
        let t = &settings.publish.targets[0];
        assert_eq!(
            (t.region.as_str(), t.layout),
            ("us-east-1", TargetLayout::Objects)
        );
        assert_eq!(t.key("objects/x"), "objects/x");
        assert_eq!(t.gc_grace_hours, 168);
        let tree = crate::config::Settings::parse(&target("layout = \"tree\"")).unwrap();
        assert_eq!(tree.publish.targets[0].layout, TargetLayout::Tree);
    }

    #[test]
    fn secrets_in_bess_toml_are_refused_with_where_to_put_them() {
        let err = crate::config::Settings::parse(&target("secret-key = \"x\"")).unwrap_err();
        assert!(
            err.contains("secret-key") && err.contains("/etc/bess/s3-mirror.credentials"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (extra, named) in [
            ("prefix = \"/apt/\"", "prefix = \"/apt/\""),
            ("layout = \"flat\"", "flat"),
            (
                "credentials-file = \"s3.cred\"",
                "credentials-file = \"s3.cred\"",
            ),
        ] {
            let err = crate::config::Settings::parse(&target(extra)).unwrap_err();
            assert!(err.contains(named), "{extra}: {err}");
        }
        let err =
            crate::config::Settings::parse(&target("").replace("\"apt\"", "\"A\"")).unwrap_err();
        assert!(err.contains("bucket = \"A\""), "{err}");
        let twice = format!("{}\n{}", target(""), target(""));
        assert!(
            crate::config::Settings::parse(&twice)
                .unwrap_err()
                .contains("used twice")
        );
    }
}
