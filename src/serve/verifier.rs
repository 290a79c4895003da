//! Password checks on a fixed set of threads, each with argon2's working
//! memory allocated once.
//!
//! Every argon2id check holds its memory cost (19 MiB by default) while it
//! runs. Run on the async runtime's blocking pool, hundreds of wrong
//! passwords arriving at once held that hundreds of times over (7.4 GB in
//! one reproduction) and the allocator kept it afterwards. Here at most
//! one check per core runs, in memory each thread keeps, and at most
//! [`QUEUE_PER_THREAD`] per thread wait; beyond that a login is refused as
//! busy. Memory for logins is therefore bounded by the thread count, not
//! by how many arrive.
//!
//! Unknown user names are checked against a dummy hash of the same cost,
//! so how long a refusal takes does not say whether the name exists.

use crate::catalog::{Catalog, UserRow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// Where a server finds its users: the repository's catalog, or, on a
/// frontend without a repository, what the primary published to the store.
#[derive(Clone)]
pub enum Directory {
    Catalog(PathBuf),
    Published(Arc<PublishedDirectory>),
}

/// The users a frontend last read from the store, and a serial bumped
/// each time they change (which ends the trust in verified credentials).
#[derive(Default)]
pub struct PublishedDirectory {
    users: RwLock<Arc<HashMap<String, UserRow>>>,
    serial: AtomicU64,
}

impl PublishedDirectory {
    /// Replaces every user at once.
    pub fn replace(&self, users: HashMap<String, UserRow>) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
        self.serial.fetch_add(1, Ordering::SeqCst);
    }

    pub fn serial(&self) -> u64 {
        self.serial.load(Ordering::SeqCst)
    }

    fn user(&self, name: &str) -> Option<UserRow> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(name).cloned()
    }
}

/// Looks users up in a [`Directory`], keeping a catalog connection open.
pub struct Lookup {
    directory: Directory,
    catalog: Option<Catalog>,
}

impl Lookup {
    pub fn new(directory: Directory) -> Lookup {
        Lookup {
            directory,
            catalog: None,
        }
    }

    /// The user named `name` as the directory has them now.
    pub fn user(&mut self, name: &str) -> Option<UserRow> {
        match &self.directory {
            Directory::Catalog(file) => lookup(&mut self.catalog, file, name),
            Directory::Published(published) => published.user(name),
        }
    }
}

/// Logins that may wait for each verifying thread before more are refused.
const QUEUE_PER_THREAD: usize = 16;

/// Page cache of each thread's catalog connection, in KiB: it reads one
/// row of the users table per check.
const PAGE_CACHE_KIB: u32 = 512;

/// The verifying threads, and the queue in front of them.
pub struct Verifier {
    jobs: SyncSender<Job>,
}

/// Too many logins are being checked already; try again shortly.
#[derive(Debug)]
pub struct Busy;

struct Job {
    name: String,
    password: String,
    reply: oneshot::Sender<Option<UserRow>>,
}

impl Verifier {
    /// Starts one verifying thread per core, reading users from
    /// `directory` and counting each check in `checks`.
    pub fn start(directory: &Directory, checks: Arc<AtomicU64>) -> anyhow::Result<Verifier> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (jobs, queue) = std::sync::mpsc::sync_channel(threads * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        // The dummy's cost is the default one, which every user bess made has.
        let dummy = Arc::new(crate::ops::hash_password(&random_password())?);
        for n in 0..threads {
            let (queue, dummy, checks) = (queue.clone(), dummy.clone(), checks.clone());
            let lookup = Lookup::new(directory.clone());
            std::thread::Builder::new()
                .name(format!("bess-verify-{n}"))
                .spawn(move || work(&queue, lookup, &dummy, &checks))?;
        }
        Ok(Verifier { jobs })
    }

    /// The user if `password` is theirs; `None` for a wrong password or an
    /// unknown name (after the same work either way).
    pub async fn verify(&self, name: &str, password: &str) -> Result<Option<UserRow>, Busy> {
        let (reply, verdict) = oneshot::channel();
        let job = Job {
            name: name.to_string(),
            password: password.to_string(),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(verdict.await.unwrap_or(None)),
            Err(TrySendError::Full(_)) => Err(Busy),
            // The threads never exit while the server runs.
            Err(TrySendError::Disconnected(_)) => Ok(None),
        }
    }
}

fn work(queue: &Mutex<Receiver<Job>>, mut users: Lookup, dummy: &str, checks: &AtomicU64) {
    let mut memory = Vec::new();
    loop {
        let job = match queue.lock().map(|queue| queue.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let user = users.user(&job.name);
        let stored = user.as_ref().map_or(dummy, |u| u.password_hash.as_str());
        let matches = crate::ops::verify_password_in(&job.password, stored, &mut memory);
        checks.fetch_add(1, Ordering::Relaxed);
        let _ = job.reply.send(user.filter(|_| matches));
    }
}

/// The user named `name`, through a connection opened once and kept
/// (opened again after an error).
fn lookup(catalog: &mut Option<Catalog>, catalog_file: &Path, name: &str) -> Option<UserRow> {
    if catalog.is_none() {
        match Catalog::open(catalog_file) {
            Ok(opened) => {
                let _ = opened.limit_page_cache(PAGE_CACHE_KIB);
                *catalog = Some(opened);
            }
            Err(e) => {
                eprintln!("bess serve: cannot open the catalog to check a login: {e}");
                return None;
            }
        }
    }
    match catalog.as_ref()?.reader().user(name) {
        Ok(user) => user,
        Err(e) => {
            eprintln!("bess serve: cannot read user `{name}` from the catalog: {e}");
            // A broken connection is opened afresh by the next check.
            *catalog = None;
            None
        }
    }
}

/// A password no one knows, for the dummy hash.
fn random_password() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[tokio::test]
    async fn verifies_known_users_and_refuses_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("catalog.db");
        let mut catalog = Catalog::open(&file).unwrap();
        let writer = catalog.write().unwrap();
        let hash = crate::ops::hash_password("a long enough password").unwrap();
        let row = UserRow {
            name: "ci".into(),
            password_hash: hash,
            read: vec!["prod".into()],
            upload: Vec::new(),
            admin: false,
            env: Vec::new(),
            environment: None,
        };
        assert!(writer.add_user(&row).unwrap());
        writer.commit().unwrap();
        let checks = Arc::new(AtomicU64::new(0));
        let verifier = Verifier::start(&Directory::Catalog(file), checks.clone()).unwrap();
        let found = verifier
            .verify("ci", "a long enough password")
            .await
            .unwrap();
        assert_eq!(found.map(|u| u.read), Some(vec!["prod".to_string()]));
        assert!(
            verifier
                .verify("ci", "a wrong password")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            verifier
                .verify("nobody", "a long enough password")
                .await
                .unwrap()
                .is_none()
        );
    }
}
