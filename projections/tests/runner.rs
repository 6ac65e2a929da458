//! The runner and rebuild against a real SQLite file and a real PostgreSQL database (the
//! conformance suite runs each test on both): a failed batch resumes without skipping or
//! repeating an event, a rebuild lands exactly on the fold of the log, and on PostgreSQL two
//! stores and two runners on one database (as two API nodes) stay exact.

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
use chronicle_store::testing::BackendKind;
use chronicle_store::{Access, Backend, Dialect, Store, StoreConfig, conformance};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

const BATCH: u32 = 300;

async fn open_store(directory: &tempfile::TempDir, backend: Backend) -> Store {
    let (signer, _) = load_or_create_key_file(&directory.path().join("key"), "test").unwrap();
    Store::open(StoreConfig::with_backend(backend, signer))
        .await
        .unwrap()
}

async fn filled_store(directory: &tempfile::TempDir) -> (Store, Vec<RecordedEvent>) {
    let backend = BackendKind::current().fresh(directory.path()).await;
    let store = open_store(directory, backend).await;
    for chunk in history(11, Scale::small()).chunks(500) {
        let batch: Vec<PreparedEvent> = chunk
            .iter()
            .map(|value| {
                PreparedEvent::new(
                    NewEvent::from_json(value, uuid::Uuid::now_v7()).unwrap(),
                    "test",
                )
            })
            .collect();
        store.append(batch).await.unwrap();
    }
    let events = store.read_all(0, u32::MAX).await.unwrap();
    (store, events)
}

async fn table(connection: &mut AnyConnection, model: &str) -> BTreeMap<String, Value> {
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
async fn assert_tables_equal_fold(connection: &mut AnyConnection, events: &[RecordedEvent]) {
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

/// Makes inserting the activity row of `position` fail.
async fn doom(connection: &mut AnyConnection, dialect: Dialect, position: u64) {
    let key = activity_key(position);
    let statements = match dialect {
        Dialect::Sqlite => vec![format!(
            "CREATE TRIGGER doomed BEFORE INSERT ON activity WHEN NEW.key = '{key}' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )],
        Dialect::Postgres => vec![
            format!(
                "CREATE FUNCTION doomed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.key = '{key}' THEN RAISE EXCEPTION 'injected failure'; END IF; \
                 RETURN NEW; END $$"
            ),
            "CREATE TRIGGER doomed BEFORE INSERT ON activity FOR EACH ROW EXECUTE FUNCTION doomed()"
                .to_owned(),
        ],
    };
    for statement in statements {
        sqlx::query(&statement)
            .execute(&mut *connection)
            .await
            .unwrap();
    }
}

async fn undoom(connection: &mut AnyConnection, dialect: Dialect) {
    let statement = match dialect {
        Dialect::Sqlite => "DROP TRIGGER doomed",
        Dialect::Postgres => "DROP TRIGGER doomed ON activity",
    };
    sqlx::query(statement).execute(connection).await.unwrap();
}

conformance! {
#[tokio::test]
async fn a_failed_batch_resumes_without_skipping_or_repeating_and_a_rebuild_matches_the_fold() {
    let directory = tempfile::tempdir().unwrap();
    let (store, events) = filled_store(&directory).await;
    let config = ProjectionsConfig {
        batch_size: BATCH,
        rebuild_batch_size: BATCH,
        ..ProjectionsConfig::default()
    };
    let projections = Projections::open(store.clone(), config).await.unwrap();
    let dialect = store.backend().dialect();
    let mut connection = store.backend().connect(Access::ReadWrite).await.unwrap();

    // A trigger makes the batch holding one activity event in the middle of the log fail.
    let doomed = events
        .iter()
        .find(|event| event.position > 1_000 && is_activity(&event.event_type))
        .unwrap()
        .position;
    doom(&mut connection, dialect, doomed).await;
    assert!(projections.catch_up().await.is_err());
    let stopped = projections.positions();
    let reached = stopped[0];
    assert!(stopped.iter().all(|&position| position == reached));
    assert!(reached < doomed && doomed <= reached + u64::from(BATCH));
    assert_tables_equal_fold(&mut connection, &events[..reached as usize]).await;

    undoom(&mut connection, dialect).await;
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
    if dialect == Dialect::Sqlite {
        let indexes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%\\_\\_b' ESCAPE '\\'",
        )
        .fetch_one(&mut connection)
        .await
        .unwrap();
        assert_eq!(indexes, 0, "two rebuilds give the indexes back their names");
    }
    store.shutdown().await;
}
}

/// Two stores on one PostgreSQL database stand for two API nodes: producers race on both, with
/// retries; positions stay 1..N with no gap or duplicate, a reader following one node never
/// skips an event, both nodes read the same log, and the two runners together keep every
/// read model equal to the fold of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_postgres_database_stay_gap_free_and_project_exactly() {
    const PRODUCERS: usize = 12;
    let directory = tempfile::tempdir().unwrap();
    let database = BackendKind::Postgres.fresh(directory.path()).await;
    let nodes = [
        open_store(&directory, database.clone()).await,
        open_store(&directory, database).await,
    ];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut runners = Vec::new();
    let mut projections = Vec::new();
    for node in &nodes {
        let config = ProjectionsConfig {
            batch_size: BATCH,
            rebuild_batch_size: BATCH,
            ..ProjectionsConfig::default()
        };
        let node_projections = Projections::open(node.clone(), config).await.unwrap();
        runners.push(tokio::spawn(node_projections.clone().run(stopped.clone())));
        projections.push(node_projections);
    }

    let events: Vec<Value> = history(12, Scale::small());
    let total = events.len() as u64;
    // The follower reads node 1 while the producers write to both.
    let follower = {
        let node = nodes[1].clone();
        tokio::spawn(async move {
            let mut head = node.subscribe_head();
            let mut after = 0;
            while after < total {
                let page = node.read_all(after, 700).await.unwrap();
                for event in &page {
                    assert_eq!(
                        event.position,
                        after + 1,
                        "the follower skipped or repeated"
                    );
                    after = event.position;
                }
                if page.is_empty() {
                    head.changed().await.unwrap();
                }
            }
            after
        })
    };
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let mine: Vec<Value> = events
            .iter()
            .skip(producer)
            .step_by(PRODUCERS)
            .cloned()
            .collect();
        let nodes = nodes.clone();
        producers.push(tokio::spawn(async move {
            for (index, batch) in mine.chunks(1 + producer % 7).enumerate() {
                let prepared: Vec<PreparedEvent> = batch
                    .iter()
                    .map(|value| {
                        PreparedEvent::new(
                            NewEvent::from_json(value, uuid::Uuid::now_v7()).unwrap(),
                            "test",
                        )
                    })
                    .collect();
                let node = &nodes[(producer + index) % 2];
                let placed = node.append(prepared.clone()).await.unwrap();
                if index % 5 == 0 {
                    // A retry, through the other node, answers the first places.
                    let other = &nodes[(producer + index + 1) % 2];
                    assert_eq!(other.append(prepared).await.unwrap(), placed);
                }
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let followed = tokio::time::timeout(std::time::Duration::from_secs(60), follower)
        .await
        .expect("the follower reached the end of the log")
        .unwrap();
    assert_eq!(followed, total);

    let log = nodes[0].read_all(0, u32::MAX).await.unwrap();
    let positions: Vec<u64> = log.iter().map(|event| event.position).collect();
    assert_eq!(positions, (1..=total).collect::<Vec<_>>());
    assert_eq!(nodes[1].read_all(0, u32::MAX).await.unwrap(), log);
    for node in &projections {
        for model in Model::ALL {
            assert!(
                node.wait_for(model, total, std::time::Duration::from_secs(60))
                    .await,
                "{} reached the head on both nodes",
                model.name()
            );
        }
    }
    let mut connection = nodes[0].backend().connect(Access::ReadWrite).await.unwrap();
    assert_tables_equal_fold(&mut connection, &log).await;
    // Both trees agree between the nodes, and checkpoints sign what the other node appended.
    for node in &nodes {
        assert_eq!(
            node.checkpoint(chronicle_store::TreeId::Log)
                .await
                .unwrap()
                .size,
            total
        );
    }
    stop.send_replace(true);
    for runner in runners {
        runner.await.unwrap();
    }
    for node in nodes {
        node.shutdown().await;
    }
}
