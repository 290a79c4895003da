//! Opening a published file without ever leaving its tree: openat2(2) with
//! `RESOLVE_BENEATH`, so the kernel follows the tree's own relative
//! symlinks (generations, by-hash) but refuses any step outside it, in one
//! system call instead of a userspace walk of every component.
//!
//! Where openat2 is missing (kernels before 5.6, ENOSYS) or refused (a
//! seccomp filter, EPERM), the same rules are applied by walking the path
//! one component at a time with `O_NOFOLLOW`, reading each symlink and
//! following it only while it stays inside the tree: a valid path is never
//! answered "not found" for want of the system call.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

/// How often a resolution interrupted by a concurrent rename is retried.
const RETRIES: usize = 64;

/// Symlinks followed at most in one walk, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Set once openat2 proved unusable here, or by `BESS_NO_OPENAT2=1` (a
/// test knob that forces the walk).
static WALK_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every later [`open`] walk the path instead of calling openat2.
pub fn force_walk() {
    WALK_ONLY.store(true, Ordering::Relaxed);
}

/// Opens `relative` for reading under the open directory `root`; `None`
/// when it does not exist or would resolve outside `root`.
///
/// The kernel answers EAGAIN when a rename anywhere on the system races
/// with resolving a `..` (every `dists/<dist>` symlink has one), because it
/// can then not prove the walk stayed beneath `root`. A publish renames, so
/// this is retried instead of being answered as "not found".
pub fn open(root: &std::fs::File, relative: &Path) -> Option<std::fs::File> {
    if WALK_ONLY.load(Ordering::Relaxed) {
        return walk(root, relative);
    }
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    for _ in 0..RETRIES {
        match rustix::fs::openat2(root, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => return Some(fd.into()),
            Err(Errno::AGAIN) => continue,
            Err(Errno::NOSYS | Errno::PERM) => {
                eprintln!(
                    "bess serve: openat2 is not available; resolving paths component by component"
                );
                force_walk();
                return walk(root, relative);
            }
            Err(_) => return None,
        }
    }
    None
}

/// [`open`] without openat2: one component at a time, never following a
/// symlink blindly, refusing absolute targets and any `..` above `root`.
fn walk(root: &std::fs::File, relative: &Path) -> Option<std::fs::File> {
    let mut pending: Vec<OsString> = Vec::new();
    push_front(&mut pending, relative)?;
    let mut dirs: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            dirs.pop()?;
            continue;
        }
        let here = dirs.last().map_or(root.as_fd(), |d| d.as_fd());
        let stat = rustix::fs::statat(here, &name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = rustix::fs::readlinkat(here, &name, Vec::new()).ok()?;
            push_front(
                &mut pending,
                Path::new(std::ffi::OsStr::from_bytes(target.as_bytes())),
            )?;
            continue;
        }
        let last = pending.is_empty();
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let flags = if last {
            flags
        } else {
            flags | OFlags::DIRECTORY
        };
        match rustix::fs::openat(here, &name, flags, Mode::empty()) {
            Ok(fd) if last => return Some(fd.into()),
            Ok(fd) => dirs.push(fd),
            // It became a symlink since it was looked at: look again.
            Err(Errno::LOOP) if links < MAX_LINKS => {
                links += 1;
                pending.push(name);
            }
            Err(_) => return None,
        }
    }
    None
}

/// Puts the components of `path` before those still pending (kept in
/// reverse, so the next is last); `None` for an absolute path.
fn push_front(pending: &mut Vec<OsString>, path: &Path) -> Option<()> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name.to_os_string()),
            Component::ParentDir => names.push(OsString::from_vec(b"..".to_vec())),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    pending.extend(names.into_iter().rev());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join(".gen/1")).unwrap();
        std::fs::create_dir_all(root.join("dists")).unwrap();
        std::fs::write(root.join(".gen/1/InRelease"), "signed").unwrap();
        std::os::unix::fs::symlink("../.gen/1", root.join("dists/bookworm")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("dists/out")).unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        dir
    }

    /// Both resolvers, so the walk is held to openat2's answers.
    fn resolvers() -> [fn(&std::fs::File, &Path) -> Option<std::fs::File>; 2] {
        [open, walk]
    }

    #[test]
    fn follows_inner_symlinks_and_refuses_escapes() {
        let dir = tree();
        std::os::unix::fs::symlink("/etc", dir.path().join("tree/dists/abs")).unwrap();
        std::os::unix::fs::symlink("loop", dir.path().join("tree/dists/loop")).unwrap();
        let root = std::fs::File::open(dir.path().join("tree")).unwrap();
        for resolve in resolvers() {
            let found = resolve(&root, Path::new("dists/bookworm/InRelease"));
            let mut text = String::new();
            std::io::Read::read_to_string(&mut found.unwrap(), &mut text).unwrap();
            assert_eq!(text, "signed");
            assert!(resolve(&root, Path::new("./dists/../dists/bookworm/InRelease")).is_some());
            for refused in [
                "dists/out/secret",
                "../secret",
                "dists/missing",
                "dists/abs/hostname",
                "dists/loop",
                "dists/bookworm/../../..",
            ] {
                assert!(resolve(&root, Path::new(refused)).is_none(), "{refused}");
            }
        }
    }

    #[test]
    fn renames_elsewhere_do_not_make_files_vanish() {
        let dir = tree();
        let root = std::fs::File::open(dir.path().join("tree")).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let (a, b) = (dir.path().join("a"), dir.path().join("b"));
                std::fs::write(&a, "x").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::fs::rename(&a, &b).unwrap();
                    std::fs::rename(&b, &a).unwrap();
                }
            });
            let misses = (0..20_000)
                .filter(|_| open(&root, Path::new("dists/bookworm/InRelease")).is_none())
                .count();
            stop.store(true, Ordering::Relaxed);
            assert_eq!(misses, 0, "opens lost to concurrent renames");
        });
    }
}
