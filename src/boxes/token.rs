//! Signed, expiring download tokens for box files.
//!
//! vagrant sends the credentials written in a catalog URL to the catalog
//! only, never to the box URLs it lists (checked with vagrant 2.3.4). So
//! each listed URL carries `?token=…`: an HMAC-SHA256, under a secret only
//! the server knows, of the user, the channel, the file and an expiry. It
//! grants that user that one file until then, and nothing else.

use super::BoxError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<sha2::Sha256>;

/// What a token grants: one user, one file of one channel, until `expires`
/// (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    pub user: &'a str,
    pub channel: &'a str,
    /// The file's path under `public/<channel>/boxes/`.
    pub file: &'a str,
    pub expires: u64,
}

/// Why a token does not open a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not valid for this file")]
    Forged,
    #[error(
        "the token expired at {0} (seconds since the epoch); fetch the box catalog again for a fresh one"
    )]
    Expired(u64),
}

/// The server's token key, kept in `keys/box-token.secret` (0600).
pub struct TokenSecret {
    key: [u8; 32],
}

impl TokenSecret {
    /// Reads the secret at `path`, creating it on first use. Refuses a
    /// file that others may read: whoever holds it can mint tokens.
    pub fn load_or_create(path: &Path) -> Result<TokenSecret, BoxError> {
        match std::fs::read_to_string(path) {
            Ok(text) => parse_secret(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_secret(path),
            Err(source) => Err(BoxError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Reads the secret at `path`, which must exist: a frontend's copy of
    /// the primary's, shared by every frontend.
    pub fn load(path: &Path) -> Result<TokenSecret, BoxError> {
        let text = std::fs::read_to_string(path).map_err(|source| BoxError::Io {
            action: "read (copy the primary's keys/box-token.secret there, mode 0600)",
            path: path.to_path_buf(),
            source,
        })?;
        parse_secret(path, &text)
    }

    /// A key of this process only: its tokens work on this server alone.
    pub fn ephemeral() -> TokenSecret {
        use password_hash::rand_core::{OsRng, RngCore};
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        TokenSecret { key }
    }

    /// A key that needs no file, for tests.
    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> TokenSecret {
        TokenSecret { key }
    }

    /// The token for `grant`: `<expires>.<user, base64url>.<mac, base64url>`.
    pub fn sign(&self, grant: &Grant<'_>) -> String {
        let tag = self.mac(grant).finalize().into_bytes();
        format!(
            "{}.{}.{}",
            grant.expires,
            URL_SAFE_NO_PAD.encode(grant.user),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The user a token was issued to, if it grants `channel`/`file` at `now`.
    /// The signature is checked before the expiry, so a forged token learns
    /// nothing from the answer.
    pub fn verify(
        &self,
        token: &str,
        channel: &str,
        file: &str,
        now: u64,
    ) -> Result<String, TokenError> {
        let mut parts = token.split('.');
        let (Some(expires), Some(user), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let user = URL_SAFE_NO_PAD
            .decode(user)
            .ok()
            .and_then(|u| String::from_utf8(u).ok())
            .ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let grant = Grant {
            user: &user,
            channel,
            file,
            expires,
        };
        self.mac(&grant)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Forged)?;
        if now >= expires {
            return Err(TokenError::Expired(expires));
        }
        Ok(user)
    }

    /// Each field is length-prefixed, so no two grants hash the same text.
    fn mac(&self, grant: &Grant<'_>) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        let expires = grant.expires.to_string();
        for field in [
            "bess-box-token-v1",
            grant.user,
            grant.channel,
            grant.file,
            &expires,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

/// When a token issued at `now` expires: at least `ttl` seconds later,
/// rounded up to a quarter of `ttl`. The rounding keeps a box URL the same
/// for a while, and vagrant resumes an interrupted download only from the
/// same URL (its partial file is named after the URL).
pub fn expiry(now: u64, ttl: u64) -> u64 {
    let step = (ttl / 4).max(1);
    (now + ttl).div_ceil(step) * step
}

fn parse_secret(path: &Path, text: &str) -> Result<TokenSecret, BoxError> {
    let invalid = |reason: String| BoxError::Secret {
        path: path.to_path_buf(),
        reason,
    };
    let mode = std::fs::metadata(path)
        .map_err(|source| BoxError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(invalid(format!(
            "its mode is {:o}: whoever reads it can mint download tokens; run `chmod 600 {}`",
            mode & 0o777,
            path.display()
        )));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
        invalid("it must hold 64 hex digits; delete it and bess makes a new one (issued tokens stop working)".into())
    })?;
    Ok(TokenSecret { key })
}

/// Writes a new random secret, owner-only. Two processes may race: the
/// file is made under a temp name and linked into place, so the loser
/// reads the winner's secret instead of overwriting it.
fn create_secret(path: &Path) -> Result<TokenSecret, BoxError> {
    use password_hash::rand_core::{OsRng, RngCore};
    let io = |action: &'static str, at: &Path| {
        let at = at.to_path_buf();
        move |source| BoxError::Io {
            action,
            path: at,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let temp: PathBuf = dir.join(format!(".box-token.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        writeln!(file, "{}", hex::encode(key))?;
        file.sync_all()?;
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            other => other.map(|()| true),
        }
    })();
    let _ = std::fs::remove_file(&temp);
    let created = written.map_err(io("write", path))?;
    crate::pool::fsync_dir(dir).map_err(io("sync", dir))?;
    if created {
        Ok(TokenSecret { key })
    } else {
        TokenSecret::load_or_create(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user: &str, file: &str, expires: u64) -> Grant<'static> {
        Grant {
            user: Box::leak(user.to_string().into_boxed_str()),
            channel: "prod",
            file: Box::leak(file.to_string().into_boxed_str()),
            expires,
        }
    }

    #[test]
    fn a_token_opens_one_file_for_one_user_until_it_expires() {
        let secret = TokenSecret::from_bytes([7; 32]);
        let token = secret.sign(&grant("web01", "a/b/1.0/libvirt-amd64.box", 1000));
        let file = "a/b/1.0/libvirt-amd64.box";
        assert_eq!(secret.verify(&token, "prod", file, 999).unwrap(), "web01");
        assert_eq!(
            secret.verify(&token, "prod", file, 1000),
            Err(TokenError::Expired(1000))
        );
        assert_eq!(
            secret.verify(&token, "prod", "a/b/2.0/libvirt-amd64.box", 999),
            Err(TokenError::Forged)
        );
        assert_eq!(
            secret.verify(&token, "preprod", file, 999),
            Err(TokenError::Forged)
        );
        let later = token.replacen("1000", "9999", 1);
        assert_eq!(
            secret.verify(&later, "prod", file, 999),
            Err(TokenError::Forged)
        );
        let other = TokenSecret::from_bytes([8; 32]);
        assert_eq!(
            other.verify(&token, "prod", file, 999),
            Err(TokenError::Forged)
        );
        assert_eq!(
            secret.verify("x.y", "prod", file, 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn expiry_is_rounded_up_to_a_quarter_of_the_ttl() {
        assert_eq!(expiry(1000, 3600), 4600_u64.div_ceil(900) * 900);
        assert!(expiry(1000, 3600) >= 4600);
        assert_eq!(expiry(1001, 3600), expiry(1002, 3600));
        assert_eq!(expiry(10, 1), 11);
    }

    #[test]
    fn the_secret_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/box-token.secret");
        let first = TokenSecret::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = TokenSecret::load_or_create(&path).unwrap();
        assert_eq!(first.key, again.key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = TokenSecret::load_or_create(&path)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
