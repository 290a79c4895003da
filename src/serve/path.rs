//! Request paths: decoded once, then refused unless every segment is a
//! plain name. Nothing a client sends can name a file outside the trees.

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("the path has an empty, `.` or `..` segment, a backslash or a NUL")]
    Segment,
}

/// The segments of a request path (`/a/b` → `["a", "b"]`).
///
/// Percent-decoding happens exactly once, so `%252e%252e` stays the
/// harmless name `%2e%2e` instead of becoming `..`.
pub fn segments(raw: &str) -> Result<Vec<String>, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::Segment)?;
    let decoded = percent_decode(rest)?;
    let mut out = Vec::new();
    for segment in decoded.split('/') {
        let bad = segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.contains(['\\', '\0']);
        if bad {
            return Err(PathError::Segment);
        }
        out.push(segment.to_string());
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Result<String, PathError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::Encoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::Encoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| PathError::Encoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_paths_split() {
        assert_eq!(
            segments("/prod/dists/bookworm/InRelease").unwrap(),
            ["prod", "dists", "bookworm", "InRelease"]
        );
        assert_eq!(
            segments("/prod/pool/main/a/app_1%3a2_all.deb").unwrap()[4],
            "app_1:2_all.deb"
        );
    }

    #[test]
    fn traversal_variants_are_refused() {
        for raw in [
            "/prod/../preprod/x",
            "/prod/%2e%2e/preprod/x",
            "/prod/%2E%2E/x",
            "/prod/.%2e/x",
            "/prod/./x",
            "/prod//x",
            "/prod/x/",
            "/prod/..%2fpreprod",
            "/prod/%2f..%2fx",
            "/prod/a%5c..%5cb",
            "/prod/a\\b",
            "/prod/a%00b",
            "/prod/%c0%ae%c0%ae/x",
            "/prod/%zz",
            "prod/x",
        ] {
            assert!(segments(raw).is_err(), "{raw} must be refused");
        }
    }

    #[test]
    fn double_encoding_is_decoded_once() {
        assert_eq!(segments("/a/%252e%252e").unwrap(), ["a", "%2e%2e"]);
    }

    proptest! {
        #[test]
        fn accepted_segments_are_plain_names(raw in "/[a-z%./\\\\0-9A-F]{0,24}") {
            if let Ok(segments) = segments(&raw) {
                for s in segments {
                    prop_assert!(!s.is_empty() && s != "." && s != "..");
                    prop_assert!(!s.contains('/') && !s.contains('\\') && !s.contains('\0'));
                }
            }
        }
    }
}
