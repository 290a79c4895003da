//! Validation of package names (Debian Policy 5.6.1) and binary architecture names.

use super::escape::{Escaped, EscapedChar};

/// Why a package or architecture name was refused. Every message quotes the
/// value and names the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "`{value}` is not a valid package name: it must be at least two characters long (Debian Policy 5.6.1)",
        value = Escaped(.value)
    )]
    PackageTooShort { value: String },
    #[error(
        "`{value}` is not a valid package name: it must start with a lowercase letter or a digit, not `{found}` (Debian Policy 5.6.1)",
        value = Escaped(.value),
        found = EscapedChar(*.found)
    )]
    PackageStart { value: String, found: char },
    #[error(
        "`{value}` is not a valid package name: `{found}` is not allowed; use only lowercase letters a-z, digits and `+ - .` (Debian Policy 5.6.1)",
        value = Escaped(.value),
        found = EscapedChar(*.found)
    )]
    PackageChar { value: String, found: char },
    #[error("the architecture is empty; use a Debian architecture such as `amd64`, or `all`")]
    ArchitectureEmpty {},
    #[error(
        "`{value}` is not a binary architecture: it is a wildcard or `source`; a built package must name one architecture such as `amd64`, or `all`",
        value = Escaped(.value)
    )]
    ArchitectureWildcard { value: String },
    #[error(
        "`{value}` is not a valid architecture name: `{found}` is not allowed; use only lowercase letters a-z, digits and `-` (as listed by `dpkg-architecture -L`), or `all`",
        value = Escaped(.value),
        found = EscapedChar(*.found)
    )]
    ArchitectureChar { value: String, found: char },
    #[error(
        "`{value}` is not a valid architecture name: it must not start or end with `-` nor contain `--`",
        value = Escaped(.value)
    )]
    ArchitectureHyphen { value: String },
}

/// Checks a binary or source package name against Debian Policy 5.6.1.
pub fn check_package_name(name: &str) -> Result<(), NameError> {
    let value = || name.to_owned();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c);
    if let Some(found) = name.chars().find(|&c| !allowed(c)) {
        return Err(NameError::PackageChar {
            value: value(),
            found,
        });
    }
    // Only ASCII is left, so byte length is character count.
    if name.len() < 2 {
        return Err(NameError::PackageTooShort { value: value() });
    }
    let first = name.chars().next().unwrap_or_default();
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::PackageStart {
            value: value(),
            found: first,
        });
    }
    Ok(())
}

/// Checks that `arch` names one binary architecture (`amd64`,
/// `musl-linux-arm64`, …) or `all`. Wildcards such as `any`, `linux-any` or
/// `any-amd64` describe sets of architectures and are refused, as is `source`.
pub fn check_architecture(arch: &str) -> Result<(), NameError> {
    let value = || arch.to_owned();
    if arch.is_empty() {
        return Err(NameError::ArchitectureEmpty {});
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if let Some(found) = arch.chars().find(|&c| !allowed(c)) {
        return Err(NameError::ArchitectureChar {
            value: value(),
            found,
        });
    }
    if arch.split('-').any(str::is_empty) {
        return Err(NameError::ArchitectureHyphen { value: value() });
    }
    if arch == "source" || arch.split('-').any(|part| part == "any") {
        return Err(NameError::ArchitectureWildcard { value: value() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_policy_package_names() {
        for name in [
            "bash",
            "libc6",
            "g++",
            "0ad",
            "libstdc++6",
            "xz-utils",
            "a.b",
            "9p",
        ] {
            assert_eq!(check_package_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_bad_package_names() {
        let cases = [
            ("", "at least two"),
            ("a", "at least two"),
            ("Bash", "`B` is not allowed"),
            ("foo_bar", "`_` is not allowed"),
            ("foo bar", "` ` is not allowed"),
            ("-foo", "must start with"),
            (".foo", "must start with"),
            ("+x", "must start with"),
            ("fö", "`ö` is not allowed"),
        ];
        for (name, expected) in cases {
            let message = check_package_name(name).unwrap_err().to_string();
            assert!(message.contains(expected), "{name}: {message}");
            assert!(message.contains(&format!("`{name}`")), "{message}");
            assert!(message.contains("Policy 5.6.1"), "{message}");
        }
    }

    #[test]
    fn escapes_control_characters_in_messages() {
        let message = check_package_name("ab\u{1b}[2J").unwrap_err().to_string();
        assert!(message.contains("`ab\\u{1b}[2J`"), "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
    }

    #[test]
    fn accepts_binary_architectures() {
        for arch in [
            "amd64",
            "all",
            "arm64",
            "hurd-i386",
            "musl-linux-arm64",
            "x32",
            "ppc64el",
        ] {
            assert_eq!(check_architecture(arch), Ok(()), "{arch}");
        }
    }

    #[test]
    fn refuses_bad_architectures() {
        let cases = [
            ("", "is empty"),
            ("any", "wildcard"),
            ("linux-any", "wildcard"),
            ("any-amd64", "wildcard"),
            ("any-linux-any", "wildcard"),
            ("source", "wildcard"),
            ("AMD64", "`A` is not allowed"),
            ("amd64 i386", "` ` is not allowed"),
            ("arm*", "`*` is not allowed"),
            ("amd_64", "`_` is not allowed"),
            ("-amd64", "must not start or end"),
            ("amd64-", "must not start or end"),
            ("linux--amd64", "nor contain `--`"),
        ];
        for (arch, expected) in cases {
            let message = check_architecture(arch).unwrap_err().to_string();
            assert!(message.contains(expected), "{arch}: {message}");
        }
    }
}
