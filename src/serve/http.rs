//! Small HTTP helpers: the body type, plain and JSON responses, HTTP dates.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Response, StatusCode, header};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// Every response body: in-memory or streamed, errors as I/O errors.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body of these bytes.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text response.
pub fn respond(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(full(text.to_string()))
        .expect("valid response")
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, text.len())
        .body(full(text))
        .expect("valid response")
}

/// A JSON error: `{"error": "..."}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// An HTTP date (IMF-fixdate, whole seconds), comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HttpDate(u64);

impl HttpDate {
    /// The date `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: u64) -> HttpDate {
        HttpDate(secs)
    }

    /// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub fn parse(text: &str) -> Option<HttpDate> {
        let utc = text.trim().strip_suffix("GMT")?.to_string() + "UTC";
        let time = crate::publish::release::parse_rfc1123(&utc)?;
        Some(HttpDate(time.duration_since(UNIX_EPOCH).ok()?.as_secs()))
    }
}

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = crate::publish::release::rfc1123(UNIX_EPOCH + Duration::from_secs(self.0));
        f.write_str(text.trim_end_matches("UTC"))?;
        f.write_str("GMT")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip() {
        let date = HttpDate::from_unix(784_111_777);
        assert_eq!(date.to_string(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(HttpDate::parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(date));
        assert_eq!(HttpDate::parse("garbage"), None);
    }
}
