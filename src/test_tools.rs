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
