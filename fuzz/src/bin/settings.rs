//! AFL++ target: `bess::fuzz_targets::settings`.
fn main() {
    afl::fuzz!(|data: &[u8]| bess::fuzz_targets::settings(data));
}
