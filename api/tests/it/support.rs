//! `TestApp`: the real server on port 0 over a temporary data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chronicle_api::{ApiConfig, Application};
use chronicle_search::SearchIndex;
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::testing::BackendKind;
use chronicle_store::{Backend, Store, StoreConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The server's store, for what no route offers (a token already expired, say).
    pub store: Store,
    /// The server's audit search index (under the data directory's `index/`).
    pub search: SearchIndex,
    config: ApiConfig,
    /// The database: SQLite in the data directory, or PostgreSQL in the conformance suite.
    backend: Backend,
    edit_store: StoreEdit,
    directory: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Spawns a server whose config `edit` adjusts first.
    pub async fn spawn_with(edit: impl FnOnce(&mut ApiConfig)) -> TestApp {
        TestApp::spawn_with_store(|_| {}, edit).await
    }

    /// Spawns a server whose store config `edit_store` adjusts (on every restart too), and whose
    /// API config `edit` adjusts.
    pub async fn spawn_with_store(
        edit_store: impl Fn(&mut StoreConfig) + Send + Sync + 'static,
        edit: impl FnOnce(&mut ApiConfig),
    ) -> TestApp {
        let edit_store: StoreEdit = Arc::new(edit_store);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let directory = tempfile::tempdir().unwrap();
        let mut config = ApiConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN);
        config.webhooks.allowed_hosts = vec!["127.0.0.1".into()]; // test receivers are on loopback
        edit(&mut config);
        let backend = BackendKind::current().fresh(directory.path()).await;
        let (address, stop, task, store, search) = start(
            directory.path(),
            backend.clone(),
            config.clone(),
            &edit_store,
        )
        .await;
        TestApp {
            address,
            client: reqwest::Client::new(),
            store,
            search,
            config,
            backend,
            edit_store,
            directory,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server (finishing what it accepted) and starts a new one on the same data.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (address, stop, task, store, search) = start(
            self.directory.path(),
            self.backend.clone(),
            self.config.clone(),
            &self.edit_store,
        )
        .await;
        self.address = address;
        self.store = store;
        self.search = search;
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

    pub fn data_directory(&self) -> &std::path::Path {
        self.directory.path()
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

    /// Sends a request with `token` (or none) and answers the status and the JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a token through the API with the admin token; answers its value and id.
    pub async fn token(&self, workspace: Option<&str>, scopes: &[&str]) -> (String, String) {
        let body = json!({"name": "test", "workspace": workspace, "scopes": scopes});
        let (status, created) = self.post_json("/v1/tokens", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["token"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a webhook in `workspace` with the admin token; answers its id.
    pub async fn webhook(&self, workspace: &str) -> String {
        let body = json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef", "types": ["machine.*"]});
        let (status, created) = self
            .post_json(&format!("/v1/workspaces/{workspace}/webhooks"), &body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
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

    /// Answers `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Sends a GET with `token`; answers the status and the body as text.
    pub async fn get_text(&self, path: &str, token: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
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

/// Adjusts the store's config before each start.
type StoreEdit = Arc<dyn Fn(&mut StoreConfig) + Send + Sync>;

async fn start(
    directory: &std::path::Path,
    backend: Backend,
    mut config: ApiConfig,
    edit_store: &StoreEdit,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<()>,
    Store,
    SearchIndex,
) {
    // The search index lives in the test's data directory, as in DATA/index.
    config
        .search
        .directory
        .get_or_insert_with(|| directory.join("index"));
    let key = directory.join("signing-key");
    let (signer, _) = load_or_create_key_file(&key, "chronicle.test").unwrap();
    let mut store_config = StoreConfig::with_backend(backend, signer);
    edit_store(&mut store_config);
    let store = Store::open(store_config).await.unwrap();
    let application = Application::bind(store.clone(), config).await.unwrap();
    let address = application.address();
    let search = application.search_index();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        application
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (address, stop, task, store, search)
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
