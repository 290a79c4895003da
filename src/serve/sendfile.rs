//! Large published files sent with sendfile(2), under hyper.
//!
//! hyper writes response bodies from memory. For a large file (an 800 KB
//! `Packages.xz`) that meant one more copy per request than nginx makes:
//! user memory into the socket, where nginx's sendfile hands the kernel the
//! page-cache pages. So large files are mapped read-only instead of read
//! ([`map`]), every mapping is registered here, and the connection's writer
//! ([`SendfileStream`]) recognises a slice of a registered mapping and has
//! the kernel send it from the file. bess itself never reads the mapped
//! pages on that path; TLS connections, which must encrypt, read them.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Files at least this large are mapped rather than read: below it the
/// copy costs less than the extra system calls.
pub const MAP_AT_LEAST: u64 = 128 * 1024;

/// Registered mappings by start address: (length, the file mapped).
type Registry = BTreeMap<usize, (usize, Arc<File>)>;

static MAPPINGS: RwLock<Registry> = RwLock::new(BTreeMap::new());

/// A read-only mapping of a whole file, registered while it lives.
struct Mapping(memmap2::Mmap);

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        registry_write().remove(&(self.0.as_ptr() as usize));
    }
}

/// The first `len` bytes of `file` (a published file, never rewritten in
/// place), mapped and registered for [`SendfileStream`].
pub fn map(file: &File, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: published files are written once (temp file, rename) and
    // never modified in place, so the mapped bytes do not change under
    // the slices handed out.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
    let file = Arc::new(file.try_clone()?);
    registry_write().insert(map.as_ptr() as usize, (len, file));
    Ok(Bytes::from_owner(Mapping(map)))
}

/// The file and offset behind `slice` when it lies in a registered mapping.
fn mapped(slice: &[u8]) -> Option<(Arc<File>, u64)> {
    mapped_range(slice.as_ptr() as usize, slice.len())
}

/// The file and offset behind the `len` bytes at address `at`, when they
/// lie in one registered mapping.
fn mapped_range(at: usize, len: usize) -> Option<(Arc<File>, u64)> {
    if len == 0 {
        return None;
    }
    let registry = MAPPINGS.read().unwrap_or_else(|e| e.into_inner());
    let (start, (mapped_len, file)) = registry.range(..=at).next_back()?;
    (at + len <= start + mapped_len).then(|| (file.clone(), (at - start) as u64))
}

fn registry_write() -> std::sync::RwLockWriteGuard<'static, Registry> {
    MAPPINGS.write().unwrap_or_else(|e| e.into_inner())
}

/// A TCP connection whose writes of mapped file bytes go out by sendfile(2).
pub struct SendfileStream(TcpStream);

impl SendfileStream {
    pub fn new(stream: TcpStream) -> SendfileStream {
        SendfileStream(stream)
    }

    /// Sends `len` bytes of `file` from `offset`, as far as the socket takes.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let send = || {
            let mut at = offset;
            match rustix::fs::sendfile(&self.0, file, Some(&mut at), len)? {
                // The file is shorter than its mapping: it was cut in place.
                0 => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a published file shrank while sent",
                )),
                n => Ok(n),
            }
        };
        self.poll_writing(cx, send)
    }

    /// Runs the non-blocking `write` once the socket is writable, waiting
    /// again whenever it would block.
    fn poll_writing(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_io(Interest::WRITABLE, &mut write) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    /// Writes memory that a sendfile will follow (a response's headers)
    /// with `MSG_MORE`, so the kernel sends it in the same segment as the
    /// start of the file instead of in a small packet of its own.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let send = || {
            use rustix::net::{SendAncillaryBuffer, SendFlags};
            let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
            let mut control = SendAncillaryBuffer::default();
            Ok(rustix::net::sendmsg(&self.0, bufs, &mut control, flags)?)
        };
        self.poll_writing(cx, send)
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Memory is written up to the first mapped slice, and a mapped slice
    /// is sent from its file: a short write either way, which the caller
    /// continues.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first_mapped = bufs.iter().position(|b| mapped(b).is_some());
        match first_mapped {
            Some(0) => {
                let (file, offset) = mapped(&bufs[0]).expect("found mapped just above");
                self.poll_sendfile(cx, &file, offset, bufs[0].len())
            }
            Some(head) => self.poll_send_more(cx, &bufs[..head]),
            None => Pin::new(&mut self.0).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slices_of_a_mapping_name_their_file_and_offset_until_dropped() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let bytes = map(&file, data.len() as u64).unwrap();
        assert_eq!(&bytes[..], &data[..]);
        let part = bytes.slice(1000..5000);
        let (_, offset) = mapped(&part).expect("a slice of a mapping is recognised");
        assert_eq!(offset, 1000);
        assert!(
            mapped(&data[1000..5000]).is_none(),
            "ordinary memory is not"
        );
        let start = bytes.as_ptr() as usize;
        assert!(mapped_range(start, bytes.len()).is_some());
        assert!(
            mapped_range(start, bytes.len() + 1).is_none(),
            "nor a range running past the end"
        );
        drop((bytes, part));
        assert!(
            MAPPINGS.read().unwrap().get(&start).is_none(),
            "unregistered"
        );
    }
}
