//! `-dist` templates: every file of a platform whose name ends in `-dist`
//! is rendered with the environment's variables (Jinja2 syntax, by
//! minijinja) into the same path without `-dist`.
//!
//! Rendering is strict: a variable the environment does not define is an
//! error, not an empty string that would surface later as a broken
//! configuration inside a machine. All templates are rendered in memory
//! first; files are written only when every one of them rendered, so a
//! failure leaves nothing half-rendered.

use super::EnvError;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What marks a file as a template.
pub const TEMPLATE_SUFFIX: &str = "-dist";

/// A rendered template, not yet written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The template, relative to the tree's root.
    pub template: PathBuf,
    /// Where the text goes, relative to the tree's root.
    pub target: PathBuf,
    pub text: String,
    /// The template's permission bits, so a rendered script stays executable.
    pub mode: u32,
}

/// Every template under `root` (relative paths, sorted), leaving out
/// `.git`. A template that is not a regular file is refused: a symbolic
/// link could make bess read, and write beside, files outside the tree.
pub fn find_templates(root: &Path) -> Result<Vec<PathBuf>, EnvError> {
    let mut found = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            EnvError::io("read", path)(e.into())
        })?;
        let name = entry.file_name().to_string_lossy();
        if !name.ends_with(TEMPLATE_SUFFIX) || entry.depth() == 0 {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if !entry.file_type().is_file() {
            return Err(EnvError::Invalid(vec![format!(
                "{}: a template must be a regular file, not a link or directory",
                relative.display()
            )]));
        }
        found.push(relative.to_path_buf());
    }
    Ok(found)
}

/// Renders every template under `root` with `variables`; all errors
/// are reported, one line each, naming file, line and what is wrong.
pub fn render_all(root: &Path, variables: &serde_json::Value) -> Result<Vec<Rendered>, EnvError> {
    let engine = engine();
    let mut rendered = Vec::new();
    let mut problems = Vec::new();
    for template in find_templates(root)? {
        match render_one(&engine, root, &template, variables) {
            Ok(one) => rendered.push(one),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(rendered)
    } else {
        Err(EnvError::Invalid(problems))
    }
}

/// The template engine: strict about undefined variables, no HTML
/// escaping (these are configuration files), trailing newlines kept.
fn engine() -> Environment<'static> {
    let mut engine = Environment::new();
    engine.set_undefined_behavior(UndefinedBehavior::Strict);
    engine.set_keep_trailing_newline(true);
    engine.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    engine.set_debug(true);
    engine
}

fn render_one(
    engine: &Environment<'_>,
    root: &Path,
    template: &Path,
    variables: &serde_json::Value,
) -> Result<Rendered, String> {
    let name = template.display().to_string();
    let path = root.join(template);
    let bytes = std::fs::read(&path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    let source =
        String::from_utf8(bytes).map_err(|e| not_utf8(&name, e.as_bytes(), e.utf8_error()))?;
    let text = engine
        .render_named_str(&name, &source, variables)
        .map_err(|e| describe(&name, &source, &e))?;
    let target = target_of(template)
        .ok_or_else(|| format!("{name}: a template needs a name before `{TEMPLATE_SUFFIX}`"))?;
    Ok(Rendered {
        template: template.to_path_buf(),
        target,
        text,
        mode,
    })
}

/// `etc/app.conf-dist` → `etc/app.conf`.
pub fn target_of(template: &Path) -> Option<PathBuf> {
    let name = template.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(TEMPLATE_SUFFIX)
        .filter(|s| !s.is_empty())?;
    Some(template.with_file_name(stem))
}

fn not_utf8(name: &str, bytes: &[u8], error: std::str::Utf8Error) -> String {
    let at = error.valid_up_to();
    let line = 1 + bytes[..at].iter().filter(|b| **b == b'\n').count();
    format!(
        "{name}:{line}: not UTF-8 text (byte 0x{:02x}); templates must be UTF-8",
        bytes[at]
    )
}

/// `file:line: what`, naming the undefined variable as written in the
/// template.
fn describe(name: &str, source: &str, error: &minijinja::Error) -> String {
    let line = error.line().map(|l| format!(":{l}")).unwrap_or_default();
    let written = error
        .range()
        .and_then(|r| source.get(widen_to_path(source, r)))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match (error.kind(), written) {
        (ErrorKind::UndefinedError, Some(expression)) => format!(
            "{name}{line}: `{expression}` is undefined; the variables an environment defines are in etc/bess/variables.json"
        ),
        (ErrorKind::SyntaxError, _) => format!(
            "{name}{line}: syntax error: {}",
            error.detail().unwrap_or("invalid template syntax")
        ),
        _ => format!(
            "{name}{line}: {}",
            error.detail().unwrap_or(&error.kind().to_string())
        ),
    }
}

/// minijinja's range of a failed attribute lookup starts at the first
/// dot (`.web.ip`); the name before it belongs to what the author wrote.
fn widen_to_path(source: &str, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let before = source.get(..range.start).unwrap_or("");
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .last()
        .map_or(range.start, |(at, _)| at);
    start..range.end
}

/// Writes rendered files under `root`: each to a temporary file beside
/// its target first, flushed (one `syncfs` for all), then all of them
/// renamed into place, so the tree never holds some files rendered and
/// others not.
pub fn install(root: &Path, rendered: &[Rendered]) -> Result<(), EnvError> {
    let mut staged = Vec::with_capacity(rendered.len());
    let outcome = stage_all(root, rendered, &mut staged).and_then(|()| {
        crate::pool::sync_filesystem(root).map_err(EnvError::io("flush", root))?;
        for (temp, target) in &staged {
            std::fs::rename(temp, target).map_err(EnvError::io("rename into place", target))?;
        }
        Ok(())
    });
    if outcome.is_err() {
        for (temp, _) in &staged {
            let _ = std::fs::remove_file(temp);
        }
    }
    outcome
}

fn stage_all(
    root: &Path,
    rendered: &[Rendered],
    staged: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), EnvError> {
    for file in rendered {
        let target = root.join(&file.target);
        let temp = staging_name(&target);
        staged.push((temp.clone(), target));
        crate::env::files::write_unflushed(&temp, file.text.as_bytes(), file.mode)?;
    }
    Ok(())
}

fn staging_name(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.bess-render-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn vars() -> serde_json::Value {
        json!({"environment": "1161", "machines": {"web": {"ip": "10.77.0.2"}}})
    }

    #[test]
    fn renders_every_dist_file_beside_itself() {
        let dir = tree(&[
            (
                "etc/app.conf-dist",
                b"env={{ environment }}\nweb={{ machines.web.ip }}\n",
            ),
            ("README", b"not a template {{ x }}"),
            (".git/config-dist", b"{{ nope }}"),
        ]);
        let script = dir.path().join("etc/app.conf-dist");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
        let rendered = render_all(dir.path(), &vars()).unwrap();
        assert_eq!(rendered.len(), 1);
        install(dir.path(), &rendered).unwrap();
        let out = dir.path().join("etc/app.conf");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "env=1161\nweb=10.77.0.2\n"
        );
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o750
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn errors_name_file_line_and_variable_and_nothing_is_written() {
        let dir = tree(&[
            ("a.conf-dist", b"ok={{ environment }}\n"),
            ("b.conf-dist", b"line one\nhost={{ machines.web.ipp }}\n"),
            ("c.conf-dist", b"\n\n{{ databse }}\n"),
            ("d.conf-dist", b"{% if %}\n"),
            ("e.conf-dist", b"fine\n\xff\n"),
        ]);
        let error = render_all(dir.path(), &vars()).unwrap_err().to_string();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 4, "{error}");
        assert!(
            lines[0].starts_with("b.conf-dist:2: `machines.web.ipp` is undefined"),
            "{error}"
        );
        assert!(
            lines[1].starts_with("c.conf-dist:3: `databse` is undefined"),
            "{error}"
        );
        assert!(
            lines[2].starts_with("d.conf-dist:1: syntax error"),
            "{error}"
        );
        assert!(lines[3].starts_with("e.conf-dist:2: not UTF-8"), "{error}");
        assert!(!dir.path().join("a.conf").exists());
    }

    #[test]
    fn links_named_like_templates_are_refused() {
        let dir = tree(&[("real", b"x")]);
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd-dist")).unwrap();
        let error = render_all(dir.path(), &vars()).unwrap_err().to_string();
        assert!(
            error.contains("passwd-dist: a template must be a regular file"),
            "{error}"
        );
    }

    #[test]
    fn targets_drop_the_suffix() {
        assert_eq!(
            target_of(Path::new("a/b.conf-dist")).unwrap(),
            Path::new("a/b.conf")
        );
        assert!(target_of(Path::new("a/-dist")).is_none());
    }
}
