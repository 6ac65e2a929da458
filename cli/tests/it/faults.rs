//! Faults under the real binary: a disk that fills up while producers append, a damaged
//! database file, a data directory on a read-only filesystem.
//!
//! The full-disk and read-only tests mount a small tmpfs, so they need root; elsewhere they say
//! why they skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::commands::{Server, admin_token, chronicle, ingest, run, text};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `path`, or answers why not.
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root, so no tmpfs can be mounted".into());
        }
        std::fs::create_dir_all(path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }

    /// Remounts with other options (`ro`, `rw`).
    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A batch of `count` registrations, each about 1 KiB, with ids unique to `batch`.
fn registrations(batch: usize, count: usize) -> Value {
    let padding = "p".repeat(900);
    let events: Vec<Value> = (0..count)
        .map(|n| {
            let machine = format!("mch_{batch}_{n}");
            json!({
                "stream": format!("machine-{machine}"),
                "type": "machine.registered",
                "workspace": "ws_disk",
                "occurred_at": "2026-11-24T03:50:26.123Z",
                "actor": {"kind": "agent", "id": "agt_disk", "name": "disk filler"},
                "data": {"name": machine, "hostname": format!("{padding}.disk.test"), "os": "linux",
                         "os_version": "6.8", "arch": "x86_64", "agent_version": "1.4.2"}
            })
        })
        .collect();
    json!({ "events": events })
}

/// Fills the filesystem of `path` with a ballast file, leaving about `spare` bytes free.
fn fill_with_ballast(ballast: &Path, spare: u64) {
    let output = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(ballast.parent().unwrap())
        .output()
        .unwrap();
    let available: u64 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let file = std::fs::File::create(ballast).unwrap();
    file.set_len(0).unwrap();
    use std::io::Write;
    let mut writer = std::io::BufWriter::new(file);
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    while written + spare < available {
        writer.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
    }
    writer.flush().unwrap();
}

#[test]
fn a_full_disk_answers_503_loses_nothing_and_recovers_when_space_returns() {
    let directory = tempfile::tempdir().unwrap();
    let mount = match Tmpfs::mount(&directory.path().join("disk"), "24m") {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipping the full-disk test: {reason}");
            return;
        }
    };
    let data = mount.path.join("data");
    let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
    let token = admin_token(&data);
    let client = Client::new();
    let append = |batch: usize| {
        client
            .post(format!("{}/v1/events", server.url))
            .bearer_auth(&token)
            .json(&registrations(batch, 100))
            .send()
            .unwrap()
    };
    assert_eq!(append(0).status(), 200);
    let mut acknowledged = 100;
    let ballast = mount.path.join("ballast");
    fill_with_ballast(&ballast, 2 * 1024 * 1024);

    // Append until the disk is full: the answer is 503 with a plain message, never a 500.
    let mut batch = 1;
    let refusal = loop {
        assert!(batch < 1_000, "the disk never filled up");
        let response = append(batch);
        batch += 1;
        match response.status().as_u16() {
            200 => acknowledged += 100,
            503 => break response,
            status => panic!(
                "an append on a full disk answered {status}: {}",
                response.text().unwrap()
            ),
        }
    };
    assert_eq!(refusal.headers()["retry-after"], "1");
    let body: Value = refusal.json().unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    eprintln!(
        "full disk after {acknowledged} acknowledged events: {}",
        body["error"]["message"]
    );
    // The server keeps answering while the disk is full.
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);

    // Space returns: appends succeed again, within a deadline.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = append(batch);
        batch += 1;
        if response.status() == 200 {
            acknowledged += 100;
            break;
        }
        assert_eq!(response.status(), 503, "{}", response.text().unwrap());
        assert!(
            Instant::now() < deadline,
            "appends did not recover once space returned"
        );
    }
    let head: Value = client
        .get(format!("{}/v1/head", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        head["position"], acknowledged,
        "every acknowledged event, and nothing else, is in the log"
    );
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");
    let output = run(&["verify", "--data", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("checked {acknowledged} events")),
        "{}",
        text(&output)
    );
}

/// Ingests a small history into a fresh data directory and answers its database file.
fn ingested(directory: &Path, data: &Path) -> PathBuf {
    let events: Vec<Value> = chronicle_fixtures::history(11, chronicle_fixtures::Scale::small())
        .into_iter()
        .take(400)
        .collect();
    let file = directory.join("events.ndjson");
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    ingest(&file, data);
    data.join("chronicle.db")
}

/// Answers the page size of a database and the page number of its `events` table's root.
async fn events_root_page(database: &Path) -> (usize, usize) {
    use sqlx::{ConnectOptions, Connection};
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(database)
        .connect()
        .await
        .unwrap();
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    let root_page: i64 = sqlx::query_scalar(
        "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'events'",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    (page_size as usize, root_page as usize)
}

/// `chronicle serve` over `data` on a free loopback port, its stderr piped.
fn serve_command(data: &Path) -> std::process::Command {
    let mut command = chronicle();
    command
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::piped());
    command
}

/// Starts `serve` over `data` expecting a refusal: answers what it printed before exiting
/// non-zero. A server that starts instead is killed and the test fails, rather than being
/// waited on forever.
fn refused_start(data: &Path, extra: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = serve_command(data).args(extra).spawn().unwrap();
    let mut printed = String::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("chronicle listening on") {
            let _ = child.kill();
            child.wait().unwrap();
            panic!("the server started over a damaged database: {printed}");
        }
        printed.push_str(&line);
        printed.push('\n');
    }
    assert!(!child.wait().unwrap().success(), "{printed}");
    printed
}

#[test]
fn a_damaged_database_stops_the_start_with_a_plain_message() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let database = ingested(directory.path(), &data);
    let serve = |extra: &[&str]| refused_start(&data, extra);

    // The root page of the events table overwritten: the integrity check names the damage.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (page_size, root_page) = runtime.block_on(events_root_page(&database));
    let mut bytes = std::fs::read(&database).unwrap();
    let start = (root_page - 1) * page_size;
    bytes[start..start + page_size].fill(0xA5);
    std::fs::write(&database, &bytes).unwrap();
    let message = serve(&["--check-integrity"]);
    assert!(
        message.contains(&format!("the database {} ", database.display()))
            && (message.contains("is damaged") || message.contains("cannot be checked")),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");

    // Not a database at all: refused even without the flag.
    std::fs::write(
        &database,
        b"this is not a SQLite database, just text".repeat(200),
    )
    .unwrap();
    let message = serve(&[]);
    assert!(message.contains("cannot open the event log"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn a_healthy_database_passes_the_integrity_check_from_the_environment() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let database = ingested(directory.path(), &data);
    let mut child = serve_command(&data)
        .env("CHRONICLE_CHECK_INTEGRITY", "true")
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let checked = lines.next().expect("the server printed the check").unwrap();
    let _ = child.kill();
    child.wait().unwrap();
    assert_eq!(
        checked,
        format!("integrity check of {}: ok", database.display())
    );
}

#[test]
fn a_read_only_data_directory_stops_the_start_with_a_plain_message() {
    let directory = tempfile::tempdir().unwrap();
    let mount = match Tmpfs::mount(&directory.path().join("disk"), "16m") {
        Ok(mount) => mount,
        Err(reason) => {
            eprintln!("skipping the read-only test: {reason}");
            return;
        }
    };
    let data = mount.path.join("data");
    ingested(directory.path(), &data);
    mount.remount("ro");
    let message = refused_start(&data, &[]);
    assert!(message.contains("Read-only file system"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    mount.remount("rw");
}
