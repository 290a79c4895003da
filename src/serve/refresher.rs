//! Release files signed again by the server before they expire: at start,
//! then every [`EVERY`], each dist whose `Valid-Until` is closer than
//! `[release] refresh-before-days` (see `ops::refresh`); and the publish
//! targets brought up to date in the same round.

use crate::ops::{self, Repo};
use std::path::Path;
use std::time::Duration;

/// How often the Release files are looked at.
const EVERY: Duration = Duration::from_secs(600);

/// Starts the thread; it lives as long as the server.
pub fn spawn(root: &Path) {
    let root = root.to_path_buf();
    let started = std::thread::Builder::new()
        .name("bess-refresh".into())
        .spawn(move || {
            loop {
                // A panic in one round must not end refreshing for good.
                let round = std::panic::AssertUnwindSafe(|| refresh_due(&root));
                if std::panic::catch_unwind(round).is_err() {
                    eprintln!("bess serve: the Release refresher failed; retrying later");
                }
                std::thread::sleep(EVERY);
            }
        });
    if let Err(e) = started {
        eprintln!(
            "bess serve: cannot start the Release refresher ({e}); run bess repo refresh --due daily"
        );
    }
}

/// One round, with the settings as they are now on disk.
fn refresh_due(root: &Path) {
    let refreshed = Repo::open(root).and_then(|mut repo| {
        let mut report = ops::refresh(&mut repo, true)?;
        // A target a failed publish left behind catches up here (at no
        // request when it is up to date), not only at the next publish.
        if report.targets.is_empty() {
            report.targets = ops::sync_targets(&repo)?;
        }
        Ok(report)
    });
    match refreshed {
        Ok(report) => {
            for r in report.refreshed {
                eprintln!(
                    "bess serve: signed {}/{} again before its Valid-Until (generation {})",
                    r.channel, r.dist, r.generation
                );
            }
            for f in report.failed {
                eprintln!(
                    "bess serve: cannot sign {}/{} again: {}; bess repo check tells more",
                    f.channel, f.dist, f.error
                );
            }
            for error in report.targets.iter().filter_map(|t| t.error.as_ref()) {
                eprintln!("bess serve: {error}");
            }
        }
        Err(e) => eprintln!("bess serve: cannot refresh the Release files: {e}"),
    }
}
