use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection};

pub(crate) fn chronicle() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronicle"));
    command
        .env_remove("CHRONICLE_ADMIN_TOKEN")
        .env_remove("CHRONICLE_DATA")
        .env("RUST_LOG", "warn");
    command
}

pub(crate) fn run(args: &[&str]) -> Output {
    chronicle().args(args).output().unwrap()
}

/// Runs `chronicle ingest FILE --data DATA` and checks that it succeeded.
pub(crate) fn ingest(file: &Path, data: &Path) -> Output {
    let output = run(&[
        "ingest",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    output
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A server started as a user starts it; stopped with SIGTERM when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    stderr: Vec<String>,
}

impl Server {
    pub(crate) fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Starts the server with `env` set in its environment.
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = chronicle()
            .env_remove("MIMALLOC_PURGE_DELAY")
            .env_remove("MIMALLOC_ALLOW_THP")
            .envs(env.iter().copied())
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut stderr = Vec::new();
        let url = loop {
            let line = lines
                .next()
                .expect("the server printed its address")
                .unwrap();
            stderr.push(line.clone());
            if let Some(rest) = line.strip_prefix("chronicle listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // The token line, when there is one, comes right after the address.
        if let Some(Ok(line)) = lines.next() {
            stderr.push(line);
        }
        std::thread::spawn(move || for _ in lines {});
        Server { child, url, stderr }
    }

    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    /// Kills the server with SIGKILL, as a power cut would, and waits until it is gone.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn history_file(directory: &Path, events: &[Value]) -> std::path::PathBuf {
    let path = directory.join("events.ndjson");
    let mut file = std::fs::File::create(&path).unwrap();
    for event in events {
        writeln!(file, "{event}").unwrap();
    }
    path
}

/// The admin token the first start wrote to DATA/admin-token.
pub(crate) fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned()
}

pub(crate) fn small_history() -> Vec<Value> {
    chronicle_fixtures::history(11, chronicle_fixtures::Scale::small())
}

/// The server's environment and its THP setting, as the kernel sees them.
fn allocator_settings(server: &Server) -> (Vec<String>, Option<String>) {
    let pid = server.child.id();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mimalloc = environ
        .split(|byte| *byte == 0)
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .filter(|entry| entry.starts_with("MIMALLOC_"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(|value| value.trim().to_owned());
    (mimalloc, thp)
}

#[test]
fn serve_runs_with_the_allocator_settings_and_keeps_the_operators() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let data = data.to_str().unwrap();

    let server = Server::start_with_env(&["serve", "--data", data], &[]);
    let (mimalloc, thp) = allocator_settings(&server);
    assert_eq!(mimalloc, ["MIMALLOC_ALLOW_THP=0", "MIMALLOC_PURGE_DELAY=0"]);
    // Kernels before 5.0 do not report it; where they do, huge pages are off for the process.
    assert!(
        matches!(thp.as_deref(), None | Some("0")),
        "THP_enabled: {thp:?}"
    );
    assert!(server.stop().success());

    // A value the operator set is kept; the other one is still added.
    let server = Server::start_with_env(
        &["serve", "--data", data],
        &[("MIMALLOC_PURGE_DELAY", "250")],
    );
    let (mimalloc, _) = allocator_settings(&server);
    assert_eq!(
        mimalloc,
        ["MIMALLOC_ALLOW_THP=0", "MIMALLOC_PURGE_DELAY=250"]
    );
    assert!(server.stop().success());

    // Both set: no restart, the operator's values as given.
    let server = Server::start_with_env(
        &["serve", "--data", data],
        &[("MIMALLOC_PURGE_DELAY", "10"), ("MIMALLOC_ALLOW_THP", "1")],
    );
    let (mimalloc, thp) = allocator_settings(&server);
    assert_eq!(
        mimalloc,
        ["MIMALLOC_ALLOW_THP=1", "MIMALLOC_PURGE_DELAY=10"]
    );
    assert_ne!(thp.as_deref(), Some("0"), "the operator allowed huge pages");
    assert!(server.stop().success());
}

#[test]
fn serve_makes_an_admin_token_once_and_appends_over_http() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
    let token = admin_token(&data);
    assert!(
        server.stderr.iter().any(|line| line.contains(&token)),
        "the first start prints the token"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(data.join("admin-token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(data.join("signing-key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let client = reqwest::blocking::Client::new();
    let events = small_history();
    let response = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&token)
        .json(&json!({"events": events[..20]}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");

    // A second start keeps the token and does not print it again.
    let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
    assert!(!server.stderr.iter().any(|line| line.contains(&token)));
    let head: Value = client
        .get(format!("{}/v1/head", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(head["position"], 20);

    // The data directory is locked while the server runs.
    let output = run(&["ingest", "--data", data.to_str().unwrap(), "/dev/null"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("another chronicle process"),
        "{}",
        text(&output)
    );
    server.stop();
}

#[test]
fn ingest_appends_a_file_and_stops_at_a_bad_line_keeping_what_came_before() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let mut events = small_history();
    let total = events.len();
    assert!(total > 1_600);
    events[1_499]["data"] = json!({"password": "hunter2"});
    let file = history_file(directory.path(), &events);
    let output = run(&[
        "ingest",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "500",
    ]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(message.contains("line 1500"), "{message}");
    assert!(message.contains("data.password"), "{message}");
    assert!(
        message.contains("the 1000 events before line 1001 are appended"),
        "{message}"
    );

    events[1_499] = small_history()[1_499].clone();
    let rest: Vec<Value> = events[1_000..].to_vec();
    let file = history_file(directory.path(), &rest);
    let output = ingest(&file, &data);
    assert!(text(&output).contains(&format!("ingested {} events", total - 1_000)));

    let output = run(&["verify", "--data", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("checked {total} events")),
        "{}",
        text(&output)
    );
}

async fn tamper(database: &Path, statement: &str) {
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(database)
        .connect()
        .await
        .unwrap();
    let changed = sqlx::query(statement)
        .execute(&mut connection)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "{statement}");
    connection.close().await.unwrap();
}

#[test]
fn verify_names_the_position_of_a_byte_edited_in_the_database() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let file = history_file(directory.path(), &small_history()[..300]);
    assert!(
        run(&[
            "ingest",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap()
        ])
        .status
        .success()
    );
    let output = run(&[
        "checkpoint",
        "--data",
        data.to_str().unwrap(),
        "--workspace",
        "ws_acme",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let note = String::from_utf8(output.stdout).unwrap();
    assert!(note.starts_with("chronicle.local\n300\n"), "{note}");
    assert!(note.contains("\n\n\u{2014} chronicle.local "));

    let clean = run(&["verify", "--data", data.to_str().unwrap()]);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(text(&clean).contains("OK"));

    let database = data.join("chronicle.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One byte of event 117's stored JSON: the year of its recorded_at, 2026 → 2027.
    runtime.block_on(tamper(
        &database,
        "UPDATE events SET body = CAST(replace(CAST(body AS TEXT), '\"recorded_at\":\"2026', '\"recorded_at\":\"2027') AS BLOB) \
         WHERE position = 117",
    ));
    let output = run(&["verify", "--data", data.to_str().unwrap()]);
    assert!(!output.status.success());
    let report = text(&output);
    assert!(
        report.contains("position 117: the stored event does not match its leaf hash"),
        "{report}"
    );
    assert!(
        !report.contains("position 116:") && !report.contains("position 118:"),
        "{report}"
    );
}

#[test]
fn verify_finds_a_rewritten_event_with_its_hash_and_a_trimmed_log() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let file = history_file(directory.path(), &small_history()[..64]);
    assert!(
        run(&[
            "ingest",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap()
        ])
        .status
        .success()
    );
    assert!(
        run(&["checkpoint", "--data", data.to_str().unwrap()])
            .status
            .success()
    );
    let database = data.join("chronicle.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // A rewrite that also recomputes the leaf hash still breaks the tree above it.
    runtime.block_on(tamper(
        &database,
        "UPDATE events SET leaf_hash = zeroblob(32) WHERE position = 10",
    ));
    let report = text(&run(&["verify", "--data", data.to_str().unwrap()]));
    assert!(
        report.contains("position 10: the stored event does not match its leaf hash"),
        "{report}"
    );

    // A stored tree node that does not follow from the events is named.
    runtime.block_on(tamper(
        &database,
        "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 4 AND leaf_end = 32",
    ));
    let report = text(&run(&["verify", "--data", data.to_str().unwrap()]));
    assert!(
        report.contains("log tree: the stored node over leaves 17–32 (level 4, index 1) differs"),
        "{report}"
    );

    // Removing the newest event contradicts the signed checkpoint.
    runtime.block_on(tamper(&database, "DELETE FROM events WHERE position = 64"));
    let output = run(&["verify", "--data", data.to_str().unwrap()]);
    assert!(!output.status.success());
    let report = text(&output);
    assert!(
        report.contains("the last signed checkpoint covers 64 leaves but the log holds only 63"),
        "{report}"
    );

    // A store of an older schema (verify does not migrate) is named as such, with the way on.
    runtime.block_on(tamper(
        &database,
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    ));
    let output = run(&["verify", "--data", data.to_str().unwrap()]);
    assert!(!output.status.success());
    let report = text(&output);
    assert!(
        report.contains("has schema version 7, this chronicle reads version 8: open it once with `chronicle serve` or `chronicle ingest`"),
        "{report}"
    );
}

#[test]
fn demo_serves_a_history_that_verifies_through_the_api() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start(&["demo", "--data", data.to_str().unwrap(), "--events", "3000"]);
    let token = admin_token(&data);
    let client = reqwest::blocking::Client::new();
    let head: Value = client
        .get(format!("{}/v1/head", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(head["position"].as_u64().unwrap() >= 2_500, "{head}");

    let output = run(&["verify", "--url", &server.url, "--token", &token]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("OK"));
    server.stop();
}

#[test]
fn token_commands_work_on_the_data_directory_and_through_a_server() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let data_arg = data.to_str().unwrap();
    let output = run(&[
        "token",
        "create",
        "--data",
        data_arg,
        "--name",
        "cabinet",
        "--workspace",
        "ws_acme",
        "--scope",
        "read",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = String::from_utf8(output.stdout).unwrap();
    let value = printed
        .lines()
        .find_map(|line| line.split("its hash): ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    assert!(value.starts_with("chr_"));
    let output = run(&[
        "token", "create", "--data", data_arg, "--name", "x", "--scope", "root",
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("is not a scope"));

    let listed = text(&run(&["token", "list", "--data", data_arg]));
    assert!(
        listed.contains("cabinet") && listed.contains("ws_acme") && !listed.contains(&value),
        "{listed}"
    );

    // The server takes the token; its logs, even at debug level, never show it.
    let mut child = chronicle()
        .args(["serve", "--data", data_arg, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = lines_sender.send(line.unwrap());
        }
    });
    let url = loop {
        let line = lines.recv().unwrap();
        if let Some(rest) = line.strip_prefix("chronicle listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let admin = admin_token(&data);
    let client = reqwest::blocking::Client::new();
    let first = json!({"stream": "workspace-ws_acme", "type": "workspace.created",
        "workspace": "ws_acme", "occurred_at": "2026-11-24T03:50:26Z",
        "actor": {"kind": "member", "id": "usr_1"},
        "data": {"name": "Acme", "slug": "acme", "plan": "team_scale"}});
    let appended = client
        .post(format!("{url}/v1/events"))
        .bearer_auth(&admin)
        .json(&json!({ "events": [first] }))
        .send()
        .unwrap();
    assert_eq!(appended.status(), 200, "{}", appended.text().unwrap());
    let checkpoint = |token: &str| {
        client
            .get(format!("{url}/v1/workspaces/ws_acme/checkpoint"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(checkpoint(&value), 200);
    let id = listed
        .split_whitespace()
        .find(|word| word.starts_with("tok_"))
        .unwrap()
        .to_owned();
    let output = run(&["token", "revoke", &id, "--url", &url, "--token", &admin]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("revoked"));
    assert_eq!(checkpoint(&value), 401);
    let remote = text(&run(&["token", "list", "--url", &url, "--token", &admin]));
    assert!(
        remote.contains(&id) && remote.contains("revoked"),
        "{remote}"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let logs: Vec<String> = lines.iter().collect();
    assert!(logs.len() > 3, "the server logged at debug level");
    // The contract prints the admin token once, on the first start; nothing else shows a token.
    for line in logs
        .iter()
        .filter(|line| !line.starts_with("admin token (shown once"))
    {
        assert!(
            !line.contains(&value) && !line.contains(&admin[10..]),
            "a token reached the logs: {line}"
        );
    }
}

#[test]
fn search_prints_the_newest_hits_over_the_data_directory_and_through_a_server() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let events = small_history();
    let workspace = events
        .iter()
        .find_map(|event| event["workspace"].as_str())
        .unwrap()
        .to_owned();
    let file = history_file(directory.path(), &events);
    ingest(&file, &data);

    let search = |extra: &[&str]| {
        let mut args = vec![
            "search",
            workspace.as_str(),
            "type:machine.*",
            "--limit",
            "3",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let output = search(&["--data", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = printed.lines().collect();
    assert!(
        lines[0].starts_with("POSITION") && lines[0].contains("SUMMARY"),
        "{printed}"
    );
    assert_eq!(
        lines.len(),
        5,
        "a header, three hits and a count: {printed}"
    );
    assert!(
        lines[1..4].iter().all(|line| line.contains(" machine.")),
        "{printed}"
    );
    assert!(lines[4].starts_with("3 of "), "{printed}");
    assert!(data.join("index").join("meta.json").exists());

    let output = run(&[
        "search",
        &workspace,
        "type:machine.* actr:usr_1",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let refusal = text(&output);
    assert!(refusal.contains("unknown field `actr:`"), "{refusal}");
    assert!(
        refusal.contains("\n  type:machine.* actr:usr_1\n                 ^"),
        "the caret points at the field: {refusal}"
    );

    // Through a server: the same hits, and the searches recorded in the workspace's log.
    let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let output = search(&["--url", &server.url, "--token", token.trim()]);
    assert!(output.status.success(), "{}", text(&output));
    let through_server = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(through_server.lines().nth(1), lines.get(1).copied());
    let client = reqwest::blocking::Client::new();
    let stream: Value = client
        .get(format!(
            "{}/v1/workspaces/{workspace}/streams/audit-{workspace}",
            server.url
        ))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actors: Vec<&str> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["actor"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["chronicle-cli", "admin"], "{stream}");
    assert!(server.stop().success());
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_command_quietly_and_logs_carry_no_escapes() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let file = history_file(directory.path(), &small_history());
    ingest(&file, &data);
    let workspace = small_history()
        .iter()
        .find_map(|event| event["workspace"].as_str().map(str::to_owned))
        .unwrap();
    // As `chronicle search … | head -n 0`: the reader is gone before the first line is written.
    let mut child = chronicle()
        .env("RUST_LOG", "info")
        .args([
            "search",
            &workspace,
            "type:machine.*",
            "--data",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("INFO"), "the log lines are there: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal escapes when standard error is not a terminal: {stderr}"
    );
}
#[test]
fn rebuild_runs_on_the_data_directory_and_inside_a_running_server() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let data_arg = data.to_str().unwrap();
    let file = history_file(directory.path(), &small_history()[..500]);
    assert!(
        run(&["ingest", file.to_str().unwrap(), "--data", data_arg])
            .status
            .success()
    );
    let output = run(&["rebuild", "machines", "--data", data_arg]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("rebuilt machines up to position 500"),
        "{}",
        text(&output)
    );
    let output = run(&["rebuild", "nope", "--data", data_arg]);
    assert!(!output.status.success());
    assert!(text(&output).contains("`nope` is not a read model"));

    let server = Server::start(&["serve", "--data", data_arg]);
    let admin = admin_token(&data);
    let output = run(&["rebuild", "--url", &server.url, "--token", &admin]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("up to position 500"),
        "{}",
        text(&output)
    );
    assert!(text(&output).contains("serving throughout"));
    server.stop();
}

#[test]
fn export_writes_bundles_that_verify_and_verify_names_what_was_tampered_with() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
    let token = admin_token(&data);
    let client = reqwest::blocking::Client::new();
    let events = small_history();
    let response = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(&token)
        .json(&json!({"events": events[..200]}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let workspace = events[0]["workspace"].as_str().unwrap().to_owned();
    let key = directory.path().join("public-key");
    let public_key = client
        .get(format!("{}/v1/public-key", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    std::fs::write(&key, &public_key).unwrap();

    let bundle = directory.path().join("bundle.zip");
    let remote = ["--url", server.url.as_str(), "--token", token.as_str()];
    let output = run(&[
        &["export", &workspace, "--evidence"][..],
        &[
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
        &["--output", bundle.to_str().unwrap()],
        &remote[..],
    ]
    .concat());
    assert!(output.status.success(), "{}", text(&output));

    let output = run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("the range is complete"),
        "{}",
        text(&output)
    );

    // Without a trusted key the bundle proves only that someone signed it: exit 3, said so.
    let output = run(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("the checkpoint's signer is not trusted"),
        "{}",
        text(&output)
    );

    // The same bundle with one event's data changed.
    let bytes = std::fs::read(&bundle).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut tampered = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        if name == "events.ndjson" {
            let at = content
                .windows(9)
                .position(|w| w == b"\"data\":{\"")
                .unwrap();
            content.insert(at + 9, b'x');
        }
        tampered
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        tampered.write_all(&content).unwrap();
    }
    let tampered_path = directory.path().join("tampered.zip");
    std::fs::write(&tampered_path, tampered.finish().unwrap().into_inner()).unwrap();
    let output = run(&[
        "verify",
        tampered_path.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(!output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("FAILED  events.ndjson does not match its SHA-256"),
        "{said}"
    );
    assert!(
        said.contains("does not match their leaf hash: line 1"),
        "{said}"
    );
    assert!(said.contains("does not verify"), "{said}");

    // A CSV export of the same workspace.
    let csv = directory.path().join("export.csv");
    let output = run(&[
        &["export", &workspace, "type:machine.*", "--format", "csv"][..],
        &["--min-position", "200"],
        &["--output", csv.to_str().unwrap()],
        &remote[..],
    ]
    .concat());
    assert!(output.status.success(), "{}", text(&output));
    let written = std::fs::read_to_string(&csv).unwrap();
    assert!(
        written.starts_with("position,recorded_at,occurred_at,type,"),
        "{written}"
    );
    assert!(written.contains(",machine."), "{written}");
    server.stop();
}

#[test]
fn a_data_directory_open_to_other_users_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let output = run(&["token", "list", "--data", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "made private");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = run(&["token", "list", "--data", data.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = text(&output);
    assert!(
        message.contains("is open to other users (mode 755)"),
        "{message}"
    );
    assert!(
        message.contains(&format!("chmod 700 {}", data.display())),
        "{message}"
    );
}

#[test]
fn a_missing_signing_key_next_to_signed_checkpoints_is_refused_unless_rotated() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let data_arg = data.to_str().unwrap();
    let file = history_file(directory.path(), &small_history()[..20]);
    assert!(
        run(&["ingest", file.to_str().unwrap(), "--data", data_arg])
            .status
            .success()
    );
    let output = run(&["checkpoint", "--data", data_arg]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        run(&["checkpoint", "--data", data_arg]).status.success(),
        "the same key opens it"
    );

    std::fs::remove_file(data.join("signing-key")).unwrap();
    let output = run(&["checkpoint", "--data", data_arg]);
    assert!(
        !output.status.success(),
        "a new key would sign on unnoticed"
    );
    let said = text(&output);
    assert!(
        said.contains("the stored checkpoints were signed by another key"),
        "{said}"
    );
    assert!(said.contains("--rotate-signing-key"), "{said}");

    let output = run(&["checkpoint", "--data", data_arg, "--rotate-signing-key"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = run(&["checkpoint", "--data", data_arg]);
    assert!(
        output.status.success(),
        "after the rotation the new key signs: {}",
        text(&output)
    );

    // The rotation is recorded in each workspace, naming the new key.
    let workspaces: std::collections::BTreeSet<String> = small_history()[..20]
        .iter()
        .filter_map(|event| event["workspace"].as_str().map(str::to_owned))
        .collect();
    let key = std::fs::read_to_string(data.join("signing-key")).unwrap();
    let key_id = key.split('+').nth(3).unwrap();
    for workspace in &workspaces {
        let output = run(&[
            "search",
            workspace,
            "type:audit.signing_key_rotated",
            "--data",
            data_arg,
        ]);
        let printed = text(&output);
        assert!(output.status.success(), "{printed}");
        assert!(printed.contains("1 of 1 hits"), "{workspace}: {printed}");
        assert!(printed.contains(key_id), "the new key is named: {printed}");
    }
}

/// A hostile server on loopback answering each path with a fixed body; serves until dropped.
fn hostile_server(answers: Vec<(&'static str, String)>) -> String {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 8192];
            let read = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..read]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = answers
                .iter()
                .find(|(prefix, _)| path.starts_with(prefix))
                .map_or_else(String::new, |(_, body)| body.clone());
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn verify_url_refuses_a_log_checkpoint_signed_under_another_origin() {
    use chronicle_store::checkpoint::{Checkpoint, NoteSigner};
    let signer = NoteSigner::generate("chronicle.test");
    // Signed by the very key the server hands out, but for a workspace's tree, not the log's.
    let note = signer.sign(&Checkpoint {
        origin: "chronicle.test/workspaces/ws_acme".into(),
        size: 0,
        root: chronicle_domain::merkle::empty_root(),
    });
    let url = hostile_server(vec![
        ("/v1/public-key", format!("{}\n", signer.verifier_key())),
        ("/v1/checkpoint", note),
        ("/v1/events", r#"{"events": [], "next": 0}"#.to_owned()),
    ]);
    let output = run(&["verify", "--url", &url, "--token", "any"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("the log's checkpoint is of `chronicle.test/workspaces/ws_acme`"),
        "{said}"
    );
}

#[test]
fn verify_url_refuses_a_workspace_checkpoint_signed_under_another_workspaces_origin() {
    use chronicle_domain::RecordedEvent;
    use chronicle_store::checkpoint::{Checkpoint, NoteSigner};
    let signer = NoteSigner::generate("chronicle.test");
    let mut event: RecordedEvent = serde_json::from_value(json!({
        "position": 1, "workspace_seq": 1, "id": "0193a1b2-0000-7000-8000-000000000001",
        "stream": "machine-mch_1", "stream_version": 1, "type": "machine.deregistered",
        "workspace": "ws_acme", "occurred_at": "2026-12-01T00:00:00.000Z",
        "recorded_at": "2026-12-01T00:00:00.000Z", "actor": {"kind": "system", "id": "agent"},
        "context": {}, "data": {}, "submitted_by": "tok_1",
    }))
    .unwrap();
    let (_, leaf) = event.seal();
    let tree = |origin: &str| {
        signer.sign(&Checkpoint {
            origin: origin.into(),
            size: 1,
            root: leaf,
        })
    };
    // The log's checkpoint and the event are true; ws_acme's tree is answered with a note
    // signed for ws_globex's, of the same size and root.
    let url = hostile_server(vec![
        ("/v1/public-key", format!("{}\n", signer.verifier_key())),
        ("/v1/checkpoint", tree("chronicle.test")),
        (
            "/v1/workspaces/ws_acme/checkpoint",
            tree("chronicle.test/workspaces/ws_globex"),
        ),
        (
            "/v1/events",
            json!({"events": [event], "next": 1}).to_string(),
        ),
    ]);
    let output = run(&["verify", "--url", &url, "--token", "any"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(
            "workspace ws_acme: the signed checkpoint is of `chronicle.test/workspaces/ws_globex`"
        ),
        "{said}"
    );
    assert!(!said.contains("does not match its leaf hash"), "{said}");
}
