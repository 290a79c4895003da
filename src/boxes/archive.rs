//! Box files: a tar, tar.gz or zip archive with a `metadata.json` at its
//! top level naming the provider, as `vagrant box add` unpacks it (bsdtar).
//!
//! Boxes can be gigabytes, so nothing is held in memory: the archive is
//! read from disk as a stream, and only `metadata.json` (capped) is kept.

use super::BoxError;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Largest `metadata.json` accepted; real ones are a few hundred bytes.
const METADATA_LIMIT: u64 = 1 << 20;

/// The container format of a box file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoxFormat {
    Tar,
    TarGz,
    Zip,
}

/// What bess reads from a box file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxContents {
    pub format: BoxFormat,
    /// `provider` of `metadata.json`.
    pub provider: String,
}

/// Checks that `path` is a box for `provider`. Tar archives are read to
/// their end, so a truncated or corrupt upload is refused here rather than
/// by every vagrant that downloads it.
pub fn inspect(path: &Path, provider: &str) -> Result<BoxContents, BoxError> {
    let open = |action| {
        move |source| BoxError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = File::open(path).map_err(open("open"))?;
    let mut head = Vec::with_capacity(512);
    (&mut file)
        .take(512)
        .read_to_end(&mut head)
        .map_err(open("read"))?;
    file.seek(SeekFrom::Start(0)).map_err(open("read"))?;
    let format = detect(&head)?;
    let metadata = match format {
        BoxFormat::Tar => tar_metadata(file)?,
        BoxFormat::TarGz => tar_metadata(flate2::read::MultiGzDecoder::new(file))?,
        BoxFormat::Zip => zip_metadata(file)?,
    };
    let found = metadata_provider(&metadata)?;
    if found != provider {
        return Err(BoxError::ProviderMismatch {
            found,
            expected: provider.to_string(),
        });
    }
    Ok(BoxContents {
        format,
        provider: found,
    })
}

/// The format from the first bytes: gzip and zip magic numbers, or the
/// `ustar` mark of a POSIX tar header.
fn detect(head: &[u8]) -> Result<BoxFormat, BoxError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(BoxFormat::TarGz);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(BoxFormat::Zip);
    }
    if head.get(257..262) == Some(b"ustar") {
        return Ok(BoxFormat::Tar);
    }
    Err(BoxError::NotABox(
        "it is not a tar, tar.gz or zip archive; build the box with `vagrant package`, Packer's vagrant post-processor, or `tar -czf NAME.box metadata.json ...`".into(),
    ))
}

fn is_metadata_name(path: &Path) -> bool {
    path == Path::new("metadata.json") || path == Path::new("./metadata.json")
}

/// `metadata.json` of a tar stream, after reading the whole archive.
fn tar_metadata<R: Read>(reader: R) -> Result<Vec<u8>, BoxError> {
    let corrupt = |e: io::Error| BoxError::NotABox(format!("the tar archive is corrupt: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut metadata = None;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let wanted = metadata.is_none()
            && entry.header().entry_type().is_file()
            && entry.path().is_ok_and(|p| is_metadata_name(&p));
        if wanted {
            metadata = Some(read_capped(&mut entry).map_err(corrupt)?);
        }
    }
    // The end-of-archive blocks may come before the end of the gzip
    // stream; reading on makes the decoder check the stream's CRC.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(corrupt)?;
    metadata.ok_or_else(missing_metadata)
}

/// `metadata.json` of a zip file, read through its central directory.
fn zip_metadata(file: File) -> Result<Vec<u8>, BoxError> {
    let corrupt = |e: zip::result::ZipError| {
        BoxError::NotABox(format!("the zip archive is corrupt or unsupported: {e}"))
    };
    let mut archive = zip::ZipArchive::new(file).map_err(corrupt)?;
    let index = ["metadata.json", "./metadata.json"]
        .iter()
        .find_map(|name| archive.index_for_name(name))
        .ok_or_else(missing_metadata)?;
    let mut entry = archive.by_index(index).map_err(corrupt)?;
    read_capped(&mut entry).map_err(|e| BoxError::NotABox(format!("metadata.json: {e}")))
}

fn read_capped(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    reader.take(METADATA_LIMIT + 1).read_to_end(&mut data)?;
    if data.len() as u64 > METADATA_LIMIT {
        return Err(io::Error::other(format!(
            "metadata.json is larger than {METADATA_LIMIT} bytes"
        )));
    }
    Ok(data)
}

fn missing_metadata() -> BoxError {
    BoxError::NotABox(
        "it has no metadata.json at its top level; vagrant needs one naming the provider, e.g. {\"provider\": \"libvirt\"}".into(),
    )
}

/// The `provider` string of `metadata.json`.
fn metadata_provider(data: &[u8]) -> Result<String, BoxError> {
    let value: serde_json::Value = serde_json::from_slice(data)
        .map_err(|e| BoxError::NotABox(format!("metadata.json is not valid JSON: {e}")))?;
    value
        .get("provider")
        .and_then(|p| p.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            BoxError::NotABox(
                "metadata.json has no \"provider\" string; vagrant refuses such a box".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    const METADATA: &[u8] = br#"{"provider":"libvirt","format":"qcow2"}"#;

    #[test]
    fn tar_and_tar_gz_boxes() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_bytes(&[("box.img", b"disk"), ("metadata.json", METADATA)]);
        let plain = write(dir.path(), "a.box", &tar);
        assert_eq!(inspect(&plain, "libvirt").unwrap().format, BoxFormat::Tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = write(dir.path(), "b.box", &gz.finish().unwrap());
        assert_eq!(inspect(&gz, "libvirt").unwrap().format, BoxFormat::TarGz);
        assert!(matches!(
            inspect(&gz, "virtualbox"),
            Err(BoxError::ProviderMismatch { .. })
        ));
    }

    #[test]
    fn zip_boxes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.box");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("metadata.json", options).unwrap();
        zip.write_all(METADATA).unwrap();
        zip.finish().unwrap();
        assert_eq!(inspect(&path, "libvirt").unwrap().format, BoxFormat::Zip);
    }

    #[test]
    fn broken_boxes_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let text = write(dir.path(), "t.box", b"just text, not an archive");
        let err = inspect(&text, "libvirt").unwrap_err().to_string();
        assert!(err.contains("not a tar, tar.gz or zip"), "{err}");
        let bare = write(dir.path(), "n.box", &tar_bytes(&[("box.img", b"x")]));
        let err = inspect(&bare, "libvirt").unwrap_err().to_string();
        assert!(err.contains("no metadata.json"), "{err}");
        let tar = tar_bytes(&[("metadata.json", METADATA), ("box.img", &[7u8; 4096])]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let cut = write(dir.path(), "cut.box", &gz[..gz.len() - 6]);
        let err = inspect(&cut, "libvirt").unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        let no_provider = tar_bytes(&[("metadata.json", b"{\"format\":\"qcow2\"}")]);
        let no_provider = write(dir.path(), "p.box", &no_provider);
        let err = inspect(&no_provider, "libvirt").unwrap_err().to_string();
        assert!(err.contains("\"provider\""), "{err}");
    }
}
