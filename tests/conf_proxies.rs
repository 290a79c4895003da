//! The reverse-proxy examples `conf/nginx/bess.conf` and
//! `conf/apache/bess.conf`: `nginx -t` and `apache2 -t` accept them, and
//! nginx with the example's settings passes uploads, ranges and the Host
//! to a real `bess serve`.

mod common;

use common::server::{Server, add_user};
use common::{DebSpec, Sandbox, have_tool};
use std::path::{Path, PathBuf};
use std::process::Command;

fn conf(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn nginx_accepts_the_proxy_example() {
    let Some(nginx) = system_tool("nginx") else {
        return;
    };
    let Some(dir) = with_certificate("nginx/bess.conf") else {
        return;
    };
    let out = nginx_command(&nginx, dir.path())
        .arg("-t")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "nginx -t on conf/nginx/bess.conf:\n{said}"
    );
    assert!(!said.contains("[warn]"), "nginx -t warns:\n{said}");
}

/// nginx with the example's settings, in front of a real `bess serve`:
/// uploads (with a length, and chunked) and ranges get through, and the
/// Host; /metrics does not; plain HTTP redirects.
#[test]
fn nginx_example_proxies_uploads_and_ranges() {
    let Some(nginx) = system_tool("nginx") else {
        return;
    };
    if !["curl", "dpkg-deb"].iter().all(|tool| have_tool(tool)) {
        return;
    }
    let Some(dir) = with_certificate("nginx/bess.conf") else {
        return;
    };
    let sb = Sandbox::new("bookworm", "amd64");
    add_user(&sb.repo, UPLOADER, &["--upload", "preprod"]);
    add_user(&sb.repo, READER, &["--read", "preprod"]);
    let server = Server::start(&sb.repo);
    let (https, http) = (free_port(), free_port());
    listen_locally(&dir.path().join("site.conf"), https, http, server.port);
    let mut command = nginx_command(&nginx, dir.path());
    let _proxy = Daemon::start(command.args(["-g", "daemon off;"]), https);
    let curl = |path: &str, args: &[&str]| curl(https, path, args);

    // Larger than nginx's default body limit (1 MiB).
    let deb = DebSpec::new("proxied", "1.0-1", "all")
        .compression("none")
        .payload(&"bess ".repeat(600_000))
        .build(&sb.path("debs"));
    let (file, uploader) = (format!("@{}", deb.display()), login(UPLOADER));
    let upload = ["-u", &uploader, "--data-binary", &file];
    assert_eq!(curl("/api/v1/packages?dist=bookworm", &upload).0, 200);
    let chunked = [&upload[..], &["-H", "Transfer-Encoding: chunked"]].concat();
    let again = curl("/api/v1/packages?dist=bookworm", &chunked);
    assert_eq!(again.0, 200, "{}", String::from_utf8_lossy(&again.1));

    let reader = login(READER);
    let path = published_path(&sb, "proxied_1.0-1_all.deb");
    let part = curl(&path, &["-u", &reader, "-r", "10-19"]);
    let bytes = std::fs::read(&deb).unwrap();
    assert_eq!((part.0, &part.1[..]), (206, &bytes[10..20]));
    let sources = curl("/preprod/bess.sources", &["-u", &reader]).1;
    let sources = String::from_utf8_lossy(&sources);
    assert!(
        sources.contains("://repo.example.com/preprod\n"),
        "{sources}"
    );
    assert_eq!(curl("/metrics", &[]).0, 404);
    assert_eq!(server.get("/metrics", None).0, 200);
    let plain = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{http}/key.gpg"))
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(plain.starts_with("301 https://"), "{plain}");
}

/// Points the site at loopback ports: HTTPS and HTTP on `https` and
/// `http` (no IPv6), bess on `bess`.
fn listen_locally(site: &Path, https: u16, http: u16, bess: u16) {
    let text = read(site);
    let mut local = String::new();
    for line in text.lines().filter(|l| !l.contains("listen [::]")) {
        local.push_str(line);
        local.push('\n');
    }
    for (example, here) in [
        ("listen 443 ssl;", format!("listen 127.0.0.1:{https} ssl;")),
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        ("127.0.0.1:8080;", format!("127.0.0.1:{bess};")),
    ] {
        assert!(local.contains(example), "the example lacks `{example}`");
        local = local.replace(example, &here);
    }
    std::fs::write(site, local).unwrap();
}

/// The URL path of a published package file, wherever the pool layout puts it.
fn published_path(sb: &Sandbox, file: &str) -> String {
    let public = sb.repo.join("public");
    let published = walkdir::WalkDir::new(public.join("preprod/pool"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name() == file)
        .unwrap_or_else(|| panic!("{file} is not published"));
    let rel = published.path().strip_prefix(&public).unwrap();
    format!("/{}", rel.display())
}

fn login(user: (&str, &str)) -> String {
    format!("{}:{}", user.0, user.1)
}

const UPLOADER: (&str, &str) = ("ci", "ci-uploader-secret");
const READER: (&str, &str) = ("web01", "reader-secret");

/// `curl` to `path` on the proxy's HTTPS port, as `repo.example.com`; the
/// status and the body.
fn curl(port: u16, path: &str, args: &[&str]) -> (u16, Vec<u8>) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-sSk", "-o"])
        .arg(body.path())
        .args(["-w", "%{http_code}", "--resolve"])
        .arg(format!("repo.example.com:{port}:127.0.0.1"))
        .args(args)
        .arg(format!("https://repo.example.com:{port}{path}"))
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout)
        .parse()
        .unwrap_or_else(|_| panic!("curl {path}: {}", String::from_utf8_lossy(&out.stderr)));
    (status, std::fs::read(body.path()).unwrap())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// nginx with `dir` as its prefix, reading `dir/site.conf` inside an
/// `http` block whose logs and temp files stay in `dir`.
fn nginx_command(nginx: &Path, dir: &Path) -> Command {
    let d = dir.display();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log {d}/access.log;\nclient_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\ninclude {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let mut command = Command::new(nginx);
    command
        .args(["-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    command
}

/// A server process, stopped with SIGTERM (so nginx stops its workers too).
struct Daemon(std::process::Child);

impl Daemon {
    /// Spawns `command` and waits until something listens on `port`.
    fn start(command: &mut Command, port: u16) -> Daemon {
        let daemon = Daemon(command.spawn().unwrap());
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return daemon;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{command:?} does not listen on port {port}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn apache_accepts_the_proxy_example() {
    let Some(apache) = system_tool("apache2") else {
        return;
    };
    let Some(dir) = with_certificate("apache/bess.conf") else {
        return;
    };
    let d = dir.path().display();
    let mut main = format!(
        "ServerRoot {d}\nDefaultRuntimeDir {d}\nPidFile {d}/httpd.pid\n\
         ErrorLog {d}/error.log\nServerName localhost\nListen 80\nListen 443 https\n"
    );
    // The modules the example's install notes enable (a2enmod), and the
    // ones any Debian Apache has.
    for module in [
        "mpm_event",
        "authz_core",
        "reqtimeout",
        "alias",
        "headers",
        "proxy",
        "proxy_http",
        "ssl",
    ] {
        main.push_str(&format!(
            "LoadModule {module}_module /usr/lib/apache2/modules/mod_{module}.so\n"
        ));
    }
    main.push_str(&format!("Include {d}/site.conf\n"));
    std::fs::write(dir.path().join("httpd.conf"), main).unwrap();
    let out = Command::new(apache)
        .arg("-t")
        .arg("-f")
        .arg(dir.path().join("httpd.conf"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim() == "Syntax OK",
        "apache2 -t on conf/apache/bess.conf:\n{said}"
    );
}

/// The servers' daemons live in /usr/sbin, which a user's PATH may lack.
fn system_tool(name: &str) -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.is_file() {
        return Some(sbin);
    }
    have_tool(name).then(|| PathBuf::from(name))
}

/// A scratch directory holding the proxy example `rel` as `site.conf`,
/// its certificate paths pointing at a self-signed pair made there.
fn with_certificate(rel: &str) -> Option<tempfile::TempDir> {
    if !have_tool("openssl") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=repo.example.com", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut site = read(&conf(rel));
    for (example, made) in [
        ("/etc/ssl/bess/fullchain.pem", &cert),
        ("/etc/ssl/bess/privkey.pem", &key),
    ] {
        assert!(
            site.contains(example),
            "conf/{rel} no longer names {example}"
        );
        site = site.replace(example, made.to_str().unwrap());
    }
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    Some(dir)
}
