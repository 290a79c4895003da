//! AFL++ target: `bess::fuzz_targets::deb_package`.
fn main() {
    afl::fuzz!(|data: &[u8]| bess::fuzz_targets::deb_package(data));
}
