//! Which entries a control archive may hold: the control files dpkg knows,
//! at its top level, as regular files (maintainer scripts may also be
//! symbolic links), each once.
//!
//! dpkg extracts the control archive into a scratch directory and moves
//! every file it finds into its database (`/var/lib/dpkg/info/<package>.<name>`);
//! it refuses subdirectories, and of two entries with one name the last
//! wins. The index bess publishes is made from the `control` entry, so an
//! entry that dpkg would read differently from bess (a second `control`,
//! a path that leaves the scratch directory) is refused, and so is any
//! file no Debian tool reads from there.

use tar::EntryType;

/// The control files dpkg and the tools around it read: dpkg's own
/// (control, md5sums, conffiles, the maintainer scripts, shlibs, symbols,
/// triggers), debconf's (config, templates) and cli-common's (clilibs).
/// Lintian knows the same list (`data/control-files/deb-permissions`).
pub(crate) const KNOWN: [&str; 13] = [
    "control",
    "md5sums",
    "conffiles",
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "config",
    "templates",
    "shlibs",
    "symbols",
    "triggers",
    "clilibs",
];

/// The members `dpkg-deb --build` accepts as symbolic links: it checks that
/// each maintainer script is "a plain file or symbolic link", and dpkg
/// installs such a link as it is. Any other member must be a regular file.
pub(crate) const SCRIPTS: [&str; 5] = ["preinst", "postinst", "prerm", "postrm", "config"];

/// Why an entry cannot be in a control archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Starts with `/`: extracted outside the scratch directory.
    Absolute,
    /// Has a `..` component: extracted outside the scratch directory.
    Parent,
    /// Below the top level: dpkg refuses directories.
    Nested,
    /// Not a control file dpkg knows.
    Unknown,
    /// A type that member may not have (the type's name).
    Kind(&'static str),
}

/// What a permitted entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// The archive's own directory (`./`), which dpkg-deb writes first.
    Root,
    /// A control file, by its name in [`KNOWN`].
    File(&'static str),
}

/// Checks an entry's path and type. The path comes first: an absolute or
/// `..` path is refused whatever its type.
pub(super) fn check(path: &[u8], kind: EntryType) -> Result<Entry, Fault> {
    let Some(name) = top_level_name(path)? else {
        return match kind {
            EntryType::Directory => Ok(Entry::Root),
            other => Err(Fault::Kind(kind_name(other))),
        };
    };
    let known = KNOWN.iter().find(|known| known.as_bytes() == name);
    match kind {
        EntryType::Regular => {}
        EntryType::Symlink if known.is_some_and(|name| SCRIPTS.contains(name)) => {}
        other => return Err(Fault::Kind(kind_name(other))),
    }
    known.map(|name| Entry::File(name)).ok_or(Fault::Unknown)
}

/// The name of a top-level entry (`./name`, `name`, or `./name/` for a
/// directory), or `None` for the archive's own directory (`./`, `.`).
fn top_level_name(path: &[u8]) -> Result<Option<&[u8]>, Fault> {
    if path.starts_with(b"/") {
        return Err(Fault::Absolute);
    }
    if path.split(|&b| b == b'/').any(|part| part == b"..") {
        return Err(Fault::Parent);
    }
    let relative = path.strip_prefix(b"./").unwrap_or(path);
    let name = relative.strip_suffix(b"/").unwrap_or(relative);
    if name.is_empty() || name == b"." {
        return Ok(None);
    }
    if name.contains(&b'/') {
        return Err(Fault::Nested);
    }
    Ok(Some(name))
}

/// The entry type in words, for messages.
pub(super) fn kind_name(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Regular => "regular file",
        EntryType::Directory => "directory",
        EntryType::Symlink => "symbolic link",
        EntryType::Link => "hard link",
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "named pipe",
        EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntryType::{Directory, Fifo, Link, Regular, Symlink};

    #[test]
    fn paths_and_types() {
        let cases: [(&[u8], EntryType, Result<Entry, Fault>); 16] = [
            (b"./", Directory, Ok(Entry::Root)),
            (b".", Directory, Ok(Entry::Root)),
            (b"./control", Regular, Ok(Entry::File("control"))),
            (b"control", Regular, Ok(Entry::File("control"))),
            (b"./postinst", Symlink, Ok(Entry::File("postinst"))),
            (b"./config", Symlink, Ok(Entry::File("config"))),
            (b"./conffiles", Symlink, Err(Fault::Kind("symbolic link"))),
            (b"./control", Symlink, Err(Fault::Kind("symbolic link"))),
            (b"./md5sums", Link, Err(Fault::Kind("hard link"))),
            (b"./triggers", Fifo, Err(Fault::Kind("named pipe"))),
            (b"./templates/", Directory, Err(Fault::Kind("directory"))),
            (b"./", Regular, Err(Fault::Kind("regular file"))),
            (b"/etc/cron.d/evil", Regular, Err(Fault::Absolute)),
            (b"./../control", Regular, Err(Fault::Parent)),
            (b"./sub/postinst", Regular, Err(Fault::Nested)),
            (b"./evil", Regular, Err(Fault::Unknown)),
        ];
        for (path, kind, expected) in cases {
            assert_eq!(check(path, kind), expected, "{}", path.escape_ascii());
        }
    }

    #[test]
    fn unknown_symlinks_are_refused_for_their_type() {
        assert_eq!(check(b"./evil", Symlink), Err(Fault::Kind("symbolic link")));
        assert_eq!(check(b"..", Directory), Err(Fault::Parent));
    }
}
