//! `bess key …`: the repository's OpenPGP signing keys.

use super::output::json;
use crate::config::RepoConfig;
use crate::ops::{self, Repo};
use crate::sign::KeyStore;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Manage signing keys: show, export, generate, retire.
///
/// Every Release is signed (InRelease and Release.gpg) by each current
/// signing key. To rotate: `bess key generate` (both keys sign), distribute
/// the new export to clients, then `bess key retire OLD_FINGERPRINT`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    Show(ShowArgs),
    Export(ExportArgs),
    /// Generate a new signing key; it signs beside the current ones.
    ///
    /// Every published Release is signed again at once, by all signing
    /// keys. Clients that only know the older keys keep verifying it; give
    /// them the new export before retiring an old key.
    Generate,
    Retire(RetireArgs),
}

/// Print the fingerprints of the signing (and retired) keys.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print {"signing": [...], "retired": [...]}
    #[arg(long)]
    json: bool,
}

/// Print the public keys of the signing keys (binary OpenPGP by default).
///
/// The binary form is what apt's `Signed-By:` and gpgv read:
///   bess key export > /etc/apt/keyrings/bess.gpg
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// ASCII-armored instead of binary
    #[arg(long)]
    armor: bool,
}

/// Stop signing with a key (kept under keys/retired/).
///
/// Every published Release is first signed again without it, so that at
/// every instant each Release is signed by the keys that remain. A run
/// that was interrupted is completed by running it again.
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// Fingerprint of the key to retire
    fingerprint: String,
}

pub fn run(dir: &Path, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let config = RepoConfig::load(dir)?;
    let store = KeyStore::open(config.layout.root());
    match command {
        KeyCommand::Show(args) => {
            let signing = store.signing_fingerprints()?;
            let retired = store.retired_fingerprints()?;
            if args.json {
                json(&serde_json::json!({ "signing": signing, "retired": retired }))?;
            } else {
                signing.iter().for_each(|f| println!("signing  {f}"));
                retired.iter().for_each(|f| println!("retired  {f}"));
            }
        }
        KeyCommand::Export(args) => {
            let key = store.export_public(args.armor)?;
            std::io::stdout().lock().write_all(&key)?;
        }
        KeyCommand::Generate => {
            let mut repo = Repo::open(dir)?;
            let fingerprint = ops::generate_key(&mut repo, &user_id(&config))?;
            println!(
                "generated {fingerprint}; it signs from the next publication (`bess repo publish --refresh`)"
            );
        }
        KeyCommand::Retire(args) => {
            ops::retire_key(&mut Repo::open(dir)?, &args.fingerprint)?;
            println!(
                "retired {}; run `bess repo publish --refresh` to re-sign without it",
                args.fingerprint
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The user id of a new key: the repository's origin and this host.
pub fn user_id(config: &RepoConfig) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{} archive signing key <bess@{host}>",
        config.settings.release.origin
    )
}
