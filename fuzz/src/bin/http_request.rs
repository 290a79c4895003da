//! AFL++ target: `bess::fuzz_targets::http_request`.
fn main() {
    afl::fuzz!(|data: &[u8]| bess::fuzz_targets::http_request(data));
}
