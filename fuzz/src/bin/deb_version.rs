//! AFL++ target: `bess::fuzz_targets::deb_version`.
fn main() {
    afl::fuzz!(|data: &[u8]| bess::fuzz_targets::deb_version(data));
}
