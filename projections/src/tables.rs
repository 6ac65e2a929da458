//! Each read model's SQL table: its filter columns, its list order and the filters it takes.

use chronicle_domain::models::activity::ActivityFeed;
use chronicle_domain::models::billing::BillingModel;
use chronicle_domain::models::machines::Machines;
use chronicle_domain::models::members::Members;
use chronicle_domain::models::runs::Runs;
use chronicle_domain::models::schedules::Schedules;
use chronicle_domain::models::sessions::Sessions;
use chronicle_domain::models::{ReadModel, unix_nanos};
use chronicle_domain::parse_timestamp;

use crate::error::ProjectionError;
use crate::query::Filters;

/// Runs `$body` with `$M` standing for the domain model of `$model`.
macro_rules! with_model {
    ($model:expr, $M:ident => $body:expr) => {
        match $model {
            $crate::tables::Model::Machines => {
                type $M = chronicle_domain::models::machines::Machines;
                $body
            }
            $crate::tables::Model::Sessions => {
                type $M = chronicle_domain::models::sessions::Sessions;
                $body
            }
            $crate::tables::Model::Schedules => {
                type $M = chronicle_domain::models::schedules::Schedules;
                $body
            }
            $crate::tables::Model::Runs => {
                type $M = chronicle_domain::models::runs::Runs;
                $body
            }
            $crate::tables::Model::Members => {
                type $M = chronicle_domain::models::members::Members;
                $body
            }
            $crate::tables::Model::Billing => {
                type $M = chronicle_domain::models::billing::BillingModel;
                $body
            }
            $crate::tables::Model::Activity => {
                type $M = chronicle_domain::models::activity::ActivityFeed;
                $body
            }
        }
    };
}
pub(crate) use with_model;

/// The read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    Machines,
    Sessions,
    Schedules,
    Runs,
    Members,
    Billing,
    Activity,
}

impl Model {
    /// Every model, in the order of [`crate::Positions`].
    pub const ALL: [Model; 7] = [
        Model::Machines,
        Model::Sessions,
        Model::Schedules,
        Model::Runs,
        Model::Members,
        Model::Billing,
        Model::Activity,
    ];

    /// Returns the model's name, which is also its table's.
    pub fn name(self) -> &'static str {
        with_model!(self, M => M::NAME)
    }

    /// Returns the query parameters a list of this model may be filtered by.
    pub fn filters(self) -> &'static [&'static str] {
        with_model!(self, M => M::FILTERS)
    }

    /// Returns the model of this name.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|model| model.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A value bound into SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    Text(String),
    Integer(i64),
}

/// One filter condition: SQL with one `?`, and what it binds.
#[derive(Debug)]
pub(crate) struct Condition {
    pub sql: &'static str,
    pub value: Column,
}

/// A read model as a SQL table.
pub(crate) trait SqlModel: ReadModel {
    /// Whether lists answer the highest `sort` first.
    const DESCENDING: bool;
    /// Whether every event adds new rows and changes no old one (nothing to load first).
    const APPEND_ONLY: bool = false;
    /// The filter columns after `key, workspace, sort, doc`.
    const COLUMNS: &'static [&'static str];
    /// The query parameters a list of this model may be filtered by.
    const FILTERS: &'static [&'static str];

    /// Returns the list order of a row (unique, since it ends with the key).
    fn sort_key(key: &str, row: &Self::Row) -> String;

    /// Returns the values of [`Self::COLUMNS`].
    fn columns(row: &Self::Row) -> Vec<Column>;

    /// Turns the query's filters into conditions; a filter the model does not take is refused.
    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError>;
}

/// A sort key that orders rows by time, then by key: fixed-width, so text order is time order.
fn time_sort_key(time: &str, key: &str) -> String {
    format!("{:020}|{key}", unix_nanos(time).max(0))
}

fn text(value: &str) -> Column {
    Column::Text(value.to_owned())
}

/// `,a,b,` in lowercase: a list column that `LIKE '%,a,%'` searches, without regard to case on
/// both databases (SQLite's `LIKE` ignores ASCII case, PostgreSQL's does not).
fn list_column<'a>(items: impl IntoIterator<Item = &'a String>) -> Column {
    let mut joined = String::from(",");
    for item in items {
        joined.push_str(&item.to_lowercase());
        joined.push(',');
    }
    Column::Text(joined)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escaped(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

/// Builds conditions from the filters a model takes; any other filter given is refused.
struct ConditionBuilder<'a> {
    filters: &'a Filters,
    model: &'static str,
    /// The model's [`SqlModel::FILTERS`]: any other parameter given is refused.
    allowed: &'static [&'static str],
    conditions: Vec<Condition>,
}

impl<'a> ConditionBuilder<'a> {
    fn new(filters: &'a Filters, model: &'static str, allowed: &'static [&'static str]) -> Self {
        ConditionBuilder {
            filters,
            model,
            allowed,
            conditions: Vec::new(),
        }
    }

    fn equal(mut self, parameter: &'static str, sql: &'static str) -> Self {
        if let Some(value) = self.filters.get(parameter) {
            self.conditions.push(Condition {
                sql,
                value: text(value),
            });
        }
        self
    }

    fn listed(mut self, parameter: &'static str, sql: &'static str) -> Self {
        if let Some(value) = self.filters.get(parameter) {
            self.conditions.push(Condition {
                sql,
                value: Column::Text(format!("%,{},%", like_escaped(&value.to_lowercase()))),
            });
        }
        self
    }

    fn time_range(mut self) -> Result<Self, ProjectionError> {
        for (parameter, sql) in [("from", "at >= ?"), ("to", "at < ?")] {
            if let Some(value) = self.filters.get(parameter) {
                let time = parse_timestamp(value).map_err(|_| {
                    ProjectionError::invalid(
                        parameter,
                        format!("{parameter} must be an RFC 3339 timestamp"),
                    )
                })?;
                let nanos = i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX);
                self.conditions.push(Condition {
                    sql,
                    value: Column::Integer(nanos),
                });
            }
        }
        Ok(self)
    }

    fn finish(self) -> Result<Vec<Condition>, ProjectionError> {
        if let Some(parameter) = Filters::PARAMETERS.iter().find(|parameter| {
            !self.allowed.contains(parameter) && self.filters.get(parameter).is_some()
        }) {
            return Err(ProjectionError::invalid(
                parameter,
                format!("{} cannot be filtered by {parameter}", self.model),
            ));
        }
        Ok(self.conditions)
    }
}

impl SqlModel for Machines {
    const DESCENDING: bool = false;
    const COLUMNS: &'static [&'static str] = &["status", "os", "tags", "search"];
    const FILTERS: &'static [&'static str] = &["status", "os", "tag", "q"];

    fn sort_key(key: &str, _row: &Self::Row) -> String {
        key.to_owned()
    }

    fn columns(row: &Self::Row) -> Vec<Column> {
        vec![
            text(&row.status),
            text(&row.os),
            list_column(&row.tags),
            Column::Text(format!("{} {} {}", row.id, row.name, row.hostname).to_lowercase()),
        ]
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        let mut builder = ConditionBuilder::new(filters, Self::NAME, Self::FILTERS)
            .equal("status", "status = ?")
            .equal("os", "os = ?")
            .listed("tag", "tags LIKE ? ESCAPE '\\'");
        if let Some(q) = filters.get("q") {
            builder.conditions.push(Condition {
                sql: "search LIKE ? ESCAPE '\\'",
                value: Column::Text(format!("%{}%", like_escaped(&q.to_lowercase()))),
            });
        }
        builder.finish()
    }
}

impl SqlModel for Sessions {
    const DESCENDING: bool = true;
    const COLUMNS: &'static [&'static str] = &["machine", "actor", "state", "at"];
    const FILTERS: &'static [&'static str] = &["machine", "actor", "state", "from", "to"];

    fn sort_key(key: &str, row: &Self::Row) -> String {
        time_sort_key(&row.opened_at, key)
    }

    fn columns(row: &Self::Row) -> Vec<Column> {
        vec![
            text(&row.machine),
            text(&row.opened_by),
            text(&row.state),
            Column::Integer(unix_nanos(&row.opened_at)),
        ]
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        ConditionBuilder::new(filters, Self::NAME, Self::FILTERS)
            .equal("machine", "machine = ?")
            .equal("actor", "actor = ?")
            .equal("state", "state = ?")
            .time_range()?
            .finish()
    }
}

impl SqlModel for Schedules {
    const DESCENDING: bool = false;
    const COLUMNS: &'static [&'static str] = &["status"];
    const FILTERS: &'static [&'static str] = &["status"];

    fn sort_key(key: &str, _row: &Self::Row) -> String {
        key.to_owned()
    }

    fn columns(row: &Self::Row) -> Vec<Column> {
        vec![text(&row.last_status)]
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        ConditionBuilder::new(filters, Self::NAME, Self::FILTERS)
            .equal("status", "status = ?")
            .finish()
    }
}

impl SqlModel for Runs {
    const DESCENDING: bool = true;
    const COLUMNS: &'static [&'static str] = &["schedule", "status", "machines", "at"];
    const FILTERS: &'static [&'static str] = &["status", "machine", "from", "to"];

    fn sort_key(key: &str, row: &Self::Row) -> String {
        time_sort_key(&row.queued_at, key)
    }

    fn columns(row: &Self::Row) -> Vec<Column> {
        vec![
            text(&row.schedule),
            text(&row.status),
            list_column(row.machines.keys()),
            Column::Integer(unix_nanos(&row.queued_at)),
        ]
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        let mut builder = ConditionBuilder::new(filters, Self::NAME, Self::FILTERS)
            .equal("status", "status = ?")
            .listed("machine", "machines LIKE ? ESCAPE '\\'")
            .time_range()?;
        if let Some(schedule) = &filters.schedule {
            builder.conditions.push(Condition {
                sql: "schedule = ?",
                value: text(schedule),
            });
        }
        builder.finish()
    }
}

impl SqlModel for Members {
    const DESCENDING: bool = false;
    const COLUMNS: &'static [&'static str] = &["status", "role"];
    const FILTERS: &'static [&'static str] = &["status"];

    fn sort_key(key: &str, _row: &Self::Row) -> String {
        key.to_owned()
    }

    fn columns(row: &Self::Row) -> Vec<Column> {
        let role = serde_json::to_value(row.role)
            .ok()
            .and_then(|role| role.as_str().map(str::to_owned))
            .unwrap_or_default();
        vec![text(&row.status), Column::Text(role)]
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        ConditionBuilder::new(filters, Self::NAME, Self::FILTERS)
            .equal("status", "status = ?")
            .finish()
    }
}

impl SqlModel for BillingModel {
    const DESCENDING: bool = false;
    const COLUMNS: &'static [&'static str] = &[];
    const FILTERS: &'static [&'static str] = &[];

    fn sort_key(key: &str, _row: &Self::Row) -> String {
        key.to_owned()
    }

    fn columns(_row: &Self::Row) -> Vec<Column> {
        Vec::new()
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        ConditionBuilder::new(filters, Self::NAME, Self::FILTERS).finish()
    }
}

impl SqlModel for ActivityFeed {
    const DESCENDING: bool = true;
    const APPEND_ONLY: bool = true;
    const COLUMNS: &'static [&'static str] = &["actor", "at"];
    const FILTERS: &'static [&'static str] = &["actor", "from", "to"];

    fn sort_key(key: &str, _row: &Self::Row) -> String {
        key.to_owned()
    }

    fn columns(row: &Self::Row) -> Vec<Column> {
        vec![
            text(&row.actor.id),
            Column::Integer(unix_nanos(&row.occurred_at)),
        ]
    }

    fn conditions(filters: &Filters) -> Result<Vec<Condition>, ProjectionError> {
        ConditionBuilder::new(filters, Self::NAME, Self::FILTERS)
            .equal("actor", "actor = ?")
            .time_range()?
            .finish()
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    /// Filters with one parameter set to a value it accepts.
    fn only(parameter: &str) -> Filters {
        let value = Some(match parameter {
            "from" | "to" => "2026-01-01T00:00:00Z".to_owned(),
            _ => "x".to_owned(),
        });
        let mut filters = Filters::default();
        match parameter {
            "status" => filters.status = value,
            "os" => filters.os = value,
            "tag" => filters.tag = value,
            "q" => filters.q = value,
            "machine" => filters.machine = value,
            "actor" => filters.actor = value,
            "state" => filters.state = value,
            "from" => filters.from = value,
            "to" => filters.to = value,
            other => panic!("no filter {other}"),
        }
        filters
    }

    #[test]
    fn each_model_filters_by_exactly_the_parameters_it_declares() {
        for model in Model::ALL {
            for &parameter in Filters::PARAMETERS {
                let conditions = with_model!(model, M => M::conditions(&only(parameter)));
                if model.filters().contains(&parameter) {
                    let conditions = conditions.unwrap();
                    assert_eq!(conditions.len(), 1, "{} by {parameter}", model.name());
                } else {
                    assert!(conditions.is_err(), "{} by {parameter}", model.name());
                }
            }
        }
    }
}
