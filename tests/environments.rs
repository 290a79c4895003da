//! Environments through the real binary: platforms from a directory and
//! from git, `env init` making a whole workspace (or nothing, whatever
//! fails or is killed), names as DNS labels, addresses from the
//! platform's range, the environment's credential, and the Vagrantfile.

mod common;

use common::env::{
    commit_all, copy_example, environment_users, git, init_platform, leftovers, names,
    one_machine_toml, platform_dir,
};
use common::{Sandbox, have_tool};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

fn sandbox() -> Sandbox {
    Sandbox::new("bookworm", "amd64")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn env_init_makes_a_whole_workspace_and_destroy_removes_every_trace() {
    let sb = sandbox();
    let source = copy_example(&sb.path("example"));
    init_platform(&sb, "paas", &source, "10.77.0.0/24");
    let view = sb.json(&["env", "init", "paas", "PROJ-42"]);
    assert_eq!(view["name"], "proj-42", "ticket ids are lowercased");
    assert_eq!(view["state"], "ready");
    assert_eq!(view["host"], "proj-42.paas.example.test");
    assert_eq!(names(&view["machines"]), ["web", "db"]);
    assert_eq!(view["machines"][0]["ip"], "10.77.0.2");
    assert_eq!(view["machines"][1]["ip"], "10.77.0.3");
    assert_eq!(names(&view["sites"]), ["v5", "api", "admin"]);
    assert_eq!(
        view["sites"][1]["url"],
        "http://api.proj-42.paas.example.test/v1/"
    );
    assert_eq!(view["tools"][0]["title"], "phpMyAdmin");

    let ws = sb.repo.join("envs/paas/proj-42");
    for dir in ["etc", "srv", "var", "provision"] {
        assert!(ws.join(dir).is_dir(), "{dir}/ in the workspace");
    }
    let password = std::fs::read_to_string(ws.join("etc/bess/password")).unwrap();
    let password = password.trim_end();
    assert_eq!(password.len(), 24);
    assert_eq!(mode(&ws.join("etc/bess/password")), 0o600);
    assert_eq!(mode(&ws.join("etc/bess/variables.json")), 0o600);
    let vars: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.join("etc/bess/variables.json")).unwrap())
            .unwrap();
    for key in [
        "environment",
        "platform",
        "domain",
        "channel",
        "apt_source",
        "key_url",
        "box_catalog_url",
    ] {
        assert!(vars[key].is_string(), "variables.json has {key}: {vars}");
    }
    assert_eq!(vars["machines"]["db"]["ip"], "10.77.0.3");
    assert_eq!(vars["sites"]["v5"]["host"], "v5.proj-42.paas.example.test");
    assert_eq!(vars["credential"]["user"], "env.paas.proj-42");
    assert_eq!(vars["credential"]["password"], password);
    assert_eq!(vars["key_url"], "http://10.77.0.1:8080/key.gpg");
    assert_eq!(
        vars["box_catalog_url"],
        "http://10.77.0.1:8080/preprod/boxes"
    );
    assert_eq!(
        vars["apt_source"],
        "deb [signed-by=/etc/apt/keyrings/bess.gpg] http://10.77.0.1:8080/preprod bookworm main"
    );
    // Templates rendered next to themselves, with the environment's values.
    let conf = std::fs::read_to_string(ws.join("etc/myapp/myapp.conf")).unwrap();
    assert!(
        conf.contains("host = 10.77.0.3\nname = myapp_proj_42\n"),
        "{conf}"
    );
    assert!(
        conf.contains("v5 = http://v5.proj-42.paas.example.test/"),
        "{conf}"
    );
    let auth = std::fs::read_to_string(ws.join("etc/apt/auth.conf.d/bess.conf")).unwrap();
    assert_eq!(
        auth,
        format!(
            "machine http://10.77.0.1:8080/preprod login env.paas.proj-42 password {password}\n"
        )
    );
    let vagrantfile = std::fs::read_to_string(ws.join("Vagrantfile")).unwrap();
    assert!(vagrantfile.contains("ip: \"10.77.0.2\""), "{vagrantfile}");
    assert_eq!(
        mode(&ws.join("Vagrantfile")),
        0o600,
        "it holds the credential"
    );
    assert!(leftovers(&sb, "paas").is_empty());

    // Its user reads the environment's channel, and belongs to it.
    let users = sb.json(&["user", "list"]);
    let user = &users.as_array().unwrap()[0];
    assert_eq!(user["name"], "env.paas.proj-42");
    assert_eq!(user["read"], serde_json::json!(["preprod"]));
    assert_eq!(user["environment"], "paas/proj-42");
    let refused = sb.fails(&["user", "remove", "env.paas.proj-42"]);
    assert!(
        refused.contains("bess env destroy paas proj-42"),
        "{refused}"
    );

    let listed = sb.json(&["env", "list", "--platform", "paas"]);
    assert_eq!(names(&listed), ["proj-42"]);
    assert_eq!(names(&listed[0]["sites"]), ["v5", "api", "admin"]);
    let urls = sb.json(&["env", "urls", "paas", "proj-42"]);
    assert_eq!(urls["homepage"], "http://proj-42.paas.example.test/");
    assert_eq!(
        urls["tools"]["phpmyadmin"],
        "http://phpmyadmin.proj-42.paas.example.test/phpmyadmin/"
    );
    let shown = sb.json(&["env", "show", "paas", "PROJ-42"]);
    assert_eq!(shown["user"], "env.paas.proj-42");
    assert!(
        !shown.to_string().contains(password),
        "show never prints the password"
    );
    let platform = sb.json(&["platform", "show", "paas"]);
    assert_eq!(platform["environments"], serde_json::json!(["proj-42"]));

    sb.ok(&["env", "destroy", "paas", "proj-42"]);
    assert!(!sb.repo.join("envs/paas/proj-42").exists());
    assert!(leftovers(&sb, "paas").is_empty());
    assert!(environment_users(&sb).is_empty());
    assert!(sb.json(&["env", "list"]).as_array().unwrap().is_empty());
    // Its addresses went back to the pool.
    let again = sb.json(&["env", "init", "paas", "1161", "--sites", "v5"]);
    assert_eq!(again["machines"][0]["ip"], "10.77.0.2");
    assert_eq!(names(&again["sites"]), ["v5"]);
    let log = sb.ok(&["log"]);
    for action in ["platform.init", "env.init", "env.destroy"] {
        assert!(log.contains(action), "{log}");
    }
    assert!(!log.contains(password), "the log never holds a password");
}

#[test]
fn bad_input_is_refused_with_the_rule_it_breaks_and_leaves_nothing() {
    let sb = sandbox();
    let source = copy_example(&sb.path("example"));
    let src = source.to_str().unwrap();
    let platform_init = |name: &str, source: &str, range: &str| {
        sb.fails(&[
            "platform",
            "init",
            name,
            "--source",
            source,
            "--domain",
            "example.test",
            "--ip-range",
            range,
        ])
    };
    let error = platform_init("Paas", src, "10.77.0.0/24");
    assert!(
        error.contains("`Paas` is not a valid platform name") && error.contains("not `P`"),
        "{error}"
    );
    let error = platform_init("paas", src, "10.77.0.5/24");
    assert!(error.contains("the network is 10.77.0.0/24"), "{error}");
    let empty = sb.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let error = platform_init("paas", empty.to_str().unwrap(), "10.77.0.0/24");
    assert!(error.contains("no platform.toml at its root"), "{error}");
    let error = platform_init("paas", "file:///nonexistent/platform.git", "10.77.0.0/24");
    assert!(
        error.contains("git could not clone file:///nonexistent/platform.git"),
        "{error}"
    );
    assert!(
        sb.json(&["platform", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    init_platform(&sb, "paas", &source, "10.77.0.0/24");
    let error = platform_init("crm", src, "10.77.0.128/25");
    assert!(
        error.contains("overlaps 10.77.0.0/24 of platform paas"),
        "{error}"
    );
    let error = sb.fails(&["env", "init", "paas", "PROJ_42"]);
    assert!(
        error.contains("`PROJ_42` is not a valid environment name") && error.contains("not `_`"),
        "{error}"
    );
    let error = sb.fails(&["env", "init", "paas", &"x".repeat(64)]);
    assert!(error.contains("at most 63 characters"), "{error}");
    let error = sb.fails(&["env", "init", "paas", "1161", "--sites", "v6"]);
    assert!(
        error.contains("`v6` is not a site of platform paas (its sites: v5, api, admin)"),
        "{error}"
    );
    sb.ok(&["env", "init", "paas", "1161"]);
    let error = sb.fails(&["env", "init", "paas", "1161"]);
    assert!(
        error.contains("already has an environment `1161`"),
        "{error}"
    );
    let error = sb.fails(&["platform", "destroy", "paas"]);
    assert!(error.contains("--force"), "{error}");

    // An undefined variable: named with its file and line, nothing left.
    let broken = platform_dir(
        &sb.path("broken"),
        &one_machine_toml(8080),
        &[(
            "etc/app.conf-dist",
            "ok = {{ environment }}\ndb = {{ databse.host }}\n",
        )],
    );
    init_platform(&sb, "broken", &broken, "10.78.0.0/24");
    let error = sb.fails(&["env", "init", "broken", "1161"]);
    assert!(
        error.contains("etc/app.conf-dist:2: `databse.host` is undefined"),
        "{error}"
    );
    assert!(!sb.repo.join("envs/broken/1161").exists());
    assert!(leftovers(&sb, "broken").is_empty());
    assert_eq!(environment_users(&sb), ["env.paas.1161"]);
    assert_eq!(
        names(&sb.json(&["env", "list", "--platform", "broken"])).len(),
        0
    );

    // A range with room for one machine: the second environment is refused.
    let tiny = platform_dir(&sb.path("tiny"), &one_machine_toml(8080), &[]);
    init_platform(&sb, "tiny", &tiny, "10.79.0.0/30");
    sb.ok(&["env", "init", "tiny", "one"]);
    let error = sb.fails(&["env", "init", "tiny", "two"]);
    assert!(
        error.contains("the IP range 10.79.0.0/30 of platform tiny is full"),
        "{error}"
    );
    assert!(!sb.repo.join("envs/tiny/two").exists());
    sb.ok(&["env", "destroy", "tiny", "one"]);
    sb.ok(&["env", "init", "tiny", "two"]);
}

#[test]
fn a_git_source_is_cloned_and_environments_keep_their_commit() {
    if !have_tool("git") {
        return;
    }
    let sb = sandbox();
    let dir = platform_dir(
        &sb.path("platform-src"),
        &one_machine_toml(8080),
        &[("etc/version-dist", "one {{ environment }}\n")],
    );
    let url = commit_all(&dir, "first");
    let first = git(&dir, &["rev-parse", "HEAD"]);
    let view = sb.json(&[
        "platform",
        "init",
        "paas",
        "--source",
        &url,
        "--domain",
        "example.test",
        "--ip-range",
        "10.77.0.0/24",
    ]);
    assert_eq!(view["source_kind"], "git");
    assert_eq!(view["revision"], first.as_str());
    std::fs::write(dir.join("etc/version-dist"), "two {{ environment }}\n").unwrap();
    commit_all(&dir, "second");
    let second = git(&dir, &["rev-parse", "HEAD"]);
    sb.ok(&["env", "init", "paas", "old"]);
    let read = |env: &str| {
        std::fs::read_to_string(sb.repo.join(format!("envs/paas/{env}/etc/version"))).unwrap()
    };
    assert_eq!(
        read("old"),
        "one old\n",
        "the recorded commit, not the newest"
    );
    let updated = sb.json(&["platform", "update", "paas"]);
    assert_eq!(updated["revision"], second.as_str());
    sb.ok(&["env", "init", "paas", "new"]);
    assert_eq!(read("new"), "two new\n");
    assert_eq!(read("old"), "one old\n");
    assert_eq!(
        sb.json(&["env", "show", "paas", "old"])["revision"],
        first.as_str()
    );
    // The cache is only a cache.
    std::fs::remove_dir_all(sb.repo.join("cache")).unwrap();
    sb.ok(&["env", "init", "paas", "after-cache"]);
    assert_eq!(read("after-cache"), "two after-cache\n");
    let log = sb.ok(&["log", "--action", "platform.update"]);
    assert!(log.contains(&second), "{log}");
}

#[test]
fn parallel_inits_of_one_name_let_exactly_one_win() {
    let sb = sandbox();
    let source = copy_example(&sb.path("example"));
    init_platform(&sb, "paas", &source, "10.77.0.0/24");
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
                .env("BESS_REPO", &sb.repo)
                .args(["env", "init", "paas", "1161"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "exactly one wins");
    for lost in outcomes.iter().filter(|o| !o.status.success()) {
        let error = String::from_utf8_lossy(&lost.stderr);
        assert!(
            error.contains("already has an environment `1161`"),
            "{error}"
        );
    }
    let envs = sb.json(&["env", "list"]);
    assert_eq!(names(&envs), ["1161"]);
    assert_eq!(envs[0]["machines"].as_array().unwrap().len(), 2);
    assert_eq!(environment_users(&sb), ["env.paas.1161"]);
    assert!(leftovers(&sb, "paas").is_empty());
    // Different names in parallel all get distinct addresses.
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
                .env("BESS_REPO", &sb.repo)
                .args(["env", "init", "paas", &format!("t{i}")])
                .output()
        })
        .collect();
    assert!(children.into_iter().all(|o| o.unwrap().status.success()));
    let envs = sb.json(&["env", "list"]);
    let mut ips: Vec<String> = envs
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["machines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["ip"].as_str().unwrap().to_string())
        })
        .collect();
    let count = ips.len();
    ips.sort();
    ips.dedup();
    assert_eq!(
        (count, ips.len()),
        (10, 10),
        "every machine its own address"
    );
}

/// A platform whose init takes long enough to be interrupted at many
/// points: many templates to render.
fn slow_platform(dest: &Path) -> std::path::PathBuf {
    let mut files = Vec::new();
    for i in 0..400 {
        files.push((
            format!("etc/conf.d/file{i:03}.conf-dist"),
            format!("n={i} env={{{{ environment }}}} ip={{{{ machines.web.ip }}}}\n"),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    platform_dir(dest, &one_machine_toml(8080), &files)
}

#[test]
fn kill_9_during_env_init_leaves_nothing_after_the_next_command() {
    let sb = sandbox();
    let source = slow_platform(&sb.path("slow"));
    // Room for exactly two machines: a leaked address would show.
    init_platform(&sb, "slow", &source, "10.77.0.0/30");
    let started = Instant::now();
    sb.ok(&["env", "init", "slow", "timing"]);
    let full = started.elapsed();
    sb.ok(&["env", "destroy", "slow", "timing"]);
    let steps = 16u32;
    let mut interrupted = 0;
    for step in 0..steps {
        let name = format!("k{step}");
        let delay = full.mul_f64(f64::from(step) / f64::from(steps));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bess"))
            .env("BESS_REPO", &sb.repo)
            .args(["env", "init", "slow", &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The next command cleans up whatever was half done.
        let envs = sb.json(&["env", "list"]);
        assert!(
            leftovers(&sb, "slow").is_empty(),
            "step {step}: {:?}",
            leftovers(&sb, "slow")
        );
        let present = names(&envs);
        match present.as_slice() {
            [] => {
                assert!(
                    !sb.repo.join("envs/slow").join(&name).exists(),
                    "step {step}"
                );
                assert!(environment_users(&sb).is_empty(), "step {step}");
            }
            [only] => {
                assert_eq!(only, &name);
                assert_eq!(envs[0]["state"], "ready", "step {step}");
                let ws = sb.repo.join("envs/slow").join(&name);
                assert!(
                    ws.join("etc/conf.d/file399.conf").is_file(),
                    "step {step}: a whole workspace"
                );
                assert_eq!(environment_users(&sb), [format!("env.slow.{name}")]);
                sb.ok(&["env", "destroy", "slow", &name]);
            }
            more => panic!("step {step}: {more:?}"),
        }
    }
    assert!(
        interrupted >= steps / 2,
        "only {interrupted} of {steps} runs were killed mid-way"
    );
    // Nothing leaked: the range's one address is free.
    sb.ok(&["env", "init", "slow", "last"]);
    let log = sb.ok(&["log", "--action", "env.recover"]);
    assert!(interrupted == 0 || log.contains("creating"), "{log}");
}

#[test]
fn vagrant_validates_the_generated_vagrantfile() {
    if !have_tool("vagrant") {
        return;
    }
    let sb = sandbox();
    let source = copy_example(&sb.path("example"));
    init_platform(&sb, "paas", &source, "10.77.0.0/24");
    sb.ok(&["env", "init", "paas", "1161"]);
    let ws = sb.repo.join("envs/paas/1161");
    // Without a provider plugin (no VirtualBox or libvirt here), validate
    // the configuration and leave the provider blocks aside.
    let out = std::process::Command::new("vagrant")
        .current_dir(&ws)
        .env("VAGRANT_HOME", sb.path("vagrant-home"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .args(["validate", "--ignore-provider"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("Vagrantfile validated successfully"),
        "{said}"
    );
    // A broken one is refused: the check means something.
    let vagrantfile = ws.join("Vagrantfile");
    let text = std::fs::read_to_string(&vagrantfile).unwrap();
    std::fs::write(
        &vagrantfile,
        text.replace("hostname = \"web\"", "hostname = \"-web\""),
    )
    .unwrap();
    let out = std::process::Command::new("vagrant")
        .current_dir(&ws)
        .env("VAGRANT_HOME", sb.path("vagrant-home"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .args(["validate", "--ignore-provider"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn platform_check_reports_templates_boxes_and_tools() {
    if !have_tool("git") {
        return;
    }
    let sb = sandbox();
    let dir = platform_dir(
        &sb.path("platform-src"),
        &one_machine_toml(8080),
        &[("etc/app.conf-dist", "web = {{ machines.web.ip }}\n")],
    );
    let url = commit_all(&dir, "first");
    init_platform(&sb, "paas", Path::new(&url), "10.77.0.0/24");
    let report = sb.json(&["platform", "check", "paas"]);
    let status_of = |report: &serde_json::Value, check: &str| -> Vec<String> {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == check)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(status_of(&report, "source"), ["ok"], "{report}");
    assert_eq!(status_of(&report, "platform.toml"), ["ok"], "{report}");
    assert_eq!(status_of(&report, "templates"), ["ok"], "{report}");
    assert_eq!(
        status_of(&report, "box"),
        ["warning"],
        "no box was added yet: {report}"
    );
    let tools_found = status_of(&report, "tool").iter().all(|s| s == "ok");
    assert_eq!(report["ok"], tools_found, "{report}");
    // A template that no longer renders: update records it, check says where.
    std::fs::write(
        dir.join("etc/app.conf-dist"),
        "web = {{ machines.wbe.ip }}\n",
    )
    .unwrap();
    commit_all(&dir, "typo");
    sb.ok(&["platform", "update", "paas"]);
    let out = sb.bess(&["platform", "check", "paas"]);
    assert!(!out.status.success(), "a problem fails the check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("etc/app.conf-dist:1: `machines.wbe.ip` is undefined"),
        "{text}"
    );
    let error = sb.fails(&["env", "init", "paas", "1161"]);
    assert!(
        error.contains("etc/app.conf-dist:1: `machines.wbe.ip` is undefined"),
        "{error}"
    );
}
