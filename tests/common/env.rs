//! Helpers of the environment tests: platforms on disk and in git, and
//! `[host]` settings that point every file bess writes into a scratch
//! directory.

use super::Sandbox;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example platform shipped in `conf/platforms/example`.
pub fn example_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/platforms/example")
}

/// Copies the example platform to `dest` and returns it.
pub fn copy_example(dest: &Path) -> PathBuf {
    copy_tree(&example_source(), dest);
    dest.to_path_buf()
}

/// Copies a directory tree (files keep their modes).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A platform directory with this `platform.toml` and these files.
pub fn platform_dir(dest: &Path, toml: &str, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    std::fs::write(dest.join("platform.toml"), toml).unwrap();
    for (name, text) in files {
        let path = dest.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dest.to_path_buf()
}

/// One machine `web` serving site `v5` on `port`.
pub fn one_machine_toml(port: u16) -> String {
    format!(
        "dist = \"bookworm\"\n\
         [[machine]]\nname = \"web\"\nbox = \"test/bookworm\"\npackages = [\"myapp\"]\n\
         [[site]]\nname = \"v5\"\nmachine = \"web\"\nport = {port}\n\
         [[tool]]\nname = \"stats\"\ntitle = \"Statistics\"\nmachine = \"web\"\nport = {port}\npath = \"/stats/\"\n"
    )
}

/// Runs git in `dir`, requiring success; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Makes `dir` a git repository with everything in it committed; returns its file:// URL.
pub fn commit_all(dir: &Path, message: &str) -> String {
    if !dir.join(".git").exists() {
        git(dir, &["init", "--quiet", "--initial-branch=main"]);
    }
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "--message", message]);
    format!("file://{}", dir.display())
}

/// Points `[host]` of the sandbox at `dir` (zones in `dir/bind`, proxy
/// files in `dir/nginx` or `dir/apache`), with the proxy on `port` and no
/// reload commands unless set later.
pub fn host_in(sb: &Sandbox, dir: &Path, proxy: &str, port: u16) {
    let d = dir.display();
    let pairs = [
        ("proxy = \"nginx\"", format!("proxy = \"{proxy}\"")),
        ("proxy-port = 80 ", format!("proxy-port = {port} ")),
        (
            "bind-zone-dir = \"/var/lib/bind/bess\"",
            format!("bind-zone-dir = \"{d}/bind\""),
        ),
        (
            "bind-include = \"/var/lib/bind/bess/named.conf\"",
            format!("bind-include = \"{d}/bind/named.conf\""),
        ),
        (
            "nginx-sites-dir = \"/etc/nginx/bess\"",
            format!("nginx-sites-dir = \"{d}/nginx\""),
        ),
        (
            "apache-sites-dir = \"/etc/apache2/bess\"",
            format!("apache-sites-dir = \"{d}/apache\""),
        ),
        (
            "bind-reload = [\"rndc\", \"reload\"]",
            "bind-reload = []".to_string(),
        ),
        (
            "# proxy-reload = [\"nginx\", \"-s\", \"reload\"]",
            "proxy-reload = []".to_string(),
        ),
    ];
    for (from, to) in pairs {
        sb.edit_settings(from, &to);
    }
}

/// Sets a `[host]` reload command (`bind-reload` or `proxy-reload`).
pub fn set_reload(sb: &Sandbox, key: &str, command: &[&str]) {
    let path = sb.repo.join("bess.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let words: Vec<String> = command.iter().map(|w| format!("\"{w}\"")).collect();
    let line = format!("{key} = [{}]", words.join(", "));
    let replaced: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&path, replaced.join("\n") + "\n").unwrap();
}

/// A JSON array's names.
pub fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// Directories a failed or killed `env init` could leave in `envs/<platform>/`.
pub fn leftovers(sb: &Sandbox, platform: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sb.repo.join("envs").join(platform)) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Users that belong to an environment.
pub fn environment_users(sb: &Sandbox) -> Vec<String> {
    let users = sb.json(&["user", "list"]);
    users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u.get("environment").is_some_and(|e| !e.is_null()))
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect()
}

/// `program` from PATH, else /usr/sbin (named, nginx and apache2 live
/// there, and a non-root PATH may lack it).
pub fn sbin(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    found.unwrap_or_else(|| Path::new("/usr/sbin").join(program))
}

/// `bess platform init NAME --source SOURCE --domain example.test
/// --ip-range RANGE`, which must succeed.
pub fn init_platform(sb: &Sandbox, name: &str, source: &Path, range: &str) {
    let source = source.to_str().unwrap();
    sb.ok(&[
        "platform",
        "init",
        name,
        "--source",
        source,
        "--domain",
        "example.test",
        "--ip-range",
        range,
    ]);
}
