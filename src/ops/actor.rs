//! Who makes a change: the local user behind the CLI, or the user `bess
//! serve` authenticated. Every audit entry names one.

use crate::catalog::AuditEntry;
use std::sync::OnceLock;

/// The author of the changes an open [`super::Repo`] makes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Actor {
    /// The local user running the command (resolved once, when first needed).
    #[default]
    Cli,
    /// A user authenticated by `bess serve`.
    Http(String),
    /// The processor of the incoming drop directory (`bess incoming process`,
    /// or `bess serve` watching it): the uploader is known only by the
    /// SSH account that dropped the file.
    Incoming,
}

impl Actor {
    /// The name the audit log shows.
    pub fn name(&self) -> String {
        match self {
            Actor::Cli => local_user().to_string(),
            Actor::Http(user) => user.clone(),
            Actor::Incoming => "incoming".to_string(),
        }
    }

    /// `cli`, `http` or `incoming`.
    pub fn origin(&self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::Http(_) => "http",
            Actor::Incoming => "incoming",
        }
    }

    /// An audit entry by this actor, with only the action filled in.
    pub(super) fn entry(&self, action: &str) -> AuditEntry {
        AuditEntry {
            actor: self.name(),
            origin: self.origin().to_string(),
            action: action.to_string(),
            ..AuditEntry::default()
        }
    }
}

/// The user name of this process's uid, with the user sudo ran as:
/// `root (sudo: alice)`. `$SUDO_USER` can be set by anyone, so it only
/// ever adds to the name the uid gives, never replaces it.
fn local_user() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let uid = rustix::process::getuid().as_raw();
        let name = passwd_name(uid).unwrap_or_else(|| format!("uid {uid}"));
        let sudo = std::env::var("SUDO_USER")
            .ok()
            .map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect())
            .filter(|s: &String| !s.is_empty() && *s != name);
        match sudo {
            Some(sudo) => format!("{name} (sudo: {sudo})"),
            None => name,
        }
    })
}

/// The passwd entry's name for `uid` (through NSS, so directory users too).
fn passwd_name(uid: u32) -> Option<String> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid));
    user.ok().flatten().map(|user| user.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_uid_has_a_name() {
        let uid = rustix::process::getuid().as_raw();
        let id = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let expected = String::from_utf8(id.stdout).unwrap().trim().to_string();
        let name = passwd_name(uid);
        if id.status.success() {
            assert_eq!(name.as_deref(), Some(expected.as_str()), "as `id -un` says");
        }
        let name = name.unwrap_or_else(|| format!("uid {uid}"));
        assert!(Actor::Cli.name().starts_with(&name));
        assert_eq!(Actor::Http("ci".into()).name(), "ci");
        assert_eq!(Actor::Http("ci".into()).origin(), "http");
        assert_eq!(Actor::Incoming.name(), "incoming");
        assert_eq!(Actor::Incoming.origin(), "incoming");
    }
}
