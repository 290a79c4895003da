//! Entry point: parse arguments, run the command, map errors to exit codes.

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
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "bess: error: {err}");
            for cause in err.chain().skip(1) {
                let _ = write!(stderr, ": {cause}");
            }
            let _ = writeln!(stderr);
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
