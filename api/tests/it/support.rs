//! `TestApp`: the real server on port 0 over a temporary data directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use chronicle_api::{ApiConfig, Application};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    directory: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let directory = tempfile::tempdir().unwrap();
        let (address, stop, task) = start(directory.path().join("chronicle.db")).await;
        TestApp {
            address,
            client: reqwest::Client::new(),
            directory,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server (finishing what it accepted) and starts a new one on the same data.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (address, stop, task) = start(self.database()).await;
        self.address = address;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub fn database(&self) -> PathBuf {
        self.directory.path().join("chronicle.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Posts a batch; answers the status and the JSON body.
    pub async fn append(&self, events: Vec<Value>) -> (StatusCode, Value) {
        self.post_json("/v1/events", &json!({ "events": events }))
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Reads the whole log through `GET /v1/events`, page by page.
    pub async fn read_all(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self
                .get(&format!("/v1/events?after={after}&limit=1000"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let batch = page["events"].as_array().unwrap().clone();
            if batch.is_empty() {
                assert_eq!(page["next"], after);
                return events;
            }
            after = page["next"].as_u64().unwrap();
            events.extend(batch);
        }
    }

    pub async fn head(&self) -> u64 {
        self.get("/v1/head").await.1["position"].as_u64().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(database: PathBuf) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let key = database.with_file_name("signing-key");
    let (signer, _) = load_or_create_key_file(&key, "chronicle.test").unwrap();
    let store = Store::open(StoreConfig::new(database, signer))
        .await
        .unwrap();
    let config = ApiConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN);
    let application = Application::bind(store, config).await.unwrap();
    let address = application.address();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        application
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (address, stop, task)
}

/// A valid `machine.renamed` event for a stream, as a producer sends it.
pub fn renamed(workspace: &str, machine: &str, to: &str) -> Value {
    json!({
        "stream": format!("machine-{machine}"),
        "type": "machine.renamed",
        "workspace": workspace,
        "occurred_at": "2026-11-24T03:50:26.123Z",
        "actor": {"kind": "member", "id": "usr_4", "name": "alice@acme.test"},
        "context": {"request_id": "req_1", "source_ip": "203.0.113.7", "auth_method": "oauth"},
        "data": {"from": "web-1", "to": to}
    })
}

/// A valid `machine.registered` event.
pub fn registered(workspace: &str, machine: &str) -> Value {
    json!({
        "stream": format!("machine-{machine}"),
        "type": "machine.registered",
        "workspace": workspace,
        "occurred_at": "2026-11-24T03:50:26.123Z",
        "actor": {"kind": "member", "id": "usr_4", "name": "alice@acme.test"},
        "data": {"name": machine, "hostname": format!("{machine}.acme.test"), "os": "linux",
                 "os_version": "6.8", "arch": "x86_64", "agent_version": "1.4.2"}
    })
}
