//! Names that become DNS labels: platforms, environments, sites, tools
//! and machines all end up in `<site>.<environment>.<platform>.<domain>`.
//!
//! Each label is what RFC 1123 host names allow, lowercase: letters,
//! digits and hyphens, 1–63 characters, no hyphen at either end; a whole
//! name is at most 253 characters. Environment names come from ticket ids,
//! so they alone are lowercased first (`PROJ-42` is `proj-42`).

use super::EnvError;

/// Longest label DNS allows (RFC 1035 2.3.4).
pub const MAX_LABEL: usize = 63;

/// Longest host name, written without the final dot.
pub const MAX_NAME: usize = 253;

/// Checks that `value` is a DNS label; `what` names it in the error
/// ("environment name", "site name in platform.toml", …).
pub fn check_label(what: &str, value: &str) -> Result<(), EnvError> {
    let rule = broken_label_rule(value);
    match rule {
        None => Ok(()),
        Some(rule) => Err(EnvError::Name {
            what: what.to_string(),
            value: value.to_string(),
            rule,
        }),
    }
}

/// The rule `value` breaks as a DNS label, if any.
fn broken_label_rule(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("a DNS label cannot be empty".into());
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "a DNS label holds only lowercase letters, digits and hyphens, not `{}`",
            bad.escape_debug()
        ));
    }
    if value.len() > MAX_LABEL {
        return Some(format!(
            "a DNS label is at most {MAX_LABEL} characters, this one has {}",
            value.len()
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Some("a DNS label cannot start or end with a hyphen".into());
    }
    None
}

/// The environment name for a ticket id: lowercased, then checked.
pub fn environment_name(ticket: &str) -> Result<String, EnvError> {
    let name = ticket.to_ascii_lowercase();
    check_label("environment name", &name).map_err(|error| match error {
        // Quote what the user typed, not the lowercased form.
        EnvError::Name { what, rule, .. } => EnvError::Name {
            what,
            value: ticket.to_string(),
            rule,
        },
        other => other,
    })?;
    Ok(name)
}

/// Checks a domain: dot-separated labels (`example.test`), at most 253
/// characters, no trailing dot.
pub fn check_domain(domain: &str) -> Result<(), EnvError> {
    for label in domain.split('.') {
        if let Some(rule) = broken_label_rule(label) {
            return Err(EnvError::Name {
                what: "domain".into(),
                value: domain.to_string(),
                rule: format!("label `{label}`: {rule}"),
            });
        }
    }
    check_length("domain", domain)
}

/// Joins labels into a host name (`v5`, `1161`, `paas`, `example.test`),
/// refused when longer than DNS allows.
pub fn host_name(labels: &[&str]) -> Result<String, EnvError> {
    let name = labels.join(".");
    check_length("host name", &name)?;
    Ok(name)
}

fn check_length(what: &str, name: &str) -> Result<(), EnvError> {
    if name.len() <= MAX_NAME {
        return Ok(());
    }
    Err(EnvError::Name {
        what: what.into(),
        value: name.to_string(),
        rule: format!(
            "a DNS name is at most {MAX_NAME} characters, this one has {}; use shorter names",
            name.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: &str) -> String {
        match check_label("site name", value) {
            Err(EnvError::Name { rule, .. }) => rule,
            other => panic!("{value:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn labels_follow_the_host_name_rules() {
        for good in ["v5", "1161", "proj-42", "a", &"x".repeat(63)] {
            check_label("site name", good).unwrap();
        }
        assert!(rule("").contains("cannot be empty"));
        assert!(rule("PROJ").contains("not `P`"));
        assert!(rule("a_b").contains("not `_`"));
        assert!(rule("a.b").contains("not `.`"));
        assert!(rule("é").contains("not `é`"));
        assert!(rule(&"x".repeat(64)).contains("at most 63 characters, this one has 64"));
        assert!(rule("-a").contains("start or end with a hyphen"));
        assert!(rule("a-").contains("start or end with a hyphen"));
    }

    #[test]
    fn ticket_ids_are_lowercased_and_quoted_as_typed() {
        assert_eq!(environment_name("PROJ-42").unwrap(), "proj-42");
        assert_eq!(environment_name("1161").unwrap(), "1161");
        let error = environment_name("PROJ_42").unwrap_err().to_string();
        assert!(error.contains("`PROJ_42`"), "{error}");
        assert!(error.contains("not `_`"), "{error}");
    }

    #[test]
    fn domains_and_whole_names_have_limits() {
        check_domain("example.test").unwrap();
        let error = check_domain("example..test").unwrap_err().to_string();
        assert!(error.contains("cannot be empty"), "{error}");
        assert!(check_domain("example.test.").is_err());
        assert!(check_domain("Example.test").is_err());
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ];
        let labels: Vec<&str> = long.iter().map(String::as_str).collect();
        assert_eq!(host_name(&labels).unwrap().len(), 253);
        let labels: Vec<&str> = ["x"].into_iter().chain(labels).collect();
        let error = host_name(&labels).unwrap_err().to_string();
        assert!(
            error.contains("at most 253 characters, this one has 255"),
            "{error}"
        );
    }
}
