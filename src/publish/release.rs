//! `Release` files: the checksummed table of contents apt verifies.

use super::checksums::MultiHasher;
use crate::config::Checksum;
use std::fmt::Write;
use std::time::SystemTime;

/// The fields of a dist's `Release` that are not checksums.
#[derive(Debug, Clone)]
pub struct ReleaseFields {
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub codename: String,
    pub date: SystemTime,
    pub valid_until: Option<SystemTime>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub description: Option<String>,
    /// The checksums listed (Release lists them in Debian's order).
    pub hashes: Vec<Checksum>,
}

/// Size and checksums of one file listed in a `Release`; a kind that is
/// not listed is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSums {
    /// Path relative to `dists/<dist>/`.
    pub path: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
}

impl FileSums {
    /// The `hashes` of `data`, listed under `path`.
    pub fn of(path: String, data: &[u8], hashes: &[Checksum]) -> FileSums {
        let mut hasher = MultiHasher::new(hashes);
        hasher.update(data);
        let d = hasher.finish();
        FileSums {
            path,
            size: d.size,
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
            sha512: d.sha512,
        }
    }

    /// The checksum of one kind (empty when not listed).
    pub fn get(&self, kind: Checksum) -> &str {
        match kind {
            Checksum::Md5 => &self.md5,
            Checksum::Sha1 => &self.sha1,
            Checksum::Sha256 => &self.sha256,
            Checksum::Sha512 => &self.sha512,
        }
    }

    fn slot(&mut self, kind: Checksum) -> &mut String {
        match kind {
            Checksum::Md5 => &mut self.md5,
            Checksum::Sha1 => &mut self.sha1,
            Checksum::Sha256 => &mut self.sha256,
            Checksum::Sha512 => &mut self.sha512,
        }
    }

    /// The kinds listed for this file.
    pub fn kinds(&self) -> Vec<Checksum> {
        Checksum::ALL
            .into_iter()
            .filter(|k| !self.get(*k).is_empty())
            .collect()
    }

    /// The hash of each listed kind, with the by-hash directory name apt
    /// uses for it: apt fetches the strongest listed, so each needs its copy.
    pub fn by_hash(&self) -> Vec<(&'static str, &str)> {
        self.kinds()
            .into_iter()
            .map(|k| (k.release_name(), self.get(k)))
            .collect()
    }
}

/// Renders `dists/<dist>/Release`.
pub fn render(fields: &ReleaseFields, files: &[FileSums]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Origin: {}", fields.origin);
    let _ = writeln!(out, "Label: {}", fields.label);
    let _ = writeln!(out, "Suite: {}", fields.suite);
    let _ = writeln!(out, "Codename: {}", fields.codename);
    let _ = writeln!(out, "Date: {}", rfc1123(fields.date));
    if let Some(until) = fields.valid_until {
        let _ = writeln!(out, "Valid-Until: {}", rfc1123(until));
    }
    let _ = writeln!(out, "Acquire-By-Hash: yes");
    // `all` packages are inside each architecture's index, not in binary-all.
    let _ = writeln!(out, "No-Support-for-Architecture-all: Packages");
    let _ = writeln!(out, "Architectures: {}", fields.architectures.join(" "));
    let _ = writeln!(out, "Components: {}", fields.components.join(" "));
    if let Some(description) = &fields.description {
        let _ = writeln!(out, "Description: {description}");
    }
    let width = files
        .iter()
        .map(|f| f.size.to_string().len())
        .max()
        .unwrap_or(1);
    for kind in Checksum::ALL.iter().filter(|k| fields.hashes.contains(k)) {
        let _ = writeln!(out, "{}:", kind.release_name());
        for file in files {
            let _ = writeln!(
                out,
                " {} {:>width$} {}",
                file.get(*kind),
                file.size,
                file.path
            );
        }
    }
    out
}

/// Renders the small per-directory `Release` of one `binary-<arch>` index.
pub fn render_index_release(fields: &ReleaseFields, component: &str, arch: &str) -> String {
    format!(
        "Archive: {}\nOrigin: {}\nLabel: {}\nAcquire-By-Hash: yes\nComponent: {component}\nArchitecture: {arch}\n",
        fields.suite, fields.origin, fields.label
    )
}

/// Reads the files listed in a `Release` text, with every checksum kind.
/// Returns `None` if the text lists files inconsistently across sections.
pub fn parse_files(text: &str) -> Option<Vec<FileSums>> {
    let mut files: Vec<FileSums> = Vec::new();
    let mut section = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(' ') {
            let index: Checksum = section?;
            let mut parts = rest.split_whitespace();
            let (hash, size, path) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?);
            let file = match files.iter_mut().find(|f| f.path == path) {
                Some(file) => file,
                None => {
                    files.push(FileSums {
                        path: path.to_string(),
                        size,
                        md5: String::new(),
                        sha1: String::new(),
                        sha256: String::new(),
                        sha512: String::new(),
                    });
                    files.last_mut()?
                }
            };
            if file.size != size {
                return None;
            }
            *file.slot(index) = hash.to_string();
        } else {
            let name = line.split(':').next().unwrap_or("");
            section = Checksum::ALL.into_iter().find(|k| k.release_name() == name);
        }
    }
    Some(files)
}

/// Reads one simple field of a `Release` text.
pub fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

/// `text` (a Release) with a new `Date` and `Valid-Until` and nothing else
/// changed: the same fields in the same order, the same files and sums.
pub fn redate(text: &str, date: SystemTime, valid_until: Option<SystemTime>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("Valid-Until:") {
            continue;
        }
        if line.starts_with("Date:") {
            let _ = writeln!(out, "Date: {}", rfc1123(date));
            if let Some(until) = valid_until {
                let _ = writeln!(out, "Valid-Until: {}", rfc1123(until));
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// RFC 1123 date in UTC, the form apt expects in `Date` and `Valid-Until`
/// (`Sun, 22 Nov 2026 00:14:15 UTC`: HTTP's date with Debian's zone name).
pub fn rfc1123(time: SystemTime) -> String {
    let http = httpdate::fmt_http_date(time);
    match http.strip_suffix("GMT") {
        Some(date) => format!("{date}UTC"),
        None => http,
    }
}

/// Parses the dates [`rfc1123`] writes (and the same with `GMT`).
pub fn parse_rfc1123(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let http = match text.strip_suffix("UTC") {
        Some(date) => format!("{date}GMT"),
        None => text.to_string(),
    };
    httpdate::parse_http_date(&http).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn redating_changes_only_the_dates() {
        let old = "Origin: bess\nDate: Thu, 01 Jan 1970 00:00:00 UTC\nValid-Until: Sat, 31 Jan 1970 00:00:00 UTC\nAcquire-By-Hash: yes\nSHA256:\n 00 1 main/binary-amd64/Packages\n";
        let now = UNIX_EPOCH + Duration::from_secs(86_400);
        let new = redate(old, now, Some(now + Duration::from_secs(86_400)));
        assert_eq!(
            new,
            "Origin: bess\nDate: Fri, 02 Jan 1970 00:00:00 UTC\nValid-Until: Sat, 03 Jan 1970 00:00:00 UTC\nAcquire-By-Hash: yes\nSHA256:\n 00 1 main/binary-amd64/Packages\n"
        );
        assert!(!redate(old, now, None).contains("Valid-Until"));
    }

    #[test]
    fn dates_are_rfc1123_utc() {
        assert_eq!(rfc1123(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_306_455);
        assert_eq!(rfc1123(t), "Sun, 22 Nov 2026 00:14:15 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc1123(leap), "Tue, 29 Feb 2000 00:00:00 UTC");
        for time in [UNIX_EPOCH, t, leap] {
            assert_eq!(parse_rfc1123(&rfc1123(time)), Some(time));
        }
    }

    #[test]
    fn render_then_parse_round_trips() {
        let fields = ReleaseFields {
            origin: "o".into(),
            label: "l".into(),
            suite: "bookworm".into(),
            codename: "bookworm".into(),
            date: UNIX_EPOCH,
            valid_until: None,
            architectures: vec!["amd64".into()],
            components: vec!["main".into()],
            description: None,
            hashes: vec![Checksum::Sha256, Checksum::Md5],
        };
        let files = vec![
            FileSums::of("main/binary-amd64/Packages".into(), b"abc", &fields.hashes),
            FileSums::of(
                "main/binary-amd64/Packages.gz".into(),
                &[0u8; 1000],
                &fields.hashes,
            ),
        ];
        let text = render(&fields, &files);
        assert!(
            text.contains(
                "\nMD5Sum:\n 900150983cd24fb0d6963f7d28e17f72    3 main/binary-amd64/Packages\n"
            ),
            "{text}"
        );
        assert!(text.contains("\nSHA256:\n ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad    3 main/binary-amd64/Packages\n"), "{text}");
        assert!(!text.contains("SHA1") && !text.contains("SHA512"), "{text}");
        assert!(
            text.find("MD5Sum:") < text.find("SHA256:"),
            "Debian's order: {text}"
        );
        assert_eq!(parse_files(&text).unwrap(), files);
        assert_eq!(
            files[0].by_hash(),
            [
                ("MD5Sum", files[0].md5.as_str()),
                ("SHA256", files[0].sha256.as_str())
            ]
        );
        assert_eq!(field(&text, "Codename"), Some("bookworm"));
    }
}
