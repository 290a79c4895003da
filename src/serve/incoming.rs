//! The drop directory, processed while `bess serve` runs: inotify (the
//! `notify` crate) wakes a pass when a file is closed or renamed there,
//! and a timer runs one every few seconds as a safety net (a missed event,
//! a quiet period running out, a directory created later).
//!
//! Passes run on their own thread with their own catalog connection, so
//! serving never waits for them. The watcher also knows which files were
//! written since they were last closed: an upload whose writer paused
//! longer than the quiet period is still not taken.

use crate::ops::{self, DropDir, Repo, WriteWatch};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Longest time between two passes.
const SAFETY_NET: Duration = Duration::from_secs(5);

/// How long events are gathered after the first one, so that twenty
/// uploads closing at once make one pass, not twenty.
const GATHER: Duration = Duration::from_millis(200);

/// Files written since their last close, as inotify reported them.
#[derive(Default)]
struct OpenWrites(HashSet<PathBuf>);

impl WriteWatch for OpenWrites {
    fn is_being_written(&self, path: &Path) -> bool {
        self.0.contains(path)
    }
}

impl OpenWrites {
    /// Notes what `event` says about writes; whether a pass may find
    /// something new (a file closed after writing, or renamed).
    fn note(&mut self, event: &Event) -> bool {
        match event.kind {
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                self.0.extend(event.paths.iter().cloned());
                false
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                event.paths.iter().for_each(|p| _ = self.0.remove(p));
                true
            }
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
                event.paths.iter().for_each(|p| _ = self.0.remove(p));
                true
            }
            _ => false,
        }
    }
}

/// Starts processing the drop directory of the repository at `root`.
pub fn spawn(root: &Path) {
    let root = root.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("incoming".into())
        .spawn(move || watch(&root));
    if let Err(e) = spawned {
        eprintln!("bess serve: cannot start processing the drop directory: {e}");
    }
}

/// Runs passes for as long as the server runs.
fn watch(root: &Path) {
    let (tx, rx) = channel();
    let mut watcher: Option<RecommendedWatcher> = None;
    let mut writes = OpenWrites::default();
    loop {
        let wait = match Repo::open(root) {
            Ok(mut repo) => {
                let drop = DropDir::of(&repo.config);
                if watcher.is_none() && drop.root().is_dir() {
                    watcher = start_watcher(drop.root(), tx.clone());
                }
                match drop.root().is_dir() {
                    true => pass(&mut repo, &writes),
                    false => SAFETY_NET,
                }
            }
            Err(e) => {
                eprintln!("bess serve: incoming: cannot open the repository: {e}");
                SAFETY_NET
            }
        };
        let drop_root = crate::config::RepoConfig::load(root)
            .map(|config| DropDir::of(&config).root().to_path_buf())
            .unwrap_or_default();
        wait_for_events(&rx, &mut writes, (&drop_root, wait));
    }
}

/// One pass; returns how long to wait for the next one at most.
fn pass(repo: &mut Repo, writes: &OpenWrites) -> Duration {
    match ops::process_incoming(repo, writes) {
        Ok(outcome) => {
            let mut out = std::io::stderr().lock();
            for line in outcome.log_lines() {
                let _ = std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes());
            }
            // A little past the quiet period, so the file is due by then.
            let recheck = outcome.recheck_in.map(|d| d + Duration::from_millis(50));
            recheck.map_or(SAFETY_NET, |d| d.min(SAFETY_NET))
        }
        Err(e) => {
            eprintln!("bess serve: incoming: {e}");
            SAFETY_NET
        }
    }
}

fn start_watcher(
    dir: &Path,
    tx: std::sync::mpsc::Sender<notify::Result<Event>>,
) -> Option<RecommendedWatcher> {
    let started = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    match started {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            eprintln!(
                "bess serve: incoming: cannot watch {} ({e}); looking every {} s instead",
                dir.display(),
                SAFETY_NET.as_secs()
            );
            None
        }
    }
}

/// Waits up to `wait`, or until events say a pass may find something,
/// noting every write event on the way. bess's own moves (claims,
/// processed/, rejected/) wake nothing.
fn wait_for_events(
    rx: &Receiver<notify::Result<Event>>,
    writes: &mut OpenWrites,
    (drop_root, wait): (&Path, Duration),
) {
    let mut deadline = Instant::now() + wait;
    let mut woken = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(event)) => {
                let own = event.paths.iter().all(|p| is_bess_own(drop_root, p));
                if !own && writes.note(&event) && !woken {
                    woken = true;
                    deadline = deadline.min(Instant::now() + GATHER);
                }
            }
            Ok(Err(_)) => {}
            Err(RecvTimeoutError::Timeout) => return,
            // No watcher (yet): the timer alone decides.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(left);
                return;
            }
        }
    }
}

/// Whether `path` lies in one of bess's own directories of the drop
/// directory (or is a hidden temp file, which no pass takes).
fn is_bess_own(drop_root: &Path, path: &Path) -> bool {
    let Ok(inside) = path.strip_prefix(drop_root) else {
        return false;
    };
    inside
        .components()
        .next()
        .is_some_and(|first| DropDir::is_own(&first.as_os_str().to_string_lossy()))
}
