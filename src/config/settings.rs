//! `bess.toml`: channels, components, release metadata and ingest rules.

use super::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// The settings of one repository, as written in `bess.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Release pipeline, in order; uploads enter the first channel.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
    /// Archive areas packages may be published in.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Component used when an upload names none.
    #[serde(default = "default_component")]
    pub default_component: String,
    /// Version patterns that restrict a package to some dists when `--dist` is absent.
    #[serde(default, rename = "dist-rule")]
    pub dist_rules: Vec<DistRule>,
    /// What `Release` files say, and how long they stay valid.
    #[serde(default)]
    pub release: ReleaseSettings,
    /// How the indices are compressed.
    #[serde(default)]
    pub publish: PublishSettings,
    /// How `bess serve` listens and whom it lets in.
    #[serde(default)]
    pub serve: ServeSettings,
    /// Retention rules of `bess repo prune`, per channel (`[prune.<channel>]`).
    #[serde(default)]
    pub prune: std::collections::BTreeMap<String, PruneRule>,
    /// Vagrant boxes: download tokens.
    #[serde(default)]
    pub boxes: BoxSettings,
    /// What `bess repo ingest` (and an upload through `bess serve`) reads.
    #[serde(default)]
    pub ingest: IngestSettings,
    /// The drop directory of SCP/SFTP uploads (`bess incoming process`).
    #[serde(default)]
    pub incoming: IncomingSettings,
    /// The host's DNS and reverse-proxy files for environments.
    #[serde(default)]
    pub host: super::host::HostSettings,
    /// How environments' machines reach this repository.
    #[serde(default)]
    pub environments: super::host::EnvironmentSettings,
}

/// The `[ingest]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct IngestSettings {
    /// Largest package file read, in MiB. A package is read into memory
    /// whole, so a larger file is refused before its first byte is read.
    pub max_package_mib: u64,
}

impl Default for IngestSettings {
    fn default() -> IngestSettings {
        IngestSettings {
            max_package_mib: 2048,
        }
    }
}

/// The `[incoming]` table: the drop directory and where its uploads go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct IncomingSettings {
    /// The drop directory; relative paths are under the repository root.
    pub dir: std::path::PathBuf,
    /// Channel uploads enter; `None` means the first channel.
    pub channel: Option<String>,
    /// Component uploads are published in; `None` means `default-component`.
    pub component: Option<String>,
    /// Seconds a file's size and mtime must stay unchanged before it is taken.
    pub quiet_period_secs: u64,
    /// Move processed uploads to `processed/` instead of deleting them.
    pub keep_processed: bool,
    /// Public keys (binary or armored) one of which must sign each `.changes`.
    pub uploaders_keyring: Option<std::path::PathBuf>,
}

impl Default for IncomingSettings {
    fn default() -> IncomingSettings {
        IncomingSettings {
            dir: "incoming".into(),
            channel: None,
            component: None,
            quiet_period_secs: 10,
            keep_processed: false,
            uploaders_keyring: None,
        }
    }
}

/// A `[prune.<channel>]` table: how many versions `bess repo prune` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PruneRule {
    /// Newest versions kept of each package, per dist and architecture.
    pub keep: Option<u32>,
    /// Only versions placed longer ago than this many days may go.
    pub older_than_days: Option<u32>,
}

/// The `[boxes]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BoxSettings {
    /// Seconds a box URL of a catalog stays valid. It is checked when a
    /// download starts, so a slow download of a large box is never cut;
    /// it bounds how long a leaked URL works.
    pub token_ttl_secs: u64,
}

impl Default for BoxSettings {
    fn default() -> BoxSettings {
        BoxSettings {
            token_ttl_secs: 3600,
        }
    }
}

/// The `[serve]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServeSettings {
    /// Address and port, e.g. `0.0.0.0:8080`.
    pub listen: String,
    /// Open connections at most; a new one beyond takes the slot of the
    /// connection idle longest, or waits when every one has a request in flight.
    pub max_connections: usize,
    /// Seconds a client may take to send its request headers.
    pub header_timeout_secs: u64,
    /// Largest upload accepted, in MiB.
    pub max_upload_mib: u64,
    /// Per-channel IP allow-lists (CIDR), checked before authentication.
    pub allow: std::collections::BTreeMap<String, Vec<Cidr>>,
    /// Seconds an upload body may take to arrive.
    pub body_timeout_secs: u64,
    /// PEM certificate chain; with `tls-key`, serve HTTPS.
    pub tls_certificate: Option<std::path::PathBuf>,
    /// PEM private key of the certificate (mode 0600).
    pub tls_key: Option<std::path::PathBuf>,
    /// Memory for published files served from RAM (index files, small
    /// packages), in MiB; 0 reads every file from disk.
    pub file_cache_mib: u64,
    /// Base URL clients use (behind a reverse proxy), for the absolute URLs
    /// of box catalogs; by default they are built from the request's Host.
    pub public_url: Option<String>,
    /// Largest box upload accepted, in MiB (boxes are disk images).
    pub max_box_upload_mib: u64,
    /// Who may read `/metrics` (CIDR); empty means loopback only.
    pub metrics_allow: Vec<Cidr>,
    /// Reverse proxies (CIDR) whose `Forwarded` / `X-Forwarded-For` name
    /// the client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// Open connections from one address at most (trusted proxies exempt),
    /// so one host cannot take every connection `max-connections` allows.
    pub max_connections_per_address: usize,
    /// Virtual hosts: requests whose Host is a key get that channel's tree
    /// at `/` (`deb https://apt-prod.example.com bookworm main`).
    pub hosts: std::collections::BTreeMap<String, String>,
    /// Frontends only (`bess serve --from s3://…`): the primary's base URL,
    /// where uploads and API calls are redirected.
    pub primary: Option<String>,
    /// Frontends only: where pool objects and index files fetched from the
    /// store are kept.
    pub cache_dir: std::path::PathBuf,
    /// Frontends only: the most the cache may hold, in GiB; the least
    /// recently served files go first, and a file larger than half of it
    /// is streamed from the store (0: every pool and box file is).
    pub cache_max_gib: u64,
    /// Frontends only: seconds within which a new publication is served;
    /// the store's `InRelease` files and users are looked at twice per
    /// interval (HEAD requests only).
    pub reload_interval_secs: u64,
    /// Frontends only: the box-token key file (mode 0600), a copy of the
    /// primary's `keys/box-token.secret`, so that every frontend accepts
    /// the box URLs any of them hands out.
    pub box_token_key: Option<std::path::PathBuf>,
}

impl Default for ServeSettings {
    fn default() -> ServeSettings {
        ServeSettings {
            listen: "127.0.0.1:8080".into(),
            max_connections: 4096,
            header_timeout_secs: 10,
            max_upload_mib: 1024,
            allow: Default::default(),
            body_timeout_secs: 600,
            tls_certificate: None,
            tls_key: None,
            file_cache_mib: 128,
            public_url: None,
            max_box_upload_mib: 20480,
            metrics_allow: Vec::new(),
            trusted_proxies: Vec::new(),
            max_connections_per_address: 256,
            hosts: Default::default(),
            primary: None,
            cache_dir: "/var/cache/bess/frontend".into(),
            cache_max_gib: 10,
            reload_interval_secs: 10,
            box_token_key: None,
        }
    }
}

impl ServeSettings {
    /// What the primary and the frontends check alike.
    pub(super) fn check_common(&self) -> Result<(), String> {
        if self.tls_certificate.is_some() != self.tls_key.is_some() {
            return Err("[serve] needs both tls-certificate and tls-key, or neither".into());
        }
        check_url("[serve] public-url", self.public_url.as_deref())?;
        check_url("[serve] primary", self.primary.as_deref())?;
        if self.reload_interval_secs == 0 {
            return Err("[serve] reload-interval-secs must be at least 1".into());
        }
        self.check_connection_caps()
    }

    fn check_connection_caps(&self) -> Result<(), String> {
        let (all, each) = (self.max_connections, self.max_connections_per_address);
        if all == 0 || each == 0 || each >= all {
            return Err(format!(
                "[serve] max-connections-per-address = {each} must be at least 1 and below \
                 max-connections = {all}, or one address could take every connection"
            ));
        }
        Ok(())
    }

    /// Whether `ip` may reach `channel` (true when the channel has no allow-list).
    pub fn allows(&self, channel: &str, ip: std::net::IpAddr) -> bool {
        self.allow
            .get(channel)
            .is_none_or(|nets| nets.iter().any(|net| net.contains(ip)))
    }
}

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr[/prefix]`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(format!("`{text}`: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let bits = |ip: std::net::IpAddr| -> (u128, u8) {
            match ip {
                std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            other => other,
        };
        let ((net, width), (candidate, other)) = (bits(self.addr), bits(ip));
        if width != other {
            return false;
        }
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        net & mask == candidate & mask
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The `[release]` table: fields of the published `Release` files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReleaseSettings {
    /// `Origin:`; apt refuses an update when it changes, so set it once.
    pub origin: String,
    /// `Label:`; same rule as `origin`.
    pub label: String,
    /// `Suite:`; empty means the dist's codename.
    pub suite: String,
    /// Days until `Valid-Until`; 0 leaves the field out.
    pub valid_days: u32,
    /// A dist is signed again (new Date and Valid-Until) once its
    /// Valid-Until is this close; `None` means a third of `valid_days`.
    pub refresh_before_days: Option<u32>,
    /// Publications whose by-hash files are kept, so clients midway
    /// through an update never see a hash mismatch.
    pub by_hash_generations: u32,
    /// Store the uncompressed `Packages` beside `.gz` and `.xz`. Release
    /// always lists it; like Debian's mirrors, bess does not store it by
    /// default, since apt fetches a compressed index.
    pub uncompressed_index: bool,
    /// Checksums listed in `Release` and in every `Packages` stanza. Every
    /// digit is downloaded by every client on every update and does not
    /// compress, so the default is Debian's archive's: MD5 and SHA-256.
    pub hashes: Vec<Checksum>,
}

impl ReleaseSettings {
    /// How close a Valid-Until may come before the dist is signed again.
    pub fn refresh_before(&self) -> std::time::Duration {
        // In seconds, so that a short valid-days keeps a margin above zero.
        let seconds = match self.refresh_before_days {
            Some(days) => u64::from(days) * 86_400,
            None => u64::from(self.valid_days) * 86_400 / 3,
        };
        std::time::Duration::from_secs(seconds)
    }

    fn check_refresh(&self) -> Result<(), String> {
        match self.refresh_before_days {
            Some(0) if self.valid_days > 0 => Err(
                "[release] refresh-before-days = 0 would sign Release files again only once apt \
                 refuses them; use at least 1 (the default is a third of valid-days)"
                    .into(),
            ),
            Some(days) if self.valid_days > 0 && days >= self.valid_days => Err(format!(
                "[release] refresh-before-days = {days} must be below valid-days = {}, or \
                 every publication would be due for refreshing at once; the default is a third \
                 of valid-days",
                self.valid_days
            )),
            _ => Ok(()),
        }
    }
}

/// A checksum kind apt reads from `Release` files and `Packages` stanzas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Checksum {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Checksum {
    /// Every kind, in the order Release files list them.
    pub const ALL: [Checksum; 4] = [
        Checksum::Md5,
        Checksum::Sha1,
        Checksum::Sha256,
        Checksum::Sha512,
    ];

    /// The name of its section in `Release`, which is also its `by-hash`
    /// directory.
    pub fn release_name(self) -> &'static str {
        match self {
            Checksum::Md5 => "MD5Sum",
            Checksum::Sha1 => "SHA1",
            Checksum::Sha256 => "SHA256",
            Checksum::Sha512 => "SHA512",
        }
    }

    /// The name of its field in a `Packages` stanza (Debian spells MD5
    /// differently there).
    pub fn stanza_name(self) -> &'static str {
        match self {
            Checksum::Md5 => "MD5sum",
            other => other.release_name(),
        }
    }

    /// Reads a name as `bess.toml` may write it (`MD5Sum`, `md5`, `sha256`, …).
    pub fn parse(name: &str) -> Option<Checksum> {
        let short = |c: &Checksum| c.release_name().trim_end_matches("Sum");
        let name = name
            .strip_suffix("sum")
            .or(name.strip_suffix("Sum"))
            .unwrap_or(name);
        Checksum::ALL
            .into_iter()
            .find(|c| short(c).eq_ignore_ascii_case(name))
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Checksum, D::Error> {
        let text = String::deserialize(deserializer)?;
        Checksum::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "[release] hashes: `{text}` is not a checksum apt reads; use MD5Sum, SHA1, SHA256 or SHA512"
            ))
        })
    }
}

/// The `[publish]` table: how hard the indices are compressed, and where
/// else each publication is copied.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PublishSettings {
    /// liblzma preset of `Packages.xz`, 0 to 9 (6 is xz's default, and
    /// Debian's archive's and reprepro's).
    pub xz_preset: u32,
    /// zlib level of `Packages.gz`, 1 to 9.
    pub gzip_level: u32,
    /// Remote stores (`[[publish.target]]`) each publication is uploaded to.
    #[serde(rename = "target")]
    pub targets: Vec<super::targets::PublishTarget>,
}

impl Default for PublishSettings {
    fn default() -> PublishSettings {
        PublishSettings {
            xz_preset: 6,
            gzip_level: 6,
            targets: Vec::new(),
        }
    }
}

impl Default for ReleaseSettings {
    fn default() -> ReleaseSettings {
        ReleaseSettings {
            origin: "bess".into(),
            label: "bess".into(),
            suite: String::new(),
            valid_days: 30,
            refresh_before_days: None,
            by_hash_generations: 3,
            uncompressed_index: false,
            hashes: vec![Checksum::Md5, Checksum::Sha256],
        }
    }
}

/// "Versions containing this text are built for these dists only."
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DistRule {
    pub version_contains: String,
    pub dists: Vec<String>,
}

fn default_channels() -> Vec<String> {
    vec!["preprod".into(), "prod".into()]
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

fn default_component() -> String {
    "main".into()
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            channels: default_channels(),
            components: default_components(),
            default_component: default_component(),
            dist_rules: Vec::new(),
            release: ReleaseSettings::default(),
            publish: PublishSettings::default(),
            serve: ServeSettings::default(),
            prune: Default::default(),
            boxes: BoxSettings::default(),
            ingest: IngestSettings::default(),
            incoming: IncomingSettings::default(),
            host: Default::default(),
            environments: Default::default(),
        }
    }
}

impl Settings {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates the text of a `bess.toml`.
    pub fn parse(text: &str) -> Result<Settings, String> {
        super::targets::refuse_secrets(text)?;
        let settings: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
        settings.validate()?;
        Ok(settings)
    }

    /// The dists a version is restricted to by the first matching rule.
    pub fn dists_for_version(&self, version: &str) -> Option<&[String]> {
        self.dist_rules
            .iter()
            .find(|rule| version.contains(&rule.version_contains))
            .map(|rule| rule.dists.as_slice())
    }

    fn validate(&self) -> Result<(), String> {
        check_names("channels", &self.channels)?;
        check_names("components", &self.components)?;
        if !self.components.contains(&self.default_component) {
            return Err(format!(
                "default-component `{}` is not in components {:?}; add it to components",
                self.default_component, self.components
            ));
        }
        let release = &self.release;
        for (key, value) in [
            ("origin", &release.origin),
            ("label", &release.label),
            ("suite", &release.suite),
        ] {
            if value.chars().any(|c| c.is_control()) || (key != "suite" && value.trim().is_empty())
            {
                return Err(format!(
                    "[release] {key} = {value:?} must be one non-empty line"
                ));
            }
        }
        self.serve.check_common()?;
        self.host.validate()?;
        self.environments.validate()?;
        self.check_hosts()?;
        if self.boxes.token_ttl_secs == 0 {
            return Err("[boxes] token-ttl-secs must be at least 1".into());
        }
        if self.ingest.max_package_mib == 0 {
            return Err("[ingest] max-package-mib must be at least 1".into());
        }
        if release.by_hash_generations == 0 {
            return Err("[release] by-hash-generations must be at least 1".into());
        }
        check_hashes(&release.hashes)?;
        release.check_refresh()?;
        self.publish.validate()?;
        for rule in &self.dist_rules {
            if rule.version_contains.is_empty() || rule.dists.is_empty() {
                return Err(
                    "every [[dist-rule]] needs a non-empty version-contains and at least one dist"
                        .into(),
                );
            }
        }
        self.validate_prune()?;
        self.check_incoming()
    }

    fn check_incoming(&self) -> Result<(), String> {
        let incoming = &self.incoming;
        if let Some(channel) = &incoming.channel
            && !self.channels.contains(channel)
        {
            return Err(format!(
                "[incoming] channel = \"{channel}\" is not in channels {:?}",
                self.channels
            ));
        }
        if let Some(component) = &incoming.component
            && !self.components.contains(component)
        {
            return Err(format!(
                "[incoming] component = \"{component}\" is not in components {:?}",
                self.components
            ));
        }
        if incoming.dir.as_os_str().is_empty() {
            return Err("[incoming] dir must name a directory, e.g. \"incoming\"".into());
        }
        Ok(())
    }

    fn check_hosts(&self) -> Result<(), String> {
        for (host, channel) in &self.serve.hosts {
            if !self.channels.contains(channel) {
                return Err(format!(
                    "[serve.hosts] \"{host}\" = \"{channel}\": `{channel}` is not in channels {:?}",
                    self.channels
                ));
            }
            if !is_host_name(host) || host.to_ascii_lowercase() != *host {
                return Err(format!(
                    "[serve.hosts] \"{host}\" is not a host name: write it in lowercase, without \
                     scheme, port or path, e.g. \"apt-prod.example.com\""
                ));
            }
        }
        Ok(())
    }

    fn validate_prune(&self) -> Result<(), String> {
        for (channel, rule) in &self.prune {
            if !self.channels.contains(channel) {
                return Err(format!(
                    "[prune.{channel}]: `{channel}` is not in channels {:?}; fix the table name",
                    self.channels
                ));
            }
            if rule.keep.is_none() && rule.older_than_days.is_none() {
                return Err(format!(
                    "[prune.{channel}] needs `keep = N` (versions to keep), `older-than-days = D`, or both"
                ));
            }
            if rule.keep == Some(0) {
                return Err(format!(
                    "[prune.{channel}] keep = 0 would prune every version; keep at least 1 \
                     (`bess repo remove` withdraws the last one)"
                ));
            }
        }
        Ok(())
    }
}

impl PublishSettings {
    fn validate(&self) -> Result<(), String> {
        if self.xz_preset > 9 {
            return Err(format!(
                "[publish] xz-preset = {} is not a liblzma preset; use 0 (fastest) to 9 (smallest), 6 by default",
                self.xz_preset
            ));
        }
        if !(1..=9).contains(&self.gzip_level) {
            return Err(format!(
                "[publish] gzip-level = {} is not a zlib level; use 1 (fastest) to 9 (smallest), 6 by default",
                self.gzip_level
            ));
        }
        super::targets::validate(&self.targets)
    }
}

/// SHA-256 names every index file in the by-hash store, and apt needs at
/// least one strong hash; a kind listed twice is a typo.
fn check_hashes(hashes: &[Checksum]) -> Result<(), String> {
    let names: Vec<&str> = hashes.iter().map(|h| h.release_name()).collect();
    if !hashes.contains(&Checksum::Sha256) {
        return Err(format!(
            "[release] hashes = {names:?} must include SHA256 (bess names index files by it, and apt needs a strong hash)"
        ));
    }
    for (i, hash) in hashes.iter().enumerate() {
        if hashes[..i].contains(hash) {
            return Err(format!(
                "[release] hashes = {names:?} lists {} twice",
                hash.release_name()
            ));
        }
    }
    Ok(())
}

/// Whether `host` is a DNS name: dot-separated labels of letters, digits
/// and inner hyphens, 1 to 63 characters each, 253 in all.
pub fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A base URL handed to clients or written into files (`[serve]
/// public-url`, `[environments] repo-url`…): a scheme and a host, nothing
/// a URL could be confused by.
pub(super) fn check_url(key: &str, url: Option<&str>) -> Result<(), String> {
    let Some(url) = url else {
        return Ok(());
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let plain = rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~:/[]%".contains(c))
    });
    if plain {
        return Ok(());
    }
    Err(format!(
        "{key} = {url:?} must be an http:// or https:// URL without credentials, query or spaces, e.g. \"https://repo.example.com\""
    ))
}

/// Channel and component names become directories and URL segments.
fn check_names(key: &str, names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err(format!("`{key}` must list at least one name"));
    }
    for (i, name) in names.iter().enumerate() {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid
            || matches!(
                name.as_str(),
                "api" | "env" | "key.gpg" | "metrics" | "other"
            )
        {
            return Err(format!(
                "`{key}` entry `{name}` is not a valid name: use letters, digits, `-`, `_`, `.`, starting with a letter or digit (and not `api`, `env`, `metrics` or `other`, which bess serve and /metrics use)"
            ));
        }
        if names[..i].contains(name) {
            return Err(format!("`{key}` lists `{name}` twice"));
        }
    }
    Ok(())
}

/// The `bess.toml` written by `bess init`: every default spelled out and explained.
pub const TEMPLATE: &str = r#"# bess repository settings. See `bess --help`.

# The release pipeline, in order. Uploads enter the first channel;
# `bess repo promote` copies exact versions to the next one.
channels = ["preprod", "prod"]

# Archive areas (the "main" in `deb URL bookworm main`).
components = ["main"]
default-component = "main"

# Fields of the published Release files. apt refuses an update when
# Origin or Label change, so choose them once.
[release]
origin = "bess"
label = "bess"
# suite = ""               # empty: the dist's codename
valid-days = 30            # Valid-Until = Date + 30 days; 0 = no Valid-Until
# refresh-before-days = 10 # signed again this close to Valid-Until (bess serve, bess repo refresh --due); default valid-days / 3
by-hash-generations = 3    # publications whose index files stay reachable by hash
uncompressed-index = false # also store the uncompressed Packages (always listed in Release)
# Checksums in Release and in every Packages stanza: Debian's archive lists
# MD5Sum and SHA256. Add "SHA1" or "SHA512" only for clients that need them:
# every digit is downloaded on every update and does not compress.
# Changes take effect at the next `bess repo publish --refresh`.
hashes = ["MD5Sum", "SHA256"]

# Compression of Packages.xz and Packages.gz (see the README for what each
# level costs). Only the chunks of an index that changed are compressed
# again; a change here takes effect at the next `bess repo publish --refresh`.
[publish]
xz-preset = 6              # liblzma preset, 0-9 (xz's default, as Debian's archive)
gzip-level = 6             # zlib level, 1-9
# Copy each publication to an S3-compatible bucket too (credentials from
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a 0600 credentials-file;
# never here). See conf/bess.toml in bess's documentation for every key.
# [[publish.target]]
# type = "s3"
# name = "mirror"
# endpoint = "https://s3.eu-west-1.amazonaws.com"
# bucket = "apt-example"
# prefix = "bess"

# bess serve: where it listens and who may connect.
[serve]
listen = "127.0.0.1:8080"
max-connections = 4096
max-connections-per-address = 256   # per client address (trusted proxies exempt)
header-timeout-secs = 10
max-upload-mib = 1024
body-timeout-secs = 600
file-cache-mib = 128       # published files kept in memory (files up to 1/8 of it)
max-box-upload-mib = 20480
# public-url = "https://repo.example.com"   # behind a reverse proxy: base of bess.sources and box URLs
# HTTPS (rustls): both PEM files; the key must be mode 0600.
# tls-certificate = "/etc/bess/tls/fullchain.pem"
# tls-key = "/etc/bess/tls/privkey.pem"
# Behind a reverse proxy, list its address so that the client address
# (for the brake on failed logins, allow-lists and logs) is taken from
# X-Forwarded-For / Forwarded; from anyone else those headers are ignored.
# trusted-proxies = ["127.0.0.1/32"]
# Who may read /metrics (Prometheus text, no login); default: loopback only.
# metrics-allow = ["127.0.0.1/32", "10.0.5.0/24"]
# A virtual host per channel: that channel's tree at / for requests to
# the name (`deb https://apt-prod.example.com bookworm main`); the
# /<channel>/ paths keep working on every name.
# [serve.hosts]
# "apt-prod.example.com" = "prod"
# Per-channel IP allow-lists, checked before authentication:
# [serve.allow]
# prod = ["10.0.0.0/8", "192.168.1.0/24"]

# `bess repo prune` keeps the newest `keep` versions of each package in
# each dist of a channel (versions pinned with `bess repo pin` always stay);
# with older-than-days, a version also must have been placed that many
# days ago to go. `bess repo gc` then frees the bytes.
# [prune.preprod]
# keep = 5
# [prune.prod]
# keep = 10
# older-than-days = 90
# Vagrant boxes: each box URL of a catalog carries a signed token that
# grants its user that file; it must be used within this many seconds.
[boxes]
token-ttl-secs = 3600

# bess repo ingest, and uploads through bess serve: a package file is read
# into memory whole, so a larger one is refused before it is read (MiB).
[ingest]
max-package-mib = 2048

# The drop directory of SCP/SFTP uploads: `bess incoming process`, and
# `bess serve` while the directory exists, ingest what is dropped there.
# incoming/<dist>/ targets one dist, the top level every dist (dist rules
# apply). Accepted uploads are deleted (or moved to processed/), refused
# ones moved to rejected/ with a .reason file.
[incoming]
dir = "incoming"           # relative to the repository root
quiet-period-secs = 10     # a file is taken once unchanged this long
keep-processed = false
# channel = "preprod"      # default: the first channel
# component = "main"       # default: default-component
# uploaders-keyring = "/etc/bess/uploaders.gpg"   # every .changes must be signed by one of these keys

# Environments (`bess platform`, `bess env`): machines install packages,
# boxes and the signing key from this URL. Default: bess serve's port at
# the host's address on the platform's network (the first address of its
# --ip-range), http or https as [serve] says.
[environments]
# repo-url = "http://10.77.0.1:8080"

# The host's DNS and reverse proxy for environments. `bess host
# bind-proxy PLATFORM ENV` writes a bind zone per platform and a proxy file
# per environment into these directories, checks each with the real tool,
# replaces the old file atomically, and only then runs the reload command.
[host]
proxy = "nginx"                  # or "apache"
proxy-address = "127.0.0.1"      # what environments' names resolve to: where the proxy listens
proxy-port = 80                  # the proxy's port for environments' names
# serve-url = "http://127.0.0.1:8080"   # where the proxy reaches bess serve for homepages; default: [serve] listen
bind-zone-dir = "/var/lib/bind/bess"             # <platform>.<domain>.zone files
bind-include = "/var/lib/bind/bess/named.conf"   # once: include "/var/lib/bind/bess/named.conf"; in named.conf.local
nginx-sites-dir = "/etc/nginx/bess"              # once: include /etc/nginx/bess/*.conf; in http {}
apache-sites-dir = "/etc/apache2/bess"           # once: IncludeOptional /etc/apache2/bess/*.conf
apache-modules-dir = "/usr/lib/apache2/modules"  # loaded by the configuration that checks a candidate
bind-reload = ["rndc", "reload"]                 # after a zone passed its checks; [] runs nothing
# proxy-reload = ["nginx", "-s", "reload"]       # default: nginx -s reload, or apache2ctl graceful; [] runs nothing
# The checking tools: a path, or a name looked up in PATH, /usr/sbin and /sbin.
named-checkzone = "named-checkzone"
named-checkconf = "named-checkconf"
nginx = "nginx"
apache2 = "apache2"

# Without --dist, a package is published in every dist of dists.list,
# unless its version matches a rule below (first match wins).
# [[dist-rule]]
# version-contains = "+deb12"
# dists = ["bookworm"]
#
# [[dist-rule]]
# version-contains = "~jammy"
# dists = ["jammy"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_defaults() {
        let settings: Settings = toml::from_str(TEMPLATE).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.channels, ["preprod", "prod"]);
        assert_eq!(settings.default_component, "main");
        let (host, default) = (&settings.host, super::super::HostSettings::default());
        assert_eq!(
            format!("{host:?}"),
            format!("{default:?}"),
            "[host] as written"
        );
        assert!(settings.environments.repo_url.is_none());
    }

    #[test]
    fn refresh_margin_is_a_third_of_validity_by_default_and_never_zero() {
        let parse = |text: &str| Settings::parse(&format!("[release]\n{text}\n"));
        let day = 86_400;
        let default = parse("valid-days = 30").unwrap();
        assert_eq!(default.release.refresh_before().as_secs(), 10 * day);
        // Whole days would round a 2-day validity's margin down to zero.
        let short = parse("valid-days = 2").unwrap();
        assert_eq!(short.release.refresh_before().as_secs(), 2 * day / 3);
        let zero = parse("valid-days = 30\nrefresh-before-days = 0").unwrap_err();
        assert!(zero.contains("refresh-before-days = 0"), "{zero}");
        let wide = parse("valid-days = 30\nrefresh-before-days = 30").unwrap_err();
        assert!(wide.contains("must be below valid-days = 30"), "{wide}");
        assert!(parse("valid-days = 0").is_ok());
    }

    #[test]
    fn first_matching_rule_wins() {
        let settings: Settings = toml::from_str(
            "[[dist-rule]]\nversion-contains = \"+deb12\"\ndists = [\"bookworm\"]\n\
             [[dist-rule]]\nversion-contains = \"+deb\"\ndists = [\"bullseye\"]\n",
        )
        .unwrap();
        assert_eq!(
            settings.dists_for_version("8.2.7-1+deb12u1").unwrap(),
            ["bookworm"]
        );
        assert_eq!(
            settings.dists_for_version("1.0+deb11u2").unwrap(),
            ["bullseye"]
        );
        assert!(settings.dists_for_version("1.0-1").is_none());
    }

    #[test]
    fn cidr_allow_lists() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        let settings: Settings =
            toml::from_str("[serve.allow]\nprod = [\"127.0.0.0/8\"]\n").unwrap();
        assert!(settings.serve.allows("prod", "127.0.0.1".parse().unwrap()));
        assert!(
            !settings
                .serve
                .allows("prod", "192.168.0.1".parse().unwrap())
        );
        assert!(
            settings
                .serve
                .allows("preprod", "192.168.0.1".parse().unwrap())
        );
    }

    #[test]
    fn prune_rules_are_checked() {
        let settings: Settings =
            toml::from_str("[prune.preprod]\nkeep = 5\n[prune.prod]\nolder-than-days = 30\n")
                .unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.prune["preprod"].keep, Some(5));
        for (text, complaint) in [
            ("[prune.staging]\nkeep = 5\n", "not in channels"),
            ("[prune.prod]\n", "needs `keep = N`"),
            ("[prune.prod]\nkeep = 0\n", "keep at least 1"),
        ] {
            let settings: Settings = toml::from_str(text).unwrap();
            let error = settings.validate().unwrap_err();
            assert!(error.contains(complaint), "{text}: {error}");
        }
        assert!(toml::from_str::<Settings>("[prune.prod]\nkeep = -1\n").is_err());
        assert!(toml::from_str::<Settings>("[prune.prod]\nkeeep = 1\n").is_err());
    }

    #[test]
    fn incoming_names_a_known_channel_and_component() {
        let settings: Settings = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(settings.incoming.quiet_period_secs, 10);
        assert!(!settings.incoming.keep_processed);
        assert_eq!(settings.incoming.dir, std::path::Path::new("incoming"));
        for (text, complaint) in [
            ("[incoming]\nchannel = \"staging\"\n", "not in channels"),
            ("[incoming]\ncomponent = \"contrib\"\n", "not in components"),
            ("[incoming]\ndir = \"\"\n", "must name a directory"),
        ] {
            let settings: Settings = toml::from_str(text).unwrap();
            let error = settings.validate().unwrap_err();
            assert!(error.contains(complaint), "{text}: {error}");
        }
        let settings: Settings = toml::from_str("[incoming]\nchannel = \"prod\"\n").unwrap();
        settings.validate().unwrap();
    }

    #[test]
    fn hashes_default_to_debians_and_bad_ones_name_the_value() {
        let defaults = Settings::default();
        assert_eq!(defaults.release.hashes, [Checksum::Md5, Checksum::Sha256]);
        let more: Settings =
            toml::from_str("[release]\nhashes = [\"md5sum\", \"SHA256\", \"sha512\", \"SHA1\"]\n")
                .unwrap();
        more.validate().unwrap();
        assert_eq!(more.release.hashes.len(), 4);
        let unknown = toml::from_str::<Settings>("[release]\nhashes = [\"SHA3\"]\n").unwrap_err();
        assert!(
            unknown.to_string().contains("`SHA3` is not a checksum"),
            "{unknown}"
        );
        for (text, complaint) in [
            ("[release]\nhashes = [\"MD5Sum\"]\n", "must include SHA256"),
            (
                "[release]\nhashes = [\"SHA256\", \"sha256\"]\n",
                "lists SHA256 twice",
            ),
        ] {
            let settings: Settings = toml::from_str(text).unwrap();
            let error = settings.validate().unwrap_err();
            assert!(error.contains(complaint), "{text}: {error}");
        }
    }

    #[test]
    fn compression_levels_are_checked() {
        assert_eq!(Settings::default().publish.xz_preset, 6);
        for (text, complaint) in [
            (
                "[publish]\nxz-preset = 10\n",
                "xz-preset = 10 is not a liblzma preset",
            ),
            (
                "[publish]\ngzip-level = 0\n",
                "gzip-level = 0 is not a zlib level",
            ),
        ] {
            let settings: Settings = toml::from_str(text).unwrap();
            let error = settings.validate().unwrap_err();
            assert!(error.contains(complaint), "{text}: {error}");
        }
        let fast: Settings = toml::from_str("[publish]\nxz-preset = 0\ngzip-level = 1\n").unwrap();
        fast.validate().unwrap();
    }

    #[test]
    fn unknown_key_is_refused() {
        assert!(toml::from_str::<Settings>("chanels = [\"a\"]").is_err());
    }

    #[test]
    fn traversal_channel_is_refused() {
        let settings = Settings {
            channels: vec!["..".into()],
            ..Settings::default()
        };
        assert!(settings.validate().is_err());
    }
}
