//! Request bodies streamed to a blocking writer: never held whole in
//! memory, cut at a size limit, and given up when the client stalls.

use super::http::{Body, json_error};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use std::time::Duration;

/// The `Content-Length` the client declared, checked before any byte is read.
pub fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// What the body pump hands the blocking writer.
pub enum Piece {
    Data(Bytes),
    /// The whole body arrived. Without it, the writer treats the end of
    /// the channel as a cut-short upload, never as a complete one.
    End,
    Failed(std::io::Error),
}

/// Feeds the request body to the writer, enforcing the size limit and a
/// timeout on each piece (a stalled client cannot hold a writer forever,
/// a slow but steady multi-gigabyte upload is not cut). Returns the
/// response to send instead of the writer's when the body failed.
///
/// When the writer stops early (it refused what it read), the rest of the
/// body, within the same limits, is read and dropped: a client that sends
/// its whole body before reading the reply (most do) would otherwise find
/// the connection reset and never see why it was refused.
pub async fn pump_body(
    mut body: Incoming,
    tx: tokio::sync::mpsc::Sender<Piece>,
    (limit, too_large): (u64, fn(u64) -> Response<Body>),
    timeout: Duration,
) -> Option<Response<Body>> {
    let mut received = 0u64;
    loop {
        let (piece, refusal) = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => failed(
                StatusCode::REQUEST_TIMEOUT,
                format!("no upload data for {} s", timeout.as_secs()),
            ),
            Ok(None) => (Piece::End, None),
            Ok(Some(Err(e))) => failed(StatusCode::BAD_REQUEST, format!("the upload failed: {e}")),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                if received > limit {
                    let piece = Piece::Failed(std::io::Error::other("the upload is too large"));
                    (piece, Some(too_large(limit)))
                } else {
                    (Piece::Data(data), None)
                }
            }
        };
        let last = !matches!(piece, Piece::Data(_));
        if last {
            let _ = tx.send(piece).await;
            return refusal;
        }
        // A closed channel means the writer stopped (a refusal it reports):
        // from then on the pieces are dropped, not sent.
        if !tx.is_closed() {
            let _ = tx.send(piece).await;
        }
    }
}

/// A body that failed: the writer is told why, the client gets `status`.
fn failed(status: StatusCode, text: String) -> (Piece, Option<Response<Body>>) {
    let response = json_error(status, &text);
    (Piece::Failed(std::io::Error::other(text)), Some(response))
}

/// The request body as a blocking `Read`, fed by [`pump_body`].
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl BodyReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Piece>) -> BodyReader {
        BodyReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(data)) => self.current = data,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(e)) => return Err(e),
                None => return Err(std::io::Error::other("the upload was cut short")),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
