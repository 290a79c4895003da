//! The catalog holds every user's argon2id hash: the catalog and its
//! `-wal` and `-shm` files are readable by their owner only, from `bess
//! init`, after `bess restore`, and in repositories made by older versions
//! once bess opens them; and a changed or removed password leaves no copy
//! of its old hash in the database or its write-ahead log.
//!
//! The reader that keeps the catalog open (as `bess serve` does) runs in a
//! process of its own, this test binary started again: SQLite's locks are
//! POSIX locks, which this process would drop each time it reads a catalog
//! file to look for a hash.

mod common;

use common::Sandbox;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o7777
}

fn catalog(repo: &Path) -> PathBuf {
    repo.join("catalog/catalog.db")
}

/// The catalog and its `-wal` and `-shm` files.
fn catalog_files(repo: &Path) -> [PathBuf; 3] {
    let db = catalog(repo);
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    [db.clone(), with("-wal"), with("-shm")]
}

/// Marks the lines of the reader process among libtest's own.
const REPLY: &str = "reader: ";

/// Not a test: the reader process the other tests start (see the module
/// comment). It holds the catalog named by `BESS_TEST_READER` open and
/// answers one line per command on standard input: `begin` (a read
/// transaction, as a request in flight holds), `commit`, `hash NAME`.
#[test]
#[ignore = "a helper process, started by the tests of this file"]
fn reader_process() {
    let Some(db) = std::env::var_os("BESS_TEST_READER") else {
        return;
    };
    let conn = rusqlite::Connection::open(db).unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let reply = match line.split_once(' ') {
            Some(("hash", name)) => conn
                .query_row(
                    "SELECT password_hash FROM users WHERE name = ?1",
                    [name],
                    |r| r.get::<_, String>(0),
                )
                .unwrap(),
            _ if line == "begin" => {
                conn.execute_batch("BEGIN").unwrap();
                let users: i64 = conn
                    .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
                    .unwrap();
                users.to_string()
            }
            _ if line == "commit" => {
                conn.execute_batch("COMMIT").unwrap();
                "done".into()
            }
            _ => panic!("unknown command {line:?}"),
        };
        println!("{REPLY}{reply}");
    }
}

/// A process holding the catalog open; while it does, the `-wal` and
/// `-shm` files stay (the last connection to close removes them).
struct Reader {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Reader {
    fn start(repo: &Path) -> Reader {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "reader_process",
                "--ignored",
                "--nocapture",
                "-q",
            ])
            .env("BESS_TEST_READER", catalog(repo))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut reader = Reader {
            child,
            stdin,
            stdout,
        };
        reader.ask("begin");
        reader.ask("commit");
        reader
    }

    /// Sends one command and returns the reply.
    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the reader ended"
            );
            if let Some(reply) = line.trim_end().strip_prefix(REPLY) {
                return reply.to_string();
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `bess user SUBCOMMAND NAME ... --password-stdin` fed `password`.
fn user(sb: &Sandbox, args: &[&str], password: &str) {
    user_at(env!("CARGO_BIN_EXE_bess"), &sb.repo, args, password);
}

fn user_at(bess: &str, repo: &Path, args: &[&str], password: &str) {
    let mut child = Command::new(bess)
        .env("BESS_REPO", repo)
        .arg("user")
        .args(args)
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bess user {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_owner_only(files: &[PathBuf]) {
    for file in files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

#[test]
fn the_catalog_and_its_wal_and_shm_are_owner_only_from_init_on() {
    let sb = Sandbox::new("bookworm", "amd64");
    assert_owner_only(&[catalog(&sb.repo)]);
    assert_eq!(mode(&sb.repo.join("catalog")), 0o700);
    let reader = Reader::start(&sb.repo);
    user(
        &sb,
        &["add", "alice", "--read", "preprod"],
        "alice-password-1",
    );
    let files = catalog_files(&sb.repo);
    assert!(files.iter().all(|f| f.exists()), "{files:?}");
    assert_owner_only(&files);
    drop(reader);
}

#[test]
fn a_catalog_left_readable_by_an_older_bess_is_tightened_when_opened() {
    let sb = Sandbox::new("bookworm", "amd64");
    user(
        &sb,
        &["add", "alice", "--read", "preprod"],
        "alice-password-1",
    );
    let db = catalog(&sb.repo);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SQLite gives new -wal and -shm files the mode of the database.
    let reader = Reader::start(&sb.repo);
    let files = catalog_files(&sb.repo);
    for file in &files {
        assert_eq!(mode(file), 0o644, "{}: the old layout", file.display());
    }
    sb.ok(&["user", "list"]);
    assert_owner_only(&files);
    drop(reader);
}

#[test]
fn a_restored_catalog_and_the_backup_copy_are_owner_only() {
    let sb = Sandbox::new("bookworm", "amd64");
    user(
        &sb,
        &["add", "alice", "--read", "preprod"],
        "alice-password-1",
    );
    let dest = sb.path("backup");
    sb.ok(&["backup", dest.to_str().unwrap()]);
    let copies: Vec<PathBuf> = walkdir::WalkDir::new(dest.join("snapshots"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "catalog.db")
        .map(|e| e.into_path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_owner_only(&copies);
    let restored = sb.path("restored");
    sb.ok(&[
        "restore",
        dest.to_str().unwrap(),
        restored.to_str().unwrap(),
    ]);
    assert_owner_only(&[catalog(&restored)]);
    assert_eq!(mode(&restored.join("catalog")), 0o700);
}

/// Which of the catalog files hold `text` anywhere in their bytes (live
/// rows, free space, old frames of the write-ahead log).
fn files_holding(repo: &Path, text: &str) -> Vec<PathBuf> {
    let needle = text.as_bytes();
    catalog_files(repo)
        .into_iter()
        .filter(|file| {
            std::fs::read(file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

#[test]
fn a_changed_or_removed_password_leaves_no_old_hash_behind() {
    let sb = Sandbox::new("bookworm", "amd64");
    user(
        &sb,
        &["add", "alice", "--read", "preprod"],
        "alice-password-1",
    );
    let mut reader = Reader::start(&sb.repo);
    let old = reader.ask("hash alice");
    assert!(old.starts_with("$argon2id$"), "{old}");
    assert!(
        !files_holding(&sb.repo, &old).is_empty(),
        "the search works"
    );

    // A request of `bess serve` is reading while the password changes: its
    // snapshot still needs the old page, so no checkpoint may replace that
    // page in the database until the request is done.
    assert_eq!(reader.ask("begin"), "1");
    let passwd = {
        let (bess, repo) = (env!("CARGO_BIN_EXE_bess"), sb.repo.clone());
        std::thread::spawn(move || user_at(bess, &repo, &["passwd", "alice"], "alice-password-2"))
    };
    // Once the new hash is committed, the command has only its checkpoint
    // left: give it time to end (it may not: it waits for the reader).
    let wal = &catalog_files(&sb.repo)[1];
    let wal_before = std::fs::metadata(wal).map_or(0, |m| m.len());
    let started = Instant::now();
    while std::fs::metadata(wal).map_or(0, |m| m.len()) <= wal_before
        && !passwd.is_finished()
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let committed = Instant::now();
    while !passwd.is_finished() && committed.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(reader.ask("commit"), "done");
    passwd.join().unwrap();
    let new = reader.ask("hash alice");
    assert_ne!(new, old);
    assert!(!files_holding(&sb.repo, &new).is_empty());
    let stale = files_holding(&sb.repo, &old);
    assert!(
        stale.is_empty(),
        "the superseded hash is still readable in {stale:?}"
    );

    sb.ok(&["user", "remove", "alice"]);
    let stale = files_holding(&sb.repo, &new);
    assert!(
        stale.is_empty(),
        "a removed user's hash is still readable in {stale:?}"
    );
    drop(reader);
}
