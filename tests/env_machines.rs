//! The end-to-end proof of environments with the real parts (#20): myapp
//! uploaded over HTTP to `bess serve`, the example platform's image built
//! by mmdebstrap and published as a box, nspawn machines that install
//! myapp from `bess serve` with their environment's credential, a real
//! nginx configured by `bess host bind-proxy` in front of them, `env
//! update` forwards and its rollback, a second environment on `prod`,
//! `halt`, `up`, and a `destroy` after which nothing of the environment
//! is left on the host.
//!
//! Needs root (network namespaces, overlay mounts, cgroups). The image is
//! built once per host and kept in `BESS_TEST_IMAGE_CACHE` (default
//! /var/cache/bess-test/images), outside the checkout, so only the first
//! run pays mmdebstrap's minute or two.

mod common;

use common::env::{copy_example, environment_users, host_in, init_platform, set_reload};
use common::server::{Server, add_user};
use common::{Daemon, Sandbox, have_tool};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The platform's range: nothing else on a test host uses it.
const RANGE: &str = "10.231.7.0/24";
/// The host's end of the platform's network.
const HOST_END: &str = "10.231.7.1";
/// Machine `web` of the first environment (the range's first machine).
const WEB: &str = "10.231.7.2";
const SITE: &str = "v5.1161.paas.example.test";
const UPLOADER: (&str, &str) = ("ci", "ci-uploader-secret");

/// Held by each test that starts machines: they change the host's links,
/// routes and cgroups, which the end-to-end test checks are left clean.
static MACHINES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`MACHINES`], also after a test that held it failed.
fn machines_lock() -> std::sync::MutexGuard<'static, ()> {
    MACHINES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether this host can run the test: the tools, and root. Under CI a
/// missing tool or a missing root fails the test instead of skipping it.
fn can_run_machines() -> bool {
    let tools = [
        "systemd-nspawn",
        "mmdebstrap",
        "nsenter",
        "ip",
        "zstd",
        "nginx",
        "named-checkzone",
        "curl",
        "dpkg-deb",
        "ssh",
    ];
    if !tools.iter().all(|t| have_tool(t)) {
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tests/env_machines.rs needs root under CI (netns, mounts, cgroups)"
        );
        eprintln!("skipping: machines need root");
        return false;
    }
    true
}

/// Where built images are kept between runs, outside the checkout.
fn image_cache() -> PathBuf {
    std::env::var_os("BESS_TEST_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/bess-test/images"))
}

fn free_port(address: &str) -> u16 {
    TcpListener::bind(format!("{address}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// myapp `version`: a page per site of the example platform naming the
/// version, or (`broken`) no pages at all, so nginx answers 403 and the
/// update's HTTP check fails.
fn myapp(dir: &Path, version: &str, broken: bool) -> PathBuf {
    let root = dir.join(format!("myapp-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: myapp\nVersion: {version}\nArchitecture: all\n\
             Maintainer: Test <test@example.com>\nDescription: the example platform's application\n"
        ),
    )
    .unwrap();
    for site in ["v5", "admin", "api/v1"] {
        let pages = root.join("usr/share/myapp").join(site);
        std::fs::create_dir_all(&pages).unwrap();
        if !broken {
            std::fs::write(pages.join("index.html"), format!("myapp {version}\n")).unwrap();
        }
    }
    let deb = dir.join(format!("myapp_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

/// Uploads `deb` to `bess serve` as CI does: `repo ingest --remote`.
fn upload(server: &Server, deb: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_PASSWORD", UPLOADER.1)
        .args([
            "repo",
            "ingest",
            "--remote",
            &server.url(),
            "--user",
            UPLOADER.0,
        ])
        .arg(deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bess serve` on every address at a fixed port, which `[serve] listen`
/// names too: machines reach it at the host's end of their network.
fn serve(sb: &Sandbox) -> Server {
    let port = free_port("0.0.0.0");
    let listen = format!("0.0.0.0:{port}");
    sb.edit_settings(
        "listen = \"127.0.0.1:8080\"",
        &format!("listen = \"{listen}\""),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_bess"));
    command
        .env("BESS_REPO", &sb.repo)
        .args(["serve", "--listen", &listen]);
    Server::from_command(command, Some(sb.path("serve.log")))
}

/// nginx on a loopback port including the proxy files bind-proxy writes
/// into `sites`; bind-proxy reloads it with SIGHUP.
fn nginx(sb: &Sandbox, port: u16, sites: &Path) -> Daemon {
    let run = sb.path("nginx-run");
    std::fs::create_dir_all(&run).unwrap();
    let d = run.display();
    let conf = run.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  server {{ listen 127.0.0.1:{port} default_server; return 404; }}\n  include {}/*.conf;\n}}\n",
            sites.display()
        ),
    )
    .unwrap();
    let daemon = Daemon(
        Command::new(common::env::sbin("nginx"))
            .arg("-p")
            .arg(&run)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id().to_string();
    set_reload(sb, "proxy-reload", &["kill", "-HUP", &pid]);
    settled("nginx listening", 1, || page(port, "x").0 == 404);
    daemon
}

/// `curl` through the proxy with a Host header: (status, body).
fn page(port: u16, host: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {host}"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Retries `probe` until it holds `times` times in a row, for at most
/// 30 s: nginx reloads gracefully, so old workers may answer a few more
/// requests with the old configuration.
fn settled(what: &str, times: u32, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut streak = 0;
    while Instant::now() < deadline {
        streak = if probe() { streak + 1 } else { 0 };
        if streak >= times {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 30 s");
}

/// Waits until the site through the proxy shows `body`; says what it
/// showed last when it never does.
fn site_shows(port: u16, body: &str) {
    let mut last = (0, String::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut streak = 0;
    while Instant::now() < deadline && streak < 3 {
        last = page(port, SITE);
        streak = if last == (200, body.to_string()) {
            streak + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(streak >= 3, "{SITE} never showed {body:?}; last: {last:?}");
}

/// Destroys the test's environments whatever happened, before the
/// sandbox is deleted: machines left running would keep the overlay
/// mounts, and deleting the sandbox would delete through them.
struct Teardown<'a>(&'a Sandbox);

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return; // the test destroyed them, and checked it
        }
        // nginx, declared later, is gone already: a reload that fails
        // would stop `env destroy` before it removes the machines.
        set_reload(self.0, "proxy-reload", &["true"]);
        for env in ["1163", "1162", "1161"] {
            let out = self.0.bess(&["env", "destroy", "paas", env]);
            if !out.status.success() {
                eprintln!(
                    "teardown of {env}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Each machine of `outcomes` (`env up --json`) is in `state`.
fn all_in(outcomes: &serde_json::Value, state: &str) {
    let list = outcomes.as_array().unwrap();
    assert!(!list.is_empty(), "no machines: {outcomes}");
    for m in list {
        assert_eq!(m["state"], state, "{outcomes}");
    }
}

/// The version of myapp recorded as installed in `env`.
fn recorded(sb: &Sandbox, env: &str) -> String {
    let view = sb.json(&["env", "show", "paas", env]);
    let packages = view["packages"].as_array().unwrap();
    let myapp = packages.iter().find(|p| p["package"] == "myapp").unwrap();
    myapp["installed"].as_str().unwrap_or("-").to_string()
}

/// Names of the host's network links.
fn links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap().to_string())
        .collect()
}

/// Live processes (not zombies) whose root or command line is inside `dir`.
fn processes_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let proc_dir = entry.path();
        let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
            continue;
        };
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, s)| s.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let root = std::fs::read_link(proc_dir.join("root")).unwrap_or_default();
        if root.starts_with(dir) || cmdline.contains(&*dir.to_string_lossy()) {
            found.push(format!("{}: {cmdline}", proc_dir.display()));
        }
    }
    found
}

/// The host's links and environment cgroups before a test starts
/// machines: what a test leaves is what is there now and was not then
/// (an earlier run that crashed is not this run's fault).
struct HostBefore {
    links: Vec<String>,
    cgroups: Vec<String>,
}

impl HostBefore {
    fn take() -> HostBefore {
        HostBefore {
            links: links(),
            cgroups: cgroups_named(".paas."),
        }
    }

    fn new_links(&self) -> Vec<String> {
        links()
            .into_iter()
            .filter(|l| !self.links.contains(l))
            .collect()
    }

    /// New cgroups whose name has `needle`.
    fn new_cgroups(&self, needle: &str) -> Vec<String> {
        cgroups_named(needle)
            .into_iter()
            .filter(|c| !self.cgroups.contains(c))
            .collect()
    }
}

/// Directories under the cgroup trees whose name has `needle`.
fn cgroups_named(needle: &str) -> Vec<String> {
    walkdir::WalkDir::new("/sys/fs/cgroup")
        .max_depth(4)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir() && e.file_name().to_string_lossy().contains(needle))
        .map(|e| e.path().display().to_string())
        .collect()
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of environment `env` of platform paas is left on the host.
fn nothing_left(sb: &Sandbox, host: &Path, env: &str, before: &HostBefore) {
    let id = format!("paas.{env}");
    assert_eq!(
        processes_in(&sb.repo),
        Vec::<String>::new(),
        "processes left"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let repo = sb.repo.to_string_lossy();
    assert!(!mounts.contains(&*repo), "mounts left:\n{mounts}");
    let netns = command_output("ip", &["netns", "list"]);
    assert!(!netns.contains(&id), "network namespaces left:\n{netns}");
    assert_eq!(before.new_links(), Vec::<String>::new(), "links left");
    assert_eq!(
        before.new_cgroups(&id),
        Vec::<String>::new(),
        "cgroups left"
    );
    let addresses = command_output("ip", &["-o", "addr"]);
    assert!(
        !addresses.contains("10.231.7."),
        "addresses left:\n{addresses}"
    );
    let users = environment_users(sb);
    let user = format!("env.paas.{env}");
    assert!(!users.contains(&user), "user left: {users:?}");
    assert!(!host.join(format!("nginx/paas.{env}.conf")).exists());
    assert!(!sb.repo.join(format!("envs/paas/{env}")).exists());
    assert!(!sb.repo.join(format!("machines/paas/{env}")).exists());
}

/// A repository with uploader `ci`, the example platform on [`RANGE`],
/// the host's proxy files in `host`, nginx's port `proxy_port`.
fn repository(host: &Path, proxy_port: u16) -> Sandbox {
    repository_with(host, proxy_port, RANGE, &[])
}

/// [`repository`] on `range`, with these files of the example platform replaced.
fn repository_with(host: &Path, proxy_port: u16, range: &str, files: &[(&str, &str)]) -> Sandbox {
    let sb = Sandbox::new("bookworm", "amd64");
    host_in(&sb, host, "nginx", proxy_port);
    for dir in ["bind", "nginx"] {
        std::fs::create_dir_all(host.join(dir)).unwrap();
    }
    add_user(&sb.repo, UPLOADER, &["--upload", "preprod"]);
    let source = copy_example(&sb.path("platform"));
    for (name, text) in files {
        std::fs::write(source.join(name), text).unwrap();
    }
    init_platform(&sb, "paas", &source, range);
    sb
}

/// Builds the platform's image (or takes it from the cache); its version.
fn build_image(sb: &Sandbox) -> String {
    let cache = image_cache();
    std::fs::create_dir_all(&cache).unwrap();
    let started = Instant::now();
    let built = sb.json(&[
        "platform",
        "build",
        "paas",
        "--cache",
        cache.to_str().unwrap(),
    ]);
    eprintln!(
        "platform build: {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        if built["cached"] == true {
            "cached"
        } else {
            "mmdebstrap"
        }
    );
    assert_eq!(built["box"], "example/bookworm", "{built}");
    assert_eq!(built["provider"], "nspawn", "{built}");
    assert_eq!(built["channel"], "preprod", "{built}");
    let boxes = sb.json(&["box", "list"]);
    assert!(boxes.to_string().contains("example/bookworm"), "{boxes}");
    built["version"].as_str().unwrap().to_string()
}

#[test]
fn an_environment_installs_updates_rolls_back_and_leaves_nothing() {
    if !can_run_machines() {
        return;
    }
    let _machines = machines_lock();
    let scratch = tempfile::tempdir().unwrap();
    let (host, proxy_port) = (scratch.path().join("host"), free_port("127.0.0.1"));
    let sb = repository(&host, proxy_port);
    let _teardown = Teardown(&sb);
    let server = serve(&sb);
    let debs = sb.path("debs");
    upload(&server, &myapp(&debs, "1.0", false));
    let box_version = build_image(&sb);

    let before = HostBefore::take();
    sb.ok(&["env", "init", "paas", "1161"]);
    let _nginx = nginx(&sb, proxy_port, &host.join("nginx"));
    sb.ok(&["host", "bind-proxy", "paas", "1161"]);
    all_in(&sb.json(&["env", "up", "paas", "1161"]), "up");
    site_shows(proxy_port, "myapp 1.0\n");
    assert_eq!(recorded(&sb, "1161"), "1.0");
    // The machine fetched the package from bess serve, logged in as its
    // environment's read-only user.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("{WEB} env.paas.1161 "))
                && l.contains("myapp_1.0_all.deb\" 200")),
        "{log}"
    );
    assert!(
        log.contains(&format!("{HOST_END} env.paas.1161")),
        "the box came over HTTP: {log}"
    );
    // Every machine is reachable over SSH with the environment's key, and
    // its journal is readable from the host.
    let installed = sb.ok(&[
        "env",
        "ssh",
        "paas",
        "1161",
        "web",
        "--",
        "dpkg-query",
        "-W",
        "myapp",
    ]);
    assert_eq!(installed, "myapp\t1.0\n");
    let journal = sb.ok(&["env", "logs", "paas", "1161", "web", "nginx"]);
    assert!(journal.contains("nginx"), "{journal}");

    updates_and_rollback(&sb, &server, &debs, proxy_port);
    on_prod(&sb, &box_version, &before);

    // halt stops every machine; up brings them back as they were.
    all_in(&sb.json(&["env", "halt", "paas", "1161"]), "halted");
    let machines = sb.repo.join("machines/paas/1161");
    assert_eq!(
        processes_in(&machines),
        Vec::<String>::new(),
        "halted machines still run"
    );
    assert_ne!(page(proxy_port, SITE).0, 200, "a halted site answers");
    all_in(&sb.json(&["env", "up", "paas", "1161"]), "up");
    site_shows(proxy_port, "myapp 1.1\n");
    // The same for every environment of the platform: 1161 is the one left.
    let halted = sb.json(&["platform", "halt", "paas"]);
    assert_eq!(halted[0]["environment"], "1161", "{halted}");
    all_in(&halted[0]["machines"], "halted");
    assert_ne!(page(proxy_port, SITE).0, 200, "a halted site answers");
    let up = sb.json(&["platform", "up", "paas"]);
    assert_eq!(up.as_array().map(Vec::len), Some(1), "{up}");
    all_in(&up[0]["machines"], "up");
    site_shows(proxy_port, "myapp 1.1\n");

    sb.ok(&["env", "destroy", "paas", "1161"]);
    settled("v5 unrouted", 3, || page(proxy_port, SITE).0 == 404);
    nothing_left(&sb, &host, "1161", &before);
}

/// 1.1 replaces 1.0; a broken 1.2 fails its check and leaves 1.1 running.
fn updates_and_rollback(sb: &Sandbox, server: &Server, debs: &Path, proxy_port: u16) {
    upload(server, &myapp(debs, "1.1", false));
    let updated = sb.json(&["env", "update", "paas", "1161"]);
    assert_eq!(updated[0]["result"], "updated", "{updated}");
    assert_eq!(updated[0]["to"]["myapp"], "1.1", "{updated}");
    site_shows(proxy_port, "myapp 1.1\n");
    assert_eq!(recorded(sb, "1161"), "1.1");

    upload(server, &myapp(debs, "1.2", true));
    let error = sb.fails(&["env", "update", "paas", "1161"]);
    assert!(error.contains("the check of site"), "{error}");
    assert!(error.contains("answered 403"), "{error}");
    assert!(error.contains("rolled back to myapp 1.1"), "{error}");
    assert_eq!(page(proxy_port, SITE), (200, "myapp 1.1\n".into()));
    assert_eq!(recorded(sb, "1161"), "1.1");
    let log = sb.ok(&["log"]);
    assert!(log.contains("env.update"), "{log}");
    assert!(log.contains("env.rollback"), "{log}");
}

/// With 1.1 and the image promoted, an environment on `prod` installs 1.1
/// (not 1.2, which stayed in preprod); then it is destroyed.
fn on_prod(sb: &Sandbox, box_version: &str, before: &HostBefore) {
    sb.ok(&["repo", "promote", "myapp=1.1"]);
    sb.ok(&["box", "promote", &format!("example/bookworm={box_version}")]);
    sb.ok(&["env", "init", "paas", "1162", "--channel", "prod"]);
    all_in(&sb.json(&["env", "up", "paas", "1162"]), "up");
    assert_eq!(recorded(sb, "1162"), "1.1");
    sb.ok(&["env", "destroy", "paas", "1162"]);
    assert_eq!(before.new_cgroups("paas.1162"), Vec::<String>::new());
}

/// The example platform, its machines run by `qemu`.
fn qemu_platform() -> String {
    let text =
        std::fs::read_to_string(common::env::example_source().join("platform.toml")).unwrap();
    assert!(text.contains("provider = \"nspawn\""), "{text}");
    text.replace("provider = \"nspawn\"", "provider = \"qemu\"")
}

/// A real virtual machine: the example's image built for qemu (cached
/// like the nspawn one), booted with TCG here, myapp installed from
/// `bess serve`, reached over SSH and destroyed without a trace.
#[test]
fn a_qemu_machine_installs_answers_over_ssh_and_leaves_nothing() {
    if !can_run_machines() || !have_tool("qemu-system-x86_64") || !have_tool("qemu-img") {
        return;
    }
    let _machines = machines_lock();
    let before = HostBefore::take();
    let scratch = tempfile::tempdir().unwrap();
    let host = scratch.path().join("host");
    let toml = qemu_platform();
    let files = [("platform.toml", toml.as_str())];
    let sb = repository_with(&host, free_port("127.0.0.1"), "10.231.10.0/24", &files);
    let _teardown = Teardown(&sb);
    let server = serve(&sb);
    upload(&server, &myapp(&sb.path("debs"), "1.0", false));
    let cache = image_cache();
    std::fs::create_dir_all(&cache).unwrap();
    let started = Instant::now();
    let cache_arg = cache.to_str().unwrap();
    let args = [
        "platform",
        "build",
        "paas",
        "--provider",
        "qemu",
        "--cache",
        cache_arg,
    ];
    let built = sb.json(&args);
    eprintln!(
        "qemu image: {:.1} s (cached: {})",
        started.elapsed().as_secs_f64(),
        built["cached"]
    );
    assert_eq!(built["provider"], "qemu", "{built}");
    assert!(
        built["packages"].to_string().contains("linux-image-amd64"),
        "{built}"
    );

    sb.ok(&["env", "init", "paas", "1161"]);
    let started = Instant::now();
    // web only: one VM under TCG is slow enough.
    all_in(&sb.json(&["env", "up", "paas", "1161", "web"]), "up");
    eprintln!("qemu env up: {:.1} s", started.elapsed().as_secs_f64());
    let status = sb.json(&["env", "status", "paas", "1161"]);
    let web = status["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "web")
        .unwrap();
    assert_eq!(
        (
            &web["name"],
            &web["state"],
            &web["observed"],
            &web["provider"]
        ),
        (
            &"web".into(),
            &"up".into(),
            &"running".into(),
            &"qemu".into()
        ),
        "{status}"
    );
    let listed = sb.ok(&[
        "env", "ssh", "paas", "1161", "web", "--", "dpkg", "-l", "myapp",
    ]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ii  myapp") && l.contains(" 1.0 ")),
        "{listed}"
    );
    // The machine's own kernel runs, not the host's: it is a VM.
    let kernel = sb.ok(&[
        "env",
        "ssh",
        "paas",
        "1161",
        "web",
        "--",
        "cat",
        "/proc/cmdline",
    ]);
    assert!(kernel.contains("root=/dev/vda"), "{kernel}");
    let page = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "http://10.231.10.2/",
            "-H",
            "Host: v5.1161.paas.example.test",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout), "myapp 1.0\n");
    assert_eq!(recorded(&sb, "1161"), "1.0");

    sb.ok(&["env", "destroy", "paas", "1161"]);
    nothing_left(&sb, &host, "1161", &before);
}

/// A machine whose package is not in the channel fails naming it and
/// leaves the others alone; a provisioning script that fails leaves its
/// machine `failed` with the script's output; `env reload` retries both,
/// and runs web's Ansible playbook too.
#[test]
fn a_missing_package_and_a_failing_script_fail_their_machine_and_reload_retries() {
    if !can_run_machines() || !have_tool("ansible-playbook") {
        return;
    }
    let _machines = machines_lock();
    let before = HostBefore::take();
    let scratch = tempfile::tempdir().unwrap();
    let host = scratch.path().join("host");
    // db's script fails until /etc/allow-db exists in the machine.
    let db_script = "#!/bin/sh\nset -eu\nif ! test -e /etc/allow-db; then\n  echo \"db refuses: no /etc/allow-db\"\n  exit 3\nfi\n";
    // web runs an Ansible playbook after its script, from the host, over
    // SSH with the environment's key.
    let toml = std::fs::read_to_string(common::env::example_source().join("platform.toml"))
        .unwrap()
        .replace(
            "provision = [{ shell = \"provision/web.sh\" }]",
            "provision = [{ shell = \"provision/web.sh\" }, { ansible = \"provision/site.yml\" }]",
        );
    let playbook = "- hosts: web\n  gather_facts: false\n  tasks:\n    - raw: echo \"{{ inventory_hostname }} by ansible\" > /etc/provisioned-by\n";
    let sb = repository_with(
        &host,
        free_port("127.0.0.1"),
        "10.231.8.0/24",
        &[
            ("provision/db.sh", db_script),
            ("platform.toml", &toml),
            ("provision/site.yml", playbook),
        ],
    );
    let _teardown = Teardown(&sb);
    let server = serve(&sb);
    build_image(&sb);
    sb.ok(&["env", "init", "paas", "1161"]);

    // myapp was never uploaded: web fails naming it, db is not touched.
    let error = sb.fails(&["env", "up", "paas", "1161", "web"]);
    assert!(
        error.contains("package myapp is not in channel preprod"),
        "{error}"
    );
    let status = sb.json(&["env", "status", "paas", "1161"]);
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(machine_state(&status, "web"), "failed", "{status}");
    assert_eq!(machine_state(&status, "db"), "defined", "{status}");

    let error = sb.fails(&["env", "up", "paas", "1161", "db"]);
    assert!(error.contains("provision/db.sh"), "{error}");
    let status = sb.json(&["env", "status", "paas", "1161"]);
    assert_eq!(machine_state(&status, "db"), "failed", "{status}");
    let failed: Vec<&serde_json::Value> = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert!(
        failed.iter().any(|s| s["machine"] == "db"
            && s["output"]
                .as_str()
                .unwrap()
                .contains("db refuses: no /etc/allow-db")),
        "the failed step keeps the script's output: {status}"
    );

    // Both causes fixed, reload provisions every machine again.
    sb.ok(&[
        "env",
        "ssh",
        "paas",
        "1161",
        "db",
        "--",
        "touch",
        "/etc/allow-db",
    ]);
    upload(&server, &myapp(&sb.path("debs"), "1.0", false));
    all_in(&sb.json(&["env", "reload", "paas", "1161"]), "up");
    let status = sb.json(&["env", "status", "paas", "1161"]);
    assert_eq!(status["state"], "up", "{status}");
    assert_eq!(recorded(&sb, "1161"), "1.0");
    let by = sb.ok(&[
        "env",
        "ssh",
        "paas",
        "1161",
        "web",
        "--",
        "cat",
        "/etc/provisioned-by",
    ]);
    assert_eq!(by, "web by ansible\n");
    sb.ok(&["env", "destroy", "paas", "1161"]);
    assert_eq!(before.new_cgroups("paas.1161"), Vec::<String>::new());
}

fn machine_state(status: &serde_json::Value, machine: &str) -> String {
    let machines = status["machines"].as_array().unwrap();
    let m = machines.iter().find(|m| m["name"] == machine).unwrap();
    m["state"].as_str().unwrap().to_string()
}

/// Without systemd-nspawn on PATH, `env up` says which package to
/// install, and starts nothing. Needs no root.
#[test]
fn env_up_without_systemd_nspawn_names_the_package_to_install() {
    let sb = Sandbox::new("bookworm", "amd64");
    let source = copy_example(&sb.path("platform"));
    init_platform(&sb, "paas", &source, "10.231.9.0/24");
    sb.ok(&["env", "init", "paas", "1161"]);
    let empty = sb.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .env("PATH", &empty)
        .args(["env", "up", "paas", "1161"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("`systemd-nspawn` is not installed"),
        "{error}"
    );
    assert!(
        error.contains("apt-get install systemd-container"),
        "{error}"
    );
    assert!(!sb.repo.join("machines/paas/1161").exists());
    let status = sb.json(&["env", "status", "paas", "1161"]);
    assert_eq!(status["state"], "ready", "{status}");
}

/// Two environments brought up at once both work, on addresses of their
/// own; a bess killed with SIGKILL during `env up` leaves an environment
/// the next command reports `failed`, and `env up` finishes; `platform
/// destroy --force` removes every machine of the platform.
#[test]
fn parallel_ups_and_a_killed_up_are_repaired_by_the_next_command() {
    if !can_run_machines() {
        return;
    }
    let _machines = machines_lock();
    let before = HostBefore::take();
    let scratch = tempfile::tempdir().unwrap();
    let sb = repository_with(
        &scratch.path().join("host"),
        free_port("127.0.0.1"),
        "10.231.8.0/24",
        &[],
    );
    let _teardown = Teardown(&sb);
    let server = serve(&sb);
    build_image(&sb);
    upload(&server, &myapp(&sb.path("debs"), "1.0", false));
    for env in ["1161", "1162", "1163"] {
        sb.ok(&["env", "init", "paas", env]);
    }

    let ups: Vec<Child> = ["1161", "1162"].iter().map(|env| up(&sb, env)).collect();
    for child in ups {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for env in ["1161", "1162"] {
        let address = machine_ip(&sb, env, "web");
        let host = format!("v5.{env}.paas.example.test");
        // nginx in the machine reloads gracefully: its old workers may
        // answer a moment longer with the default site.
        let url = format!("http://{address}/");
        let header = format!("Host: {host}");
        settled(&format!("{env} at {address} shows myapp 1.0"), 3, || {
            command_output("curl", &["-s", "-H", &header, &url]) == "myapp 1.0\n"
        });
    }

    let mut killed = up(&sb, "1163");
    let machines = sb.repo.join("machines/paas/1163");
    settled("a machine of 1163 running", 1, || {
        !processes_in(&machines).is_empty()
    });
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let status = sb.json(&["env", "status", "paas", "1163"]);
    assert_eq!(status["state"], "failed", "{status}");
    all_in(&sb.json(&["env", "up", "paas", "1163"]), "up");
    assert_eq!(recorded(&sb, "1163"), "1.0");

    killed_update(&sb, &server);

    // The platform's destroy takes its environments' machines with it.
    sb.ok(&["platform", "destroy", "paas", "--force"]);
    assert_eq!(processes_in(&sb.repo), Vec::<String>::new());
    assert_eq!(before.new_cgroups("paas.116"), Vec::<String>::new());
    let netns = command_output("ip", &["netns", "list"]);
    assert!(!netns.contains("paas.116"), "{netns}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&*sb.repo.to_string_lossy()), "{mounts}");
}

/// `bess env up paas ENV --json` started in the background.
fn up(sb: &Sandbox, env: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .args(["env", "up", "paas", env, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn machine_ip(sb: &Sandbox, env: &str, machine: &str) -> String {
    let view = sb.json(&["env", "show", "paas", env]);
    let machines = view["machines"].as_array().unwrap();
    let m = machines.iter().find(|m| m["name"] == machine).unwrap();
    m["ip"].as_str().unwrap().to_string()
}

/// bess killed during `env update` of 1163: the next command reports the
/// environment failed and says what to do, which works.
fn killed_update(sb: &Sandbox, server: &Server) {
    upload(server, &myapp(&sb.path("debs"), "1.1", false));
    let mut update = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .args(["env", "update", "paas", "1163"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `env show` reads without repairing, so it sees the update at work.
    settled("1163 updating", 1, || {
        sb.json(&["env", "show", "paas", "1163"])["state"] == "updating"
    });
    update.kill().unwrap(); // SIGKILL
    update.wait().unwrap();
    let status = sb.json(&["env", "status", "paas", "1163"]);
    assert_eq!(status["state"], "failed", "{status}");
    let said = status["provisioned"]["result"].as_str().unwrap();
    assert!(said.contains("`env update` died"), "{said}");
    all_in(&sb.json(&["env", "up", "paas", "1163"]), "up");
    sb.ok(&["env", "update", "paas", "1163"]);
    assert_eq!(recorded(sb, "1163"), "1.1");

    // As if an update had been killed after installing: services stopped,
    // versions current. The next update changes nothing but starts them.
    sb.ok(&[
        "env",
        "ssh",
        "paas",
        "1163",
        "web",
        "--",
        "systemctl",
        "stop",
        "nginx",
    ]);
    let again = sb.json(&["env", "update", "paas", "1163"]);
    assert_eq!(again[0]["result"], "unchanged", "{again}");
    let active = sb.ok(&[
        "env",
        "ssh",
        "paas",
        "1163",
        "web",
        "--",
        "systemctl",
        "is-active",
        "nginx",
    ]);
    assert_eq!(active, "active\n");
}
