//! Running the host's programs (`ip`, `systemd-nspawn`, `nsenter`, `ssh`,
//! `qemu-img`) with their output kept for the error that names them, and
//! the Debian package that brings each one when it is missing.

use super::ProviderError;
use std::io::Write;
use std::process::{Command, Stdio};

/// A program bess runs, and the package that installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub package: &'static str,
}

impl Program {
    pub const IP: Program = Program::new("ip", "iproute2");
    pub const NSPAWN: Program = Program::new("systemd-nspawn", "systemd-container");
    pub const NSENTER: Program = Program::new("nsenter", "util-linux");
    pub const SSH_KEYGEN: Program = Program::new("ssh-keygen", "openssh-client");
    pub const SSH: Program = Program::new("ssh", "openssh-client");
    pub const MOUNT: Program = Program::new("mount", "mount");
    pub const UMOUNT: Program = Program::new("umount", "mount");
    pub const TAR: Program = Program::new("tar", "tar");
    pub const MMDEBSTRAP: Program = Program::new("mmdebstrap", "mmdebstrap");
    pub const ANSIBLE: Program = Program::new("ansible-playbook", "ansible");
    pub const QEMU_IMG: Program = Program::new("qemu-img", "qemu-utils");
    pub const MKFS_EXT4: Program = Program::new("mkfs.ext4", "e2fsprogs");
    pub const QEMU_X86_64: Program = Program::new("qemu-system-x86_64", "qemu-system-x86");
    pub const QEMU_AARCH64: Program = Program::new("qemu-system-aarch64", "qemu-system-arm");

    /// A program installed by `package`.
    pub const fn new(name: &'static str, package: &'static str) -> Program {
        Program { name, package }
    }

    /// Whether the program is on PATH.
    pub fn installed(&self) -> bool {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| {
                let candidate = dir.join(self.name);
                std::fs::metadata(&candidate).is_ok_and(|m| m.is_file())
            })
        })
    }

    /// The error saying what to install, unless the program is on PATH.
    pub fn require(&self) -> Result<(), ProviderError> {
        if self.installed() {
            Ok(())
        } else {
            Err(self.missing())
        }
    }

    fn missing(&self) -> ProviderError {
        ProviderError::Missing {
            program: self.name.into(),
            package: self.package.into(),
        }
    }

    /// Runs the program with `args` and `stdin`; its output either way.
    pub fn output(&self, args: &[&str], stdin: &[u8]) -> Result<RunOutput, ProviderError> {
        let mut command = Command::new(self.name);
        command.args(args);
        self.output_of(command, args, stdin)
    }

    /// Runs a prepared command of this program.
    pub fn output_of(
        &self,
        mut command: Command,
        args: &[&str],
        stdin: &[u8],
    ) -> Result<RunOutput, ProviderError> {
        let spawned = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.missing()),
            Err(e) => return Err(ProviderError::io("run", self.name)(e)),
        };
        let mut input = child.stdin.take();
        let data = stdin.to_vec();
        // Written from a thread: a child that prints much before reading
        // would otherwise block on a full pipe while we block on its input.
        let writer = std::thread::spawn(move || {
            if let Some(input) = input.as_mut() {
                let _ = input.write_all(&data);
            }
        });
        let out = child
            .wait_with_output()
            .map_err(ProviderError::io("run", self.name))?;
        let _ = writer.join();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(RunOutput {
            command: format!("{} {}", self.name, args.join(" ")),
            success: out.status.success(),
            status: describe(out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            output: text,
        })
    }

    /// Runs the program and requires success.
    pub fn run(&self, args: &[&str]) -> Result<RunOutput, ProviderError> {
        let out = self.output(args, &[])?;
        out.check(&out.command.clone())?;
        Ok(out)
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The command as run, for messages.
    pub command: String,
    pub success: bool,
    /// `exit status 1`, `signal 9`.
    pub status: String,
    pub stdout: String,
    /// stdout then stderr.
    pub output: String,
}

impl RunOutput {
    /// An error naming `what` unless the command succeeded.
    pub fn check(&self, what: &str) -> Result<(), ProviderError> {
        if self.success {
            return Ok(());
        }
        Err(ProviderError::Command {
            command: what.into(),
            status: self.status.clone(),
            output: self.output.clone(),
        })
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// The last `count` lines of `text`.
pub fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(count);
    lines[start..].join("\n")
}

/// `text` as one word for `sh`: single quotes, with `'` written as `'\''`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_survive_the_shell() {
        let word = "it's $HOME `x`";
        let out = Program::new("sh", "dash")
            .output(&["-c", &format!("printf %s {}", quote(word))], &[])
            .unwrap();
        assert_eq!(out.stdout, word);
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let error = Program::new("bess-no-such-program", "bess-pkg")
            .run(&[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("apt-get install bess-pkg"), "{error}");
    }
}
