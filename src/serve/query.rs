//! Query strings of the API, read strictly: a parameter that cannot be
//! read is refused, never dropped.
//!
//! Dropping one turned `?dist=bookworm%00` into "no dist given", which
//! means every dist, and `?channel=prod%00preprod` into "no filter". Each
//! endpoint names the parameters it takes, so a typo (`dists=`) is refused
//! too instead of meaning "all".

use std::collections::HashMap;

/// The parameters of one request, decoded.
#[derive(Debug, Default)]
pub struct Query {
    pairs: HashMap<String, Vec<String>>,
}

impl Query {
    /// Decodes `raw`, refusing what `known` does not list and values that
    /// are empty, not UTF-8 or hold control characters.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Query, String> {
        let mut pairs: HashMap<String, Vec<String>> = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).filter(|k| known.contains(&k.as_str()));
            let Some(key) = key else {
                return Err(format!(
                    "unknown query parameter `{}`; this endpoint takes {}",
                    pair.split('=').next().unwrap_or(pair).escape_debug(),
                    list(known)
                ));
            };
            let value = decode(value).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!(
                    "query parameter `{key}`: `{}` is not a value (empty, not UTF-8, or holding a control character)",
                    value.escape_debug()
                )
            })?;
            pairs.entry(key).or_default().push(value);
        }
        Ok(Query { pairs })
    }

    /// The first value of `key`.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs.get(key).cloned().unwrap_or_default()
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space. A `%`
/// not followed by two hex digits is refused (the library would keep it).
fn decode(text: &str) -> Option<String> {
    let escapes_ok = text.match_indices('%').all(|(at, _)| {
        text.as_bytes()
            .get(at + 1..at + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return None;
    }
    let spaced = text.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()?;
    (!decoded.chars().any(char::is_control)).then(|| decoded.into_owned())
}

fn list(known: &[&str]) -> String {
    match known {
        [] => "no parameters".to_string(),
        _ => known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_parameters() {
        let q = Query::parse(
            Some("dist=bookworm&dist=jammy&filename=a%2Bb+c.deb"),
            &["dist", "filename"],
        )
        .unwrap();
        assert_eq!(q.all("dist"), ["bookworm", "jammy"]);
        assert_eq!(q.first("filename"), Some("a+b c.deb"));
        assert_eq!(q.first("channel"), None);
        assert!(Query::parse(None, &[]).unwrap().all("x").is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "dist=bookworm%00",
            "dist=",
            "dist",
            "dist=%ff",
            "dist=%zz",
            "dists=x",
        ] {
            let refused = Query::parse(Some(bad), &["dist"]);
            assert!(refused.is_err(), "{bad} was accepted: {refused:?}");
        }
        let message = Query::parse(Some("channel=prod%00preprod"), &["channel"]).unwrap_err();
        assert!(message.contains("`channel`"), "{message}");
    }
}
