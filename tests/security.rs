//! The faults an adversarial review found in `bess serve` (issue 17), each
//! reproduced against the real binary over loopback: floods of wrong
//! passwords, revoked users, clients behind a proxy, hostile query
//! strings, Host headers and uploads, connection hogs and HTTP details.

mod common;

use common::server::{Reply, Server, add_user, basic, connect_from, read_reply};
use common::{DebSpec, Sandbox, have_tool};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const READER: (&str, &str) = ("reader", "reader-password-1");
const UPLOADER: (&str, &str) = ("ci", "uploader-password-1");
const ADMIN: (&str, &str) = ("ops", "admin-password-123");

/// A repository with `app` 1.0-1 in prod and 2.0-1 in preprod, and a
/// reader of prod, an uploader and an admin.
fn repository() -> Sandbox {
    let sb = Sandbox::new("bookworm", "amd64");
    let input = sb.path("in");
    DebSpec::new("app", "1.0-1", "amd64").build(&input);
    DebSpec::new("app", "2.0-1", "amd64").build(&input);
    sb.ok(&["repo", "ingest", input.to_str().unwrap()]);
    sb.ok(&["repo", "promote", "app=1.0-1"]);
    add_user(&sb.repo, READER, &["--read", "prod"]);
    add_user(&sb.repo, UPLOADER, &["--upload", "preprod"]);
    add_user(&sb.repo, ADMIN, &["--admin"]);
    sb
}

/// A request with `Connection: close`, credentials and extra header lines.
fn request(method: &str, path: &str, user: Option<(&str, &str)>, extra: &str) -> Vec<u8> {
    let auth = user
        .map(|(u, p)| format!("Authorization: Basic {}\r\n", basic(u, p)))
        .unwrap_or_default();
    format!("{method} {path} HTTP/1.1\r\nHost: repo.test\r\nConnection: close\r\n{auth}{extra}\r\n")
        .into_bytes()
}

/// [`request`] with a body.
fn with_body(method: &str, path: &str, user: (&str, &str), body: &[u8]) -> Vec<u8> {
    let extra = format!("Content-Length: {}\r\n", body.len());
    let mut sent = request(method, path, Some(user), &extra);
    sent.extend_from_slice(body);
    sent
}

fn get(server: &Server, path: &str, user: (&str, &str)) -> Reply {
    server.exchange("127.0.0.1", &request("GET", path, Some(user), ""))
}

/// `bess user …` with `password` on standard input.
fn user_command(sb: &Sandbox, args: &[&str], password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_REPO", &sb.repo)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "bess user {args:?}");
}

/// The statuses of `count` wrong logins sent at once from `sources`.
fn flood(server: &Server, sources: &[String], count: usize) -> Vec<u16> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|i| {
                let from = sources[i % sources.len()].clone();
                scope.spawn(move || {
                    let wrong = format!("wrong-password-{i}");
                    let path = "/prod/dists/bookworm/InRelease";
                    let sent = request("GET", path, Some((READER.0, &wrong)), "");
                    server.exchange(&from, &sent).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn a_flood_of_wrong_passwords_is_braked_and_memory_stays_bounded() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let one = flood(&server, &["127.0.0.1".to_string()], 500);
    let braked = one.iter().filter(|s| **s == 429).count();
    let checked = one.iter().filter(|s| **s == 401).count();
    // Counted when they start: ten, and the odd throttled one, are checked.
    assert!(
        checked <= 20,
        "{checked} of 500 wrong passwords were checked"
    );
    assert!(braked >= 480, "only {braked} of 500 were braked: {one:?}");
    // From twenty addresses at once: the queue in front of the checking
    // threads is bounded too (503 when full).
    let many: Vec<String> = (2..22).map(|n| format!("127.0.0.{n}")).collect();
    let statuses = flood(&server, &many, 500);
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let (_, peak) = server.memory_kib();
    assert!(peak < 300 * 1024, "peak RSS {peak} KiB under the flood");
    std::thread::sleep(Duration::from_secs(1));
    let (now, _) = server.memory_kib();
    assert!(now < 150 * 1024, "RSS {now} KiB after the flood");
    // Right credentials from an address that took no part still get in.
    let sent = request("GET", "/prod/dists/bookworm/InRelease", Some(ADMIN), "");
    assert_eq!(server.exchange("127.0.0.99", &sent).status, 200);
}

#[test]
fn user_changes_take_effect_on_the_very_next_request() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    // Verified once, so the server remembers these credentials.
    assert_eq!(get(&server, "/api/v1/packages", ADMIN).status, 200);
    sb.ok(&["user", "remove", ADMIN.0]);
    let body = r#"{"packages":["app=2.0-1"],"from":"preprod","to":"prod"}"#;
    let promote = with_body("POST", "/api/v1/promote", ADMIN, body.as_bytes());
    assert_eq!(server.exchange("127.0.0.1", &promote).status, 401);
    let prod = sb.json(&["repo", "list", "--channel", "prod"]);
    assert!(
        !prod.to_string().contains("2.0-1"),
        "the removed admin promoted: {prod}"
    );

    assert_eq!(
        get(&server, "/prod/dists/bookworm/InRelease", READER).status,
        200
    );
    user_command(
        &sb,
        &["passwd", READER.0, "--password-stdin"],
        "a-new-password-42",
    );
    assert_eq!(
        get(&server, "/prod/dists/bookworm/InRelease", READER).status,
        401
    );
    let renewed = (READER.0, "a-new-password-42");
    assert_eq!(
        get(&server, "/prod/dists/bookworm/InRelease", renewed).status,
        200
    );

    let again = ("again", "again-password-1");
    add_user(&sb.repo, again, &["--admin"]);
    assert_eq!(
        get(&server, "/preprod/dists/bookworm/InRelease", again).status,
        200
    );
    sb.ok(&["user", "remove", again.0]);
    add_user(&sb.repo, again, &["--read", "prod"]);
    assert_eq!(
        get(&server, "/preprod/dists/bookworm/InRelease", again).status,
        403
    );
}

#[test]
fn clients_behind_a_trusted_proxy_are_braked_apart() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    sb.edit_settings(
        "# trusted-proxies = [\"127.0.0.1/32\"]",
        "trusted-proxies = [\"127.0.0.1/32\"]",
    );
    let server = Server::start(&sb.repo);
    let path = "/prod/dists/bookworm/InRelease";
    let through_proxy = |client: &str, user: (&str, &str)| {
        let extra = format!("X-Forwarded-For: {client}\r\n");
        server
            .exchange("127.0.0.1", &request("GET", path, Some(user), &extra))
            .status
    };
    let guesses: Vec<u16> = (0..14)
        .map(|i| through_proxy("203.0.113.9", ("mallory", &format!("guess-{i}"))))
        .collect();
    assert_eq!(guesses.last(), Some(&429), "{guesses:?}");
    // Another client of the same proxy is not locked out by the first.
    assert_eq!(through_proxy("203.0.113.10", READER), 200);

    // From a peer that is no trusted proxy, the header is ignored: a
    // guesser cannot dodge the brake by writing a new address each time.
    let spoofed: Vec<u16> = (0..14)
        .map(|i| {
            let extra = format!("X-Forwarded-For: 198.51.100.{i}\r\n");
            let user = ("mallory2", format!("guess-{i}"));
            let sent = request("GET", path, Some((user.0, &user.1)), &extra);
            server.exchange("127.0.0.2", &sent).status
        })
        .collect();
    assert_eq!(spoofed.last(), Some(&429), "{spoofed:?}");
    // Braked is not locked out: once the throttled interval has passed,
    // right credentials from that address are checked and let in.
    std::thread::sleep(Duration::from_millis(2100));
    let sent = request("GET", path, Some(READER), "");
    assert_eq!(server.exchange("127.0.0.2", &sent).status, 200);
}

/// `POST /api/v1/packages?{query}` with the `.deb` at `deb`.
fn upload(server: &Server, query: &str, deb: &std::path::Path, user: (&str, &str)) -> Reply {
    let body = std::fs::read(deb).unwrap();
    let path = format!("/api/v1/packages?{query}");
    server.exchange("127.0.0.1", &with_body("POST", &path, user, &body))
}

#[test]
fn api_query_values_are_checked_like_cli_arguments() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let deb = DebSpec::new("tool", "1.0-1", "amd64").build(&sb.path("up"));
    let server = Server::start(&sb.repo);
    for query in [
        "dist=bookworm%00",
        "dist=..%2F..%2Fx",
        "dist=",
        "dists=bookworm",
        "dist=%zz",
    ] {
        let reply = upload(&server, query, &deb, UPLOADER);
        assert_eq!(reply.status, 400, "?{query}: {}", reply.text());
        assert!(reply.text().contains("dist"), "?{query}: {}", reply.text());
    }
    let versions = sb.bess(&["repo", "versions", "tool", "--json"]);
    assert!(!versions.status.success(), "a refused upload was ingested");
    let reply = get(&server, "/api/v1/packages?channel=prod%00preprod", ADMIN);
    assert_eq!(reply.status, 400, "{}", reply.text());
    let reply = upload(&server, "dist=bookworm", &deb, UPLOADER);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// `bess_password_checks_total` from `/metrics`.
fn password_checks(server: &Server) -> u64 {
    let reply = server.exchange("127.0.0.1", &request("GET", "/metrics", None, ""));
    reply
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("bess_password_checks_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no password check counter in {}", reply.text()))
}

#[test]
fn unknown_user_names_cost_a_password_check_like_known_ones() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let path = "/prod/dists/bookworm/InRelease";
    let before = password_checks(&server);
    assert_eq!(
        get(&server, path, ("nobody-at-all", "some-password-1")).status,
        401
    );
    // The same work as for a user who exists, so timing cannot tell them apart.
    assert_eq!(password_checks(&server), before + 1);
    assert_eq!(
        get(&server, path, (READER.0, "some-password-1")).status,
        401
    );
    assert_eq!(password_checks(&server), before + 2);
}

#[test]
fn bess_sources_names_only_a_plain_host() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let sources = |host: &str| {
        let auth = basic(READER.0, READER.1);
        let sent = format!(
            "GET /prod/bess.sources HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Basic {auth}\r\n\r\n"
        );
        server.exchange("127.0.0.1", sent.as_bytes())
    };
    let plain = sources("repo.example:8080");
    assert_eq!(plain.status, 200);
    assert!(
        plain
            .text()
            .contains("URIs: http://repo.example:8080/prod\n"),
        "{}",
        plain.text()
    );
    for hostile in ["a b", "evil.test/x", "repo:99999", "u@evil.test"] {
        let reply = sources(hostile);
        assert_eq!(reply.status, 400, "Host: {hostile} gave {}", reply.text());
    }
    drop(server);
    sb.edit_settings(
        "# public-url = \"https://repo.example.com\"",
        "public-url = \"https://apt.example.com\"",
    );
    let server = Server::start(&sb.repo);
    let auth = basic(READER.0, READER.1);
    let sent = format!(
        "GET /prod/bess.sources HTTP/1.1\r\nHost: a b\r\nConnection: close\r\nAuthorization: Basic {auth}\r\n\r\n"
    );
    let reply = server.exchange("127.0.0.1", sent.as_bytes());
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .text()
            .contains("URIs: https://apt.example.com/prod\n"),
        "{}",
        reply.text()
    );
}

#[test]
fn errors_sent_to_clients_name_no_server_path() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let garbage = sb.path("garbage.deb");
    std::fs::write(&garbage, b"!<arch>\nnot really a package at all").unwrap();
    let clash = DebSpec::new("app", "1.0-1", "amd64")
        .payload("other bytes\n")
        .build(&sb.path("clash"));
    let good = DebSpec::new("tool", "1.0-1", "amd64").build(&sb.path("good"));
    let replies = [
        upload(&server, "component=nope", &good, UPLOADER),
        upload(&server, "filename=garbage.deb", &garbage, UPLOADER),
        upload(&server, "", &clash, UPLOADER),
        get(&server, "/api/v1/versions/absent", ADMIN),
        get(&server, "/api/v1/diff?from=preprod&to=nope", ADMIN),
    ];
    let root = sb.repo.display().to_string();
    for reply in &replies {
        assert!(
            (400..500).contains(&reply.status),
            "{} {}",
            reply.status,
            reply.text()
        );
        assert!(
            !reply.text().contains(&root),
            "a server path was sent: {}",
            reply.text()
        );
        assert!(
            !reply.text().contains("upload-"),
            "a staging path was sent: {}",
            reply.text()
        );
    }
    assert!(
        replies[0].text().contains("bess.toml"),
        "{}",
        replies[0].text()
    );
}

#[test]
fn one_address_cannot_take_every_connection() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    sb.edit_settings("max-connections = 4096", "max-connections = 20");
    sb.edit_settings(
        "max-connections-per-address = 256",
        "max-connections-per-address = 8",
    );
    sb.edit_settings("header-timeout-secs = 10", "header-timeout-secs = 60");
    let server = Server::start(&sb.repo);
    let slow = |n: usize| -> Vec<std::net::TcpStream> {
        (0..n)
            .map(|_| {
                let mut stream = connect_from("127.0.0.1", server.port);
                stream
                    .write_all(b"GET /prod/dists/bookworm/InRelease HTTP/1.1\r\n")
                    .unwrap();
                stream
            })
            .collect()
    };
    let held = slow(8);
    // The ninth from the same address is closed at once, not queued.
    let mut ninth = slow(1).pop().unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    match ninth.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the ninth connection was kept open: {other:?}"),
    }
    let more = slow(22);
    let sent = request("GET", "/prod/dists/bookworm/InRelease", Some(READER), "");
    assert_eq!(server.exchange("127.0.0.2", &sent).status, 200);
    drop((held, more));
}

#[test]
fn http_details_follow_the_rfc() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    let head = server.exchange(
        "127.0.0.1",
        &request("HEAD", "/api/v1/packages", Some(ADMIN), ""),
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let path = "/prod/dists/bookworm/InRelease";
    let post = server.exchange(
        "127.0.0.1",
        &request("POST", path, Some(READER), "Content-Length: 0\r\n"),
    );
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
    let delete = server.exchange(
        "127.0.0.1",
        &request("DELETE", "/api/v1/packages", Some(ADMIN), ""),
    );
    assert_eq!(delete.status, 405);
    assert!(
        delete.header("allow").is_some_and(|a| a.contains("POST")),
        "{delete:?}"
    );
    let future = "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n";
    let reply = server.exchange("127.0.0.1", &request("GET", path, Some(READER), future));
    assert_eq!(reply.status, 200, "a date in the future is ignored");
    let whole = get(&server, path, READER).body;
    let ranges = "Range: bytes=0-9\r\nRange: bytes=10-19\r\n";
    let reply = server.exchange("127.0.0.1", &request("GET", path, Some(READER), ranges));
    assert_eq!(
        (reply.status, reply.body.len()),
        (200, whole.len()),
        "two Range headers"
    );
    // 64 KiB of headers is refused with 431, and the server goes on.
    let big = format!("X-Padding: {}\r\n", "a".repeat(64 * 1024));
    let reply = server.exchange("127.0.0.1", &request("GET", path, Some(READER), &big));
    assert_eq!(reply.status, 431);
    assert_eq!(get(&server, path, READER).status, 200);
}

#[test]
fn uploads_are_checked_as_they_arrive() {
    if !have_tool("dpkg-deb") {
        return;
    }
    let sb = repository();
    let server = Server::start(&sb.repo);
    // Declared too large: refused before a byte of the body is sent.
    let huge = "Content-Length: 2147483648\r\n";
    let reply = server.exchange(
        "127.0.0.1",
        &request("POST", "/api/v1/packages", Some(UPLOADER), huge),
    );
    assert_eq!(reply.status, 413, "{}", reply.text());
    // Three 400 MB uploads of garbage: each refused at its first bytes,
    // while the rest of the body is still to come.
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let extra = "Content-Length: 419430400\r\n";
                let mut stream = connect_from("127.0.0.1", server.port);
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                stream
                    .write_all(&request("POST", "/api/v1/packages", Some(UPLOADER), extra))
                    .unwrap();
                stream.write_all(&vec![b'x'; 1 << 20]).unwrap();
                // Answered without the other 399 MB.
                let reply = read_reply(&mut stream);
                assert_eq!(reply.status, 400, "{}", reply.text());
                assert!(
                    reply.text().contains("not a Debian package"),
                    "{}",
                    reply.text()
                );
            });
        }
    });
    let (_, peak) = server.memory_kib();
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
}
