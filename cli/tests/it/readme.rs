//! The README's commands, and those of `docs/integrity.md`, run as written against the demo
//! server a new user starts.
//!
//! Every ```` ```sh ```` block (of the README from "Use it" on) runs, in order, in one bash session (`set -euo
//! pipefail`) in a fresh directory while `chronicle demo` serves `./chronicle-data`; then every
//! ```` ```sh server-stopped ```` block runs, in order, once the server has stopped. Blocks
//! marked ```` ```shell ```` (the server itself, the test command, PostgreSQL) are not run.
//! The harness changes only this: `cargo run --release --` is this build's `chronicle`,
//! `127.0.0.1:7700` is the test server's address, `curl` fails on an HTTP error status
//! (`--fail-with-body`), and a streaming `curl -N` is stopped after 3 s.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::commands::Server;

/// The fenced blocks of a Markdown text from the heading `from` on, with their info strings.
fn blocks_from(markdown: &str, from: &str) -> Vec<(String, String)> {
    let start = markdown
        .find(from)
        .unwrap_or_else(|| panic!("the README has no `{from}`"));
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in markdown[start..].lines() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(block), Some(_)) => blocks.push(block),
            (Some((info, mut code)), None) => {
                code.push_str(line);
                code.push('\n');
                open = Some((info, code));
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block in the README");
    blocks
}

/// What every script starts with: strict bash and a `curl` that fails on an HTTP error.
const PRELUDE: &str = r#"set -euo pipefail
curl() {
    set +x
    local streaming=0 status=0 argument
    for argument in "$@"; do
        case "$argument" in --*) ;; -*N*) streaming=1 ;; esac
    done
    if [ "$streaming" = 1 ]; then
        command curl --fail-with-body --max-time 3 "$@" || status=$?
        [ "$status" -ne 28 ] || status=0
    else
        command curl --fail-with-body "$@" || status=$?
    fi
    set -x
    return "$status"
}
set -x
"#;

/// The script of the blocks with this info string, as the harness runs it.
fn script(blocks: &[(String, String)], info: &str, address: &str) -> String {
    let chronicle = env!("CARGO_BIN_EXE_chronicle");
    let mut script = PRELUDE.to_owned();
    for (_, code) in blocks.iter().filter(|(kind, _)| kind == info) {
        script.push_str(
            &code
                .replace("cargo run --release --", chronicle)
                .replace("127.0.0.1:7700", address),
        );
    }
    script
}

/// Runs a script in `directory`; fails the test with its output when a command fails.
fn run_script(directory: &Path, script: &str, what: &str) {
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(directory)
        .env("RUST_LOG", "warn")
        .env_remove("CHRONICLE_DATA")
        .env_remove("CHRONICLE_ADMIN_TOKEN")
        .output()
        .unwrap();
    let tail = |bytes: &[u8], keep: usize| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let cut = text.len().saturating_sub(keep);
        let start = (cut..text.len())
            .find(|&at| text.is_char_boundary(at))
            .unwrap_or(0);
        text[start..].to_owned()
    };
    assert!(
        output.status.success(),
        "a README command failed ({what}, {}):\n--- stdout (its end)\n{}\n--- stderr (its end; the failing command is the last `+` line)\n{}",
        output.status,
        tail(&output.stdout, 1_500),
        tail(&output.stderr, 4_000)
    );
}

/// Waits until `/metrics` shows the search index and every read model caught up with the log,
/// as they are by the time a user has typed the first command (a debug build takes longer).
fn wait_until_caught_up(url: &str) {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let lags: Vec<&str> = metrics
            .lines()
            .filter(|line| {
                line.starts_with("chronicle_projection_lag_events{")
                    || line.starts_with("chronicle_index_lag_events")
            })
            .collect();
        let models = lags
            .iter()
            .filter(|line| line.starts_with("chronicle_projection"))
            .count();
        if models == 7 && lags.len() == 8 && lags.iter().all(|line| line.ends_with(" 0")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's views did not catch up: {lags:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The documents whose commands are run, each from the heading where its commands start.
const DOCUMENTS: &[(&str, &str)] = &[("README.md", "## Use it"), ("docs/integrity.md", "# ")];

#[test]
fn the_readmes_commands_work_as_written_against_the_demo() {
    let documents: Vec<(&str, Vec<(String, String)>)> = DOCUMENTS
        .iter()
        .map(|(file, from)| {
            let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            (*file, blocks_from(&text, from))
        })
        .collect();
    for (file, blocks) in &documents {
        assert!(
            blocks
                .iter()
                .all(|(info, _)| ["sh", "sh server-stopped", "shell"].contains(&info.as_str())),
            "every block of {file} is `sh`, `sh server-stopped` or `shell`: {:?}",
            blocks.iter().map(|(info, _)| info).collect::<Vec<_>>()
        );
    }
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("chronicle-data");
    let server = Server::start(&["demo", "--data", data.to_str().unwrap()]);
    let address = server.url.trim_start_matches("http://").to_owned();
    wait_until_caught_up(&server.url);
    for (file, blocks) in &documents {
        let what = format!("{file}, server running");
        run_script(directory.path(), &script(blocks, "sh", &address), &what);
    }
    assert!(server.stop().success());
    for (file, blocks) in &documents {
        let what = format!("{file}, server stopped");
        run_script(
            directory.path(),
            &script(blocks, "sh server-stopped", &address),
            &what,
        );
    }
}
