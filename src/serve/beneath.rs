//! Opening a published file without ever leaving its tree: openat2(2) with
//! `RESOLVE_BENEATH`, so the kernel follows the tree's own relative
//! symlinks (generations, by-hash) but refuses any step outside it, in one
//! system call instead of a userspace walk of every component.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::Path;

/// How often a resolution interrupted by a concurrent rename is retried.
const RETRIES: usize = 64;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `relative` for reading under the open directory `root`; `None`
/// when it does not exist or would resolve outside `root`.
///
/// The kernel answers EAGAIN when a rename anywhere on the system races
/// with resolving a `..` (every `dists/<dist>` symlink has one), because it
/// can then not prove the walk stayed beneath `root`. A publish renames, so
/// this is retried instead of being answered as "not found".
pub fn open(root: &std::fs::File, relative: &Path) -> Option<std::fs::File> {
    let name = CString::new(relative.as_os_str().as_bytes()).ok()?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    for _ in 0..RETRIES {
        // SAFETY: valid descriptor, NUL-terminated path and a live open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                name.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a non-negative return is a new descriptor we now own.
            return Some(unsafe { std::fs::File::from_raw_fd(fd as i32) });
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
            return None;
        }
    }
    None
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

    #[test]
    fn follows_inner_symlinks_and_refuses_escapes() {
        let dir = tree();
        let root = std::fs::File::open(dir.path().join("tree")).unwrap();
        assert!(open(&root, Path::new("dists/bookworm/InRelease")).is_some());
        assert!(open(&root, Path::new("dists/out/secret")).is_none());
        assert!(open(&root, Path::new("../secret")).is_none());
        assert!(open(&root, Path::new("dists/missing")).is_none());
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
