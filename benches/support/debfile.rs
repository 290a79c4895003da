//! Writes Debian binary packages byte by byte: an ar container holding debian-binary,
//! control.tar.xz and data.tar.xz, laid out the way dpkg-deb builds them.

use std::io::{self, Write};

use tar::{EntryType, Header};
use xz2::stream::{Check, Filters, LzmaOptions, Stream};

/// dpkg-deb's default compression: xz preset 6 with a CRC64 check, which declares an 8 MiB
/// dictionary in the block header.
const XZ_PRESET: u32 = 6;
/// LZMA2 dictionary-size property for 8 MiB: (2 | (22 & 1)) << (22 / 2 + 11) = 2^23.
const DICT_8MIB_PROPERTY: u8 = 22;
/// The single-threaded encoder's block header, after the 12-byte stream header: size byte
/// (12 bytes), flags (one filter, no sizes), filter ID 0x21 (LZMA2), properties size 1.
const BLOCK_HEADER: std::ops::Range<usize> = 12..24;
const BLOCK_HEADER_PREFIX: [u8; 4] = [0x02, 0x00, 0x21, 0x01];

/// GNU tar pads archives to its default blocking factor (20 records of 512 bytes).
const TAR_BLOCK: usize = 10240;

/// A member of a tar archive, path without the leading "./".
pub struct TarFile<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
}

/// The complete .deb: control files (`./control`, `./md5sums`) and payload files.
pub fn build_deb(control: &[TarFile], data: &[TarFile], mtime: u64) -> io::Result<Vec<u8>> {
    let control_tar = xz(&tar_archive(control, mtime)?)?;
    let data_tar = xz(&tar_archive(data, mtime)?)?;
    let mut deb = b"!<arch>\n".to_vec();
    ar_member(&mut deb, "debian-binary", b"2.0\n", mtime);
    ar_member(&mut deb, "control.tar.xz", &control_tar, mtime);
    ar_member(&mut deb, "data.tar.xz", &data_tar, mtime);
    Ok(deb)
}

/// ar member: 60-byte header of space-padded decimal fields, data, then a '\n' pad byte so
/// the next header starts on an even offset.
fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8], mtime: u64) {
    let header = format!(
        "{name:<16}{mtime:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        0,
        0,
        100644,
        data.len()
    );
    debug_assert_eq!(header.len(), 60);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// GNU tar with "./" entries, every parent directory listed before its contents (sorted, as
/// dpkg-deb does), owned by root.
fn tar_archive(files: &[TarFile], mtime: u64) -> io::Result<Vec<u8>> {
    let mut entries: Vec<(String, Option<&[u8]>)> = vec![("./".to_string(), None)];
    for file in files {
        let mut parent = String::from("./");
        for component in file
            .path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            parent.push_str(component);
            parent.push('/');
            entries.push((parent.clone(), None));
        }
        entries.push((format!("./{}", file.path), Some(file.bytes)));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in &entries {
        let header = tar_header(path, *bytes, mtime)?;
        builder.append(&header, bytes.unwrap_or_default())?;
    }
    let mut archive = builder.into_inner()?;
    archive.resize(archive.len().div_ceil(TAR_BLOCK) * TAR_BLOCK, 0);
    Ok(archive)
}

/// Header written field by field: `Header::set_path` would normalise away the "./" prefix
/// that dpkg-deb archives carry.
fn tar_header(path: &str, bytes: Option<&[u8]>, mtime: u64) -> io::Result<Header> {
    let mut header = Header::new_gnu();
    let name = &mut header.as_old_mut().name;
    if path.len() > name.len() {
        return Err(io::Error::other(format!("tar path too long: {path}")));
    }
    name[..path.len()].copy_from_slice(path.as_bytes());
    match bytes {
        Some(bytes) => {
            header.set_entry_type(EntryType::Regular);
            header.set_size(bytes.len() as u64);
            let executable = path.contains("/bin/") || path.contains(".so.");
            header.set_mode(if executable { 0o755 } else { 0o644 });
        }
        None => {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
        }
    }
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_mtime(mtime);
    header.set_cksum();
    Ok(header)
}

/// Compresses like dpkg-deb and declares the same 8 MiB dictionary, but encodes with a window
/// just larger than the input. The window size cannot change how input smaller than it is
/// encoded (bar hash-table collisions), while a real 8 MiB window costs ~6 ms of page faults
/// per member for its hash table: minutes for a 60,000-package corpus.
fn xz(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut options = LzmaOptions::new_preset(XZ_PRESET)?;
    let window = u32::try_from(bytes.len())
        .map_err(io::Error::other)?
        .next_power_of_two();
    options.dict_size(window.max(4096));
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = Stream::new_stream_encoder(&filters, Check::Crc64)?;
    let mut encoder =
        xz2::write::XzEncoder::new_stream(Vec::with_capacity(bytes.len() / 2), stream);
    encoder.write_all(bytes)?;
    let mut compressed = encoder.finish()?;
    declare_8mib_dictionary(&mut compressed)?;
    Ok(compressed)
}

/// Rewrites the block header's dictionary property and its CRC32, so decoders size their
/// window exactly as for a member built by dpkg-deb.
fn declare_8mib_dictionary(xz: &mut [u8]) -> io::Result<()> {
    let header = xz
        .get_mut(BLOCK_HEADER)
        .ok_or_else(|| io::Error::other("xz stream too short"))?;
    if header[..4] != BLOCK_HEADER_PREFIX {
        return Err(io::Error::other(format!(
            "unexpected xz block header {header:02x?}"
        )));
    }
    header[4] = DICT_8MIB_PROPERTY;
    let mut crc = flate2::Crc::new();
    crc.update(&header[..8]);
    header[8..].copy_from_slice(&crc.sum().to_le_bytes());
    Ok(())
}
