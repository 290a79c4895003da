//! How much the CLI says: `--quiet` and `--verbose`, and progress bars
//! (indicatif) drawn on stderr only when it is a terminal and not quiet.

use crate::ops::progress::{Progress, Stage, silent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

/// How much to print besides errors and the data asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors and requested data only: no summaries, no progress bars.
    Quiet,
    Normal,
    /// One line per item as well.
    Verbose,
}

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

/// Sets the verbosity of this run (once, from the global flags).
pub fn set_verbosity(verbosity: Verbosity) {
    let _ = VERBOSITY.set(verbosity);
}

/// The verbosity of this run.
pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or(Verbosity::Normal)
}

/// Whether summaries and notes are printed (not with `--quiet`).
pub fn chatty() -> bool {
    verbosity() != Verbosity::Quiet
}

/// Whether one line per item is printed (`--verbose`).
pub fn verbose() -> bool {
    verbosity() == Verbosity::Verbose
}

/// The progress reporter of this run: bars on a terminal, else nothing,
/// so logs and pipes never fill with redraws.
pub fn reporter() -> Arc<dyn Progress> {
    if chatty() && std::io::stderr().is_terminal() {
        Arc::new(Bars)
    } else {
        silent()
    }
}

/// Draws one bar per stage on stderr.
struct Bars;

impl Progress for Bars {
    fn stage(&self, label: &str, total: u64, bytes: bool) -> Box<dyn Stage> {
        if total == 0 {
            return Box::new(crate::ops::progress::Silent);
        }
        let template = if bytes {
            "{msg:>22} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg:>22} [{bar:30}] {pos}/{len} eta {eta}"
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(label.to_string());
        Box::new(Bar(bar))
    }
}

/// A bar that clears itself when its stage ends.
struct Bar(ProgressBar);

impl Stage for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
