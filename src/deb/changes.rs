//! A Debian upload description (`.changes`, deb-changes(5)): which files
//! make the upload, with the size and SHA-256 each must have.
//!
//! Only the text is read here (signed or not, the caller extracts it);
//! the paragraph goes through the same strict parser as a package's
//! control file. The file names are checked as plain names, since the
//! incoming processor opens them beside the `.changes`.

use super::control::{Control, ControlError};
use super::escape::Escaped;

/// Why a `.changes` text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangesError {
    #[error("{reason}")]
    Paragraph { reason: ControlError },
    #[error(
        "it has no `Checksums-Sha256` field; build the upload with dpkg-genchanges (dpkg 1.15.8 or later), which writes it"
    )]
    NoSha256 {},
    #[error(
        "field `{field}`, line `{line}`: expected `{expected}`",
        line = Escaped(.line)
    )]
    BadLine {
        field: &'static str,
        line: String,
        expected: &'static str,
    },
    #[error(
        "field `{field}`: `{name}` is not a plain file name (no `/`, not starting with `.`); files of an upload sit beside its .changes",
        name = Escaped(.name)
    )]
    BadName { field: &'static str, name: String },
    #[error("field `Checksums-Sha256` lists `{name}` twice", name = Escaped(.name))]
    Duplicate { name: String },
    #[error(
        "field `Files` lists `{name}`, which `Checksums-Sha256` does not; the upload cannot be verified",
        name = Escaped(.name)
    )]
    Unhashed { name: String },
    #[error("it lists no files")]
    Empty {},
}

/// One file of an upload, as the `.changes` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub name: String,
    pub size: u64,
    /// Lowercase hex, 64 digits.
    pub sha256: String,
}

/// The parts of a `.changes` the incoming processor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// `Source:` (for messages), if present.
    pub source: Option<String>,
    /// `Version:` (for messages), if present.
    pub version: Option<String>,
    /// The files of the upload, in the order `Checksums-Sha256` lists them.
    pub files: Vec<ListedFile>,
}

impl Changes {
    /// Parses the (unsigned) text of a `.changes`.
    pub fn parse(text: &str) -> Result<Changes, ChangesError> {
        let control = Control::parse(text).map_err(|reason| ChangesError::Paragraph { reason })?;
        let sha256 = control
            .get("Checksums-Sha256")
            .ok_or(ChangesError::NoSha256 {})?;
        let files = sha256_lines(sha256)?;
        if files.is_empty() {
            return Err(ChangesError::Empty {});
        }
        for (i, file) in files.iter().enumerate() {
            if files[..i].iter().any(|f| f.name == file.name) {
                return Err(ChangesError::Duplicate {
                    name: file.name.clone(),
                });
            }
        }
        for name in files_names(control.get("Files").unwrap_or_default())? {
            if !files.iter().any(|f| f.name == name) {
                return Err(ChangesError::Unhashed { name });
            }
        }
        Ok(Changes {
            source: control.get("Source").map(str::to_owned),
            version: control.get("Version").map(str::to_owned),
            files,
        })
    }
}

/// `Checksums-Sha256` lines: `<sha256> <size> <name>`.
fn sha256_lines(value: &str) -> Result<Vec<ListedFile>, ChangesError> {
    let mut files = Vec::new();
    for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || ChangesError::BadLine {
            field: "Checksums-Sha256",
            line: line.to_owned(),
            expected: "<64 hex digits> <size> <file name>",
        };
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let [hash, size, name] = parts[..] else {
            return Err(bad());
        };
        let hex_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| hex_ok)
            .ok_or_else(bad)?;
        check_name("Checksums-Sha256", name)?;
        files.push(ListedFile {
            name: name.to_owned(),
            size,
            sha256: hash.to_ascii_lowercase(),
        });
    }
    Ok(files)
}

/// The names of the `Files` lines: `<md5> <size> <section> <priority> <name>`.
fn files_names(value: &str) -> Result<Vec<String>, ChangesError> {
    let mut names = Vec::new();
    for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let [_, _, _, _, name] = parts[..] else {
            return Err(ChangesError::BadLine {
                field: "Files",
                line: line.to_owned(),
                expected: "<md5> <size> <section> <priority> <file name>",
            });
        };
        check_name("Files", name)?;
        names.push(name.to_owned());
    }
    Ok(names)
}

/// A name that stays beside the `.changes`: no directory part, no hidden
/// or special name (bess keeps its own work under hidden names).
fn check_name(field: &'static str, name: &str) -> Result<(), ChangesError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && name.bytes().all(|b| b.is_ascii_graphic());
    if plain {
        return Ok(());
    }
    Err(ChangesError::BadName {
        field,
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0b3e2a5c1f4d6e7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a";

    fn changes(sha256: &str, files: &str) -> String {
        format!(
            "Format: 1.8\nSource: hello\nVersion: 1.0-1\nChecksums-Sha256:\n{sha256}\nFiles:\n{files}\n"
        )
    }

    #[test]
    fn lists_files_with_size_and_hash() {
        let text = changes(
            &format!(" {HASH} 1234 hello_1.0-1_amd64.deb\n {HASH} 99 hello_1.0-1_amd64.buildinfo"),
            " d41d8cd98f00b204e9800998ecf8427e 1234 misc optional hello_1.0-1_amd64.deb",
        );
        let parsed = Changes::parse(&text).unwrap();
        assert_eq!(parsed.source.as_deref(), Some("hello"));
        assert_eq!(parsed.files.len(), 2);
        assert_eq!(parsed.files[0].name, "hello_1.0-1_amd64.deb");
        assert_eq!(parsed.files[0].size, 1234);
        assert_eq!(parsed.files[1].size, 99);
        assert_eq!(parsed.files[0].sha256, HASH);
    }

    #[test]
    fn refuses_what_could_escape_or_go_unverified() {
        let md5 = " d41d8cd98f00b204e9800998ecf8427e 1 misc optional";
        for (sha256, files, complaint) in [
            (
                format!(" {HASH} 1 ../x.deb"),
                String::new(),
                "plain file name",
            ),
            (
                format!(" {HASH} 1 .claimed"),
                String::new(),
                "plain file name",
            ),
            (
                format!(" {HASH} 1 a/b.deb"),
                String::new(),
                "plain file name",
            ),
            (format!(" {HASH} x a.deb"), String::new(), "expected"),
            (" abc 1 a.deb".to_string(), String::new(), "expected"),
            (
                format!(" {HASH} 1 a.deb\n {HASH} 1 a.deb"),
                String::new(),
                "twice",
            ),
            (
                format!(" {HASH} 1 a.deb"),
                format!("{md5} b.deb"),
                "does not",
            ),
            (
                format!(" {HASH} 1 a.deb"),
                format!("{md5} ../b.deb"),
                "plain",
            ),
        ] {
            let error = Changes::parse(&changes(&sha256, &files)).unwrap_err();
            assert!(error.to_string().contains(complaint), "{sha256}: {error}");
        }
        let error = Changes::parse("Source: x\nFiles:\n a b c d e\n").unwrap_err();
        assert_eq!(error, ChangesError::NoSha256 {});
        let error = Changes::parse("Source: x\nChecksums-Sha256:\n").unwrap_err();
        assert_eq!(error, ChangesError::Empty {});
    }
}
