//! AFL++ target: `bess::fuzz_targets::deb_control`.
fn main() {
    afl::fuzz!(|data: &[u8]| bess::fuzz_targets::deb_control(data));
}
