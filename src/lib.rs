//! bess: an APT repository manager built storage-first.
//!
//! The binary in `main.rs` is a thin shell over this library; the layers
//! below follow `docs/ARCHITECTURE.md`: `deb` and `pool` know nothing of
//! the catalog, `catalog` is the only module with SQL, `publish` renders
//! from the catalog, and `ops` holds the use cases that the CLI and the
//! HTTP API call.

// Unsafe code only where no safe wrapper exists; each module allowed
// below says why at its declaration.
#![deny(unsafe_code)]

pub mod boxes;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod deb;
pub mod disk;
pub mod env;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod ops;
pub mod pool;
pub mod publish;
// The change serials are read through a shared mapping as an atomic
// (memmap2's map is unsafe, and so is viewing mapped bytes as an AtomicU64).
#[allow(unsafe_code)]
pub mod serial;
pub mod serve;
pub mod sign;
#[cfg(test)]
mod test_tools;
