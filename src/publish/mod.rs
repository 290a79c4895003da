//! Publication: the files under `public/<channel>/` that apt reads.
//!
//! `pool/` holds hard links to pool objects at the paths of Debian's archive
//! layout; `dists/<dist>` points to a complete, signed generation of
//! indices (see `generation`), switched atomically.

mod build;
mod checksums;
mod chunks;
mod compress;
mod dist;
mod generation;
mod index;
mod pool_tree;
pub mod release;
pub mod store_manifest;

pub use build::Stanzas;
pub use checksums::MultiHasher;
pub use chunks::{CHUNK_STANZAS, CompressedChunk, Manifest};
pub use compress::{Levels, XzBlock, compress_chunk, gzip_member, verify_chunk, xz_block};
pub use dist::{DistInput, DistOutcome, PublishError, publish_dist, resign_dist, valid_until};
pub use generation::DistTree;
pub use index::{PackagesIndex, split, write_stanza};
pub use pool_tree::{PoolTree, pool_name};
