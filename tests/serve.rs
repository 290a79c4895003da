//! `bess serve` with real clients on 127.0.0.1:0: apt-get through
//! auth.conf.d, raw HTTP for traversal and the Range/304/416 matrix,
//! remote ingest and the JSON API.

mod common;

use common::apt::AptRoot;
use common::server::Server;
use common::{DebSpec, Sandbox, have_tool};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const READER: (&str, &str) = ("web01", "prod-reader-secret");
const UPLOADER: (&str, &str) = ("ci", "ci-uploader-secret");
const ADMIN: (&str, &str) = ("boss", "the-admin-secret");

/// Sends raw request bytes; returns status, headers (lowercase names) and body.
fn raw(server: &Server, request: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    Response::parse(&bytes)
}

/// `GET path` with optional credentials and extra header lines.
fn get(server: &Server, path: &str, user: Option<(&str, &str)>, extra: &str) -> Response {
    let auth = user
        .map(|(u, p)| format!("Authorization: Basic {}\r\n", basic(u, p)))
        .unwrap_or_default();
    raw(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}{extra}\r\n"),
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response");
        let head = String::from_utf8_lossy(&bytes[..split]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Response {
            status,
            headers,
            body: bytes[split + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A repository with users and packages in both channels.
fn repository() -> Sandbox {
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    DebSpec::new("app", "2.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    for (user, flags) in [
        (READER, vec!["--read", "prod"]),
        (UPLOADER, vec!["--upload", "preprod"]),
        (ADMIN, vec!["--admin"]),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", &sb.repo)
            .args(["user", "add", user.0, "--password-stdin"])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(user.1.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    sb
}

#[test]
fn apt_reads_prod_through_auth_conf_and_never_preprod() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let key = sb.path("key.gpg");
    std::fs::write(&key, get(&server, "/key.gpg", None, "").body).unwrap();
    assert_eq!(
        std::fs::read(&key).unwrap(),
        sb.bess(&["key", "export"]).stdout,
        "/key.gpg is `bess key export`"
    );
    let apt = AptRoot::new("amd64", "");
    let auth = apt.root.join("etc/apt/auth.conf.d/bess.conf");
    let port = server.port;
    std::fs::write(
        &auth,
        format!(
            "machine http://127.0.0.1:{port}/prod login {} password {}\n",
            READER.0, READER.1
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    apt.add_source("bess", &format!("{}/prod", server.url()), "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);
    let original = std::fs::read(sb.path("in").join("app_1.0-1_amd64.deb")).unwrap();
    assert_eq!(apt.download("app=1.0-1"), original);

    apt.add_source(
        "bess-preprod",
        &format!("{}/preprod", server.url()),
        "bookworm",
        &key,
    );
    let out = apt.run("apt-get", &["update"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("401") || text.contains("403") || text.contains("Unauthorized"),
        "{text}"
    );
}

#[test]
fn prod_only_users_get_403_for_every_preprod_url() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let release = get(&server, "/preprod/dists/bookworm/Release", Some(ADMIN), "");
    assert_eq!(release.status, 200);
    let by_hash = String::from_utf8_lossy(&release.body)
        .lines()
        .find(|l| l.ends_with("Packages.xz") && l.len() > 80)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .unwrap();
    for path in [
        "/preprod/dists/bookworm/InRelease".to_string(),
        "/preprod/dists/bookworm/main/binary-amd64/Packages.xz".to_string(),
        format!("/preprod/dists/bookworm/main/binary-amd64/by-hash/SHA256/{by_hash}"),
        "/preprod/pool/main/a/app/app_2.0-1_amd64.deb".to_string(),
        "/preprod/bess.sources".to_string(),
    ] {
        assert_eq!(get(&server, &path, Some(READER), "").status, 403, "{path}");
        assert_eq!(get(&server, &path, None, "").status, 401, "{path}");
    }
    assert_eq!(
        get(
            &server,
            "/prod/pool/main/a/app/app_1.0-1_amd64.deb",
            Some(READER),
            ""
        )
        .status,
        200
    );
    let wrong = get(
        &server,
        "/prod/dists/bookworm/InRelease",
        Some((READER.0, "wrong-password!")),
        "",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.header("www-authenticate"),
        Some("Basic realm=\"bess\"")
    );
}

#[test]
fn traversal_and_hidden_paths_are_refused() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    std::fs::write(sb.repo.join("public/secret.txt"), "secret").unwrap();
    let server = Server::start(&sb.repo);
    for path in [
        "/prod/../preprod/dists/bookworm/Release",
        "/prod/%2e%2e/preprod/dists/bookworm/Release",
        "/prod/%2E%2E/%2E%2E/bess.toml",
        "/prod/dists/..%2f..%2fsecret.txt",
        "/prod/dists/%2e%2e%5c%2e%2e%5csecret.txt",
        "/prod/dists/bookworm/%00Release",
        "/prod//dists/bookworm/Release",
        "/prod/./dists/bookworm/Release",
        "/prod/.dists/bookworm/1/Release",
        "/prod/dists/bookworm/../../../../etc/passwd",
        "/prod/pool/%252e%252e/%252e%252e/secret.txt",
        "/secret.txt",
        "/prod/secret.txt",
        "/prod/../secret.txt",
    ] {
        let response = get(&server, path, Some(ADMIN), "");
        assert!(
            matches!(response.status, 400 | 403 | 404),
            "{path}: {}",
            response.status
        );
        assert!(
            !String::from_utf8_lossy(&response.body).contains("secret"),
            "{path}"
        );
    }
    // A symlink planted in the tree must not lead outside it.
    let outside = sb.repo.join("public/prod/pool/main/escape");
    std::os::unix::fs::symlink("/etc", &outside).unwrap();
    assert_eq!(
        get(&server, "/prod/pool/main/escape/hostname", Some(ADMIN), "").status,
        404
    );
}

#[test]
fn conditional_and_range_requests() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let path = "/prod/pool/main/a/app/app_1.0-1_amd64.deb";
    let whole = get(&server, path, Some(READER), "");
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.header("content-type"),
        Some("application/vnd.debian.binary-package")
    );
    let size = whole.body.len();
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    let etag = whole.header("etag").unwrap().to_string();
    let modified = whole.header("last-modified").unwrap().to_string();

    let head = raw(
        &server,
        &format!(
            "HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
            basic(READER.0, READER.1)
        ),
    );
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("content-length"),
        Some(size.to_string().as_str())
    );

    assert_eq!(
        get(
            &server,
            path,
            Some(READER),
            &format!("If-None-Match: {etag}\r\n")
        )
        .status,
        304
    );
    assert_eq!(
        get(
            &server,
            path,
            Some(READER),
            &format!("If-Modified-Since: {modified}\r\n")
        )
        .status,
        304
    );
    assert_eq!(
        get(
            &server,
            path,
            Some(READER),
            "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n"
        )
        .status,
        200
    );

    // InRelease changes under its name, maybe twice in one second: it is
    // validated by its ETag only, never by a date (see serve/files.rs).
    let release = "/prod/dists/bookworm/InRelease";
    let first = get(&server, release, Some(READER), "");
    let (tag, date) = (
        first.header("etag").unwrap(),
        first.header("last-modified").unwrap(),
    );
    let by_date = format!("If-Modified-Since: {date}\r\n");
    assert_eq!(get(&server, release, Some(READER), &by_date).status, 200);
    let by_tag = format!("If-None-Match: {tag}\r\n");
    assert_eq!(get(&server, release, Some(READER), &by_tag).status, 304);

    let part = get(&server, path, Some(READER), "Range: bytes=10-19\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[10..20]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{size}").as_str())
    );
    let tail = get(&server, path, Some(READER), "Range: bytes=-5\r\n");
    assert_eq!(
        (tail.status, &tail.body[..]),
        (206, &whole.body[size - 5..])
    );
    let resumed = get(
        &server,
        path,
        Some(READER),
        &format!("Range: bytes=100-\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!(
        (resumed.status, &resumed.body[..]),
        (206, &whole.body[100..])
    );
    let stale = get(
        &server,
        path,
        Some(READER),
        "Range: bytes=100-\r\nIf-Range: \"other\"\r\n",
    );
    assert_eq!((stale.status, stale.body.len()), (200, size));
    let beyond = get(
        &server,
        path,
        Some(READER),
        &format!("Range: bytes={size}-\r\n"),
    );
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
}

#[test]
fn keep_alive_serves_pipelined_requests_on_one_connection() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let auth = basic(READER.0, READER.1);
    let one = format!(
        "GET /prod/dists/bookworm/Release HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n"
    );
    let last = format!(
        "GET /prod/dists/bookworm/InRelease HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .write_all(format!("{one}{one}{last}").as_bytes())
        .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
}

#[test]
fn remote_ingest_with_upload_rights_only() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let deb = DebSpec::new("fromci", "3.0-1", "amd64").build(&sb.path("ci"));
    let upload = |user: (&str, &str)| {
        Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_PASSWORD", user.1)
            .args([
                "repo",
                "ingest",
                "--remote",
                &server.url(),
                "--user",
                user.0,
                "--json",
            ])
            .arg(&deb)
            .output()
            .unwrap()
    };
    let refused = upload(READER);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let accepted = upload(UPLOADER);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let listed = sb.json(&["repo", "list", "--channel", "preprod"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["package"] == "fromci")
    );
    let bad = sb.path("bad.deb");
    std::fs::write(&bad, b"!<arch>\nbroken").unwrap();
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
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.deb") && err.contains("400"),
        "{err}"
    );
}

#[test]
fn json_api_lists_diffs_and_promotes_for_admins_only() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let listed = get(&server, "/api/v1/packages?channel=prod", Some(READER), "");
    assert_eq!(listed.status, 200);
    let listed: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        get(
            &server,
            "/api/v1/packages?channel=preprod",
            Some(READER),
            ""
        )
        .status,
        403
    );
    let diff = get(
        &server,
        "/api/v1/diff?from=preprod&to=prod",
        Some(ADMIN),
        "",
    );
    let diff: serde_json::Value = serde_json::from_slice(&diff.body).unwrap();
    assert_eq!(diff[0]["version"], "2.0-1");
    let body = r#"{"packages":["app=2.0-1"],"from":"preprod","to":"prod"}"#;
    let post = |user: (&str, &str)| {
        raw(
            &server,
            &format!(
                "POST /api/v1/promote HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                basic(user.0, user.1),
                body.len()
            ),
        )
    };
    assert_eq!(post(READER).status, 403);
    assert_eq!(raw(&server, &format!("POST /api/v1/promote HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())).status, 401);
    assert_eq!(post(ADMIN).status, 200);
    let versions = get(&server, "/api/v1/versions/app", Some(READER), "");
    let versions: serde_json::Value = serde_json::from_slice(&versions.body).unwrap();
    let in_prod: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(in_prod, ["2.0-1", "1.0-1"]);
}

#[test]
fn repeated_failures_are_slowed_down() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            get(
                &server,
                "/prod/dists/bookworm/Release",
                Some((READER.0, "not-the-password")),
                "",
            )
            .status,
        );
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    let braked = get(&server, "/prod/dists/bookworm/Release", Some(READER), "");
    assert_eq!(braked.status, 429);
    assert!(braked.header("retry-after").is_some());
}

/// A private CA and a server certificate for 127.0.0.1, made with openssl.
fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=bess test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn https_with_rustls_for_apt_and_remote_ingest() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") || !have_tool("openssl") {
        return;
    }
    let sb = repository();
    let tls = sb.path("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (ca, certificate, key) = certificates(&tls);
    let settings = sb.repo.join("bess.toml");
    let text = std::fs::read_to_string(&settings).unwrap().replace(
        "max-upload-mib = 1024\n",
        &format!(
            "max-upload-mib = 1024\ntls-certificate = \"{}\"\ntls-key = \"{}\"\n",
            certificate.display(),
            key.display()
        ),
    );
    std::fs::write(&settings, text).unwrap();

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = sb.bess(&["serve", "--listen", "127.0.0.1:0"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let server = Server::start(&sb.repo);
    let url = format!("https://127.0.0.1:{}", server.port);
    let deb = DebSpec::new("overtls", "1.0", "amd64").build(&sb.path("tlsdeb"));
    let out = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_PASSWORD", UPLOADER.1)
        .env("BESS_CA_CERT", &ca)
        .args(["repo", "ingest", "--remote", &url, "--user", UPLOADER.0])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let untrusted = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_PASSWORD", UPLOADER.1)
        .args(["repo", "ingest", "--remote", &url, "--user", UPLOADER.0])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        !untrusted.status.success(),
        "a certificate from an unknown CA must be refused"
    );

    let key_file = sb.path("key.gpg");
    std::fs::write(&key_file, sb.bess(&["key", "export"]).stdout).unwrap();
    let apt = AptRoot::new(
        "amd64",
        &format!("Acquire::https::CaInfo \"{}\";", ca.display()),
    );
    let auth = apt.root.join("etc/apt/auth.conf.d/bess.conf");
    std::fs::write(
        &auth,
        format!(
            "machine 127.0.0.1:{}/prod login {} password {}\n",
            server.port, READER.0, READER.1
        ),
    )
    .unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    apt.add_source("bess", &format!("{url}/prod"), "bookworm", &key_file);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);
}

#[test]
fn stalled_clients_do_not_block_apt() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    // Three hundred clients on three hosts that send half a request and
    // stall (one host alone may not open more than 256 connections).
    let stalled: Vec<TcpStream> = (0..300)
        .map(|n| {
            let host = format!("127.0.0.{}", 2 + n % 3);
            let mut stream = common::server::connect_from(&host, server.port);
            stream
                .write_all(b"GET /prod/dists/bookworm/InRelease HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // A read deadline turns "never served" into a failure instead of a hang.
    let mut client = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let request = format!(
        "GET /prod/dists/bookworm/InRelease HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
        basic(READER.0, READER.1)
    );
    client.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    client
        .read_to_end(&mut bytes)
        .expect("served while 300 clients stall");
    assert_eq!(Response::parse(&bytes).status, 200);
    drop(stalled);
}

#[test]
fn ip_allow_lists_are_checked_before_auth() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let settings = sb.repo.join("bess.toml");
    let mut text = std::fs::read_to_string(&settings).unwrap();
    text.push_str("\n[serve.allow]\nprod = [\"10.0.0.0/8\"]\npreprod = [\"127.0.0.0/8\"]\n");
    std::fs::write(&settings, text).unwrap();
    let server = Server::start(&sb.repo);
    assert_eq!(
        get(&server, "/prod/dists/bookworm/InRelease", Some(READER), "").status,
        403
    );
    assert_eq!(
        get(
            &server,
            "/preprod/dists/bookworm/InRelease",
            Some(ADMIN),
            ""
        )
        .status,
        200
    );
}

#[test]
fn large_files_are_served_whole_and_in_ranges_cached_or_streamed() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let input = sb.path("big");
    let deb = DebSpec::new("big", "1.0-1", "amd64")
        .compression("none")
        .payload(&"0123456789abcdef".repeat(3 << 16))
        .build(&input);
    sb.ok(&["repo", "ingest", deb.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "big=1.0-1"]);
    let bytes = std::fs::read(&deb).unwrap();
    assert!(bytes.len() > 3 << 20, "larger than what is read inline");
    let path = "/prod/pool/main/b/big/big_1.0-1_amd64.deb";
    let check = |server: &Server| {
        for _ in 0..2 {
            let whole = get(server, path, Some(READER), "");
            assert_eq!((whole.status, whole.body.len()), (200, bytes.len()));
            assert!(whole.body == bytes, "the exact bytes");
            let part = get(
                server,
                path,
                Some(READER),
                "Range: bytes=1048000-1049999\r\n",
            );
            assert_eq!(part.status, 206);
            assert!(part.body == bytes[1_048_000..1_050_000]);
        }
        // Two pipelined requests: the second response follows the whole
        // first body on the connection, byte for byte.
        let auth = format!("Authorization: Basic {}\r\n", basic(READER.0, READER.1));
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let ask = |close: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n{close}{auth}\r\n");
        let both = ask("") + &ask("Connection: close\r\n");
        stream.write_all(both.as_bytes()).unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        let first = Response::parse(&received);
        assert_eq!(first.status, 200);
        let second_at = received.len() - bytes.len();
        assert!(received[second_at..] == bytes[..], "the second body, whole");
        let head = String::from_utf8_lossy(&received[..second_at]);
        assert_eq!(head.matches("HTTP/1.1 200").count(), 2, "two responses");
        let first_body_at = head.find("\r\n\r\n").unwrap() + 4;
        assert!(received[first_body_at..first_body_at + bytes.len()] == bytes[..]);
    };
    // Kept in memory (the default cache takes files up to 16 MiB)...
    check(&Server::start(&sb.repo));
    // ...and streamed from disk when the cache takes nothing.
    let settings = sb.repo.join("bess.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    assert!(text.contains("file-cache-mib = 128"));
    std::fs::write(
        &settings,
        text.replace("file-cache-mib = 128", "file-cache-mib = 0"),
    )
    .unwrap();
    check(&Server::start(&sb.repo));
}

#[test]
fn a_publish_by_another_process_shows_in_the_very_next_response() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let in_release = "/prod/dists/bookworm/InRelease";
    let deb = "/prod/pool/main/a/app/app_1.0-1_amd64.deb";
    // Asked twice, so both paths are answered from memory the second time.
    for _ in 0..2 {
        assert_eq!(get(&server, in_release, Some(READER), "").status, 200);
        assert_eq!(get(&server, deb, Some(READER), "").status, 200);
    }
    for round in 0..3 {
        // A new version promoted by the CLI: a new InRelease on disk.
        let input = sb.path(&format!("round{round}"));
        let version = format!("3.{round}-1");
        DebSpec::new("app", &version, "amd64").build(&input);
        sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
        sb.ok(&["repo", "promote", &format!("app={version}")]);
        let on_disk = std::fs::read(sb.repo.join("public/prod/dists/bookworm/InRelease")).unwrap();
        let served = get(&server, in_release, Some(READER), "");
        assert!(
            served.body == on_disk,
            "round {round}: the InRelease just published, not the one before"
        );
        assert!(String::from_utf8_lossy(&served.body).contains("Date:"));
    }
    // A version removed from prod: its pool file is withdrawn at once.
    sb.ok(&["repo", "remove", "--channel", "prod", "app=1.0-1"]);
    assert!(
        !sb.published("prod", "main/a/app/app_1.0-1_amd64.deb")
            .exists()
    );
    assert_eq!(get(&server, deb, Some(READER), "").status, 404);
}

#[test]
fn paths_resolve_without_openat2() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let sb = repository();
    // As on a kernel or under a seccomp filter without openat2.
    let server = Server::start_with_env(&sb.repo, &[("BESS_NO_OPENAT2", "1")]);
    let work = sb.path("apt");
    std::fs::create_dir_all(&work).unwrap();
    let apt = server.apt("prod", "bookworm", READER, &work);
    apt.update(&["-o", "Acquire::By-Hash=force"]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);
    let original = std::fs::read(sb.path("in").join("app_1.0-1_amd64.deb")).unwrap();
    assert_eq!(apt.download("app=1.0-1"), original);
    let missing = get(
        &server,
        "/prod/dists/bookworm/nothing-here",
        Some(READER),
        "",
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn a_virtual_host_per_channel_serves_its_tree_at_the_root() {
    if !have_tool("dpkg-deb") || !have_tool("apt-get") {
        return;
    }
    let sb = repository();
    sb.edit_settings(
        "# [serve.hosts]\n# \"apt-prod.example.com\" = \"prod\"",
        "[serve.hosts]\n\"apt-prod.test\" = \"prod\"\n\"apt-preprod.test\" = \"preprod\"",
    );
    let server = Server::start(&sb.repo);
    let key = sb.path("key.gpg");
    std::fs::write(&key, get(&server, "/key.gpg", None, "").body).unwrap();
    // apt sends its requests through the "proxy" (bess itself), so the
    // host name reaches bess in the absolute-form target without any DNS.
    let proxy = format!("Acquire::http::Proxy \"{}\";", server.url());
    let apt = AptRoot::new("amd64", &proxy);
    let auth = apt.root.join("etc/apt/auth.conf.d/bess.conf");
    let lines = format!(
        "machine http://apt-prod.test/ login {0} password {1}\nmachine http://apt-preprod.test/ login {0} password {1}\n",
        READER.0, READER.1
    );
    std::fs::write(&auth, lines).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    apt.add_source("prod", "http://apt-prod.test/", "bookworm", &key);
    apt.update(&[]);
    assert_eq!(apt.versions("app"), ["1.0-1"]);
    let original = std::fs::read(sb.path("in").join("app_1.0-1_amd64.deb")).unwrap();
    assert_eq!(apt.download("app=1.0-1"), original);

    // The same prod-only user is refused preprod's tree on its own name.
    apt.add_source("preprod", "http://apt-preprod.test/", "bookworm", &key);
    let out = apt.run("apt-get", &["update"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("403"), "{text}");
    let on_host = |host: &str, path: &str| {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Basic {}\r\n\r\n",
            basic(READER.0, READER.1)
        );
        server.exchange("127.0.0.1", request.as_bytes())
    };
    assert_eq!(
        on_host("apt-preprod.test", "/dists/bookworm/InRelease").status,
        403
    );
    // /<channel>/ paths keep working on every name; bess.sources names the host.
    assert_eq!(
        on_host("apt-preprod.test", "/prod/dists/bookworm/InRelease").status,
        200
    );
    let sources = on_host("apt-prod.test:8080", "/bess.sources");
    assert!(
        sources.text().contains("URIs: http://apt-prod.test:8080\n"),
        "{}",
        sources.text()
    );
    // An unknown name is answered as before: only /<channel>/ paths.
    assert_eq!(
        on_host("other.test", "/dists/bookworm/InRelease").status,
        404
    );
}
