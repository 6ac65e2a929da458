//! `chronicle search WS 'QUERY'`: the audit search, through a running server (`--url`) or over
//! the data directory (the server stopped), printed as a table, newest first.
//!
//! Over the data directory the index is brought up to the log first (with progress), and the
//! search is recorded as an `audit.searched` event like any other, its actor the command line.

use std::time::Duration;

use anyhow::{Context as _, bail};
use chronicle_domain::envelope::Transport;
use chronicle_domain::{Actor, ActorKind, Context, RecordedEvent, parse_timestamp};
use chronicle_search::{
    AuditQuery, FacetRequest, SearchConfig, SearchError, SearchIndex, SearchRecord, SearchRequest,
    record_search,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::SearchArgs;
use crate::data_dir::DataDir;

/// What a search answers, whichever way it was asked.
#[derive(Debug, Deserialize)]
struct Answer {
    hits: Vec<RecordedEvent>,
    total: u64,
    position: u64,
}

pub async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let answer = match &args.remote.url {
        Some(url) => {
            let token =
                args.remote.token.as_deref().context(
                    "--url needs --token (or CHRONICLE_TOKEN): a token with the read scope",
                )?;
            search_server(&args, url, token).await?
        }
        None => search_data(&args).await?,
    };
    print_table(&answer);
    Ok(())
}

async fn search_server(args: &SearchArgs, url: &str, token: &str) -> anyhow::Result<Answer> {
    let mut parameters = vec![("q", args.query.clone()), ("limit", args.limit.to_string())];
    parameters.extend(args.from.clone().map(|from| ("from", from)));
    parameters.extend(args.to.clone().map(|to| ("to", to)));
    let address = format!(
        "{}/v1/workspaces/{}/audit",
        url.trim_end_matches('/'),
        args.workspace
    );
    let response = reqwest::Client::new()
        .get(&address)
        .query(&parameters)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {address}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{address} answered {status} without JSON"))?;
    if !status.is_success() {
        let error = &body["error"];
        let message = error["message"].as_str().unwrap_or("no message");
        if let Some(position) = error["position"].as_u64() {
            bail!("{}", pointed(&args.query, position as usize, message));
        }
        bail!("{address} answered {status}: {message}");
    }
    serde_json::from_value(body).context("the server's answer is not a search answer")
}

async fn search_data(args: &SearchArgs) -> anyhow::Result<Answer> {
    let query = AuditQuery::parse(&args.query)
        .map_err(|error| anyhow::anyhow!(pointed(&args.query, error.position, &error.message)))?;
    let from = timestamp(args.from.as_deref(), "--from")?;
    let to = timestamp(args.to.as_deref(), "--to")?;
    let data = DataDir::open(&args.storage.data, args.storage.database_url.as_deref())?;
    let store = data.open_store(&args.storage).await?;
    let index = SearchIndex::open(
        store.clone(),
        SearchConfig {
            directory: Some(data.index_path()),
            ..SearchConfig::default()
        },
    )
    .await
    .context("cannot open the search index")?;
    let answer = answer_from_data(args, &store, &index, query, from, to).await;
    index.shutdown().await;
    store.shutdown().await;
    answer
}

async fn answer_from_data(
    args: &SearchArgs,
    store: &chronicle_store::Store,
    index: &SearchIndex,
    query: AuditQuery,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
) -> anyhow::Result<Answer> {
    catch_up(index, store.head().position).await?;
    let results = index
        .search(SearchRequest {
            workspace: args.workspace.clone(),
            query,
            from,
            to,
            limit: args.limit as usize,
            cursor: None,
            facets: FacetRequest::default(),
        })
        .await
        .map_err(|error| match error {
            SearchError::InvalidQuery(invalid) => {
                anyhow::anyhow!(pointed(&args.query, invalid.position, &invalid.message))
            }
            other => anyhow::Error::new(other),
        })?;
    let hits = store.events_at(&results.positions).await?;
    let record = SearchRecord {
        workspace: args.workspace.clone(),
        query: args.query.clone(),
        from,
        to,
        hits: results.total,
        actor: Actor {
            kind: ActorKind::System,
            id: "chronicle-cli".into(),
            name: Some("chronicle search".into()),
        },
        context: Context {
            transport: Some(Transport::Cli),
            ..Context::default()
        },
    };
    record_search(store, record, OffsetDateTime::now_utc())
        .await
        .context("cannot record the search in the log")?;
    Ok(Answer {
        hits,
        total: results.total,
        position: results.position,
    })
}

/// Waits until the index reflects the log up to `head`, showing how far it has come.
async fn catch_up(index: &SearchIndex, head: u64) -> anyhow::Result<()> {
    let start = index.position();
    if start >= head {
        return Ok(());
    }
    let progress = ProgressBar::new(head - start).with_style(
        ProgressStyle::with_template("indexing the log {bar:40} {pos}/{len} events {per_sec}")
            .expect("a valid progress template"),
    );
    loop {
        match index.wait_for(head, Duration::from_secs(1)).await {
            Ok(()) => break,
            Err(SearchError::NotCaughtUp { position, .. }) => {
                progress.set_position(position.saturating_sub(start));
            }
            Err(error) => return Err(error).context("the search index cannot catch up"),
        }
    }
    progress.finish_and_clear();
    Ok(())
}

fn timestamp(text: Option<&str>, flag: &str) -> anyhow::Result<Option<OffsetDateTime>> {
    text.map(|text| {
        parse_timestamp(text).with_context(|| format!("{flag} must be an RFC 3339 timestamp"))
    })
    .transpose()
}

/// An invalid query, its text, and a caret under the place it goes wrong.
fn pointed(query: &str, position: usize, message: &str) -> String {
    format!(
        "invalid query: {message}\n  {query}\n  {}^",
        " ".repeat(position)
    )
}

fn print_table(answer: &Answer) {
    let rows: Vec<[String; 5]> = answer
        .hits
        .iter()
        .map(|event| {
            [
                event.position.to_string(),
                event.occurred_at.clone(),
                event.event_type.clone(),
                event
                    .actor
                    .name
                    .clone()
                    .unwrap_or_else(|| event.actor.id.clone()),
                summary(&event.data),
            ]
        })
        .collect();
    let header = ["POSITION", "OCCURRED AT", "TYPE", "ACTOR", "SUMMARY"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index == 4 {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        outln!("{}", text.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    outln!(
        "{} of {} hits, newest first; the index reflects the log up to position {}",
        answer.hits.len(),
        answer.total,
        answer.position
    );
}

/// The data's top-level values as `key=value`, cut to 80 characters.
fn summary(data: &Value) -> String {
    let Some(fields) = data.as_object() else {
        return String::new();
    };
    let text = fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            Value::Array(items) => format!(
                "{key}=[{}]",
                items
                    .iter()
                    .map(|item| item
                        .as_str()
                        .map_or_else(|| item.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_are_short_key_values() {
        assert_eq!(
            summary(&json!({"from": "web-1", "machines": ["a", "b"], "n": 3, "to": "web-01"})),
            "from=web-1 machines=[a,b] n=3 to=web-01"
        );
        assert_eq!(
            summary(&json!({"command": "x".repeat(200)}))
                .chars()
                .count(),
            80
        );
    }

    #[test]
    fn a_caret_points_at_the_place() {
        assert_eq!(
            pointed("type:x actr:y", 7, "unknown field"),
            "invalid query: unknown field\n  type:x actr:y\n         ^"
        );
    }
}
