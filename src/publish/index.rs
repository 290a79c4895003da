//! `Packages` indices: one stanza per package, rendered from the catalog.

use crate::catalog::{IndexEntry, StanzaParts};
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
pub fn write_stanza(out: &mut String, component: &str, parts: &StanzaParts) {
    let control = &parts.control;
    out.push_str(control);
    if !control.ends_with('\n') {
        out.push('\n');
    }
    let _ = write!(
        out,
        "Filename: pool/{}/{}\nSize: {}\nMD5sum: {}\nSHA1: {}\nSHA256: {}\nSHA512: {}\n\n",
        component, parts.pool_name, parts.size, parts.md5, parts.sha1, parts.sha256, parts.sha512
    );
}

/// The `Packages` text of some entries, given what their stanzas say.
/// An entry without parts has no stanza (a catalog snapshot always has
/// them; `bess repo check` would report the index as different).
pub fn render(entries: &[&IndexEntry], parts: &HashMap<i64, StanzaParts>) -> String {
    let mut out = String::with_capacity(entries.len() * 1500);
    for entry in entries {
        if let Some(parts) = parts.get(&entry.id) {
            write_stanza(&mut out, &entry.component, parts);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, arch: &str) -> IndexEntry {
        IndexEntry {
            id,
            arch: arch.into(),
            component: "main".into(),
            sha256_head: None,
        }
    }

    #[test]
    fn arch_all_goes_in_every_index_in_catalog_order() {
        let entries = vec![entry(1, "amd64"), entry(2, "all"), entry(3, "arm64")];
        let archs = vec!["amd64".to_string(), "arm64".to_string()];
        let indices = split(&entries, &["main".to_string()], &archs);
        let ids = |i: usize| -> Vec<i64> { indices[i].entries.iter().map(|e| e.id).collect() };
        assert_eq!(ids(0), [1, 2]);
        assert_eq!(ids(1), [2, 3]);
        assert_eq!(indices[1].dir(), "main/binary-arm64");
    }

    #[test]
    fn stanza_ends_with_computed_fields_and_blank_line() {
        let mut out = String::new();
        let parts = StanzaParts {
            control: "Package: a\nVersion: 1\n".into(),
            pool_name: "a/a/a_1_all.deb".into(),
            size: 1,
            md5: "m".into(),
            sha1: "s".into(),
            sha256: "t".into(),
            sha512: "u".into(),
        };
        write_stanza(&mut out, "main", &parts);
        assert!(out.starts_with("Package: a\n"));
        assert!(out.ends_with("SHA512: u\n\n"));
        assert!(out.contains("Filename: pool/main/a/a/a_1_all.deb\n"));
    }
}
