//! Publication: the files under `public/<channel>/` that apt reads.
//!
//! For now this is the pool tree of each channel: hard links to pool
//! objects at the paths Debian's archive layout prescribes.

mod pool_tree;

pub use pool_tree::{PoolTree, pool_name};
mod compress;
mod index;
mod release;
