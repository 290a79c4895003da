//! An xz decoder that keeps its memory between packages.
//!
//! liblzma allocates the whole dictionary named in the stream header (8 MiB
//! for dpkg's default preset) when a decoder is created. Creating one per
//! package made that allocation, its page faults and its unmapping the
//! largest cost of ingesting small packages. Re-initialising the same
//! `lzma_stream` lets liblzma reuse the dictionary it already has.

use std::cell::RefCell;
use std::io::{self, Read};

/// Memory the decoder may use; `xz -9` needs about 65 MiB.
const MEMORY_LIMIT: u64 = 128 * 1024 * 1024;

thread_local! {
    /// A decoder no reader is using, kept for the next package on this thread.
    static SPARE: RefCell<Spare> = const { RefCell::new(Spare(None)) };
}

/// Frees the kept decoder when its thread ends.
struct Spare(Option<Box<lzma_sys::lzma_stream>>);

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some(stream) = self.0.take() {
            release(stream);
        }
    }
}

/// Decompresses one xz stream held in memory.
pub(crate) struct XzReader<'a> {
    stream: Option<Box<lzma_sys::lzma_stream>>,
    input: &'a [u8],
    finished: bool,
}

impl<'a> XzReader<'a> {
    /// A reader of the xz data in `input`.
    pub(crate) fn new(input: &'a [u8]) -> io::Result<XzReader<'a>> {
        // SAFETY: an all-zero lzma_stream is LZMA_STREAM_INIT.
        let mut stream = SPARE
            .with(|spare| spare.borrow_mut().0.take())
            .unwrap_or_else(|| Box::new(unsafe { std::mem::zeroed() }));
        // SAFETY: `stream` is initialised (zeroed or a previous decoder), and
        // liblzma re-initialises it in place, reusing its allocations.
        let ret = unsafe { lzma_sys::lzma_stream_decoder(&mut *stream, MEMORY_LIMIT, 0) };
        let mut reader = XzReader {
            stream: Some(stream),
            input,
            finished: false,
        };
        if ret != lzma_sys::LZMA_OK {
            if let Some(stream) = reader.stream.take() {
                release(stream);
            }
            return Err(io::Error::other(format!(
                "cannot start the xz decoder (liblzma error {ret})"
            )));
        }
        Ok(reader)
    }
}

impl Read for XzReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        // liblzma may consume input without producing output; a call that
        // makes no progress at all ends in LZMA_BUF_ERROR (truncated data).
        loop {
            let (ret, produced) = self.step(buf);
            match ret {
                lzma_sys::LZMA_OK if produced == 0 => continue,
                lzma_sys::LZMA_OK => return Ok(produced),
                lzma_sys::LZMA_STREAM_END => {
                    self.finished = true;
                    return Ok(produced);
                }
                lzma_sys::LZMA_BUF_ERROR => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated xz data",
                    ));
                }
                other => {
                    return Err(io::Error::other(format!(
                        "corrupt xz data (liblzma error {other})"
                    )));
                }
            }
        }
    }
}

impl XzReader<'_> {
    /// One call of `lzma_code` on the remaining input; returns its result and the bytes produced.
    fn step(&mut self, buf: &mut [u8]) -> (lzma_sys::lzma_ret, usize) {
        let stream = self.stream.as_mut().expect("present until drop");
        stream.next_in = self.input.as_ptr();
        stream.avail_in = self.input.len();
        stream.next_out = buf.as_mut_ptr();
        stream.avail_out = buf.len();
        // SAFETY: the pointers describe live slices for the duration of the call.
        let ret = unsafe { lzma_sys::lzma_code(&mut **stream, lzma_sys::LZMA_FINISH) };
        let consumed = self.input.len() - stream.avail_in;
        let produced = buf.len() - stream.avail_out;
        self.input = &self.input[consumed..];
        (ret, produced)
    }
}

impl Drop for XzReader<'_> {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let unused = SPARE.with(|spare| spare.borrow_mut().0.replace(stream));
        if let Some(older) = unused {
            release(older);
        }
    }
}

/// Frees a decoder that will not be reused.
#[allow(clippy::boxed_local)] // the stream lives in a Box so its address never moves
fn release(mut stream: Box<lzma_sys::lzma_stream>) {
    // SAFETY: the stream was initialised by liblzma or is all zeros.
    unsafe { lzma_sys::lzma_end(&mut *stream) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 6);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn decodes_many_streams_with_one_decoder() {
        for i in 0..5 {
            let data = format!("control file {i}\n")
                .repeat(1000 * i + 1)
                .into_bytes();
            let mut out = Vec::new();
            XzReader::new(&xz(&data))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn truncated_and_corrupt_streams_fail() {
        let data = xz(&b"abc".repeat(10_000));
        let mut out = Vec::new();
        assert!(
            XzReader::new(&data[..data.len() / 2])
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
        let mut bad = data.clone();
        bad[20] ^= 0xFF;
        assert!(
            XzReader::new(&bad)
                .unwrap()
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }
}
