//! Arbitrary text as an audit search query (`?q=`): the parser answers a query or an error that
//! points inside the text, and never panics.
#![no_main]

use chronicle_search::AuditQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Err(error) = AuditQuery::parse(text) {
        assert!(
            error.position <= text.chars().count(),
            "the error points past the text: {error} in {text:?}"
        );
        assert!(!error.to_string().is_empty(), "an empty error for {text:?}");
    }
});
