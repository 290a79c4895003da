//! `Packages` indices: one stanza per package, rendered from the catalog.

use crate::catalog::{IndexEntry, StanzaParts};
use crate::config::Checksum;
use std::collections::HashMap;
use std::fmt::Write;

/// The packages of one component and architecture, in index order.
#[derive(Debug, Clone)]
pub struct PackagesIndex<'a> {
    pub component: String,
    pub arch: String,
    pub entries: Vec<&'a IndexEntry>,
    /// Runs of `entries` that chunks never straddle, in order.
    pub sections: Vec<Section>,
}

/// A run of an index's entries: the packages of one segment that are
/// specific to the index's architecture, or its `Architecture: all` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// One past the section's last entry.
    pub end: usize,
    /// `Architecture: all` packages: the same run, cut into the same
    /// chunks, is in every architecture's index.
    pub shared: bool,
}

impl PackagesIndex<'_> {
    /// `<component>/binary-<arch>`, relative to `dists/<dist>/`.
    pub fn dir(&self) -> String {
        format!("{}/binary-{}", self.component, self.arch)
    }
}

/// Average number of packages in a segment. A segment ends after a package
/// whose SHA-256 head is a multiple of this; a multiple of the chunk size,
/// so it also ends a chunk. Sections cut chunks short, so segments are
/// many chunks long.
pub const SEGMENT_STANZAS: u32 = 4096;

/// Splits a dist's entries (in catalog order) into one index per component
/// and architecture. `Architecture: all` packages go in every architecture's
/// index, which is where apt looks for them.
///
/// The catalog order is cut into segments at content-defined points, and
/// within a segment an index lists its architecture's packages first, then
/// the `Architecture: all` ones. So the `all` part of a segment is the
/// same text in every architecture's index, and is compressed once for all
/// of them; and a new package (which goes in the last segment) still
/// changes only the end of an index: the end of the last segment, which
/// is about [`SEGMENT_STANZAS`] packages long on average.
pub fn split<'a>(
    entries: &'a [IndexEntry],
    components: &[String],
    archs: &[String],
) -> Vec<PackagesIndex<'a>> {
    let segments = segment_numbers(entries);
    // With one architecture nothing is shared, and the index keeps the
    // catalog order (segments end where chunks would end anyway).
    let sharing = archs.len() > 1;
    let mut indices = Vec::new();
    for component in components {
        for arch in archs {
            let mut ordered: Vec<(u32, bool, &IndexEntry)> = entries
                .iter()
                .zip(&segments)
                .filter(|(e, _)| &e.component == component && (&e.arch == arch || e.arch == "all"))
                .map(|(e, segment)| (*segment, sharing && e.arch == "all", e))
                .collect();
            // Stable: catalog order within each section.
            ordered.sort_by_key(|(segment, shared, _)| (*segment, *shared));
            indices.push(PackagesIndex {
                component: component.clone(),
                arch: arch.clone(),
                sections: sections(&ordered),
                entries: ordered.into_iter().map(|(_, _, e)| e).collect(),
            });
        }
    }
    indices
}

/// The segment of each entry, counting from 0 in catalog order.
fn segment_numbers(entries: &[IndexEntry]) -> Vec<u32> {
    let mut segment = 0;
    entries
        .iter()
        .map(|e| {
            let this = segment;
            if e.sha256_head.is_some_and(|h| h % SEGMENT_STANZAS == 0) {
                segment += 1;
            }
            this
        })
        .collect()
}

/// Where the runs of equal (segment, shared) end.
fn sections(ordered: &[(u32, bool, &IndexEntry)]) -> Vec<Section> {
    let mut sections = Vec::new();
    for (i, (segment, shared, _)) in ordered.iter().enumerate() {
        let last = ordered
            .get(i + 1)
            .is_none_or(|(s, sh, _)| (s, sh) != (segment, shared));
        if last {
            sections.push(Section {
                end: i + 1,
                shared: *shared,
            });
        }
    }
    sections
}

/// Appends one stanza: the control fields as uploaded, then the fields the
/// repository computes (with the checksums of `hashes`, in Debian's
/// order), then the blank separator line.
pub fn write_stanza(out: &mut String, component: &str, parts: &StanzaParts, hashes: &[Checksum]) {
    let control = &parts.control;
    out.push_str(control);
    if !control.ends_with('\n') {
        out.push('\n');
    }
    let _ = write!(
        out,
        "Filename: pool/{}/{}\nSize: {}\n",
        component, parts.pool_name, parts.size
    );
    for kind in Checksum::ALL.iter().filter(|k| hashes.contains(k)) {
        let value = match kind {
            Checksum::Md5 => &parts.md5,
            Checksum::Sha1 => &parts.sha1,
            Checksum::Sha256 => &parts.sha256,
            Checksum::Sha512 => &parts.sha512,
        };
        let _ = writeln!(out, "{}: {value}", kind.stanza_name());
    }
    out.push('\n');
}

/// The `Packages` text of some entries, given what their stanzas say.
/// An entry without parts has no stanza (a catalog snapshot always has
/// them; `bess repo check` would report the index as different).
pub fn render(
    entries: &[&IndexEntry],
    parts: &HashMap<i64, StanzaParts>,
    hashes: &[Checksum],
) -> String {
    let mut out = String::with_capacity(entries.len() * 1000);
    for entry in entries {
        if let Some(parts) = parts.get(&entry.id) {
            write_stanza(&mut out, &entry.component, parts, hashes);
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

    fn entry_at(id: i64, arch: &str, sha256_head: u32) -> IndexEntry {
        IndexEntry {
            sha256_head: Some(sha256_head),
            ..entry(id, arch)
        }
    }

    fn ids(index: &PackagesIndex<'_>) -> Vec<i64> {
        index.entries.iter().map(|e| e.id).collect()
    }

    /// Each section as (end, shared).
    fn runs(index: &PackagesIndex<'_>) -> Vec<(usize, bool)> {
        index.sections.iter().map(|s| (s.end, s.shared)).collect()
    }

    #[test]
    fn arch_all_goes_in_every_index_after_the_arch_packages() {
        let entries = vec![entry(1, "amd64"), entry(2, "all"), entry(3, "arm64")];
        let archs = vec!["amd64".to_string(), "arm64".to_string()];
        let indices = split(&entries, &["main".to_string()], &archs);
        assert_eq!(ids(&indices[0]), [1, 2]);
        assert_eq!(ids(&indices[1]), [3, 2]);
        assert_eq!(indices[1].dir(), "main/binary-arm64");
        assert_eq!(runs(&indices[0]), [(1, false), (2, true)]);
        assert_eq!(runs(&indices[1]), [(1, false), (2, true)]);
    }

    #[test]
    fn segments_keep_catalog_order_and_share_their_all_runs() {
        // Package 3 ends the first segment (its head is a multiple of
        // SEGMENT_STANZAS), so 4 and 5 come after the whole of it.
        let entries = vec![
            entry_at(1, "all", 7),
            entry_at(2, "amd64", 7),
            entry_at(3, "arm64", SEGMENT_STANZAS * 5),
            entry_at(4, "all", 7),
            entry_at(5, "amd64", 7),
        ];
        let archs = vec!["amd64".to_string(), "arm64".to_string()];
        let indices = split(&entries, &["main".to_string()], &archs);
        assert_eq!(ids(&indices[0]), [2, 1, 5, 4]);
        assert_eq!(ids(&indices[1]), [3, 1, 4]);
        assert_eq!(
            runs(&indices[0]),
            [(1, false), (2, true), (3, false), (4, true)]
        );
        assert_eq!(runs(&indices[1]), [(1, false), (2, true), (3, true)]);
    }

    #[test]
    fn one_architecture_keeps_the_catalog_order() {
        let entries = vec![entry(1, "all"), entry(2, "amd64"), entry(3, "all")];
        let indices = split(&entries, &["main".to_string()], &["amd64".to_string()]);
        let ids = ids(&indices[0]);
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(
            indices[0].sections,
            [Section {
                end: 3,
                shared: false
            }]
        );
    }

    #[test]
    fn an_index_without_packages_has_no_sections() {
        let entries = vec![entry(1, "amd64")];
        let indices = split(&entries, &["main".to_string()], &["arm64".to_string()]);
        assert!(indices[0].entries.is_empty());
        assert!(indices[0].sections.is_empty());
    }

    #[test]
    fn stanza_ends_with_computed_fields_and_blank_line() {
        let mut out = String::new();
        let mut every = String::new();
        let parts = StanzaParts {
            control: "Package: a\nVersion: 1\n".into(),
            pool_name: "a/a/a_1_all.deb".into(),
            size: 1,
            md5: "m".into(),
            sha1: "s".into(),
            sha256: "t".into(),
            sha512: "u".into(),
        };
        write_stanza(&mut out, "main", &parts, &[Checksum::Sha256, Checksum::Md5]);
        assert!(out.starts_with("Package: a\n"));
        assert!(out.contains("Filename: pool/main/a/a/a_1_all.deb\n"));
        assert!(out.ends_with("Size: 1\nMD5sum: m\nSHA256: t\n\n"), "{out}");
        write_stanza(&mut every, "main", &parts, &Checksum::ALL);
        assert!(
            every.ends_with("MD5sum: m\nSHA1: s\nSHA256: t\nSHA512: u\n\n"),
            "{every}"
        );
    }
}
