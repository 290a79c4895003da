//! Entry point: parse arguments, run the command, map errors to exit codes.

#![deny(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match bess::cli::run() {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                // `bess repo list | head` is not an error.
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr().lock(), "bess: error: {}", describe(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line; a cause already quoted by the
/// message before it is not repeated.
fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
