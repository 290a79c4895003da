//! The repository's public keys as `/key.gpg` and `bess.sources` serve
//! them: exported once, and again only after the publish serial moved
//! (every publish and every key change bumps it), instead of reading the
//! key files on every request.

use crate::config::Layout;
use crate::serial::{SerialWatch, publish_serial};
use crate::sign::KeyStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The exported keys and the serial they were exported under.
pub struct PublicKeys {
    /// `None` on a frontend, which serves the store's keyring instead.
    root: Option<PathBuf>,
    watch: Option<SerialWatch>,
    current: Mutex<Exported>,
}

/// One export: binary (for `Signed-By` files) and armored (inline in deb822).
pub struct Exported {
    serial: Option<u64>,
    pub binary: Arc<Vec<u8>>,
    pub armored: Arc<String>,
}

impl PublicKeys {
    /// Exports the keys of the repository laid out as `layout`.
    pub fn load(layout: &Layout) -> anyhow::Result<PublicKeys> {
        let watch = SerialWatch::open(&publish_serial(&layout.public_dir())).ok();
        let serial = watch.as_ref().map(SerialWatch::current);
        let current = export(layout.root(), serial)?;
        Ok(PublicKeys {
            root: Some(layout.root().to_path_buf()),
            watch,
            current: Mutex::new(current),
        })
    }

    /// No keys: a frontend's, whose keyring comes from the store.
    pub fn none() -> PublicKeys {
        PublicKeys {
            root: None,
            watch: None,
            current: Mutex::new(Exported {
                serial: None,
                binary: Arc::default(),
                armored: Arc::default(),
            }),
        }
    }

    /// The keys as of the last publish or key change.
    pub fn get(&self) -> (Arc<Vec<u8>>, Arc<String>) {
        let serial = self.watch.as_ref().map(SerialWatch::current);
        let mut current = self.current.lock().expect("keys lock");
        if let Some(root) = &self.root
            && (serial.is_none() || serial != current.serial)
        {
            match export(root, serial) {
                Ok(fresh) => *current = fresh,
                // The previous keys are better than none; the next request tries again.
                Err(e) => eprintln!("bess serve: cannot export the public keys again: {e}"),
            }
        }
        (current.binary.clone(), current.armored.clone())
    }
}

fn export(root: &Path, serial: Option<u64>) -> anyhow::Result<Exported> {
    let store = KeyStore::open(root);
    let binary = store.export_public(false)?;
    let armored = String::from_utf8(store.export_public(true)?)?;
    Ok(Exported {
        serial,
        binary: Arc::new(binary),
        armored: Arc::new(armored),
    })
}
