//! Checking candidate files with the real tools before they replace the
//! old ones (`named-checkzone`, `named-checkconf`, `nginx -t`, `apache2
//! -t`), and reloading the services after.
//!
//! A proxy file is checked alone, inside a configuration bess writes for
//! the check (no access to the host's own configuration is needed, and
//! the host's other files cannot mask or cause its errors). A rejection
//! names the line the tool refused, as it reads in the candidate.

use super::super::EnvError;
use super::find_program;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a checking tool refused, as it will be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub tool: String,
    /// The file the candidate was to replace.
    pub file: String,
    pub line: Option<usize>,
    /// That line's text in the candidate.
    pub text: Option<String>,
    /// What the tool said.
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, &self.text) {
            (Some(line), Some(text)) => write!(
                f,
                "{} rejected line {line} of {} (`{}`): {}",
                self.tool,
                self.file,
                text.trim(),
                self.message
            )?,
            _ => write!(f, "{} rejected {}: {}", self.tool, self.file, self.message)?,
        }
        write!(f, "; the previous file stays in place")
    }
}

/// `named-checkzone ORIGIN CANDIDATE`.
pub fn check_zone(
    tool: &str,
    origin: &str,
    candidate: &Path,
    target: &Path,
) -> Result<(), EnvError> {
    let mut command = program(tool, "bind9-utils")?;
    command.arg(origin).arg(candidate);
    verdict(command, tool, candidate, target)
}

/// `named-checkconf CANDIDATE`.
pub fn check_include(tool: &str, candidate: &Path, target: &Path) -> Result<(), EnvError> {
    let mut command = program(tool, "bind9-utils")?;
    command.arg(candidate);
    verdict(command, tool, candidate, target)
}

/// `nginx -t` on a configuration that includes the candidate in `http {}`.
pub fn check_nginx(
    tool: &str,
    candidate: &Path,
    target: &Path,
    scratch: &Path,
) -> Result<(), EnvError> {
    let conf = scratch.join("nginx.conf");
    let dir = scratch.display();
    let text = format!(
        "pid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n\
         \x20   client_body_temp_path {dir}/body;\n    proxy_temp_path {dir}/proxy;\n\
         \x20   include \"{}\";\n}}\n",
        candidate.display()
    );
    std::fs::write(&conf, text).map_err(EnvError::io("write", &conf))?;
    let mut command = program(tool, "nginx")?;
    command
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(scratch)
        .arg("-e")
        .arg(scratch.join("error.log"))
        .arg("-c")
        .arg(&conf);
    verdict(command, tool, candidate, target)
}

/// `apache2 -t` on a configuration that loads the proxy modules from
/// `modules` and includes the candidate.
pub fn check_apache(
    tool: &str,
    modules: &Path,
    listen: (IpAddr, u16),
    candidate: &Path,
    target: &Path,
    scratch: &Path,
) -> Result<(), EnvError> {
    let conf = scratch.join("apache2.conf");
    let listen = match listen {
        (IpAddr::V6(v6), port) => format!("[{v6}]:{port}"),
        (v4, port) => format!("{v4}:{port}"),
    };
    let mut text = format!(
        "ServerRoot \"{dir}\"\nServerName bess-check\nPidFile \"{dir}/apache2.pid\"\nErrorLog \"{dir}/error.log\"\nListen {listen}\n",
        dir = scratch.display()
    );
    for module in ["mpm_event", "authz_core", "proxy", "proxy_http", "headers"] {
        text.push_str(&format!(
            "LoadModule {module}_module \"{}/mod_{module}.so\"\n",
            modules.display()
        ));
    }
    text.push_str(&format!("Include \"{}\"\n", candidate.display()));
    std::fs::write(&conf, text).map_err(EnvError::io("write", &conf))?;
    let mut command = program(tool, "apache2")?;
    command.arg("-t").arg("-f").arg(&conf);
    verdict(command, tool, candidate, target)
}

/// Runs a reload command (`[]` runs nothing).
pub fn run_reload(words: &[String], what: &str) -> Result<(), EnvError> {
    let Some((first, rest)) = words.split_first() else {
        return Ok(());
    };
    let program = find_program(first).unwrap_or_else(|| first.into());
    let output = Command::new(&program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            EnvError::Usage(format!(
                "the new {what} files are in place, but `{}` could not run: {e}; reload it by hand",
                words.join(" ")
            ))
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(EnvError::Usage(format!(
        "the new {what} files are in place, but `{}` failed ({}): {}; reload it by hand",
        words.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

fn program(tool: &str, package: &str) -> Result<Command, EnvError> {
    let path = find_program(tool).ok_or_else(|| {
        EnvError::Usage(format!(
            "`{tool}` is not installed (apt-get install {package}); bess checks every file \
             with it before replacing the old one (see [host] in bess.toml)"
        ))
    })?;
    let mut command = Command::new(path);
    command.stdin(Stdio::null());
    Ok(command)
}

/// Runs a check; a failure names the candidate's rejected line.
fn verdict(
    mut command: Command,
    tool: &str,
    candidate: &Path,
    target: &Path,
) -> Result<(), EnvError> {
    let output = command
        .output()
        .map_err(|e| EnvError::Usage(format!("cannot run `{tool}`: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(EnvError::Invalid(vec![
        rejection(tool, &said, candidate, target).to_string(),
    ]))
}

/// Reads what a tool said: the line naming the candidate, and its number.
fn rejection(tool: &str, said: &str, candidate: &Path, target: &Path) -> Rejection {
    let name = candidate.display().to_string();
    let final_name = target.display().to_string();
    let lines: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    let about = lines
        .iter()
        .find(|l| l.contains(&name) && line_number(l, &name).is_some())
        .or_else(|| lines.iter().find(|l| l.contains(&name)))
        .or(lines.first())
        .copied()
        .unwrap_or("no message");
    let line = line_number(about, &name);
    let text = line.and_then(|n| {
        let content = std::fs::read_to_string(candidate).ok()?;
        content.lines().nth(n.checked_sub(1)?).map(str::to_string)
    });
    // apache says where after the message: "… on line 3 of FILE:" then the reason.
    let mut message = about.replace(&name, &final_name);
    if about.contains("Syntax error on line")
        && let Some(next) = lines.iter().skip_while(|l| **l != about).nth(1)
    {
        message = format!("{message} {next}");
    }
    Rejection {
        tool: tool.to_string(),
        file: final_name,
        line,
        text,
        message: message.trim().to_string(),
    }
}

/// `FILE:12` (bind, nginx) or `line 12 of FILE` (apache).
fn line_number(text: &str, file: &str) -> Option<usize> {
    if let Some(at) = text.find(&format!("{file}:")) {
        let rest = &text[at + file.len() + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            return Some(n);
        }
    }
    let before = text.split(&format!(" of {file}")).next()?;
    let digits = before.rsplit("line ").next()?;
    digits.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rejected_line_is_found_in_each_tool_s_words() {
        let dir = tempfile::tempdir().unwrap();
        let candidate = dir.path().join(".x.conf.tmp");
        std::fs::write(&candidate, "one\ntwo bad\nthree\n").unwrap();
        let target = dir.path().join("x.conf");
        let c = candidate.display();
        for said in [
            format!(
                "nginx: [emerg] unknown directive \"two\" in {c}:2\nnginx: configuration file test failed\n"
            ),
            format!(
                "zone z/IN: loading from master file {c} failed: bad\n{c}:2: unknown RR type 'bad'\n"
            ),
            format!(
                "AH00526: Syntax error on line 2 of {c}:\nInvalid command 'two', perhaps misspelled\n"
            ),
        ] {
            let r = rejection("tool", &said, &candidate, &target);
            assert_eq!(r.line, Some(2), "{said}");
            assert_eq!(r.text.as_deref(), Some("two bad"));
            let shown = r.to_string();
            assert!(
                shown.contains(&format!("rejected line 2 of {}", target.display())),
                "{shown}"
            );
            assert!(!shown.contains(".x.conf.tmp"), "{shown}");
            assert!(
                shown.ends_with("the previous file stays in place"),
                "{shown}"
            );
        }
        let r = rejection("tool", "it broke\n", &candidate, &target);
        assert_eq!(r.line, None);
        assert!(r.to_string().contains("it broke"));
    }
}
