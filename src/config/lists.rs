//! `dists.list` and `archs.list`: one name per line, `#` comments.

use super::ConfigError;
use std::path::Path;

/// An ordered list of unique names read from a `.list` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList {
    names: Vec<String>,
}

impl NameList {
    /// Builds a list from names already validated.
    pub fn from_names(names: Vec<String>) -> NameList {
        NameList { names }
    }

    /// Reads `path`, checking every name with `check`.
    pub fn load(
        path: &Path,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<NameList, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse_list(&text, check).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The names in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether `name` is listed.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The position of `name` in the file, for stable output order.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Parses the text of a `.list` file; the error names the line at fault.
pub fn parse_list(text: &str, check: fn(&str) -> Result<(), String>) -> Result<NameList, String> {
    let mut names: Vec<String> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let lineno = index + 1;
        check(name).map_err(|why| format!("line {lineno}: `{name}` {why}"))?;
        if names.iter().any(|n| n == name) {
            return Err(format!("line {lineno}: `{name}` is listed twice; keep one"));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err("lists no name; write one name per line".to_string());
    }
    Ok(NameList { names })
}

/// A distribution codename becomes a directory and a URL path segment.
pub fn check_dist_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+');
    if !name.chars().all(ok_char) {
        return Err(
            "is not a valid distribution name: use letters, digits, `.`, `_`, `-`, `+`".into(),
        );
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(
            "is not a valid distribution name: it must start with a letter or digit".into(),
        );
    }
    Ok(())
}

/// Architectures are Debian's plain names (`amd64`, `arm64`, …); `all` is implied.
pub fn check_arch_name(name: &str) -> Result<(), String> {
    if name == "all" {
        return Err("is implied: `Architecture: all` packages are published in every architecture; remove this line".into());
    }
    crate::deb::check_architecture(name).map_err(|e| format!("is not a Debian architecture: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_order() {
        let list = parse_list("# dists\nbookworm\n\njammy # 22.04\n", check_dist_name).unwrap();
        assert_eq!(list.names(), ["bookworm", "jammy"]);
    }

    #[test]
    fn duplicate_is_refused_with_line() {
        let err = parse_list("bookworm\nbookworm\n", check_dist_name).unwrap_err();
        assert!(err.contains("line 2") && err.contains("twice"), "{err}");
    }

    #[test]
    fn empty_list_is_refused() {
        assert!(parse_list("# nothing\n", check_dist_name).is_err());
    }

    #[test]
    fn path_like_dist_is_refused() {
        let err = parse_list("../etc\n", check_dist_name).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
