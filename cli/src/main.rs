//! `chronicle`: the server and the command-line tools of Chronicle, a tamper-evident,
//! event-sourced audit log.
//!
//! Flags and environment are parsed here into the typed configs the library crates take
//! (`StoreConfig`, `ApiConfig`); no library crate reads the environment.

#[macro_use]
mod output;
mod data_dir;
mod database_check;
mod export;
mod ingest;
mod integrity;
mod rebuild;
mod search;
mod serve;
mod tokens;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc rather than the system allocator: under many small requests glibc's malloc took a
/// fifth of the server's time (BENCHMARKS.md, single-event appends).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's settings for a server (BENCHMARKS.md, server memory):
/// - `MIMALLOC_PURGE_DELAY=0` gives freed memory back to the system at once: with the default
///   (a second) the resident set stayed about 100 MiB higher under ingest.
/// - `MIMALLOC_ALLOW_THP=0` turns transparent huge pages off for the process: mimalloc asks for
///   them on its arenas, and a 2 MiB page stays resident whole while any of it is in use; under
///   ingest that held 23–33 MiB more anonymous memory, at no measured cost in throughput.
const ALLOCATOR_SETTINGS: [(&str, &str); 2] =
    [("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ALLOW_THP", "0")];

/// mimalloc reads its options from the environment when the process starts, so `serve` and
/// `demo` start themselves again with [`ALLOCATOR_SETTINGS`], leaving any the operator set.
fn restart_with_allocator_settings(cli: &Cli) {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = ALLOCATOR_SETTINGS
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) || missing.is_empty() {
        return;
    }
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .envs(missing)
        .exec();
    tracing::warn!(error = %error, "could not restart with the allocator's settings; serving without them");
}

/// Chronicle: a tamper-evident, event-sourced audit and observability backend.
#[derive(Debug, Parser)]
#[command(name = "chronicle", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the HTTP API over the data directory (embedded SQLite by default).
    Serve(ServeArgs),
    /// Fills a fresh data directory with a realistic generated history, then serves it.
    Demo(DemoArgs),
    /// Appends the events of an NDJSON file (one event as sent per line), in atomic batches.
    Ingest(IngestArgs),
    /// Verifies a whole store (--data) or a running server (--url) without trusting it: every
    /// leaf hash, every tree node, the signed checkpoints. Exits non-zero on any problem.
    Verify(VerifyArgs),
    /// Prints the current signed checkpoint of the log (and of each --workspace).
    Checkpoint(CheckpointArgs),
    /// Creates, lists and revokes API tokens.
    Token(TokenArgs),
    /// Searches a workspace's audit log (CONTRACT.md's query language) and prints the hits,
    /// newest first; the search is recorded as an `audit.searched` event.
    Search(SearchArgs),
    /// Exports a workspace's audit log from a running server: every hit of a query as NDJSON,
    /// CSV or Parquet, or with --evidence a verifiable evidence bundle (zip) of every event
    /// recorded in [--from, --to). `chronicle verify BUNDLE` checks a bundle offline.
    Export(ExportArgs),
    /// Rebuilds read models (all, or one) from the log into fresh tables, then swaps them in.
    /// Stop the server first: it holds the data directory.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Clone, Args)]
struct RebuildArgs {
    /// The model to rebuild: machines, sessions, schedules, runs, members, billing or activity
    /// (default: all of them).
    model: Option<String>,
    #[command(flatten)]
    storage: StorageArgs,
    /// Rebuild inside a running server (no downtime) instead of in the data directory.
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Args)]
struct SearchArgs {
    /// The workspace to search.
    workspace: String,
    /// The query, e.g. 'type:session.* actor:usr_4 "rm -rf"'; empty for every event.
    #[arg(default_value = "")]
    query: String,
    /// Only events that occurred at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Only events that occurred before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// At most this many hits, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    limit: u32,
    #[command(flatten)]
    storage: StorageArgs,
    /// A running server to search through (with a token that has the read scope).
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Args)]
struct ExportArgs {
    /// The workspace to export.
    workspace: String,
    /// The audit query (as for `search`); empty for every event. Not with --evidence.
    #[arg(default_value = "")]
    query: String,
    /// Export: events that occurred at or after this time. Evidence: recorded at or after it.
    #[arg(long)]
    from: Option<String>,
    /// Export: events that occurred before this time. Evidence: recorded before it.
    #[arg(long)]
    to: Option<String>,
    /// ndjson, csv or parquet.
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv", "parquet"])]
    format: String,
    /// Wait (up to 5 s) until the server's search index reflects the log up to this position,
    /// e.g. the position an append just answered.
    #[arg(long)]
    min_position: Option<u64>,
    /// Build an evidence bundle (zip) of every event recorded in [--from, --to) instead.
    #[arg(long, conflicts_with = "format")]
    evidence: bool,
    /// The file to write.
    #[arg(long, short)]
    output: PathBuf,
    /// The running server (with a token that has the export scope).
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Args)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    target: TokenTarget,
}

/// The data directory (server stopped), or a running server with an admin token.
#[derive(Debug, Clone, Args)]
struct TokenTarget {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Clone, Subcommand)]
enum TokenCommand {
    /// Creates a token and prints its value once.
    Create {
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// Bind the token to this workspace (default: all workspaces).
        #[arg(long)]
        workspace: Option<String>,
        /// A scope: append, read, export or admin (repeatable).
        #[arg(long, required = true, value_parser = parse_scope)]
        scope: Vec<chronicle_store::Scope>,
        /// When the token stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Lists every token (never their values).
    List,
    /// Revokes a token at once.
    Revoke {
        /// The token's id (tok_…).
        id: String,
    },
}

fn parse_scope(text: &str) -> Result<chronicle_store::Scope, String> {
    chronicle_store::Scope::ALL
        .into_iter()
        .find(|scope| scope.name() == text)
        .ok_or_else(|| format!("`{text}` is not a scope: use append, read, export or admin"))
}

#[derive(Debug, Clone, Args)]
struct VerifyArgs {
    /// An evidence bundle (zip) to verify offline; with --key, also that it is signed by the
    /// log's key.
    bundle: Option<PathBuf>,
    /// A data directory to verify (the server may be running).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Verify the log in this PostgreSQL database instead of DATA's embedded one (the key is
    /// still DATA's, or --key).
    #[arg(long, env = "CHRONICLE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// The log's public key (`NAME+KEYID+BASE64`, as GET /v1/public-key answers); default: the
    /// data directory's own key, or the server's.
    #[arg(long)]
    key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct CheckpointArgs {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Also print this workspace's checkpoint (repeatable).
    #[arg(long)]
    workspace: Vec<String>,
}

/// A running server to talk to instead of the data directory.
#[derive(Debug, Clone, Args)]
struct RemoteArgs {
    /// The server's URL, e.g. http://127.0.0.1:7700 (instead of opening the data directory).
    #[arg(long, env = "CHRONICLE_URL", global = true)]
    url: Option<String>,
    /// The bearer token for --url.
    #[arg(long, env = "CHRONICLE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

/// Where Chronicle keeps its data.
#[derive(Debug, Clone, Args)]
struct StorageArgs {
    /// The data directory: the embedded database, the search index, the signing key.
    #[arg(
        long,
        env = "CHRONICLE_DATA",
        default_value = "./chronicle-data",
        global = true
    )]
    data: PathBuf,
    /// Keep the log and read models in PostgreSQL instead of the embedded database.
    #[arg(
        long,
        env = "CHRONICLE_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    /// The Ed25519 key that signs checkpoints (default DATA/signing-key, made on first start).
    #[arg(long, env = "CHRONICLE_SIGNING_KEY", global = true)]
    signing_key: Option<PathBuf>,
    /// Accept a signing key other than the one that signed the stored checkpoints (a key
    /// replaced on purpose); without it such a start is refused.
    #[arg(long, global = true)]
    rotate_signing_key: bool,
    /// The origin line of the log's checkpoints; workspace trees use ORIGIN/workspaces/WS.
    #[arg(
        long,
        env = "CHRONICLE_ORIGIN",
        default_value = "chronicle.local",
        global = true
    )]
    origin: String,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// The address to listen on.
    #[arg(long, env = "CHRONICLE_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// The admin token; when unset, the first start makes one and writes it to DATA/admin-token.
    #[arg(long, env = "CHRONICLE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Run SQLite's integrity check over the embedded database before serving; a damaged file
    /// stops the start with what SQLite found.
    #[arg(long, env = "CHRONICLE_CHECK_INTEGRITY")]
    check_integrity: bool,
    /// A webhook host exempt from the check that refuses the server's own networks (loopback,
    /// private, link-local …): a name, `*.example.com` or an IP address. Repeatable.
    #[arg(long = "webhook-allow", value_name = "HOST")]
    webhook_allow: Vec<String>,
}

#[derive(Debug, Clone, Args)]
struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// The seed of the generated history: the same seed gives the same history.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Roughly how many events to generate.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
}

#[derive(Debug, Clone, Args)]
struct IngestArgs {
    /// The NDJSON file to append.
    file: PathBuf,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Events per atomic batch.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    restart_with_allocator_settings(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Demo(args) => serve::demo(args).await,
            Command::Ingest(args) => ingest::ingest(args).await,
            Command::Verify(args) => integrity::verify(args).await,
            Command::Checkpoint(args) => integrity::checkpoint(args).await,
            Command::Token(args) => tokens::token(args).await,
            Command::Rebuild(args) => rebuild::rebuild(args).await,
            Command::Search(args) => search::search(args).await,
            Command::Export(args) => export::export(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
