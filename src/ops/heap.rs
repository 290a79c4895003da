//! Keeping a command's memory bounded: the catalog page cache of a walk
//! over every row, and memory freed by one phase of a command handed back
//! to the system before the next phase makes its own peak.

/// SQLite page cache of a command that reads every row once, in order
/// (publish, check, gc, backup): a few MiB do, and the catalog's default
/// 64 MiB would only add to the command's peak.
pub const WALK_PAGE_CACHE_KIB: u32 = 4096;

/// Returns the allocator's free pages to the kernel. glibc keeps what a
/// phase freed in its per-thread arenas, so a phase that ran on many
/// threads (ingest reads packages in parallel) leaves its peak as resident
/// memory under the next phase's: an ingest of 250,000 packages that then
/// published peaked at the sum of both. `malloc_trim` releases the free
/// pages of every arena, not just the top of the main heap.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes the arena locks itself and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
