//! Queries: lists with filters and cursors, details by key, now or as of a past moment.

use chronicle_domain::models::{ReadModel, State, apply, row_key};
use chronicle_domain::{RecordedEvent, parse_timestamp};
use chronicle_store::db::{Access, Backend, Sql};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection, Executor, Row};
use time::OffsetDateTime;

use crate::error::ProjectionError;
use crate::runner::Projections;
use crate::tables::{Column, Model, SqlModel, with_model};
use crate::writer::write;

/// The read models' tables, for the in-memory copies `as_of` answers are built in.
const READ_MODEL_SCHEMA: &str = include_str!("../../migrations/sqlite/0004_read_models.sql");

/// Events per read when an `as_of` answer folds a workspace's history.
const HISTORY_PAGE: u32 = 1_000;

/// A list's filters, named as the API's query parameters; each model takes some of them and
/// refuses the others.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub status: Option<String>,
    pub os: Option<String>,
    pub tag: Option<String>,
    /// Text in a machine's id, name or hostname.
    pub q: Option<String>,
    pub machine: Option<String>,
    pub actor: Option<String>,
    pub state: Option<String>,
    /// Inclusive start of a time range (RFC 3339).
    pub from: Option<String>,
    /// Exclusive end of a time range (RFC 3339).
    pub to: Option<String>,
    /// The schedule whose runs are listed (from the path, not a query parameter).
    pub schedule: Option<String>,
}

impl Filters {
    pub(crate) const PARAMETERS: &'static [&'static str] = &[
        "status", "os", "tag", "q", "machine", "actor", "state", "from", "to",
    ];

    pub(crate) fn get(&self, parameter: &str) -> Option<&str> {
        match parameter {
            "status" => self.status.as_deref(),
            "os" => self.os.as_deref(),
            "tag" => self.tag.as_deref(),
            "q" => self.q.as_deref(),
            "machine" => self.machine.as_deref(),
            "actor" => self.actor.as_deref(),
            "state" => self.state.as_deref(),
            "from" => self.from.as_deref(),
            "to" => self.to.as_deref(),
            _ => None,
        }
    }
}

/// Which page of a list.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of a list, and the log position it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
    pub position: u64,
}

/// A past moment to answer as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The log up to and including this position.
    Position(u64),
    /// Every event recorded at or before this time.
    Time(OffsetDateTime),
}

impl AsOf {
    /// Parses `as_of`: a position (digits) or an RFC 3339 timestamp.
    pub fn parse(text: &str) -> Result<AsOf, ProjectionError> {
        if let Ok(position) = text.parse::<u64>() {
            return Ok(AsOf::Position(position));
        }
        parse_timestamp(text).map(AsOf::Time).map_err(|_| {
            ProjectionError::invalid(
                "as_of",
                "as_of must be a log position or an RFC 3339 timestamp",
            )
        })
    }

    fn includes(self, event: &RecordedEvent) -> bool {
        match self {
            AsOf::Position(position) => event.position <= position,
            // recorded_at never decreases along the log (ADR 0001): a time is a prefix.
            AsOf::Time(time) => parse_timestamp(&event.recorded_at).is_ok_and(|at| at <= time),
        }
    }
}

/// Where a query reads: the live tables, or an in-memory copy built for an `as_of` answer.
enum Source {
    Live(PoolConnection<Any>),
    Snapshot(AnyConnection),
}

impl Source {
    fn connection(&mut self) -> &mut AnyConnection {
        match self {
            Source::Live(connection) => connection,
            Source::Snapshot(connection) => connection,
        }
    }
}

impl Projections {
    /// Returns one page of a model's list in `workspace`, now or `as_of` a past moment.
    pub async fn list(
        &self,
        model: Model,
        workspace: &str,
        filters: &Filters,
        page: &PageRequest,
        as_of: Option<AsOf>,
    ) -> Result<Page, ProjectionError> {
        let mut source = self.source(model, workspace, as_of).await?;
        // One read transaction: the rows and the position come from the same snapshot.
        let mut transaction = source.connection().begin().await?;
        let answer = with_model!(model, M => list_on::<M>(&mut transaction, workspace, filters, page).await?);
        transaction.commit().await?;
        Ok(answer)
    }

    /// Returns one row of a model by id (a machine, session or schedule id; the workspace for
    /// billing) and the position it reflects, now or `as_of` a past moment. The row's key starts
    /// with the workspace, so no id reaches another workspace's row.
    pub async fn detail(
        &self,
        model: Model,
        workspace: &str,
        id: &str,
        as_of: Option<AsOf>,
    ) -> Result<(Option<Value>, u64), ProjectionError> {
        let key = match model {
            Model::Billing => workspace.to_owned(),
            _ => row_key(workspace, id),
        };
        let mut source = self.source(model, workspace, as_of).await?;
        let mut transaction = source.connection().begin().await?;
        let position = checkpoint(&mut transaction, model.name()).await?;
        let doc: Option<String> = sqlx::query_scalar(&format!(
            "SELECT doc FROM {} WHERE key = $1 AND workspace = $2",
            model.name()
        ))
        .bind(key)
        .bind(workspace)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let row = doc.map(|doc| parse_doc(model.name(), &doc)).transpose()?;
        Ok((row, position))
    }

    async fn source(
        &self,
        model: Model,
        workspace: &str,
        as_of: Option<AsOf>,
    ) -> Result<Source, ProjectionError> {
        match as_of {
            None => Ok(Source::Live(self.readers.acquire().await?)),
            Some(as_of) => Ok(Source::Snapshot(
                self.snapshot(model, workspace, as_of).await?,
            )),
        }
    }

    /// Builds an in-memory database holding `model` as it stood at `as_of`, from the log. The
    /// history is folded page by page: memory holds the model's rows and one page of events,
    /// never the workspace's history.
    async fn snapshot(
        &self,
        model: Model,
        workspace: &str,
        as_of: AsOf,
    ) -> Result<AnyConnection, ProjectionError> {
        // The copy is an in-memory SQLite database on either backend, with the embedded schema.
        let mut memory = Backend::Sqlite(":memory:".into())
            .connect(Access::ReadWrite)
            .await?;
        memory.execute(READ_MODEL_SCHEMA).await?;
        let reached = with_model!(model, M => {
            let mut state = State::new();
            let reached = self
                .fold_history(workspace, as_of, |event| apply::<M>(&mut state, event))
                .await?;
            write::<M>(&mut memory, M::NAME, &state).await?;
            reached
        });
        let position = match as_of {
            AsOf::Position(position) => position.min(self.store.head().position),
            AsOf::Time(_) => reached,
        };
        sqlx::query("UPDATE projection_checkpoints SET position = $1 WHERE model = $2")
            .bind(position as i64)
            .bind(model.name())
            .execute(&mut memory)
            .await?;
        Ok(memory)
    }

    /// Hands `fold` each of the workspace's events `as_of` allows, in position order, one page
    /// read at a time: its own history alone (a machine that moved in starts from its arrival,
    /// which carries what it was). Answers the position of the last one, 0 for none.
    async fn fold_history(
        &self,
        workspace: &str,
        as_of: AsOf,
        mut fold: impl FnMut(&RecordedEvent),
    ) -> Result<u64, ProjectionError> {
        let mut after = 0;
        let mut reached = 0;
        loop {
            let page = self
                .store
                .read_workspace(workspace, after, HISTORY_PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(reached);
            };
            after = last.position;
            for event in &page {
                if !as_of.includes(event) {
                    return Ok(reached);
                }
                fold(event);
                reached = event.position;
            }
        }
    }
}

/// Returns a model's checkpoint.
async fn checkpoint(connection: &mut AnyConnection, model: &str) -> Result<u64, ProjectionError> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE model = $1")
            .bind(model)
            .fetch_optional(connection)
            .await?;
    Ok(position.unwrap_or(0) as u64)
}

async fn list_on<M: SqlModel>(
    connection: &mut AnyConnection,
    workspace: &str,
    filters: &Filters,
    page: &PageRequest,
) -> Result<Page, ProjectionError> {
    let position = checkpoint(connection, M::NAME).await?;
    let mut query = Sql::new(format!(
        "SELECT sort, doc FROM {} WHERE workspace = ",
        M::NAME
    ));
    query.bind(workspace.to_owned());
    for condition in M::conditions(filters)? {
        // Each condition has one `?`, where its value goes.
        let (before, after) = condition.sql.split_once('?').unwrap_or((condition.sql, ""));
        query.push(" AND ").push(before);
        match condition.value {
            Column::Text(text) => query.bind(text),
            Column::Integer(number) => query.bind(number),
        };
        query.push(after);
    }
    if let Some(cursor) = &page.cursor {
        query
            .push(if M::DESCENDING {
                " AND sort < "
            } else {
                " AND sort > "
            })
            .bind(decode_cursor(cursor)?);
    }
    query
        .push(if M::DESCENDING {
            " ORDER BY sort DESC LIMIT "
        } else {
            " ORDER BY sort LIMIT "
        })
        .bind(i64::from(page.limit) + 1);
    let rows = query.fetch_all(connection).await?;
    let more = rows.len() > page.limit as usize;
    let mut items = Vec::with_capacity(rows.len());
    let mut last_sort = None;
    for row in rows.iter().take(page.limit as usize) {
        last_sort = Some(row.try_get::<String, _>(0)?);
        items.push(parse_doc(M::NAME, row.try_get(1)?)?);
    }
    Ok(Page {
        items,
        next_cursor: last_sort.filter(|_| more).map(|sort| encode_cursor(&sort)),
        position,
    })
}

fn parse_doc(model: &'static str, doc: &str) -> Result<Value, ProjectionError> {
    serde_json::from_str(doc).map_err(|source| ProjectionError::Corrupt { model, source })
}

/// A cursor is the hex of the last row's sort key: opaque, and safe in a query string.
fn encode_cursor(sort: &str) -> String {
    sort.bytes().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<String, ProjectionError> {
    let invalid = || ProjectionError::invalid("cursor", "cursor is not one this list answered");
    if !cursor.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(cursor.get(index..index + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}
