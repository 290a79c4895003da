//! AFL++ target: `bess::fuzz_targets::box_archive`.
fn main() {
    afl::fuzz!(|data: &[u8]| bess::fuzz_targets::box_archive(data));
}
