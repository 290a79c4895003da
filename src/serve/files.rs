//! Static files the way apt fetches them: GET and HEAD, validators
//! (ETag, Last-Modified) with 304, single byte ranges with If-Range, 206
//! and 416, and content types apt and browsers expect.

use super::cache::FileCache;
use super::http::{Body, empty, full, respond};
use bytes::Bytes;
use http_body_util::BodyExt;
use httpdate::HttpDate;
use hyper::body::Frame;
use hyper::{HeaderMap, Method, Response, StatusCode, header};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files up to this size are read in one go even when the cache does not
/// keep them; larger ones are streamed.
const SMALL_FILE: u64 = 1 << 20;

/// What is known about a file before sending it.
pub struct FileInfo {
    pub size: u64,
    pub modified: HttpDate,
    pub etag: String,
}

impl FileInfo {
    pub(super) fn of(meta: &std::fs::Metadata) -> FileInfo {
        FileInfo {
            size: meta.len(),
            modified: HttpDate::from(UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64)),
            // Nanoseconds too: a pruned generation's inode is soon reused,
            // and two InRelease files of one size and one second are common.
            etag: format!(
                "\"{:x}-{:x}-{:x}.{:x}\"",
                meta.ino(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            ),
        }
    }
}

/// What a response needs to know about the request for a file.
pub struct FileRequest<'a> {
    /// Its name in the request, for the content type.
    pub path: &'a Path,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

/// Serves an open file (already resolved inside a published tree), small
/// ones through the shared cache.
pub fn serve_file(file: std::fs::File, request: &FileRequest, cache: &FileCache) -> Response<Body> {
    match file.metadata() {
        Ok(meta) => serve_open(file, meta, request, cache),
        Err(_) => respond(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// [`serve_file`] for a file whose metadata the caller already read.
pub fn serve_open(
    file: std::fs::File,
    meta: std::fs::Metadata,
    request: &FileRequest,
    cache: &FileCache,
) -> Response<Body> {
    if !meta.is_file() {
        return respond(StatusCode::NOT_FOUND, "not found\n");
    }
    let info = FileInfo::of(&meta);
    respond_with(&info, request, |start, end| {
        file_body(Source { file, meta, cache }, start, end)
    })
}

/// Serves an open file whose bytes are named by `tag` (a hash), which is
/// its ETag: the same on every frontend, whichever inode holds it.
pub fn serve_named(
    file: std::fs::File,
    tag: &str,
    request: &FileRequest,
    cache: &FileCache,
) -> Response<Body> {
    let Ok(meta) = file.metadata() else {
        return respond(StatusCode::NOT_FOUND, "not found\n");
    };
    let info = FileInfo {
        etag: format!("\"{tag}\""),
        ..FileInfo::of(&meta)
    };
    respond_with(&info, request, |start, end| {
        file_body(Source { file, meta, cache }, start, end)
    })
}

/// A published file's bytes in memory, with its validators.
#[derive(Clone)]
pub struct Loaded {
    pub info: Arc<FileInfo>,
    pub data: Bytes,
}

impl Loaded {
    /// What `cache` holds of the file with metadata `meta`, if anything.
    pub fn from_cache(cache: &FileCache, meta: &std::fs::Metadata) -> Option<Loaded> {
        Some(Loaded {
            data: cache.cached(meta)?,
            info: Arc::new(FileInfo::of(meta)),
        })
    }
}

/// Serves a file already in memory: no system call at all.
pub fn serve_loaded(loaded: &Loaded, request: &FileRequest) -> Response<Body> {
    respond_with(&loaded.info, request, |start, end| {
        full(loaded.data.slice(start as usize..end as usize))
    })
}

/// The response to a GET or HEAD of a file described by `info`, with
/// `body(start, end)` giving its bytes when they are sent.
pub(super) fn respond_with(
    info: &FileInfo,
    request: &FileRequest,
    body: impl FnOnce(u64, u64) -> Body,
) -> Response<Body> {
    let headers = request.headers;
    let dated = fixed_content(request.path);
    if not_modified(headers, info, dated) {
        return with_validators(Response::builder().status(StatusCode::NOT_MODIFIED), info)
            .body(empty())
            .expect("valid response");
    }
    match requested_range(headers, info, dated) {
        RangeRequest::Unsatisfiable => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{}", info.size))
            .body(empty())
            .expect("valid response"),
        RangeRequest::Full => send(body, request, info, (0, info.size), StatusCode::OK),
        RangeRequest::Part(start, end) => send(
            body,
            request,
            info,
            (start, end),
            StatusCode::PARTIAL_CONTENT,
        ),
    }
}

/// Where a response's bytes come from.
struct Source<'a> {
    file: std::fs::File,
    meta: std::fs::Metadata,
    cache: &'a FileCache,
}

fn send(
    body: impl FnOnce(u64, u64) -> Body,
    request: &FileRequest,
    info: &FileInfo,
    (start, end): (u64, u64),
    status: StatusCode,
) -> Response<Body> {
    let mut builder = with_validators(Response::builder().status(status), info)
        .header(header::CONTENT_TYPE, content_type(request.path))
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end - 1, info.size),
        );
    }
    let body = if request.method == Method::HEAD {
        empty()
    } else {
        body(start, end)
    };
    builder.body(body).expect("valid response")
}

fn with_validators(
    builder: hyper::http::response::Builder,
    info: &FileInfo,
) -> hyper::http::response::Builder {
    builder
        .header(header::ETAG, &info.etag)
        .header(header::LAST_MODIFIED, info.modified.to_string())
}

/// Whether the file at `path` never changes while it exists: a pool file
/// (its name carries its version, and bess refuses other bytes under a
/// published name) or a by-hash file (its name is its hash). Only those
/// are validated by date. HTTP dates count whole seconds, and a publish
/// can replace `InRelease` twice in one: apt, told `Last-Modified: T` of
/// the first (or, given none, dating its copy by its own clock), asks
/// `If-Modified-Since: T` and would be told the second is not modified,
/// keeping a stale index until the next publish. So the other paths under
/// `dists/` answer 304 to their ETag only, which names the inode; apt
/// then fetches `InRelease` whole (a few kilobytes) and still skips every
/// index whose hash it already has.
fn fixed_content(path: &Path) -> bool {
    let mut parts = path.components().map(|c| c.as_os_str());
    parts.next() == Some(std::ffi::OsStr::new("pool"))
        || path.components().any(|c| c.as_os_str() == "by-hash")
}

/// Bytes `start..end` of the file: from the cache, read whole when small,
/// read whole on a blocking thread (and kept) when the cache takes it, else
/// streamed in 256 KiB pieces from a blocking thread. Only small files are
/// read on the async workers, so a miss never holds one up for long.
fn file_body(source: Source, start: u64, end: u64) -> Body {
    let Source {
        mut file,
        meta,
        cache,
    } = source;
    let size = meta.len();
    let range = start as usize..end as usize;
    if let Some(hit) = cache.cached(&meta) {
        return full(hit.slice(range));
    }
    if size <= SMALL_FILE {
        return match cache.contents(&mut file, &meta) {
            Some(data) => full(data.slice(range)),
            None => empty(),
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Frame<Bytes>>>(4);
    if cache.admits(size) {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || {
            let frame = cache
                .contents(&mut file, &meta)
                .map(|data| Frame::data(data.slice(range)))
                .ok_or_else(|| std::io::Error::other("the file changed while read"));
            let _ = tx.blocking_send(frame);
        });
    } else {
        tokio::task::spawn_blocking(move || stream(file, start, end - start, &tx));
    }
    ChannelBody(rx).boxed()
}

/// Sends `len` bytes of `file` from `start`, piece by piece.
fn stream(
    mut file: std::fs::File,
    start: u64,
    len: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Frame<Bytes>>>,
) {
    let mut left = len;
    let mut failed = file.seek(SeekFrom::Start(start)).err();
    while left > 0 && failed.is_none() {
        let mut piece = vec![0u8; left.min(256 * 1024) as usize];
        match file.read_exact(&mut piece) {
            Ok(()) => {
                left -= piece.len() as u64;
                if tx
                    .blocking_send(Ok(Frame::data(Bytes::from(piece))))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        let _ = tx.blocking_send(Err(e));
    }
}

/// A body of the frames sent through `rx`.
pub(super) fn channel_body(rx: tokio::sync::mpsc::Receiver<std::io::Result<Frame<Bytes>>>) -> Body {
    ChannelBody(rx).boxed()
}

/// A body fed by a blocking reader thread through a bounded channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<std::io::Result<Frame<Bytes>>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

/// `If-None-Match` wins over `If-Modified-Since` (RFC 9110 13.2.2).
pub(super) fn not_modified(headers: &HeaderMap, info: &FileInfo, dated: bool) -> bool {
    if let Some(tags) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return tags
            .split(',')
            .any(|t| t.trim() == info.etag || t.trim() == "*");
    }
    // A date later than now is invalid and ignored (RFC 9110 13.1.3):
    // answering 304 to it would let a client pin a stale copy forever.
    let now = HttpDate::from(SystemTime::now());
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<HttpDate>().ok())
        .is_some_and(|since| dated && since <= now && info.modified <= since)
}

pub(super) enum RangeRequest {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// A single `bytes=` range, honoured only if `If-Range` (when present)
/// still matches. Several ranges, in one header or several, are answered
/// with the whole file, which RFC 9110 allows and apt never asks for;
/// honouring the first of several headers would answer a request other
/// than the one a cache in between saw.
pub(super) fn requested_range(headers: &HeaderMap, info: &FileInfo, dated: bool) -> RangeRequest {
    let mut ranges = headers.get_all(header::RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return RangeRequest::Full;
    };
    let Ok(range) = range.to_str() else {
        return RangeRequest::Full;
    };
    if let Some(condition) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let current = condition == info.etag
            || condition
                .parse::<HttpDate>()
                .is_ok_and(|d| dated && d == info.modified);
        if !current {
            return RangeRequest::Full;
        }
    }
    let Some(spec) = range.strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    parse_range(spec.trim(), info.size)
}

/// Fuzzing entry: a Range header's value against a file of `size` bytes;
/// a part is always within the file.
#[doc(hidden)]
pub fn fuzz_range(value: &str, size: u64) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = value.parse() {
        headers.insert(header::RANGE, value);
    }
    let info = FileInfo {
        size,
        modified: HttpDate::from(UNIX_EPOCH),
        etag: String::new(),
    };
    if let RangeRequest::Part(start, end) = requested_range(&headers, &info, true) {
        assert!(
            start < end && end <= size,
            "{value:?} gave {start}..{end} of {size}"
        );
    }
}

fn parse_range(spec: &str, size: u64) -> RangeRequest {
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let bounds = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => Some((a, (b + 1).min(size))),
        (Ok(a), Err(_)) if last.is_empty() => Some((a, size)),
        (Err(_), Ok(n)) if first.is_empty() && n > 0 => Some((size.saturating_sub(n), size)),
        _ => return RangeRequest::Full,
    };
    match bounds {
        Some((start, end)) if start < size && start < end => RangeRequest::Part(start, end),
        _ => RangeRequest::Unsatisfiable,
    }
}

/// Content types by name, as Debian's archive serves them.
pub(super) fn content_type(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("deb") | Some("udeb") => "application/vnd.debian.binary-package",
        Some("gz") => "application/gzip",
        Some("xz") => "application/x-xz",
        Some("gpg") => "application/pgp-signature",
        Some("box") => "application/octet-stream",
        _ if matches!(name, "Release" | "InRelease" | "Packages") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(info: &FileInfo) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let date = info.modified.to_string();
        headers.insert(header::IF_MODIFIED_SINCE, date.parse().unwrap());
        headers
    }

    /// An InRelease replaced within the second a client was told its date
    /// must not be "not modified" to that date (apt would keep a stale
    /// index); a pool or by-hash file, whose bytes never change, may be.
    #[test]
    fn only_files_that_never_change_are_validated_by_date() {
        let info = FileInfo {
            size: 1,
            modified: HttpDate::from(SystemTime::now() - Duration::from_secs(5)),
            etag: "\"1-1-1.0\"".into(),
        };
        for path in [
            "pool/main/a/app/app_1.0_all.deb",
            "dists/bookworm/main/binary-amd64/by-hash/SHA256/00",
        ] {
            let dated = fixed_content(Path::new(path));
            assert!(not_modified(&since(&info), &info, dated), "{path}");
        }
        for path in [
            "dists/bookworm/InRelease",
            "dists/bookworm/main/binary-amd64/Packages.xz",
            "dists/pool/InRelease",
        ] {
            let dated = fixed_content(Path::new(path));
            assert!(!not_modified(&since(&info), &info, dated), "{path}");
        }
        let mut by_tag = HeaderMap::new();
        by_tag.insert(header::IF_NONE_MATCH, info.etag.parse().unwrap());
        assert!(not_modified(&by_tag, &info, false));
    }

    #[test]
    fn ranges() {
        assert!(matches!(parse_range("0-9", 100), RangeRequest::Part(0, 10)));
        assert!(matches!(
            parse_range("90-", 100),
            RangeRequest::Part(90, 100)
        ));
        assert!(matches!(
            parse_range("-10", 100),
            RangeRequest::Part(90, 100)
        ));
        assert!(matches!(
            parse_range("50-500", 100),
            RangeRequest::Part(50, 100)
        ));
        assert!(matches!(
            parse_range("100-", 100),
            RangeRequest::Unsatisfiable
        ));
        assert!(matches!(parse_range("9-3", 100), RangeRequest::Full));
        assert!(matches!(parse_range("x", 100), RangeRequest::Full));
    }
}
