//! The host's side of environments with the real servers, on loopback
//! ports only: `named` answers for bound environments and NXDOMAIN after
//! `unbind-proxy`; nginx and apache2 started with the generated files
//! proxy a site's name to its machine (a test backend on a loopback
//! address of the platform's range) and the environment's name to bess's
//! homepage; a file the tool rejects leaves the previous one in place.

mod common;

use common::env::{
    environment_users, host_in, init_platform, one_machine_toml, platform_dir, set_reload,
};
use common::server::Server;
use common::{Daemon, Sandbox, have_tool};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A backend on `address` that answers every request with what it was sent.
fn backend(address: &str) -> u16 {
    let listener = TcpListener::bind(format!("{address}:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let body = format!("backend saw:\n{}\n", head.join("\n"));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `curl` with a Host header (and credentials); returns (status, body).
fn curl(port: u16, host: &str, path: &str, user: Option<(&str, &str)>) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {host}"))
        .arg(format!("http://127.0.0.1:{port}{path}"));
    if let Some((name, password)) = user {
        command.arg("-u").arg(format!("{name}:{password}"));
    }
    let out = command.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Retries `probe` until it returns true or 15 s pass (reloads are asynchronous).
fn eventually(what: &str, probe: impl FnMut() -> bool) {
    settled(what, 1, probe);
}

/// Retries `probe` until it returns true `times` times in a row: after
/// a graceful reload, old workers may answer a few more requests with
/// the old configuration before they exit.
fn settled(what: &str, times: u32, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut streak = 0;
    while Instant::now() < deadline {
        streak = if probe() { streak + 1 } else { 0 };
        if streak >= times {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within 15 s");
}

/// A sandbox with platform `paas` (one machine at 127.77.0.2 whose site
/// `v5` and tool `stats` are served by a backend) and environment 1161,
/// its host files under `host`, the proxy on a free loopback port.
struct Setup {
    sb: Sandbox,
    host: PathBuf,
    proxy_port: u16,
}

fn setup(proxy: &str) -> Setup {
    let sb = Sandbox::new("bookworm", "amd64");
    let port = backend("127.77.0.2");
    let source = platform_dir(&sb.path("platform"), &one_machine_toml(port), &[]);
    init_platform(&sb, "paas", &source, "127.77.0.0/24");
    sb.ok(&["env", "init", "paas", "1161"]);
    let host = sb.path("host");
    let proxy_port = free_port();
    host_in(&sb, &host, proxy, proxy_port);
    for dir in ["bind", "nginx", "apache"] {
        std::fs::create_dir_all(host.join(dir)).unwrap();
    }
    Setup {
        sb,
        host,
        proxy_port,
    }
}

/// The environment's own credential, from its workspace.
fn env_credential(sb: &Sandbox, env: &str) -> (String, String) {
    let password =
        std::fs::read_to_string(sb.repo.join(format!("envs/paas/{env}/etc/bess/password")))
            .unwrap();
    (format!("env.paas.{env}"), password.trim_end().to_string())
}

/// Tells bind-proxy where bess serve listens.
fn serve_url(sb: &Sandbox, server: &Server) {
    sb.edit_settings(
        "# serve-url = \"http://127.0.0.1:8080\"",
        &format!("serve-url = \"{}\"", server.url()),
    );
}

fn dig(port: u16, name: &str, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+time=1",
            "+tries=1",
            name,
        ])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_named(dir: &Path, port: u16, include: &Path) -> Daemon {
    let conf = dir.join("named.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n  dnssec-validation no;\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n}};\ncontrols {{ }};\ninclude \"{}\";\n",
            include.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("named.log")).unwrap();
    let child = Command::new(common::env::sbin("named"))
        .args(["-g", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    eventually("named answering", || {
        dig(port, "example.test", &[]).contains("status:")
    });
    daemon
}

#[test]
fn named_answers_for_bound_environments_and_nxdomain_after_unbind() {
    if !have_tool("named") || !have_tool("dig") || !have_tool("named-checkzone") {
        return;
    }
    let Setup { sb, host, .. } = setup("nginx");
    sb.ok(&["env", "init", "paas", "1162"]);
    let include = host.join("bind/named.conf");
    std::fs::write(&include, "").unwrap();
    let dns_port = free_port();
    let run = sb.path("named");
    std::fs::create_dir_all(&run).unwrap();
    let named = start_named(&run, dns_port, &include);
    set_reload(
        &sb,
        "bind-reload",
        &["kill", "-HUP", &named.0.id().to_string()],
    );

    let bound = sb.json(&["host", "bind-proxy", "paas", "1161"]);
    assert!(
        bound["reloaded"][0]
            .as_str()
            .unwrap()
            .starts_with("kill -HUP"),
        "{bound}"
    );
    sb.ok(&["host", "bind-proxy", "paas", "1162"]);
    let answer = |name: &str| dig(dns_port, name, &["+short"]).trim().to_string();
    eventually("v5.1161 resolving", || {
        answer("v5.1161.paas.example.test") == "127.0.0.1"
    });
    assert_eq!(
        answer("1161.paas.example.test"),
        "127.0.0.1",
        "the homepage's name"
    );
    assert_eq!(answer("anything.1162.paas.example.test"), "127.0.0.1");
    let serial = |text: String| {
        text.split_whitespace()
            .nth(2)
            .unwrap_or("0")
            .parse::<u32>()
            .unwrap()
    };
    let before = serial(dig(dns_port, "paas.example.test", &["SOA", "+short"]));

    sb.ok(&["host", "unbind-proxy", "paas", "1161"]);
    eventually("v5.1161 gone", || {
        dig(dns_port, "v5.1161.paas.example.test", &[]).contains("status: NXDOMAIN")
    });
    assert!(dig(dns_port, "1161.paas.example.test", &[]).contains("status: NXDOMAIN"));
    assert_eq!(
        answer("v5.1162.paas.example.test"),
        "127.0.0.1",
        "the other stays"
    );
    let after = serial(dig(dns_port, "paas.example.test", &["SOA", "+short"]));
    assert!(
        after > before,
        "the serial grows on every change: {before} → {after}"
    );
    // Idempotent: a second unbind changes nothing and succeeds.
    let again = sb.json(&["host", "unbind-proxy", "paas", "1161"]);
    assert!(
        again["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["change"] == "unchanged"),
        "{again}"
    );
    let check = sb.json(&["host", "check"]);
    let statuses: Vec<&str> = check["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == "in sync"), "{check}");
    // Destroying the platform removes its zone and its line in the include.
    sb.ok(&["platform", "destroy", "paas", "--force"]);
    assert!(!host.join("bind/paas.example.test.zone").exists());
    assert!(
        !std::fs::read_to_string(&include)
            .unwrap()
            .contains("paas.example.test")
    );
    assert!(environment_users(&sb).is_empty());
    let log = sb.ok(&["log"]);
    for action in [
        "host.bind-proxy",
        "host.unbind-proxy",
        "platform.destroy",
        "env.destroy",
    ] {
        assert!(log.contains(action), "{log}");
    }
}

fn nginx_conf(dir: &Path, port: u16, sites: &Path) -> PathBuf {
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  server {{ listen 127.0.0.1:{port} default_server; return 404; }}\n  include {}/*.conf;\n}}\n",
            sites.display()
        ),
    )
    .unwrap();
    conf
}

#[test]
fn nginx_proxies_sites_to_machines_and_the_environment_to_its_homepage() {
    if !have_tool("nginx") || !have_tool("curl") || !have_tool("named-checkzone") {
        return;
    }
    let Setup {
        sb,
        host,
        proxy_port,
    } = setup("nginx");
    let server = Server::start(&sb.repo);
    serve_url(&sb, &server);
    let run = sb.path("nginx-run");
    std::fs::create_dir_all(&run).unwrap();
    let conf = nginx_conf(&run, proxy_port, &host.join("nginx"));
    let nginx = Daemon(
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
    eventually("nginx listening", || {
        curl(proxy_port, "x", "/", None).0 == 404
    });
    set_reload(
        &sb,
        "proxy-reload",
        &["kill", "-HUP", &nginx.0.id().to_string()],
    );
    sb.ok(&["host", "bind-proxy", "paas", "1161"]);
    settled("v5 proxied", 5, || {
        curl(proxy_port, "v5.1161.paas.example.test", "/", None).0 == 200
    });
    let (_, body) = curl(proxy_port, "v5.1161.paas.example.test", "/page", None);
    assert!(
        body.contains("GET /page HTTP/1.0") || body.contains("GET /page HTTP/1.1"),
        "{body}"
    );
    assert!(body.contains("Host: v5.1161.paas.example.test"), "{body}");
    assert!(body.contains("X-Forwarded-For: 127.0.0.1"), "{body}");
    assert!(body.contains("X-Forwarded-Proto: http"), "{body}");
    let (status, body) = curl(proxy_port, "stats.1161.paas.example.test", "/stats/", None);
    assert_eq!(status, 200, "tools are proxied too: {body}");
    // The environment's name is its homepage, for its own credential.
    let (user, password) = env_credential(&sb, "1161");
    let (status, _) = curl(proxy_port, "1161.paas.example.test", "/", None);
    assert_eq!(status, 401, "the homepage wants credentials");
    let (status, page) = curl(
        proxy_port,
        "1161.paas.example.test",
        "/",
        Some((&user, &password)),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Environment 1161"), "{page}");
    assert!(
        page.contains("v5.1161.paas.example.test:"),
        "site links carry the proxy's port: {page}"
    );
    let (status, _) = curl(
        proxy_port,
        "1161.paas.example.test",
        "/env/paas/",
        Some((&user, &password)),
    );
    assert_eq!(
        status, 200,
        "links within the homepage work through the proxy"
    );

    sb.ok(&["host", "unbind-proxy", "paas", "1161"]);
    assert!(!host.join("nginx/paas.1161.conf").exists());
    settled("v5 unrouted", 5, || {
        curl(proxy_port, "v5.1161.paas.example.test", "/", None).0 == 404
    });
    drop(nginx);
}

#[test]
fn apache_proxies_sites_to_machines_and_the_environment_to_its_homepage() {
    if !have_tool("apache2") || !have_tool("curl") || !have_tool("named-checkzone") {
        return;
    }
    let Setup {
        sb,
        host,
        proxy_port,
    } = setup("apache");
    let server = Server::start(&sb.repo);
    serve_url(&sb, &server);
    let run = sb.path("apache-run");
    std::fs::create_dir_all(&run).unwrap();
    let conf = run.join("apache2.conf");
    let modules = "/usr/lib/apache2/modules";
    let mut text = format!(
        "ServerRoot \"{d}\"\nServerName localhost\nPidFile \"{d}/apache2.pid\"\nErrorLog \"{d}/error.log\"\nListen 127.0.0.1:{proxy_port}\n",
        d = run.display()
    );
    for module in ["mpm_event", "authz_core", "proxy", "proxy_http", "headers"] {
        text.push_str(&format!(
            "LoadModule {module}_module \"{modules}/mod_{module}.so\"\n"
        ));
    }
    text.push_str(&format!(
        "<VirtualHost 127.0.0.1:{proxy_port}>\n  ServerName default.invalid\n  DocumentRoot \"{}/none\"\n</VirtualHost>\nIncludeOptional \"{}/*.conf\"\n",
        run.display(),
        host.join("apache").display()
    ));
    std::fs::write(&conf, text).unwrap();
    let apache = Daemon(
        Command::new(common::env::sbin("apache2"))
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("apache listening", || {
        curl(proxy_port, "x", "/", None).0 == 404
    });
    set_reload(
        &sb,
        "proxy-reload",
        &["kill", "-USR1", &apache.0.id().to_string()],
    );
    sb.ok(&["host", "bind-proxy", "paas", "1161"]);
    let conf_file = host.join("apache/paas.1161.conf");
    assert!(
        std::fs::read_to_string(&conf_file)
            .unwrap()
            .contains("ServerName v5.1161.paas.example.test")
    );
    settled("v5 proxied", 5, || {
        curl(proxy_port, "v5.1161.paas.example.test", "/", None).0 == 200
    });
    let (_, body) = curl(proxy_port, "v5.1161.paas.example.test", "/page", None);
    assert!(body.contains("GET /page HTTP/1.1"), "{body}");
    assert!(body.contains("Host: v5.1161.paas.example.test"), "{body}");
    assert!(body.contains("X-Forwarded-For: 127.0.0.1"), "{body}");
    assert!(body.contains("X-Forwarded-Proto: http"), "{body}");
    let (user, password) = env_credential(&sb, "1161");
    let (status, page) = curl(
        proxy_port,
        "1161.paas.example.test",
        "/",
        Some((&user, &password)),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Environment 1161"), "{page}");
    sb.ok(&["host", "unbind-proxy", "paas", "1161"]);
    assert!(!conf_file.exists());
    settled("v5 unrouted", 5, || {
        curl(proxy_port, "v5.1161.paas.example.test", "/", None).0 == 404
    });
}

#[test]
fn a_rejected_file_keeps_the_previous_one_and_names_the_line() {
    if !have_tool("named-checkzone") || !have_tool("nginx") {
        return;
    }
    let Setup {
        sb,
        host,
        proxy_port,
    } = setup("nginx");
    sb.ok(&["host", "bind-proxy", "paas", "1161"]);
    let file = host.join("nginx/paas.1161.conf");
    let before = std::fs::read_to_string(&file).unwrap();
    // An nginx that rejects line 4 of whatever it is asked to include,
    // in the words the real one uses.
    let fake = sb.path("fake-nginx");
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor a; do last=$a; done\nfile=$(sed -n 's/.*include \"\\(.*\\)\";/\\1/p' \"$last\")\necho \"nginx: [emerg] invalid port in $file:4\" >&2\necho 'nginx: configuration file test failed' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sb.edit_settings(
        "nginx = \"nginx\"",
        &format!("nginx = \"{}\"", fake.display()),
    );
    // A change that rewrites the file: the proxy moves to another port.
    let moved = proxy_port.wrapping_add(1).max(1024);
    sb.edit_settings(
        &format!("proxy-port = {proxy_port} "),
        &format!("proxy-port = {moved} "),
    );
    let error = sb.fails(&["host", "bind-proxy", "paas", "1161"]);
    assert!(
        error.contains(&format!("rejected line 4 of {}", file.display())),
        "{error}"
    );
    assert!(
        error.contains(&format!("(`listen 127.0.0.1:{moved};`)")),
        "{error}"
    );
    assert!(error.contains("invalid port"), "{error}");
    assert!(
        error.contains("the previous file stays in place"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "the old file is untouched"
    );
    let entries: Vec<String> = std::fs::read_dir(host.join("nginx"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["paas.1161.conf"], "no candidate left behind");
    // The real tool takes it.
    sb.edit_settings(
        &format!("nginx = \"{}\"", fake.display()),
        "nginx = \"nginx\"",
    );
    sb.ok(&["host", "bind-proxy", "paas", "1161"]);
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(
        after.contains(&format!("listen 127.0.0.1:{moved};")),
        "{after}"
    );
}
