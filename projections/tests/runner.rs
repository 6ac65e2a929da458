//! The runner and rebuild against a real SQLite file: a failed batch resumes without skipping
//! or repeating an event, and a rebuild lands exactly on the fold of the log.

use std::collections::BTreeMap;

use chronicle_domain::models::activity::{ActivityFeed, activity_key, is_activity};
use chronicle_domain::models::billing::BillingModel;
use chronicle_domain::models::machines::Machines;
use chronicle_domain::models::members::Members;
use chronicle_domain::models::runs::Runs;
use chronicle_domain::models::schedules::Schedules;
use chronicle_domain::models::sessions::Sessions;
use chronicle_domain::models::{ReadModel, fold};
use chronicle_domain::{NewEvent, PreparedEvent, RecordedEvent};
use chronicle_fixtures::{Scale, history};
use chronicle_projections::{Model, Projections, ProjectionsConfig};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig};
use serde_json::Value;
use sqlx::{Connection, Row, SqliteConnection};

const BATCH: u32 = 300;

async fn filled_store(directory: &tempfile::TempDir) -> (Store, Vec<RecordedEvent>) {
    let database = directory.path().join("chronicle.db");
    let (signer, _) = load_or_create_key_file(&directory.path().join("key"), "test").unwrap();
    let store = Store::open(StoreConfig::new(database, signer))
        .await
        .unwrap();
    for chunk in history(11, Scale::small()).chunks(500) {
        let batch: Vec<PreparedEvent> = chunk
            .iter()
            .map(|value| {
                PreparedEvent::new(NewEvent::from_json(value, uuid::Uuid::now_v7()).unwrap())
            })
            .collect();
        store.append(batch).await.unwrap();
    }
    let events = store.read_all(0, u32::MAX).await.unwrap();
    (store, events)
}

async fn table(connection: &mut SqliteConnection, model: &str) -> BTreeMap<String, Value> {
    sqlx::query(&format!("SELECT key, doc FROM {model}"))
        .fetch_all(connection)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let doc: String = row.get(1);
            (row.get(0), serde_json::from_str(&doc).unwrap())
        })
        .collect()
}

fn folded<M: ReadModel>(events: &[RecordedEvent]) -> BTreeMap<String, Value> {
    fold::<M>(events)
        .into_iter()
        .map(|(key, row)| (key, serde_json::to_value(row).unwrap()))
        .collect()
}

/// Every table equals the fold of `events`, done here independently of the runner.
async fn assert_tables_equal_fold(connection: &mut SqliteConnection, events: &[RecordedEvent]) {
    let expected = [
        ("machines", folded::<Machines>(events)),
        ("sessions", folded::<Sessions>(events)),
        ("schedules", folded::<Schedules>(events)),
        ("runs", folded::<Runs>(events)),
        ("members", folded::<Members>(events)),
        ("billing", folded::<BillingModel>(events)),
        ("activity", folded::<ActivityFeed>(events)),
    ];
    for (model, rows) in expected {
        assert!(!rows.is_empty() || events.is_empty(), "{model} is empty");
        assert!(
            table(connection, model).await == rows,
            "{model} differs from the fold"
        );
    }
}

#[tokio::test]
async fn a_failed_batch_resumes_without_skipping_or_repeating_and_a_rebuild_matches_the_fold() {
    let directory = tempfile::tempdir().unwrap();
    let (store, events) = filled_store(&directory).await;
    let config = ProjectionsConfig {
        batch_size: BATCH,
        ..ProjectionsConfig::default()
    };
    let projections = Projections::open(store.clone(), config).await.unwrap();
    let mut connection = SqliteConnection::connect(&format!(
        "sqlite://{}",
        directory.path().join("chronicle.db").display()
    ))
    .await
    .unwrap();

    // A trigger makes the batch holding one activity event in the middle of the log fail.
    let doomed = events
        .iter()
        .find(|event| event.position > 1_000 && is_activity(&event.event_type))
        .unwrap()
        .position;
    sqlx::query(&format!(
        "CREATE TRIGGER doomed BEFORE INSERT ON activity WHEN NEW.key = '{}' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        activity_key(doomed)
    ))
    .execute(&mut connection)
    .await
    .unwrap();
    assert!(projections.catch_up().await.is_err());
    let stopped = projections.positions();
    let reached = stopped[0];
    assert!(stopped.iter().all(|&position| position == reached));
    assert!(reached < doomed && doomed <= reached + u64::from(BATCH));
    assert_tables_equal_fold(&mut connection, &events[..reached as usize]).await;

    sqlx::query("DROP TRIGGER doomed")
        .execute(&mut connection)
        .await
        .unwrap();
    projections.catch_up().await.unwrap();
    let head = store.head().position;
    assert_eq!(projections.positions(), [head; Model::ALL.len()]);
    assert_tables_equal_fold(&mut connection, &events).await;

    // Rebuild twice (the second swaps index names back) and land on the same rows.
    for _ in 0..2 {
        let mut seen = 0;
        let position = projections
            .rebuild(&Model::ALL, |applied| seen = applied)
            .await
            .unwrap();
        assert_eq!(position, head);
        assert_eq!(seen, head);
        assert_tables_equal_fold(&mut connection, &events).await;
    }
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%\\_\\_b' ESCAPE '\\'",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(indexes, 0, "two rebuilds give the indexes back their names");
    store.shutdown().await;
}
