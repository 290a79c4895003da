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
use std::os::fd::AsRawFd;
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
struct Mapping {
    start: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and never changes while it lives; the
// pointer is only dereferenced as a shared slice.
unsafe impl Send for Mapping {}
// SAFETY: as above, shared read-only access from any thread is sound.
unsafe impl Sync for Mapping {}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `start` maps `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        registry_write().remove(&(self.start as usize));
        // SAFETY: unmapping exactly what `map` mapped, once.
        unsafe { libc::munmap(self.start as *mut libc::c_void, self.len) };
    }
}

/// The first `len` bytes of `file` (a published file, never rewritten in
/// place), mapped and registered for [`SendfileStream`].
pub fn map(file: &File, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: a fresh shared read-only mapping of an open file; the result
    // is checked before use.
    let start = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = start as *const u8;
    let file = Arc::new(file.try_clone()?);
    registry_write().insert(start as usize, (len, file));
    Ok(Bytes::from_owner(Mapping { start, len }))
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
            let mut at = libc::off_t::try_from(offset).map_err(io::Error::other)?;
            // SAFETY: both descriptors are open; `at` is a valid off_t.
            let sent =
                unsafe { libc::sendfile(self.0.as_raw_fd(), file.as_raw_fd(), &mut at, len) };
            match sent {
                -1 => Err(io::Error::last_os_error()),
                // The file is shorter than its mapping: it was cut in place.
                0 => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a published file shrank while sent",
                )),
                n => Ok(n as usize),
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
            // SAFETY: a zeroed msghdr is valid; it points at `bufs`, which
            // IoSlice guarantees to be laid out as iovecs, for this call only.
            let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
            message.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            message.msg_iovlen = bufs.len();
            // SAFETY: an open socket and a message describing live buffers.
            let sent = unsafe {
                libc::sendmsg(
                    self.0.as_raw_fd(),
                    &message,
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if sent < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(sent as usize)
            }
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
