//! Vagrant boxes on the same engine, checked with the real `vagrant`
//! (Debian 12's 2.3.4; no hypervisor is needed to add, list and check
//! boxes) against `bess serve` on 127.0.0.1:0, and with a plain HTTP
//! client for every refusal.

mod common;

use common::server::Server;
use common::vagrant::{Vagrant, make_box};
use common::{Sandbox, have_tool, inode};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const READER: (&str, &str) = ("web01", "prod-reader-secret");
const OTHER_READER: (&str, &str) = ("web02", "other-reader-secret");
const PREPROD_READER: (&str, &str) = ("qa", "preprod-reader-secret");
const UPLOADER: (&str, &str) = ("ci", "ci-uploader-secret");

/// `bess serve` on the sandbox, its request log kept.
fn serve(sb: &Sandbox) -> Server {
    Server::start_logged(&sb.repo, &sb.path("serve.log"))
}

/// The catalog URL with credentials in it, as a Vagrantfile's box_url holds it.
fn catalog_url(server: &Server, user: (&str, &str), channel: &str, name: &str) -> String {
    format!(
        "http://{}:{}@127.0.0.1:{}/{channel}/boxes/{name}",
        user.0, user.1, server.port
    )
}

/// A repository with a reader of prod, a reader of preprod, a second
/// reader of prod and an uploader.
fn repository() -> Sandbox {
    let sb = Sandbox::new("bookworm", "amd64");
    for (user, flags) in [
        (READER, ["--read", "prod"]),
        (OTHER_READER, ["--read", "prod"]),
        (PREPROD_READER, ["--read", "preprod"]),
        (UPLOADER, ["--upload", "preprod"]),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", &sb.repo)
            .args(["user", "add", user.0, "--password-stdin"])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(user.1.as_bytes()).unwrap();
        drop(stdin);
        assert!(child.wait().unwrap().success());
    }
    sb
}

fn add_box(sb: &Sandbox, name: &str, version: &str, file: &Path) {
    sb.ok(&[
        "box",
        "add",
        name,
        version,
        file.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A plain HTTP client that reports statuses instead of failing on them.
fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn basic(user: (&str, &str)) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", user.0, user.1);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The catalog as `user` sees it.
fn catalog(server: &Server, user: (&str, &str), channel: &str, name: &str) -> serde_json::Value {
    let url = format!("{}/{channel}/boxes/{name}", server.url());
    let mut response = http()
        .get(&url)
        .header("Authorization", &basic(user))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// `(version, url)` of every box file of a catalog.
fn box_urls(catalog: &serde_json::Value) -> Vec<(String, String)> {
    let mut urls = Vec::new();
    for version in catalog["versions"].as_array().unwrap() {
        for provider in version["providers"].as_array().unwrap() {
            urls.push((
                version["version"].as_str().unwrap().to_string(),
                provider["url"].as_str().unwrap().to_string(),
            ));
        }
    }
    urls
}

/// Status and body of a GET, with optional credentials.
fn get_bytes(url: &str, user: Option<(&str, &str)>) -> (u16, Vec<u8>) {
    let mut request = http().get(url);
    if let Some(user) = user {
        request = request.header("Authorization", &basic(user));
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 26)
        .read_to_vec()
        .unwrap();
    (status, body)
}

/// Status and body text of a GET, with optional credentials.
fn get(url: &str, user: Option<(&str, &str)>) -> (u16, String) {
    let (status, body) = get_bytes(url, user);
    (status, String::from_utf8_lossy(&body).to_string())
}

fn upload_remote(server: &Server, user: (&str, &str), version: &str, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bess"))
        .env("BESS_PASSWORD", user.1)
        .args(["box", "add", "acme/base", version])
        .arg(file)
        .args(["--provider", "libvirt", "--remote", &server.url()])
        .args(["--user", user.0, "--json"])
        .output()
        .unwrap()
}

#[test]
fn vagrant_adds_from_the_catalog_and_sees_a_new_version_only_after_promotion() {
    if !have_tool("vagrant") {
        return;
    }
    let sb = repository();
    let (first, image) = make_box(&sb, "base-1.0.0.box", "libvirt", "one");
    add_box(&sb, "acme/base", "1.0.0", &first);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    let server = serve(&sb);
    let vagrant = Vagrant::new();
    let url = catalog_url(&server, READER, "prod", "acme/base");

    let added = vagrant.ok(&["box", "add", "--provider", "libvirt", &url]);
    assert!(
        added.contains("Calculating and comparing box checksum"),
        "{added}"
    );
    assert!(
        added.contains("Successfully added box 'acme/base' (v1.0.0)"),
        "{added}"
    );
    assert!(
        !added.contains(READER.1),
        "vagrant printed the password:\n{added}"
    );
    let unpacked = std::fs::read(vagrant.unpacked("acme/base", "1.0.0").join("box.img"));
    assert_eq!(unpacked.unwrap(), image);
    let listed = vagrant.ok(&["box", "list"]);
    assert!(listed.contains("acme/base (libvirt, 1.0.0)"), "{listed}");
    // vagrant sent the credentials to the catalog only: the box file was
    // granted by the token of the catalog's URL.
    let log = server.log();
    assert!(
        log.contains("web01/token \"GET /prod/boxes/acme/base/1.0.0/libvirt-amd64.box\" 200"),
        "{log}"
    );

    // A new version uploaded by CI lands in preprod: prod users see nothing new.
    let (second, _) = make_box(&sb, "base-1.1.0.box", "libvirt", "two");
    let uploaded = upload_remote(&server, UPLOADER, "1.1.0", &second);
    assert!(uploaded.status.success(), "{}", text(&uploaded));
    let outdated = vagrant.ok(&["box", "outdated", "--global"]);
    assert!(
        outdated.contains("'acme/base' for 'libvirt' (v1.0.0) is up to date"),
        "{outdated}"
    );

    sb.ok(&["box", "promote", "acme/base=1.1.0"]);
    let outdated = vagrant.ok(&["box", "outdated", "--global"]);
    assert!(
        outdated.contains("is outdated! Current: 1.0.0. Latest: 1.1.0"),
        "{outdated}"
    );
    let updated = vagrant.ok(&["box", "add", "--provider", "libvirt", &url]);
    assert!(
        updated.contains("Successfully added box 'acme/base' (v1.1.0)"),
        "{updated}"
    );
}

#[test]
fn vagrant_verifies_the_catalog_checksum() {
    if !have_tool("vagrant") {
        return;
    }
    let sb = repository();
    let (file, _) = make_box(&sb, "base.box", "libvirt", "one");
    add_box(&sb, "acme/base", "1.0.0", &file);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    // Damage the stored bytes behind bess's back (the published file is a
    // hard link to the pool object): the catalog still lists the original
    // checksum, and vagrant must refuse what it downloads.
    let published = sb
        .repo
        .join("public/prod/boxes/acme/base/1.0.0/libvirt-amd64.box");
    let mut bytes = std::fs::read(&published).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&published, &bytes).unwrap();
    let server = serve(&sb);
    let vagrant = Vagrant::new();
    let url = catalog_url(&server, READER, "prod", "acme/base");
    let out = vagrant.run(&["box", "add", "--provider", "libvirt", &url]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("checksum of the downloaded box did not match"),
        "{said}"
    );
    assert!(!vagrant.ok(&["box", "list"]).contains("acme/base"));
}

#[test]
fn vagrant_without_credentials_is_refused() {
    if !have_tool("vagrant") {
        return;
    }
    let sb = repository();
    let (file, _) = make_box(&sb, "base.box", "libvirt", "one");
    add_box(&sb, "acme/base", "1.0.0", &file);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    let server = serve(&sb);
    let vagrant = Vagrant::new();
    let refused = |url: &str, status: &str| {
        let out = vagrant.run(&["box", "add", "--provider", "libvirt", url]);
        let said = text(&out);
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains(&format!("The requested URL returned error: {status}")),
            "{said}"
        );
    };
    refused(&format!("{}/prod/boxes/acme/base", server.url()), "401");
    let wrong = catalog_url(&server, (READER.0, "not-the-password"), "prod", "acme/base");
    refused(&wrong, "401");
    refused(
        &catalog_url(&server, PREPROD_READER, "prod", "acme/base"),
        "403",
    );
    assert!(!vagrant.ok(&["box", "list"]).contains("acme/base"));
    let log = server.log();
    assert!(log.contains("\"HEAD /prod/boxes/acme/base\" 401"), "{log}");
    assert!(
        log.contains("qa \"HEAD /prod/boxes/acme/base\" 403"),
        "{log}"
    );
    assert!(!log.contains(".box\" 200"), "{log}");
}

#[test]
fn catalogs_answer_json_to_get_and_head_and_list_only_the_channel() {
    let sb = repository();
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    let (two, _) = make_box(&sb, "two.box", "libvirt", "two");
    let (ten, _) = make_box(&sb, "ten.box", "libvirt", "ten");
    add_box(&sb, "acme/base", "1.9.0", &one);
    add_box(&sb, "acme/base", "1.10.0", &ten);
    add_box(&sb, "acme/base", "2.0.0", &two);
    add_box(&sb, "acme/preview", "0.1.0", &one);
    sb.ok(&["box", "promote", "acme/base=1.9.0"]);
    sb.ok(&["box", "promote", "acme/base=1.10.0"]);
    let server = serve(&sb);

    for method in ["GET", "HEAD"] {
        let url = format!("{}/prod/boxes/acme/base", server.url());
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", basic(READER))
            .body(())
            .unwrap();
        let response = http().run(request).unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert_eq!(content_type, "application/json", "{method}");
    }
    let prod = catalog(&server, READER, "prod", "acme/base");
    assert_eq!(prod["name"], "acme/base");
    let versions: Vec<String> = box_urls(&prod).into_iter().map(|(v, _)| v).collect();
    assert_eq!(
        versions,
        ["1.10.0", "1.9.0"],
        "newest first; 2.0.0 is preprod only"
    );
    let provider = &prod["versions"][0]["providers"][0];
    assert_eq!(provider["name"], "libvirt");
    assert_eq!(provider["checksum_type"], "sha256");
    assert_eq!(provider["architecture"], "amd64");
    assert_eq!(provider["default_architecture"], true);
    let listed = sb.json(&["box", "list", "--channel", "prod"]);
    let sha = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["version"] == "1.10.0")
        .unwrap();
    assert_eq!(provider["checksum"], sha["sha256"]);
    let url = box_urls(&prod)[0].1.clone();
    assert!(
        url.starts_with(&format!(
            "{}/prod/boxes/acme/base/1.10.0/libvirt-amd64.box?token=",
            server.url()
        )),
        "{url}"
    );

    // Preprod boxes never appear in the prod catalog.
    let preview = format!("{}/prod/boxes/acme/preview", server.url());
    assert_eq!(get(&preview, Some(READER)).0, 404);
    let qa = catalog(&server, PREPROD_READER, "preprod", "acme/base");
    assert_eq!(box_urls(&qa).len(), 3);
    assert_eq!(
        get(
            &format!("{}/preprod/boxes/acme/base", server.url()),
            Some(READER)
        )
        .0,
        403
    );
    assert_eq!(
        get(&format!("{}/prod/boxes/acme/base", server.url()), None).0,
        401
    );
}

#[test]
fn box_files_need_a_token_for_that_file_and_user_or_credentials() {
    let sb = repository();
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    let (two, _) = make_box(&sb, "two.box", "libvirt", "two");
    add_box(&sb, "acme/base", "1.0.0", &one);
    add_box(&sb, "acme/base", "1.1.0", &two);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    sb.ok(&["box", "promote", "acme/base=1.1.0"]);
    let server = serve(&sb);
    let urls = box_urls(&catalog(&server, READER, "prod", "acme/base"));
    let (newer, older) = (&urls[0].1, &urls[1].1);
    let (path, token) = older.split_once("?token=").unwrap();

    let (status, body) = get_bytes(older, None);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        std::fs::read(&one).unwrap(),
        "the token alone opens the file"
    );

    assert_eq!(get(path, None).0, 401, "no token, no credentials");
    assert_eq!(get(path, Some(READER)).0, 200, "credentials of a reader");
    assert_eq!(
        get(path, Some(PREPROD_READER)).0,
        403,
        "credentials of a preprod reader"
    );
    let (newer_path, _) = newer.split_once("?token=").unwrap();
    let (status, body) = get(&format!("{newer_path}?token={token}"), None);
    assert_eq!(
        (status, body.trim()),
        (403, "the token is not valid for this file")
    );
    let preprod_path = path.replace("/prod/", "/preprod/");
    let (status, _) = get(&format!("{preprod_path}?token={token}"), None);
    assert_eq!(status, 403, "a prod token does not open the preprod tree");
    // The user is part of what is signed: claiming another user's name fails.
    let mut parts: Vec<&str> = token.split('.').collect();
    use base64::Engine;
    let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(OTHER_READER.0);
    parts[1] = &other;
    let (status, body) = get(&format!("{path}?token={}", parts.join(".")), None);
    assert_eq!(
        (status, body.trim()),
        (403, "the token is not valid for this file")
    );
    // Tokens follow the user's current rights: a removed user's tokens stop working.
    let other_urls = box_urls(&catalog(&server, OTHER_READER, "prod", "acme/base"));
    assert_eq!(get(&other_urls[1].1, None).0, 200);
    sb.ok(&["user", "remove", OTHER_READER.0]);
    let (status, body) = get(&other_urls[1].1, None);
    assert_eq!(
        (status, body.trim()),
        (403, "the token's user no longer exists")
    );
    assert_eq!(get(older, None).0, 200, "other users' tokens still work");
}

#[test]
fn expired_tokens_are_refused() {
    let sb = repository();
    sb.edit_settings("token-ttl-secs = 3600", "token-ttl-secs = 1");
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    add_box(&sb, "acme/base", "1.0.0", &one);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    let server = serve(&sb);
    let url = box_urls(&catalog(&server, READER, "prod", "acme/base"))[0]
        .1
        .clone();
    let expires: u64 = url
        .split("?token=")
        .nth(1)
        .and_then(|t| t.split('.').next())
        .and_then(|e| e.parse().ok())
        .unwrap();
    // Wait for the clock to pass the expiry written in the token (about a second).
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < expires
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, body) = get(&url, None);
    assert_eq!(status, 403);
    assert!(body.contains("expired"), "{body}");
}

#[test]
fn the_same_identity_with_other_bytes_and_non_boxes_are_refused() {
    let sb = repository();
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    let (two, _) = make_box(&sb, "two.box", "libvirt", "two");
    add_box(&sb, "acme/base", "1.0.0", &one);
    let objects = sb.pool_objects().len();
    // Identical bytes: stored once, however often added or promoted.
    let again = sb.json(&[
        "box",
        "add",
        "acme/base",
        "1.0.0",
        one.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["channel"], "preprod");
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    assert_eq!(sb.pool_objects().len(), objects);
    let published = |channel: &str| {
        sb.repo
            .join("public")
            .join(channel)
            .join("boxes/acme/base/1.0.0/libvirt-amd64.box")
    };
    assert_eq!(inode(&published("preprod")), inode(&published("prod")));

    let err = sb.fails(&[
        "box",
        "add",
        "acme/base",
        "1.0.0",
        two.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert!(
        err.contains("different contents") && err.contains("two.box"),
        "{err}"
    );
    let err = sb.fails(&[
        "box",
        "add",
        "acme/base",
        "1.0",
        two.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert!(err.contains("as equal to 1.0.0"), "{err}");
    let not_a_box = sb.path("notes.box");
    std::fs::write(&not_a_box, "plain text\n").unwrap();
    let err = sb.fails(&[
        "box",
        "add",
        "acme/base",
        "3.0.0",
        not_a_box.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert!(
        err.contains("not a box file") && err.contains("notes.box"),
        "{err}"
    );
    let (vbox, _) = make_box(&sb, "vbox.box", "virtualbox", "v");
    let err = sb.fails(&[
        "box",
        "add",
        "acme/base",
        "3.0.0",
        vbox.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert!(err.contains("provider `virtualbox`"), "{err}");
    let err = sb.fails(&[
        "box",
        "add",
        "../etc",
        "3.0.0",
        one.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert!(err.contains("box name `../etc` is not valid"), "{err}");
    let err = sb.fails(&[
        "box",
        "add",
        "acme/base",
        "v3",
        one.to_str().unwrap(),
        "--provider",
        "libvirt",
    ]);
    assert!(err.contains("box version `v3` is not valid"), "{err}");
    assert_eq!(sb.pool_objects().len(), objects, "refusals store nothing");
    assert!(
        std::fs::read_dir(sb.repo.join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no temp file left"
    );

    let listed = sb.json(&["box", "list"]);
    let rows: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["version"].as_str().unwrap().into(),
                p["channel"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("1.0.0".into(), "preprod".into()),
            ("1.0.0".into(), "prod".into())
        ]
    );
    for key in [
        "name",
        "version",
        "provider",
        "architecture",
        "channel",
        "sha256",
        "size",
    ] {
        assert!(listed[0].get(key).is_some(), "{key}");
    }

    sb.ok(&["box", "remove", "acme/base=1.0.0", "--channel", "preprod"]);
    assert!(!published("preprod").exists());
    assert!(published("prod").exists());
    let check = sb.json(&["repo", "check"]);
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    // The box tree is a function of the catalog: damage is found and relinked.
    std::fs::remove_file(published("prod")).unwrap();
    let damaged = sb.bess(&["repo", "check"]);
    let said = text(&damaged);
    assert!(
        !damaged.status.success() && said.contains("libvirt-amd64.box"),
        "{said}"
    );
    sb.ok(&["repo", "publish", "--refresh"]);
    assert_eq!(inode(&published("prod")), inode(&sb.pool_objects()[0]));
    sb.ok(&["repo", "check"]);
}

#[test]
fn remote_box_uploads_need_upload_rights_and_a_box() {
    let sb = repository();
    let server = serve(&sb);
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    let refused = upload_remote(&server, READER, "1.0.0", &one);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("403"), "{}", text(&refused));
    let accepted = upload_remote(&server, UPLOADER, "1.0.0", &one);
    assert!(accepted.status.success(), "{}", text(&accepted));
    let placed: serde_json::Value = serde_json::from_slice(&accepted.stdout).unwrap();
    assert_eq!(placed["channel"], "preprod");
    assert_eq!(placed["provider"], "libvirt");
    let logged = sb.json(&["log", "--action", "box.add"]);
    assert_eq!(logged[0]["actor"], UPLOADER.0, "the HTTP user: {logged:#}");
    assert_eq!(logged[0]["origin"], "http");
    let not_a_box = sb.path("notes.box");
    std::fs::write(&not_a_box, "plain text\n").unwrap();
    let out = upload_remote(&server, UPLOADER, "2.0.0", &not_a_box);
    let said = text(&out);
    assert!(
        !out.status.success() && said.contains("400") && said.contains("not a box file"),
        "{said}"
    );
    let (two, _) = make_box(&sb, "two.box", "libvirt", "two");
    let out = upload_remote(&server, UPLOADER, "1.0.0", &two);
    let said = text(&out);
    assert!(
        !out.status.success() && said.contains("409") && said.contains("different contents"),
        "{said}"
    );
    let listed = sb.json(&["box", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(
        std::fs::read_dir(sb.repo.join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no temp file left"
    );
}

#[test]
fn box_versions_sort_as_rubygems_sorts_them() {
    if !have_tool("ruby") {
        return;
    }
    let versions = [
        "1.0.0",
        "1.0",
        "1.0.1",
        "1.10.0",
        "1.9.9",
        "2",
        "1.0.a",
        "1.0.b1",
        "1.0-rc1",
        "1.0.0.rc2",
        "0.0.1",
        "10.0",
        "1.0.0.0.1",
        "3.0-alpha.2",
        "3.0-alpha.10",
        "3.0.beta",
        "007.1",
        "7.01",
    ];
    let mut ours: Vec<&str> = versions.to_vec();
    ours.sort_by(|a, b| bess::boxes::compare_box_versions(a, b).then_with(|| a.cmp(b)));
    let script = "vs = STDIN.read.split; puts vs.sort { |a, b| (Gem::Version.new(a) <=> Gem::Version.new(b)).nonzero? || a <=> b }";
    let mut ruby = Command::new("ruby")
        .args(["-e", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ruby.stdin
        .take()
        .unwrap()
        .write_all(versions.join("\n").as_bytes())
        .unwrap();
    let out = ruby.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn catalog_urls_follow_the_public_url_and_uploads_respect_the_size_limit() {
    let sb = repository();
    sb.edit_settings(
        "max-box-upload-mib = 20480",
        "max-box-upload-mib = 1\npublic-url = \"https://boxes.example.com/\"",
    );
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    add_box(&sb, "acme/base", "1.0.0", &one);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    let server = serve(&sb);
    let urls = box_urls(&catalog(&server, READER, "prod", "acme/base"));
    assert!(
        urls[0].1.starts_with(
            "https://boxes.example.com/prod/boxes/acme/base/1.0.0/libvirt-amd64.box?token="
        ),
        "{urls:?}"
    );
    // Two MiB of bytes that do not compress: over the 1 MiB limit.
    let big = sb.path("big.box");
    let mut state = 0x9e3779b97f4a7c15u64;
    let noise: Vec<u8> = (0..2 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&big, noise).unwrap();
    let out = upload_remote(&server, UPLOADER, "2.0.0", &big);
    let said = text(&out);
    assert!(
        !out.status.success() && said.contains("413") && said.contains("max-box-upload-mib"),
        "{said}"
    );
    assert_eq!(sb.json(&["box", "list"]).as_array().unwrap().len(), 2);
}

/// Sends a raw upload request (head, then `body`), closes the writing half,
/// and returns the response's status line and the rest.
fn raw_upload(server: &Server, head: &str, body: &[u8]) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (and stop reading) before the whole body is sent.
    let _ = stream.write_all(body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).to_string()
}

#[test]
fn cut_short_and_oversized_streamed_uploads_add_nothing() {
    let sb = repository();
    sb.edit_settings("max-box-upload-mib = 20480", "max-box-upload-mib = 1");
    let server = serve(&sb);
    let (one, _) = make_box(&sb, "one.box", "libvirt", "one");
    let bytes = std::fs::read(&one).unwrap();
    let auth = basic(UPLOADER);

    // Half of a box, then the client goes away.
    let head = format!(
        "POST /api/v1/boxes/acme/base/1.0.0/libvirt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    let response = raw_upload(&server, &head, &bytes[..bytes.len() / 2]);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("the upload failed"), "{response}");

    // A chunked body (no length announced) that grows past the limit.
    let head = format!(
        "POST /api/v1/boxes/acme/base/1.0.0/libvirt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let chunk = vec![b'x'; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..20 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let response = raw_upload(&server, &head, &body);
    // The server answers 413 and closes with part of the body unread, so
    // the client may see a reset instead of the answer; the server has
    // logged the request (and cleaned up) before either happens.
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 413"),
        "{response}"
    );
    let log = server.log();
    assert!(
        log.contains("ci \"POST /api/v1/boxes/acme/base/1.0.0/libvirt\" 413"),
        "{log}"
    );

    assert!(sb.json(&["box", "list"]).as_array().unwrap().is_empty());
    assert!(sb.pool_objects().is_empty(), "nothing stored");
    let leftovers: Vec<_> = std::fs::read_dir(sb.repo.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn gc_keeps_placed_boxes_and_the_audit_log_records_box_changes() {
    let sb = repository();
    let (file, _) = make_box(&sb, "base.box", "libvirt", "gc");
    let size = std::fs::metadata(&file).unwrap().len();
    add_box(&sb, "acme/base", "1.0.0", &file);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    let kept = sb.json(&["repo", "gc"]);
    assert_eq!(
        kept["objects_deleted"], 0,
        "placed boxes are not garbage: {kept:#}"
    );

    for channel in ["preprod", "prod"] {
        sb.ok(&["box", "remove", "acme/base=1.0.0", "--channel", channel]);
    }
    let freed = sb.json(&["repo", "gc"]);
    assert_eq!(freed["objects_deleted"], 1, "{freed:#}");
    assert_eq!(freed["bytes_freed"], size);

    let log = sb.json(&["log", "--package", "acme/base"]);
    let actions: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["channel"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("box.remove", "prod"),
            ("box.remove", "preprod"),
            ("box.promote", "prod"),
            ("box.add", "preprod"),
        ],
        "newest first"
    );
}

#[test]
fn backup_and_restore_carry_boxes() {
    let sb = repository();
    let (file, _) = make_box(&sb, "base.box", "libvirt", "backup");
    add_box(&sb, "acme/base", "1.0.0", &file);
    sb.ok(&["box", "promote", "acme/base=1.0.0"]);
    // A box URL handed out before the backup, token and all.
    let handed_out = {
        let server = serve(&sb);
        let url = box_urls(&catalog(&server, READER, "prod", "acme/base"))[0]
            .1
            .clone();
        let path = url.split_once(&server.url()).unwrap().1.to_string();
        assert_eq!(server.get(&path, None).0, 200, "{path}");
        path
    };
    let dest = sb.path("backup");
    sb.ok(&["backup", dest.to_str().unwrap()]);
    let restored = sb.path("restored");
    sb.ok(&[
        "restore",
        dest.to_str().unwrap(),
        restored.to_str().unwrap(),
    ]);

    let check = Command::new(env!("CARGO_BIN_EXE_bess"))
        .args(["--repo", restored.to_str().unwrap(), "repo", "check"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
    let original = std::fs::read(&file).unwrap();
    for channel in ["preprod", "prod"] {
        let published = restored.join(format!(
            "public/{channel}/boxes/acme/base/1.0.0/libvirt-amd64.box"
        ));
        assert_eq!(std::fs::read(&published).unwrap(), original, "{channel}");
    }
    // The token key came back, owner-only, so that URL still works...
    let key = restored.join("keys/box-token.secret");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let server = Server::start(&restored);
    let (status, body) = server.get(&handed_out, None);
    assert_eq!((status, body == original), (200, true), "{handed_out}");
    // ...and the same token with a later expiry, which the key did not
    // sign, still does not.
    let (file, token) = handed_out.split_once("?token=").unwrap();
    let (expires, signed) = token.split_once('.').unwrap();
    let later = expires.parse::<u64>().unwrap() + 3600;
    let forged = format!("{file}?token={later}.{signed}");
    assert_eq!(server.get(&forged, None).0, 403, "{forged}");
}

#[test]
fn vagrant_is_refused_expired_and_foreign_tokens() {
    if !have_tool("vagrant") {
        return;
    }
    let sb = repository();
    for (version, payload) in [("1.0.0", "one"), ("1.1.0", "two")] {
        let (file, _) = make_box(&sb, &format!("{version}.box"), "libvirt", payload);
        add_box(&sb, "acme/base", version, &file);
        sb.ok(&["box", "promote", &format!("acme/base={version}")]);
    }
    let vagrant = Vagrant::new();
    // vagrant fetches a box URL straight, as a catalog lists it.
    let add = |name: &str, url: &str| {
        vagrant.run(&["box", "add", "--name", name, "--provider", "libvirt", url])
    };
    let urls_of = |server: &Server| {
        let urls = box_urls(&catalog(server, READER, "prod", "acme/base"));
        let url = |version: &str| urls.iter().find(|(v, _)| v == version).unwrap().1.clone();
        (url("1.0.0"), url("1.1.0"))
    };

    let server = serve(&sb);
    let (older, newer) = urls_of(&server);
    // The URL as listed works...
    let out = add("acme/direct", &newer);
    assert!(out.status.success(), "{}", text(&out));
    // ...and another file's token on it does not.
    let token = older.split_once("?token=").unwrap().1;
    let foreign = format!("{}?token={token}", newer.split_once("?token=").unwrap().0);
    let out = add("acme/foreign", &foreign);
    assert!(
        !out.status.success() && text(&out).contains("403"),
        "{}",
        text(&out)
    );
    drop(server);

    // The right token once it has expired: refused too.
    sb.edit_settings("token-ttl-secs = 3600", "token-ttl-secs = 1");
    let server = serve(&sb);
    let (older, _) = urls_of(&server);
    let token = older.split_once("?token=").unwrap().1;
    let expires: u64 = token.split('.').next().unwrap().parse().unwrap();
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < expires
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = add("acme/expired", &older);
    assert!(
        !out.status.success() && text(&out).contains("403"),
        "{}",
        text(&out)
    );
    let listed = vagrant.ok(&["box", "list"]);
    assert!(listed.contains("acme/direct") && !listed.contains("acme/foreign"));
    assert!(!listed.contains("acme/expired"), "{listed}");
}
