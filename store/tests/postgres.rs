//! The store on a PostgreSQL server that restarts under load: appends fail cleanly (503-kind
//! errors, nothing half-written) while it is down and resume once it is back, every
//! acknowledged event keeps its position, and the whole store still verifies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronicle_domain::{NewEvent, PreparedEvent};
use chronicle_fixtures::{Scale, history};
use chronicle_store::checkpoint::{NoteSigner, NoteVerifier};
use chronicle_store::testing::PostgresServer;
use chronicle_store::{Backend, ErrorKind, Store, StoreConfig, verify_database};
use serde_json::Value;

const PRODUCERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_fails_appends_cleanly_and_they_resume() {
    let server = PostgresServer::start(false).unwrap();
    let backend = Backend::Postgres(server.fresh_database().await);
    let signer = NoteSigner::generate("chronicle.test");
    let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
    let store = Store::open(StoreConfig::with_backend(backend.clone(), signer))
        .await
        .unwrap();

    let events: Arc<Mutex<std::vec::IntoIter<Value>>> =
        Arc::new(Mutex::new(history(13, Scale::small()).into_iter()));
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let (store, events) = (store.clone(), events.clone());
            let (acknowledged, refusals) = (acknowledged.clone(), refusals.clone());
            tokio::spawn(async move {
                loop {
                    let Some(value) = events.lock().unwrap().next() else {
                        return;
                    };
                    let event = NewEvent::from_json(&value, uuid::Uuid::now_v7()).unwrap();
                    let prepared = vec![PreparedEvent::new(event, "test")];
                    // A refused event is sent again, as a producer retries, until it lands.
                    loop {
                        match store.append(prepared.clone()).await {
                            Ok(placed) => {
                                acknowledged
                                    .lock()
                                    .unwrap()
                                    .insert(placed[0].position, placed[0].id);
                                break;
                            }
                            Err(error) => refusals.lock().unwrap().push(error.kind()),
                        }
                    }
                }
            })
        })
        .collect();

    let mut head = store.subscribe_head();
    head.wait_for(|head| head.position >= 200).await.unwrap();
    let server = tokio::task::spawn_blocking(move || {
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    let after_restart = store.head().position + 200;
    tokio::time::timeout(
        Duration::from_secs(60),
        head.wait_for(|head| head.position >= after_restart),
    )
    .await
    .expect("appends resume after the restart")
    .unwrap();
    for producer in producers {
        producer.await.unwrap();
    }

    let refusals = refusals.lock().unwrap().clone();
    assert!(
        !refusals.is_empty(),
        "the restart cut at least one append off"
    );
    assert!(
        refusals.iter().all(|kind| *kind == ErrorKind::Unavailable),
        "a refused append says to retry: {refusals:?}"
    );
    let log = store.read_all(0, u32::MAX).await.unwrap();
    let positions: Vec<u64> = log.iter().map(|event| event.position).collect();
    assert_eq!(positions, (1..=log.len() as u64).collect::<Vec<_>>());
    for (position, id) in acknowledged.lock().unwrap().iter() {
        assert_eq!(
            log[*position as usize - 1].id,
            *id,
            "acknowledged at {position}"
        );
    }
    store.shutdown().await;
    let report = verify_database(&backend, &verifier, |_, _| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    drop(server);
}
