//! Helpers for unit tests that run a real tool.

/// Whether `tool` runs here. A missing tool skips the test locally but
/// fails it under CI (`CI=true`), where the set-up script installs it.
pub fn available(tool: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        runs || std::env::var("CI").as_deref() != Ok("true"),
        "{tool} is missing; packaging/install-deps test installs it"
    );
    runs
}

/// What `tool` prints on stdout for `args`; fails the test, with its
/// stderr, if it does not succeed.
pub fn output_of(tool: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
