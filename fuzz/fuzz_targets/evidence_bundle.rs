//! Arbitrary bytes as an evidence bundle handed to `chronicle verify BUNDLE`: the offline
//! verifier reports on anything, zip or not, and never panics or hangs. (A panic it catches
//! itself still aborts here: libFuzzer's panic hook sees it first.)
#![no_main]

use chronicle_evidence::verify_bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let report = verify_bundle(bytes, None);
    assert!(
        report.is_valid() || report.failures().all(|check| !check.message.is_empty()),
        "a failed check without a message"
    );
});
