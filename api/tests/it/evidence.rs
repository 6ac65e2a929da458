//! Exports and evidence bundles over real HTTP: a bundle from a real server verifies offline and
//! every kind of tampering is named; exports equal the search hits in every format; each export
//! is recorded in the log; a token without `export` is refused.

use chronicle_store::conformance;
use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use arrow::array::{Array, StringArray, UInt64Array};
use chronicle_evidence::{BundleReport, verify_bundle};
use chronicle_store::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, open_signed_checkpoint};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestApp, registered, renamed};

/// Appends `events` as one batch (one group commit, so one `recorded_at`).
async fn append(app: &TestApp, events: Vec<Value>) -> Value {
    let (status, answer) = app.append(events).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Three batches in ws_acme with ws_globex events between them; answers the log.
async fn history(app: &TestApp) -> Vec<Value> {
    append(
        app,
        vec![
            registered("ws_acme", "mch_1"),
            registered("ws_acme", "mch_2"),
        ],
    )
    .await;
    append(app, vec![registered("ws_globex", "mch_7")]).await;
    append(
        app,
        vec![
            renamed("ws_acme", "mch_1", "web,\"01\"\nsecond line"),
            renamed("ws_acme", "mch_2", "db-01"),
            registered("ws_globex", "mch_8"),
        ],
    )
    .await;
    append(app, vec![renamed("ws_acme", "mch_1", "web-03")]).await;
    app.read_all().await
}

async fn public_key(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/v1/public-key"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    response.text().await.unwrap().trim().to_owned()
}

async fn bundle(app: &TestApp, workspace: &str, from: &str, to: &str) -> Vec<u8> {
    let response = app
        .client
        .post(app.url(&format!("/v1/workspaces/{workspace}/evidence")))
        .bearer_auth(TOKEN)
        .json(&json!({"from": from, "to": to}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    response.bytes().await.unwrap().to_vec()
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (entry.name().unwrap().into_owned(), content)
        })
        .collect()
}

fn rezip(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in files {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Verifies a changed copy of the bundle and answers the report, which must fail.
fn tampered(
    files: &BTreeMap<String, Vec<u8>>,
    key: &str,
    change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>),
) -> BundleReport {
    let mut files = files.clone();
    change(&mut files);
    let report = verify_bundle(&rezip(&files), Some(key));
    assert!(!report.is_valid(), "a tampered bundle verified:\n{report}");
    report
}

fn failures(report: &BundleReport) -> String {
    report
        .failures()
        .map(|check| check.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn lines(ndjson: &[u8]) -> Vec<Value> {
    std::str::from_utf8(ndjson)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn write_lines(events: &[Value]) -> Vec<u8> {
    events
        .iter()
        .map(|event| format!("{event}\n"))
        .collect::<String>()
        .into_bytes()
}

conformance! {
#[tokio::test]
async fn a_bundle_from_a_real_server_verifies_and_each_tampering_is_named() {
    let app = TestApp::spawn().await;
    let log = history(&app).await;
    let acme: Vec<&Value> = log.iter().filter(|e| e["workspace"] == "ws_acme").collect();
    assert_eq!(acme.len(), 5);
    // The range holds the second ws_acme batch: seq 3 and 4, between seq 2 and seq 5.
    let from = acme[2]["recorded_at"].as_str().unwrap();
    let to = acme[4]["recorded_at"].as_str().unwrap();
    let key = public_key(&app).await;
    let bytes = bundle(&app, "ws_acme", from, to).await;

    let report = verify_bundle(&bytes, Some(&key));
    assert!(report.is_valid(), "{report}");
    let text = report.to_string();
    assert!(text.contains("the range is complete"), "{text}");

    let files = unzip(&bytes);
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "README.txt",
            "checkpoint",
            "events.ndjson",
            "events.parquet",
            "manifest.json",
            "proofs.json",
            "public-key"
        ]
    );
    let events = lines(&files["events.ndjson"]);
    assert_eq!(
        events,
        vec![acme[2].clone(), acme[3].clone()],
        "exactly as the API returns them"
    );
    let proofs: Value = serde_json::from_slice(&files["proofs.json"]).unwrap();
    assert_eq!(proofs["before"]["event"], *acme[1]);
    assert_eq!(proofs["after"]["event"], *acme[4]);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["events"], 2);
    assert_eq!(manifest["tree_size"], 5);
    let verifier = NoteVerifier::parse(&key).unwrap();
    let checkpoint = open_signed_checkpoint(
        std::str::from_utf8(&files["checkpoint"]).unwrap(),
        &verifier,
    )
    .unwrap();
    assert_eq!(checkpoint.size, 5);

    // The Parquet file, read with the arrow reader, holds the same rows.
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(
        files["events.parquet"].clone(),
    ))
    .unwrap()
    .build()
    .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let positions = batch.column_by_name("position").unwrap();
        let positions = positions.as_any().downcast_ref::<UInt64Array>().unwrap();
        let data = batch.column_by_name("data").unwrap();
        let data = data.as_any().downcast_ref::<StringArray>().unwrap();
        for row in 0..batch.num_rows() {
            let data: Value = serde_json::from_str(data.value(row)).unwrap();
            rows.push((positions.value(row), data));
        }
    }
    let expected: Vec<(u64, Value)> = events
        .iter()
        .map(|event| (event["position"].as_u64().unwrap(), event["data"].clone()))
        .collect();
    assert_eq!(rows, expected);

    // One byte changed in events.ndjson.
    let report = tampered(&files, &key, |files| {
        let ndjson = files.get_mut("events.ndjson").unwrap();
        let at = ndjson.windows(5).position(|w| w == b"db-01").unwrap();
        ndjson[at + 4] = b'2';
    });
    let named = failures(&report);
    assert!(
        named.contains("events.ndjson does not match its SHA-256"),
        "{named}"
    );
    assert!(
        named.contains("does not match their leaf hash: line 2"),
        "{named}"
    );

    // A line removed.
    let report = tampered(&files, &key, |files| {
        let mut events = lines(&files["events.ndjson"]);
        events.remove(0);
        files.insert("events.ndjson".into(), write_lines(&events));
    });
    let named = failures(&report);
    assert!(
        named.contains("holds 1 events, the manifest counts 2"),
        "{named}"
    );
    assert!(named.contains("the range is not complete"), "{named}");

    // A line added from another workspace.
    let globex = log.iter().find(|e| e["workspace"] == "ws_globex").unwrap();
    let report = tampered(&files, &key, |files| {
        let mut events = lines(&files["events.ndjson"]);
        events.push(globex.clone());
        files.insert("events.ndjson".into(), write_lines(&events));
    });
    let named = failures(&report);
    assert!(
        named.contains("events of another workspace than ws_acme"),
        "{named}"
    );

    // A proof altered.
    let report = tampered(&files, &key, |files| {
        let mut proofs: Value = serde_json::from_slice(&files["proofs.json"]).unwrap();
        let hash = &mut proofs["proofs"][1]["hashes"][0];
        let altered = hash.as_str().unwrap().replacen(|c: char| c != '0', "0", 1);
        *hash = json!(altered);
        files.insert("proofs.json".into(), proofs.to_string().into_bytes());
    });
    let named = failures(&report);
    assert!(
        named.contains("inclusion proofs that fail: position"),
        "{named}"
    );
    assert!(named.contains("root mismatch"), "{named}");

    // A checkpoint signed by another key, with that key as the bundle's.
    let other = NoteSigner::generate("chronicle.test");
    let report = tampered(&files, &key, |files| {
        let body = Checkpoint {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: checkpoint.root,
        };
        files.insert("checkpoint".into(), other.sign(&body).into_bytes());
        files.insert(
            "public-key".into(),
            format!("{}\n", other.verifier_key()).into_bytes(),
        );
    });
    let named = failures(&report);
    assert!(named.contains("is not the trusted key"), "{named}");
    // …and the same checkpoint signed by another key under the bundle's own key.
    let report = tampered(&files, &key, |files| {
        let body = Checkpoint {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: checkpoint.root,
        };
        files.insert("checkpoint".into(), other.sign(&body).into_bytes());
    });
    assert!(
        failures(&report).contains("signature does not verify"),
        "{report}"
    );

    // The bundle was recorded after it was answered.
    let recorded = app.read_all().await;
    let record = recorded
        .iter()
        .find(|event| event["type"] == "evidence.exported")
        .expect("an evidence.exported event");
    assert_eq!(record["workspace"], "ws_acme");
    assert_eq!(record["data"]["count"], 2);
    assert_eq!(record["data"]["tree_size"], 5);
    assert_eq!(record["data"]["from"], from);
}
}

conformance! {
#[tokio::test]
async fn bundles_at_the_ends_of_the_workspace_and_empty_ranges_verify() {
    let app = TestApp::spawn().await;
    let log = history(&app).await;
    let key = public_key(&app).await;
    let acme: Vec<&Value> = log.iter().filter(|e| e["workspace"] == "ws_acme").collect();
    let last = acme[4]["recorded_at"].as_str().unwrap();
    // Each bundle is recorded in ws_acme as it is answered, so later ranges hold the records.
    for (from, to, count) in [
        (last, "2100-01-01T00:00:00Z", 1),
        ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z", 6),
        ("2000-01-01T00:00:00Z", "2000-01-02T00:00:00Z", 0),
        (last, last, 0),
    ] {
        let bytes = bundle(&app, "ws_acme", from, to).await;
        let report = verify_bundle(&bytes, Some(&key));
        assert!(report.is_valid(), "[{from}, {to}):\n{report}");
        let manifest: Value = serde_json::from_slice(&unzip(&bytes)["manifest.json"]).unwrap();
        assert_eq!(manifest["events"], count, "[{from}, {to})");
    }
}
}

/// Exports through the API with the admin token; answers the status, media type and body.
async fn export(app: &TestApp, parameters: &[(&str, &str)]) -> (StatusCode, String, Vec<u8>) {
    let response = app
        .client
        .get(app.url("/v1/workspaces/ws_acme/audit/export"))
        .query(parameters)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let media = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, media, response.bytes().await.unwrap().to_vec())
}

conformance! {
#[tokio::test]
async fn exports_equal_the_search_hits_in_every_format_and_are_recorded() {
    let app = TestApp::spawn().await;
    history(&app).await;
    let head = app.head().await.to_string();
    let query = "type:machine.renamed";
    let (status, search) = app
        .get(&format!(
            "/v1/workspaces/ws_acme/audit?q={query}&limit=1000&min_position={head}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{search}");
    let hits = search["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 3);

    let (status, media, body) = export(&app, &[("q", query), ("format", "ndjson")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(media, "application/x-ndjson");
    assert_eq!(lines(&body), hits, "the NDJSON export is the search's hits");

    let (status, media, body) = export(&app, &[("q", query), ("format", "csv")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(media.starts_with("text/csv"), "{media}");
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, chronicle_evidence::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), hits.len());
    for (row, hit) in rows.iter().zip(&hits) {
        assert_eq!(row[0], hit["position"].to_string());
        assert_eq!(row[3], *"machine.renamed");
        assert_eq!(
            row[6],
            format!("machine:{}", &hit["stream"].as_str().unwrap()[8..])
        );
        let data: Value = serde_json::from_str(&row[14]).unwrap();
        assert_eq!(
            data, hit["data"],
            "the data column survives commas, quotes and newlines"
        );
    }
    assert!(
        rows.iter()
            .any(|row| row[14].contains("web,\\\"01\\\"\\nsecond line")),
        "the tricky value is among the rows"
    );

    let (status, media, body) = export(&app, &[("q", query), ("format", "parquet")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(media, "application/vnd.apache.parquet");
    let events = chronicle_evidence::read_parquet(bytes::Bytes::from(body)).unwrap();
    let as_json: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(as_json, hits, "the Parquet rows are the search's hits");

    let (status, _, body) = export(&app, &[("q", "\"unclosed"), ("format", "csv")]).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = export(&app, &[("format", "xlsx")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let records: Vec<Value> = app
        .read_all()
        .await
        .into_iter()
        .filter(|event| event["type"] == "audit.exported")
        .collect();
    let formats: Vec<&str> = records
        .iter()
        .map(|event| event["data"]["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["ndjson", "csv", "parquet"]);
    for record in &records {
        assert_eq!(record["data"]["query"], query);
        assert_eq!(record["data"]["count"], 3);
        assert_eq!(record["stream"], "audit-ws_acme");
        assert_eq!(record["actor"]["id"], "admin");
    }
}
}

conformance! {
#[tokio::test]
async fn a_token_without_export_is_refused() {
    let app = TestApp::spawn().await;
    history(&app).await;
    let (read_only, _) = app
        .token(Some("ws_acme"), &["read", "append", "admin"])
        .await;
    let response = app
        .client
        .get(app.url("/v1/workspaces/ws_acme/audit/export?format=csv"))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .client
        .post(app.url("/v1/workspaces/ws_acme/evidence"))
        .bearer_auth(&read_only)
        .json(&json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (exporter, _) = app.token(Some("ws_acme"), &["export"]).await;
    let response = app
        .client
        .post(app.url("/v1/workspaces/ws_acme/evidence"))
        .bearer_auth(&exporter)
        .json(&json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
}

conformance! {
#[tokio::test]
async fn a_checkpoint_signed_by_the_servers_own_key_under_another_origin_fails() {
    let app = TestApp::spawn().await;
    let log = history(&app).await;
    let key = public_key(&app).await;
    let acme: Vec<&Value> = log.iter().filter(|e| e["workspace"] == "ws_acme").collect();
    let from = acme[0]["recorded_at"].as_str().unwrap();
    let files = unzip(&bundle(&app, "ws_acme", from, "2100-01-01T00:00:00Z").await);
    let verifier = NoteVerifier::parse(&key).unwrap();
    let checkpoint =
        open_signed_checkpoint(std::str::from_utf8(&files["checkpoint"]).unwrap(), &verifier)
            .unwrap();
    assert_eq!(checkpoint.origin, "chronicle.test/workspaces/ws_acme");
    // The server's own key, as an insider holding it (or a signing bug) would use it.
    let (server_key, _) = chronicle_store::checkpoint::load_or_create_key_file(
        &app.data_directory().join("signing-key"),
        "chronicle.test",
    )
    .unwrap();
    for origin in [
        "chronicle.test/workspaces/ws_globex",
        "chronicle.test",
        "chronicle.test/workspaces/ws_acme/extra",
    ] {
        let report = tampered(&files, &key, |files| {
            let body = Checkpoint {
                origin: origin.into(),
                size: checkpoint.size,
                root: checkpoint.root,
            };
            files.insert("checkpoint".into(), server_key.sign(&body).into_bytes());
        });
        let named = failures(&report);
        assert!(
            named.contains(&format!("the checkpoint is of `{origin}`"))
                && named.contains("`chronicle.test/workspaces/ws_acme` expected"),
            "{origin}: {named}"
        );
    }
}
}
