//! Arbitrary bytes as an event sent to `POST /v1/events`: validation never panics, and for every
//! event it accepts, the appender's hand-assembled canonical body is exactly RFC 8785 JCS of the
//! recorded event, its leaf hash is SHA-256(0x00 ‖ that body), and the body reads back to the
//! same event. JCS itself is idempotent on any JSON.
#![no_main]

use chronicle_domain::{NewEvent, Place, PreparedEvent, RecordedEvent, canonical_json, leaf_hash};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use uuid::Uuid;

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    if let Ok(canonical) = canonical_json(&value) {
        let reparsed: Value = serde_json::from_slice(&canonical).expect("JCS output is JSON");
        assert_eq!(
            canonical_json(&reparsed).unwrap(),
            canonical,
            "JCS is not idempotent"
        );
    }
    let Ok(event) = NewEvent::from_json(&value, Uuid::nil()) else {
        return;
    };
    let workspace_seq = event.workspace.as_ref().map(|_| 7);
    let place = Place {
        position: 42,
        stream_version: 3,
        workspace_seq,
    };
    let (body, hash) = PreparedEvent::new(event, "tok_fuzz").seal(place, "2026-11-24T03:50:26.131Z");
    let recorded = RecordedEvent::from_stored(&body, &hash).expect("a sealed body reads back");
    let mut without_hash = serde_json::to_value(&recorded).unwrap();
    without_hash.as_object_mut().unwrap().remove("leaf_hash");
    let jcs = canonical_json(&without_hash).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&jcs),
        String::from_utf8_lossy(&body),
        "the sealed body is not the JCS of the recorded event"
    );
    assert_eq!(leaf_hash(&body), hash, "the leaf hash is not over the body");
});
