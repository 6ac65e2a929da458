//! RFC 8785 (JCS) canonical JSON and the RFC 9162 leaf hash of a recorded event.
//!
//! The leaf hash is `SHA-256(0x00 ‖ JCS(event))`, where the event is the recorded event exactly as
//! the API returns it, without its `leaf_hash` field. Because JCS fixes key order, whitespace and
//! number formatting, any party holding the JSON of an event can recompute its leaf hash.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// A leaf hash: SHA-256 over `0x00 ‖ JCS(event)`.
pub type LeafHash = Hash;

/// Returns the RFC 8785 canonical encoding of `value`.
///
/// Fails only for values JSON cannot hold (a map with non-string keys, a non-finite float).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(value)
}

/// Returns the leaf hash of an event whose canonical encoding is `canonical`.
pub fn leaf_hash(canonical: &[u8]) -> LeafHash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(canonical);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn jcs(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        String::from_utf8(canonical_json(&value).unwrap()).unwrap()
    }

    /// The worked examples of RFC 8785 §3.2.2 (whitespace and key order) and §3.2.3 (sorting by
    /// UTF-16 code units), and number forms of Appendix B.
    #[test]
    fn matches_rfc_8785_examples() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        assert_eq!(
            jcs(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        let sorting = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        assert_eq!(
            jcs(sorting),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        for (number, expected) in [
            ("0", "0"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("9007199254740992", "9007199254740992"),
        ] {
            assert_eq!(jcs(number), expected, "number {number}");
        }
    }

    #[test]
    fn leaf_hash_prefixes_the_leaf_byte() {
        // SHA-256 of the single byte 0x00: the RFC 9162 hash of an empty leaf.
        let empty = leaf_hash(b"");
        assert_eq!(
            crate::merkle::to_hex(&empty),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z€ 😀\"\\\\]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Writes `value` as JSON with its object keys in reverse order and extra whitespace.
    fn scrambled(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let parts: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| {
                        format!(
                            "\n  {} :\t{}",
                            serde_json::to_string(k).unwrap(),
                            scrambled(v)
                        )
                    })
                    .collect();
                format!("{{ {} }}", parts.join(" ,"))
            }
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(scrambled).collect();
                format!("[ {} ]", parts.join(" , "))
            }
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn leaf_hash_ignores_key_order_and_whitespace(value in arbitrary_json()) {
            let plain = canonical_json(&value).unwrap();
            let reparsed: Value = serde_json::from_str(&scrambled(&value)).unwrap();
            prop_assert_eq!(leaf_hash(&plain), leaf_hash(&canonical_json(&reparsed).unwrap()));
        }

        #[test]
        fn canonical_form_is_a_fixed_point(value in arbitrary_json()) {
            let once = canonical_json(&value).unwrap();
            let again: Value = serde_json::from_slice(&once).unwrap();
            prop_assert_eq!(once, canonical_json(&again).unwrap());
        }
    }
}
