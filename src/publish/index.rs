//! `Packages` indices: one stanza per package, rendered from the catalog.

use crate::catalog::IndexEntry;
use std::collections::HashMap;
use std::fmt::Write;

/// The packages of one component and architecture, in index order.
#[derive(Debug, Clone)]
pub struct PackagesIndex<'a> {
    pub component: String,
    pub arch: String,
    pub entries: Vec<&'a IndexEntry>,
}

impl PackagesIndex<'_> {
    /// `<component>/binary-<arch>`, relative to `dists/<dist>/`.
    pub fn dir(&self) -> String {
        format!("{}/binary-{}", self.component, self.arch)
    }
}

/// Splits a dist's entries (in catalog order) into one index per component
/// and architecture. `Architecture: all` packages go in every architecture's
/// index, which is where apt looks for them.
pub fn split<'a>(
    entries: &'a [IndexEntry],
    components: &[String],
    archs: &[String],
) -> Vec<PackagesIndex<'a>> {
    let mut indices = Vec::new();
    for component in components {
        for arch in archs {
            let entries = entries
                .iter()
                .filter(|e| &e.component == component && (&e.arch == arch || e.arch == "all"))
                .collect();
            indices.push(PackagesIndex {
                component: component.clone(),
                arch: arch.clone(),
                entries,
            });
        }
    }
    indices
}

/// Appends one stanza: the control fields as uploaded, then the fields the
/// repository computes, then the blank separator line.
pub fn write_stanza(out: &mut String, entry: &IndexEntry, control: &str) {
    out.push_str(control);
    if !control.ends_with('\n') {
        out.push('\n');
    }
    let _ = write!(
        out,
        "Filename: pool/{}/{}\nSize: {}\nMD5sum: {}\nSHA1: {}\nSHA256: {}\nSHA512: {}\n\n",
        entry.component,
        entry.pool_name,
        entry.size,
        entry.md5,
        entry.sha1,
        entry.sha256,
        entry.sha512
    );
}

/// The `Packages` text of some entries, given their control paragraphs.
pub fn render(entries: &[&IndexEntry], controls: &HashMap<i64, String>) -> String {
    let mut out = String::with_capacity(entries.len() * 1500);
    for entry in entries {
        let control = controls
            .get(&entry.id)
            .map(String::as_str)
            .unwrap_or_default();
        write_stanza(&mut out, entry, control);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, name: &str, version: &str, arch: &str) -> IndexEntry {
        IndexEntry {
            id,
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            component: "main".into(),
            pool_name: format!("x/{name}/{name}_{version}_{arch}.deb"),
            size: 1,
            md5: "m".into(),
            sha1: "s".into(),
            sha256: "t".into(),
            sha512: "u".into(),
        }
    }

    #[test]
    fn arch_all_goes_in_every_index_in_catalog_order() {
        let entries = vec![
            entry(1, "b", "1.10", "amd64"),
            entry(2, "a", "1", "all"),
            entry(3, "c", "1", "arm64"),
        ];
        let archs = vec!["amd64".to_string(), "arm64".to_string()];
        let indices = split(&entries, &["main".to_string()], &archs);
        let names = |i: usize| -> Vec<&str> {
            indices[i].entries.iter().map(|e| e.name.as_str()).collect()
        };
        assert_eq!(names(0), ["b", "a"]);
        assert_eq!(names(1), ["a", "c"]);
        assert_eq!(indices[1].dir(), "main/binary-arm64");
    }

    #[test]
    fn stanza_ends_with_computed_fields_and_blank_line() {
        let mut out = String::new();
        write_stanza(
            &mut out,
            &entry(1, "a", "1", "all"),
            "Package: a\nVersion: 1\n",
        );
        assert!(out.starts_with("Package: a\n"));
        assert!(out.ends_with("SHA512: u\n\n"));
        assert!(out.contains("Filename: pool/main/x/a/a_1_all.deb\n"));
    }
}
