//! Checkpoints, the public key and proofs, checked with code written here from the RFCs and the
//! C2SP texts, not with Chronicle's own verifier.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chronicle_domain::merkle;
use chronicle_store::conformance;
use ed25519_dalek::{Signature, VerifyingKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{TestApp, registered, renamed};

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// RFC 9162 §2.1.1, written out: MTH of the leaf hashes.
fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let split = n.next_power_of_two() / 2;
            sha256(&[
                &[1],
                &tree_hash(&leaves[..split]),
                &tree_hash(&leaves[split..]),
            ])
        }
    }
}

/// The leaf hash of an event as the API returned it: SHA-256(0x00 ‖ JCS(event − leaf_hash)).
fn leaf_of(event: &Value) -> [u8; 32] {
    let mut body = event.clone();
    body.as_object_mut().unwrap().remove("leaf_hash");
    sha256(&[&[0], &serde_json_canonicalizer::to_vec(&body).unwrap()])
}

fn unhex(text: &str) -> [u8; 32] {
    merkle::from_hex(text).unwrap()
}

/// Opens a C2SP signed note with a verifier key `name+keyid+base64(0x01‖key)`, by hand.
fn open_note(note: &str, verifier_key: &str) -> (String, u64, [u8; 32]) {
    // The base64 key data may itself hold '+': the name and key id come first.
    let parts: Vec<&str> = verifier_key.trim().splitn(3, '+').collect();
    assert_eq!(parts.len(), 3, "verifier key {verifier_key}");
    let (name, key_id_hex, key_data) = (parts[0], parts[1], STANDARD.decode(parts[2]).unwrap());
    assert_eq!(key_data[0], 0x01, "algorithm byte of Ed25519");
    let public: [u8; 32] = key_data[1..].try_into().unwrap();
    let key_id = &sha256(&[name.as_bytes(), b"\n", &key_data])[..4];
    assert_eq!(
        key_id_hex,
        key_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    let (body, signatures) = note
        .split_once("\n\n")
        .expect("a blank line before the signatures");
    let body = format!("{body}\n");
    let line = signatures.lines().next().unwrap();
    let rest = line
        .strip_prefix("\u{2014} ")
        .expect("an em dash and a space open a signature line");
    let (signer, encoded) = rest.split_once(' ').unwrap();
    assert_eq!(signer, name);
    let blob = STANDARD.decode(encoded).unwrap();
    assert_eq!(&blob[..4], key_id);
    let signature = Signature::from_slice(&blob[4..]).unwrap();
    VerifyingKey::from_bytes(&public)
        .unwrap()
        .verify_strict(body.as_bytes(), &signature)
        .unwrap();

    let lines: Vec<&str> = body.lines().collect();
    let root: [u8; 32] = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    (lines[0].to_owned(), lines[1].parse().unwrap(), root)
}

async fn text(app: &TestApp, path: &str) -> String {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

async fn app_with_history(events: usize) -> TestApp {
    let app = TestApp::spawn().await;
    let mut sent = 0;
    let mut batch = 1;
    while sent < events {
        let size = batch.min(events - sent);
        let batch_events: Vec<Value> = (0..size)
            .map(|i| {
                let workspace = if (sent + i) % 3 == 0 {
                    "ws_globex"
                } else {
                    "ws_acme"
                };
                if (sent + i) % 7 == 0 {
                    registered(workspace, &format!("mch_{}", sent + i))
                } else {
                    renamed(
                        workspace,
                        &format!("mch_{}", (sent + i) % 5),
                        &format!("web-{}", sent + i),
                    )
                }
            })
            .collect();
        let (status, body) = app.append(batch_events).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        sent += size;
        batch = batch % 13 + 1;
    }
    app
}

conformance! {
#[tokio::test]
async fn checkpoints_verify_with_an_independent_ed25519_check() {
    let app = app_with_history(40).await;
    let key = text(&app, "/v1/public-key").await;
    let events = app.read_all().await;
    let leaves: Vec<[u8; 32]> = events.iter().map(leaf_of).collect();

    let (origin, size, root) = open_note(&text(&app, "/v1/checkpoint").await, &key);
    assert_eq!((origin.as_str(), size), ("chronicle.test", 40));
    assert_eq!(root, tree_hash(&leaves));

    for workspace in ["ws_acme", "ws_globex"] {
        let mine: Vec<[u8; 32]> = events
            .iter()
            .filter(|e| e["workspace"] == workspace)
            .map(leaf_of)
            .collect();
        let seqs: Vec<u64> = events
            .iter()
            .filter(|e| e["workspace"] == workspace)
            .map(|e| e["workspace_seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=mine.len() as u64).collect::<Vec<_>>());
        let note = text(&app, &format!("/v1/workspaces/{workspace}/checkpoint")).await;
        let (origin, size, root) = open_note(&note, &key);
        assert_eq!(origin, format!("chronicle.test/workspaces/{workspace}"));
        assert_eq!(size, mine.len() as u64);
        assert_eq!(root, tree_hash(&mine));
    }

    // The same key signs after a restart, and a grown log gets a new checkpoint.
    let mut app = app;
    app.restart().await;
    assert_eq!(text(&app, "/v1/public-key").await, key);
    let (status, _) = app
        .append(vec![renamed("ws_acme", "mch_1", "after-restart")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, size, root) = open_note(&text(&app, "/v1/checkpoint").await, &key);
    let mut grown = leaves.clone();
    grown.push(leaf_of(app.read_all().await.last().unwrap()));
    assert_eq!((size, root), (41, tree_hash(&grown)));
}
}

#[test]
fn every_proof_the_server_gives_verifies_and_tampering_fails() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(app_with_history(150));
    let events = runtime.block_on(app.read_all());
    let leaves: Vec<[u8; 32]> = events.iter().map(leaf_of).collect();
    let n = leaves.len() as u64;

    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    let sizes = (1..=n).prop_flat_map(|size| (Just(size), 0..size, 0..=size));
    runner
        .run(&sizes, |(size, index, old)| {
            let (status, proof) = runtime.block_on(app.get(&format!(
                "/v1/proofs/inclusion?position={}&tree_size={size}",
                index + 1
            )));
            prop_assert_eq!(status, StatusCode::OK);
            let hashes: Vec<[u8; 32]> = proof["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| unhex(h.as_str().unwrap()))
                .collect();
            let root = tree_hash(&leaves[..size as usize]);
            prop_assert_eq!(proof["leaf_index"].as_u64(), Some(index));
            prop_assert_eq!(
                unhex(proof["leaf_hash"].as_str().unwrap()),
                leaves[index as usize]
            );
            prop_assert_eq!(
                &hashes,
                &merkle::inclusion_proof(&leaves[..size as usize], index)
            );
            prop_assert!(
                merkle::verify_inclusion(&leaves[index as usize], index, size, &hashes, &root)
                    .is_ok()
            );
            for (which, _) in hashes.iter().enumerate() {
                let mut flipped = hashes.clone();
                flipped[which][which % 32] ^= 0x01;
                prop_assert!(
                    merkle::verify_inclusion(&leaves[index as usize], index, size, &flipped, &root)
                        .is_err()
                );
            }
            if size > 1 {
                let wrong = if index + 1 < size {
                    index + 1
                } else {
                    index - 1
                };
                prop_assert!(
                    merkle::verify_inclusion(&leaves[index as usize], wrong, size, &hashes, &root)
                        .is_err()
                );
            }

            let (status, proof) =
                runtime.block_on(app.get(&format!("/v1/proofs/consistency?from={old}&to={size}")));
            prop_assert_eq!(status, StatusCode::OK);
            let hashes: Vec<[u8; 32]> = proof["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| unhex(h.as_str().unwrap()))
                .collect();
            let old_root = tree_hash(&leaves[..old as usize]);
            prop_assert!(merkle::verify_consistency(old, size, &old_root, &root, &hashes).is_ok());
            if !hashes.is_empty() {
                let mut flipped = hashes.clone();
                flipped[0][31] ^= 0x80;
                prop_assert!(
                    merkle::verify_consistency(old, size, &old_root, &root, &flipped).is_err()
                );
                let mut wrong_old_root = old_root;
                wrong_old_root[0] ^= 0x01;
                prop_assert!(
                    merkle::verify_consistency(old, size, &wrong_old_root, &root, &hashes).is_err()
                );
            }
            Ok(())
        })
        .unwrap();

    // The workspace tree answers proofs by workspace_seq against its own checkpoint's root.
    let acme: Vec<[u8; 32]> = events
        .iter()
        .filter(|e| e["workspace"] == "ws_acme")
        .map(leaf_of)
        .collect();
    let size = acme.len() as u64;
    for seq in [1, size / 2, size] {
        let (status, proof) = runtime.block_on(app.get(&format!(
            "/v1/workspaces/ws_acme/proofs/inclusion?seq={seq}"
        )));
        assert_eq!(status, StatusCode::OK, "{proof}");
        assert_eq!(proof["tree_size"], size);
        let hashes: Vec<[u8; 32]> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| unhex(h.as_str().unwrap()))
            .collect();
        merkle::verify_inclusion(
            &acme[seq as usize - 1],
            seq - 1,
            size,
            &hashes,
            &tree_hash(&acme),
        )
        .unwrap();
    }
    let (status, proof) = runtime.block_on(app.get(&format!(
        "/v1/workspaces/ws_acme/proofs/consistency?from=3&to={size}"
    )));
    assert_eq!(status, StatusCode::OK);
    let hashes: Vec<[u8; 32]> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    merkle::verify_consistency(3, size, &tree_hash(&acme[..3]), &tree_hash(&acme), &hashes)
        .unwrap();
}

conformance! {
#[tokio::test]
async fn proofs_past_the_tree_are_clear_400s() {
    let app = app_with_history(10).await;
    for (path, parameter) in [
        ("/v1/proofs/inclusion?position=11&tree_size=10", None),
        ("/v1/proofs/inclusion?position=3&tree_size=11", None),
        ("/v1/proofs/inclusion?position=0", Some("position")),
        ("/v1/proofs/inclusion", Some("position")),
        ("/v1/proofs/consistency?from=5&to=11", None),
        ("/v1/proofs/consistency?from=6&to=5", None),
        ("/v1/proofs/consistency?from=1", Some("to")),
        ("/v1/workspaces/ws_acme/proofs/inclusion?seq=99", None),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}");
        if let Some(parameter) = parameter {
            assert_eq!(body["error"]["parameter"], parameter, "{path}");
        }
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
}
}
