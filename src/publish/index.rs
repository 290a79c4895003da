//! `Packages` indices: one stanza per package, rendered from the catalog.

use crate::catalog::IndexEntry;
use crate::deb::Version;
use std::fmt::Write;

/// The packages of one component and architecture, in index order.
#[derive(Debug, Clone)]
pub struct PackagesIndex<'a> {
    pub component: String,
    pub arch: String,
    pub entries: Vec<&'a IndexEntry>,
}

/// Splits a dist's entries into one index per component and architecture.
///
/// `Architecture: all` packages go in every architecture's index, which is
/// where apt looks for them. Entries are ordered by name, then Debian version
/// order, then architecture, so the same catalog renders the same bytes.
pub fn split<'a>(
    entries: &'a [IndexEntry],
    components: &[String],
    archs: &[String],
) -> Vec<PackagesIndex<'a>> {
    let mut sorted: Vec<(&IndexEntry, Option<Version>)> = entries
        .iter()
        .map(|e| (e, Version::parse(&e.version).ok()))
        .collect();
    sorted.sort_by(|(a, va), (b, vb)| {
        a.name
            .cmp(&b.name)
            .then_with(|| va.cmp(vb))
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.arch.cmp(&b.arch))
    });
    let mut indices = Vec::new();
    for component in components {
        for arch in archs {
            let entries = sorted
                .iter()
                .map(|(e, _)| *e)
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
pub fn write_stanza(out: &mut String, entry: &IndexEntry) {
    out.push_str(&entry.control);
    if !entry.control.ends_with('\n') {
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

/// The whole `Packages` text of one index.
pub fn render(index: &PackagesIndex<'_>) -> String {
    let mut out = String::with_capacity(index.entries.iter().map(|e| e.control.len() + 400).sum());
    for entry in &index.entries {
        write_stanza(&mut out, entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: &str, arch: &str) -> IndexEntry {
        IndexEntry {
            id: 0,
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
            control: format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"),
        }
    }

    #[test]
    fn arch_all_in_every_index_in_version_order() {
        let entries = vec![
            entry("b", "1.10", "amd64"),
            entry("b", "1.9", "amd64"),
            entry("a", "1", "all"),
            entry("c", "1", "arm64"),
        ];
        let archs = vec!["amd64".to_string(), "arm64".to_string()];
        let indices = split(&entries, &["main".to_string()], &archs);
        let names = |i: usize| -> Vec<String> {
            indices[i]
                .entries
                .iter()
                .map(|e| format!("{}={}", e.name, e.version))
                .collect()
        };
        assert_eq!(names(0), ["a=1", "b=1.9", "b=1.10"]);
        assert_eq!(names(1), ["a=1", "c=1"]);
    }

    #[test]
    fn stanza_ends_with_computed_fields_and_blank_line() {
        let mut out = String::new();
        write_stanza(&mut out, &entry("a", "1", "all"));
        assert!(out.starts_with("Package: a\n"));
        assert!(out.ends_with("SHA512: u\n\n"));
        assert!(out.contains("Filename: pool/main/x/a/a_1_all.deb\n"));
    }
}
