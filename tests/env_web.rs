//! Environments on the web: the API a ticket tracker drives (creating
//! and destroying with the `--env PLATFORM` right, refused without it),
//! and the homepage as a headless Chromium renders it, with the
//! environment's own credential.

mod common;

use common::env::{copy_example, environment_users, init_platform, names};
use common::server::{Server, add_user};
use common::{DebSpec, Sandbox, have_tool};
use serde_json::{Value, json};

const TRACKER: (&str, &str) = ("tracker", "tracker-secret-1");
const QA: (&str, &str) = ("qa", "qa-reads-preprod");
const PROD_READER: (&str, &str) = ("web01", "reads-prod-only");

fn sandbox_with_platform() -> Sandbox {
    let sb = Sandbox::new("bookworm", "amd64");
    let source = copy_example(&sb.path("example"));
    init_platform(&sb, "paas", &source, "10.77.0.0/24");
    sb
}

fn body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("JSON: {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn a_ticket_tracker_creates_and_destroys_environments_over_the_api() {
    let sb = sandbox_with_platform();
    add_user(&sb.repo, TRACKER, &["--env", "paas"]);
    add_user(&sb.repo, QA, &["--read", "preprod"]);
    add_user(&sb.repo, PROD_READER, &["--read", "prod"]);
    let error = sb.fails(&["user", "add", "x", "--env", "nosuch", "--password-stdin"]);
    assert!(error.contains("no platform named `nosuch`"), "{error}");
    let server = Server::start(&sb.repo);
    let create = |user, text: &str| {
        server.request(
            "POST",
            "/api/v1/platforms/paas/environments",
            user,
            text.as_bytes(),
        )
    };
    let request = r#"{"name":"1161","sites":["v5"],"channel":"preprod"}"#;

    let (status, refused) = create(QA, request);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&refused));
    assert!(
        body(&refused)["error"]
            .as_str()
            .unwrap()
            .contains("--env paas")
    );
    assert!(
        sb.json(&["env", "list"]).as_array().unwrap().is_empty(),
        "nothing was created"
    );

    let (status, created) = create(TRACKER, request);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&created));
    let created = body(&created);
    assert_eq!(created["name"], "1161");
    assert_eq!(names(&created["sites"]), ["v5"]);
    assert_eq!(
        created,
        sb.json(&["env", "show", "paas", "1161"]),
        "the same JSON as the CLI"
    );
    let (status, again) = create(TRACKER, request);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&again));
    let (status, bad) = create(TRACKER, r#"{"name":"PROJ_42"}"#);
    assert_eq!(status, 400);
    assert!(body(&bad)["error"].as_str().unwrap().contains("not `_`"));
    let (status, _) = create(TRACKER, r#"{"name":"1162","site":["v5"]}"#);
    assert_eq!(status, 400, "unknown fields are refused");

    // Seeing takes read rights on the environment's channel.
    let get = |user, path: &str| server.request("GET", path, user, b"");
    let (status, platforms) = get(QA, "/api/v1/platforms");
    assert_eq!(status, 200);
    assert_eq!(names(&body(&platforms)), ["paas"]);
    assert_eq!(body(&platforms), sb.json(&["platform", "list"]));
    let (_, platforms) = get(PROD_READER, "/api/v1/platforms");
    assert_eq!(body(&platforms), json!([]));
    let (_, envs) = get(QA, "/api/v1/platforms/paas/environments");
    assert_eq!(names(&body(&envs)), ["1161"]);
    let (_, envs) = get(PROD_READER, "/api/v1/platforms/paas/environments");
    assert_eq!(body(&envs), json!([]));
    let (status, _) = get(PROD_READER, "/api/v1/environments/paas/1161");
    assert_eq!(status, 403);
    let (status, shown) = get(QA, "/api/v1/environments/paas/1161");
    assert_eq!(status, 200);
    assert_eq!(body(&shown), created);

    let (status, _) = server.request("DELETE", "/api/v1/environments/paas/1161", QA, b"");
    assert_eq!(status, 403);
    let (status, gone) = server.request("DELETE", "/api/v1/environments/paas/1161", TRACKER, b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&gone));
    assert!(sb.json(&["env", "list"]).as_array().unwrap().is_empty());
    assert!(environment_users(&sb).is_empty());
    let log = sb.json(&["log", "--action", "env.init"]);
    assert_eq!(log[0]["actor"], "tracker");
    assert_eq!(log[0]["origin"], "http");
    assert_eq!(
        sb.json(&["log", "--action", "env.destroy"])[0]["actor"],
        "tracker"
    );

    // The right goes with the user, at once.
    sb.ok(&["user", "remove", "tracker"]);
    let (status, _) = create(TRACKER, request);
    assert_eq!(status, 401);
}

/// The page at `url` as Chromium renders it (its DOM after loading).
fn chromium_dom(url: &str, profile: &std::path::Path) -> String {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every value of `attribute` on elements whose opening tag holds `marker`.
fn attributes(dom: &str, marker: &str, attribute: &str) -> Vec<String> {
    dom.split('<')
        .filter(|tag| tag.contains(marker))
        .filter_map(|tag| {
            let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
            Some(tag[start..].split('"').next()?.to_string())
        })
        .collect()
}

/// The text of the first element with `class="<class>"` inside the row of `package`.
fn cell(dom: &str, package: &str, class: &str) -> String {
    let row = dom
        .split(&format!("data-package=\"{package}\""))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for {package} in {dom}"));
    let cell = row.split(&format!("class=\"{class}\">")).nth(1).unwrap();
    cell.split('<').next().unwrap().trim().to_string()
}

#[test]
fn chromium_reads_the_site_links_and_package_versions_of_the_homepage() {
    if !have_tool("chromium") || !have_tool("dpkg-deb") {
        return;
    }
    let sb = sandbox_with_platform();
    let debs = sb.path("debs");
    DebSpec::new("myapp", "1.0-1", "amd64").build(&debs);
    sb.ok(&["repo", "ingest", debs.to_str().unwrap()]);
    sb.ok(&["env", "init", "paas", "1161", "--sites", "v5,api"]);
    let password =
        std::fs::read_to_string(sb.repo.join("envs/paas/1161/etc/bess/password")).unwrap();
    let server = Server::start(&sb.repo);
    let profile = sb.path("chromium");
    let url = |path: &str| {
        format!(
            "http://env.paas.1161:{}@127.0.0.1:{}{path}",
            password.trim_end(),
            server.port
        )
    };

    let dom = chromium_dom(&url("/env/paas/1161/"), &profile);
    assert!(dom.contains("<h1>Environment 1161</h1>"), "{dom}");
    assert_eq!(
        attributes(&dom, "class=\"site\"", "href"),
        [
            "http://v5.1161.paas.example.test/",
            "http://api.1161.paas.example.test/v1/"
        ]
    );
    assert_eq!(
        attributes(&dom, "class=\"tool\"", "href"),
        ["http://phpmyadmin.1161.paas.example.test/phpmyadmin/"]
    );
    assert_eq!(cell(&dom, "myapp", "available"), "1.0-1");
    assert_eq!(cell(&dom, "myapp", "installed"), "—");
    assert!(
        dom.contains("10.77.0.2") && dom.contains("10.77.0.3"),
        "machines and their addresses"
    );

    // A new upload shows on the next load; the platform's page lists the environment.
    DebSpec::new("myapp", "1.1-1", "amd64").build(&sb.path("debs2"));
    sb.ok(&["repo", "ingest", sb.path("debs2").to_str().unwrap()]);
    let dom = chromium_dom(&url("/env/paas/1161/"), &profile);
    assert_eq!(cell(&dom, "myapp", "available"), "1.1-1");
    let dom = chromium_dom(&url("/env/paas/"), &profile);
    assert_eq!(
        attributes(&dom, "href=\"/env/paas/1161/\"", "href"),
        ["/env/paas/1161/"]
    );

    // Without read rights on preprod: refused, and the phone-sized layout is declared.
    add_user(&sb.repo, PROD_READER, &["--read", "prod"]);
    let (status, _) = server.get("/env/paas/1161/", Some(PROD_READER));
    assert_eq!(status, 403);
    let (status, page) = server.get(
        "/env/paas/1161/",
        Some(("env.paas.1161", password.trim_end())),
    );
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("name=\"viewport\" content=\"width=device-width"),
        "{page}"
    );
    assert!(!page.contains("<script"), "no JavaScript");
}
