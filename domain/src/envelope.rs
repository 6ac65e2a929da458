//! The envelope: an event as a producer sends it ([`NewEvent`]) and as Chronicle records it
//! ([`RecordedEvent`]).
//!
//! [`NewEvent::from_json`] is the one gate every event passes before it reaches the log: the
//! envelope's fields, the stream's form and kind, the actor, the context, the typed `data` of the
//! catalogue, and the refusal of secrets sent in clear. Each refusal names the field.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::canonical::{LeafHash, canonical_json, leaf_hash};
use crate::catalogue::{self, DataError, MachineRegistered};

/// Why an event as sent was refused; `field` is a dotted path such as `data.hostname`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidEvent {
    pub field: String,
    pub message: String,
}

impl InvalidEvent {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The kinds of actor the catalogue knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Member,
    ApiToken,
    System,
    ShareLink,
    Agent,
}

/// How the request behind an event was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Password,
    Oauth,
    Sso,
    ApiKey,
    ShareLink,
    AgentKey,
}

/// The channel the request behind an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Rest,
    Websocket,
    Grpc,
    Cli,
}

/// The request behind an event; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub source_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// What a producer demands of the stream's current version before its event is appended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No demand.
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must already hold at least one event.
    Exists,
    /// The stream's version must be exactly this (0 means the stream is empty).
    Exact(u64),
}

impl ExpectedVersion {
    /// Checks the demand against the stream's current version (0 when the stream is empty).
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exists => current > 0,
            ExpectedVersion::Exact(version) => current == version,
        }
    }

    fn from_json(value: &Value) -> Result<Self, InvalidEvent> {
        match value {
            Value::Null => Ok(ExpectedVersion::Any),
            Value::String(text) => match text.as_str() {
                "any" => Ok(ExpectedVersion::Any),
                "no_stream" => Ok(ExpectedVersion::NoStream),
                "exists" => Ok(ExpectedVersion::Exists),
                _ => Err(Self::refusal()),
            },
            Value::Number(number) => number
                .as_u64()
                .map(ExpectedVersion::Exact)
                .ok_or_else(Self::refusal),
            _ => Err(Self::refusal()),
        }
    }

    fn refusal() -> InvalidEvent {
        InvalidEvent::new(
            "expected_version",
            "expected a version number, \"no_stream\", \"exists\" or \"any\"",
        )
    }
}

impl Serialize for ExpectedVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectedVersion::Any => serializer.serialize_str("any"),
            ExpectedVersion::NoStream => serializer.serialize_str("no_stream"),
            ExpectedVersion::Exists => serializer.serialize_str("exists"),
            ExpectedVersion::Exact(version) => serializer.serialize_u64(*version),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(version) => write!(f, "{version}"),
        }
    }
}

/// An event as a producer sent it, validated and normalised, not yet in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub stream: String,
    pub event_type: String,
    pub workspace: Option<String>,
    /// RFC 3339 in UTC, as [`format_timestamp`] writes it.
    pub occurred_at: String,
    pub actor: Actor,
    pub context: Context,
    pub data: Value,
    pub expected_version: ExpectedVersion,
    /// The id of the token whose request appends it (`admin` for the bootstrap admin token,
    /// `chronicle` for Chronicle's own events); set by [`PreparedEvent::new`].
    pub submitted_by: Option<String>,
}

const ENVELOPE_FIELDS: &[&str] = &[
    "id",
    "stream",
    "type",
    "workspace",
    "occurred_at",
    "actor",
    "context",
    "data",
    "expected_version",
];

/// Stream kinds whose events may belong to no workspace.
const WORKSPACELESS_KINDS: &[&str] = &["account", "token"];

/// What a field's name ends with, as lowercase words, when it names a secret: `password`,
/// `smtp_password`, `apiToken`, `clientSecret`, `card-number`, `x_api_token`, `apiKey`, `CVV2`.
/// A name matches when its words (see [`name_words`]) end with one of these word sequences.
const SECRET_NAMES: &[&[&str]] = &[
    &["password"],
    &["passphrase"],
    &["secret"],
    &["token"],
    &["card", "number"],
    &["pin"],
    &["cvv"],
    &["cvc"],
    &["private", "key"],
    &["api", "key"],
];

/// The keys of an object that stands for a secret without holding it, the only value besides
/// `null` a secret-named field may carry: `{"sha256": "…"}`, `{"prefix": "cmd_ws1", "length": 40}`.
/// An object is such a stand-in when it has at least one key and every key is one of these.
const SECRET_STAND_IN_KEYS: &[&str] = &["sha256", "hash", "prefix", "length", "bytes"];

/// The largest integer every JSON reader holds exactly (2^53).
const MAX_SAFE_INTEGER: u64 = 1 << 53;

const MAX_ID_LENGTH: usize = 128;

/// `submitted_by` of the events Chronicle records itself (the audit of the audit, a demo's
/// generated history).
pub const SUBMITTED_BY_CHRONICLE: &str = "chronicle";

/// `submitted_by` of what the bootstrap admin token, or the operator at the data directory,
/// appended.
pub const SUBMITTED_BY_ADMIN: &str = "admin";

/// The most bytes of leaf data (the JCS encoding of the recorded event) one event may have.
pub const MAX_LEAF_DATA_BYTES: usize = 65_535;

impl NewEvent {
    /// Validates one event as sent. `fresh_id` becomes its id when the producer sent none.
    pub fn from_json(value: &Value, fresh_id: Uuid) -> Result<NewEvent, InvalidEvent> {
        let object = value
            .as_object()
            .ok_or_else(|| InvalidEvent::new("", "an event must be a JSON object"))?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !ENVELOPE_FIELDS.contains(&key.as_str()))
        {
            let message = match unknown.as_str() {
                "position" | "workspace_seq" | "stream_version" | "recorded_at" | "leaf_hash" => {
                    "is assigned by chronicle and must not be sent"
                }
                _ => "is not a field of the event envelope",
            };
            return Err(InvalidEvent::new(unknown.clone(), message));
        }

        let id = match object.get("id") {
            None | Some(Value::Null) => fresh_id,
            Some(Value::String(text)) => {
                Uuid::parse_str(text).map_err(|_| InvalidEvent::new("id", "must be a UUID"))?
            }
            Some(_) => return Err(InvalidEvent::new("id", "must be a UUID")),
        };

        let event_type = required_string(object, "type")?;
        let kind = catalogue::stream_kind(event_type).ok_or_else(|| {
            InvalidEvent::new("type", format!("unknown event type `{event_type}`"))
        })?;
        if catalogue::is_reserved(event_type) {
            return Err(InvalidEvent::new(
                "type",
                "is recorded by chronicle itself and cannot be sent",
            ));
        }

        let stream = required_string(object, "stream")?;
        let stream_id = parse_stream(stream)?;
        if stream_id.0 != kind {
            return Err(InvalidEvent::new(
                "stream",
                format!("a {event_type} event belongs in a `{kind}-…` stream"),
            ));
        }

        let workspace = match object.get("workspace") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                if !is_workspace_name(text) {
                    return Err(InvalidEvent::new(
                        "workspace",
                        "must be 1 to 64 letters, digits, `_`, `.` or `-`",
                    ));
                }
                Some(text.clone())
            }
            Some(_) => return Err(InvalidEvent::new("workspace", "must be a string")),
        };
        check_stream_workspace(kind, stream_id.1, workspace.as_deref())?;

        let occurred_at = required_string(object, "occurred_at")?;
        let occurred_at = parse_timestamp(occurred_at)
            .map(format_timestamp)
            .map_err(|_| InvalidEvent::new("occurred_at", "must be an RFC 3339 timestamp"))?;

        let actor_value = object
            .get("actor")
            .ok_or_else(|| InvalidEvent::new("actor", "missing required field"))?;
        let actor: Actor = typed(actor_value, "actor")?;
        if !is_identifier(&actor.id, MAX_ID_LENGTH) {
            return Err(InvalidEvent::new(
                "actor.id",
                "must be 1 to 128 printable characters",
            ));
        }

        let context = match object.get("context") {
            None | Some(Value::Null) => Context::default(),
            Some(value) => {
                let context: Context = typed(value, "context")?;
                if let Some(code) = context.response_code
                    && !(100..=599).contains(&code)
                {
                    return Err(InvalidEvent::new(
                        "context.response_code",
                        "must be an HTTP status from 100 to 599",
                    ));
                }
                context
            }
        };

        let data = object
            .get("data")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if !data.is_object() {
            return Err(InvalidEvent::new("data", "must be a JSON object"));
        }
        check_clear_values(&data, "data")?;
        check_move(event_type, workspace.as_deref(), &data)?;
        catalogue::parse_data(event_type, &data).map_err(|error| match error {
            DataError::UnknownType(kind) => {
                InvalidEvent::new("type", format!("unknown event type `{kind}`"))
            }
            DataError::Field { field, message } if field.is_empty() => {
                InvalidEvent::new("data", message)
            }
            DataError::Field { field, message } => {
                InvalidEvent::new(format!("data.{field}"), message)
            }
        })?;

        let expected_version =
            ExpectedVersion::from_json(object.get("expected_version").unwrap_or(&Value::Null))?;

        Ok(NewEvent {
            id,
            stream: stream.to_owned(),
            event_type: event_type.to_owned(),
            workspace,
            occurred_at,
            actor,
            context,
            data,
            expected_version,
            submitted_by: None,
        })
    }

    /// Builds the recorded form of this event at its assigned place in the log.
    pub fn record(&self, place: Place, recorded_at: &str) -> RecordedEvent {
        RecordedEvent {
            position: place.position,
            workspace_seq: place.workspace_seq,
            id: self.id,
            stream: self.stream.clone(),
            stream_version: place.stream_version,
            event_type: self.event_type.clone(),
            workspace: self.workspace.clone(),
            occurred_at: self.occurred_at.clone(),
            recorded_at: recorded_at.to_owned(),
            actor: self.actor.clone(),
            context: self.context.clone(),
            data: self.data.clone(),
            submitted_by: self.submitted_by.clone(),
            leaf_hash: String::new(),
        }
    }

    /// For a `machine.moved` sent from the workspace the machine leaves, returns its copy in the
    /// workspace it joins: the same stream name there, the machine's attributes as it left, and
    /// an id derived from this event's, so a retry of the move is a retry of both.
    /// `machine` is absent when the workspace it leaves knows nothing of it (its registration
    /// not recorded yet): the move is fact all the same.
    pub fn arrival(&self, machine: Option<MachineRegistered>) -> Option<NewEvent> {
        if self.event_type != "machine.moved" {
            return None;
        }
        let to_workspace = self.data["to_workspace"].as_str()?.to_owned();
        let mut data = self.data.clone();
        if let Some(machine) = machine {
            data["machine"] = serde_json::to_value(machine).ok()?;
        }
        let digest = Sha256::new()
            .chain_update(self.id.as_bytes())
            .chain_update(b"arrival")
            .finalize();
        let id_bytes: [u8; 16] = digest[..16].try_into().ok()?;
        Some(NewEvent {
            id: uuid::Builder::from_custom_bytes(id_bytes).into_uuid(),
            workspace: Some(to_workspace),
            data,
            expected_version: ExpectedVersion::Any,
            ..self.clone()
        })
    }

    /// Returns what the producer chose of this event, to compare a retry with what is
    /// recorded: equal content means the same event sent again.
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            id: &self.id,
            stream: &self.stream,
            event_type: &self.event_type,
            workspace: self.workspace.as_deref(),
            occurred_at: &self.occurred_at,
            actor: &self.actor,
            context: &self.context,
            data: &self.data,
        }
    }
}

/// An event ready for the appender: its canonical encoding computed ahead, in pieces around the
/// fields the appender assigns, so the single writer only joins bytes and finishes one hash.
///
/// RFC 8785 orders keys, so the recorded body is always `head ‖ "position":P,"recorded_at":R, ‖
/// middle ‖ "stream_version":V, ‖ tail ‖ "workspace_seq":S}`.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event: NewEvent,
    /// The store's key of the event's stream ([`stream_key`]).
    pub stream_key: String,
    head: Vec<u8>,
    middle: Vec<u8>,
    tail: Vec<u8>,
    head_hash: Sha256,
}

impl PreparedEvent {
    /// Encodes the producer's part of the event, submitted by the token `submitted_by`.
    pub fn new(mut event: NewEvent, submitted_by: &str) -> PreparedEvent {
        event.submitted_by = Some(submitted_by.to_owned());
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(b"{\"actor\":");
        head.extend_from_slice(&encode(&event.actor));
        head.extend_from_slice(b",\"context\":");
        head.extend_from_slice(&encode(&event.context));
        head.extend_from_slice(b",\"data\":");
        head.extend_from_slice(&encode(&event.data));
        head.extend_from_slice(b",\"id\":");
        head.extend_from_slice(&encode(&event.id));
        head.extend_from_slice(b",\"occurred_at\":");
        head.extend_from_slice(&encode(&event.occurred_at));
        head.push(b',');
        let mut middle = b"\"stream\":".to_vec();
        middle.extend_from_slice(&encode(&event.stream));
        middle.push(b',');
        let mut tail = b"\"submitted_by\":".to_vec();
        tail.extend_from_slice(&encode(&event.submitted_by));
        tail.extend_from_slice(b",\"type\":");
        tail.extend_from_slice(&encode(&event.event_type));
        tail.extend_from_slice(b",\"workspace\":");
        tail.extend_from_slice(&encode(&event.workspace));
        tail.push(b',');
        let mut head_hash = Sha256::new();
        head_hash.update([0u8]);
        head_hash.update(&head);
        PreparedEvent {
            stream_key: stream_key(event.workspace.as_deref(), &event.stream),
            event,
            head,
            middle,
            tail,
            head_hash,
        }
    }

    /// Returns the most bytes this event's leaf data can take, wherever it lands: its own parts
    /// plus the widest position, recording time, stream version and workspace sequence.
    pub fn largest_leaf_data(&self) -> usize {
        const WIDEST_PLACE: &str = concat!(
            "\"position\":18446744073709551615,\"recorded_at\":\"9999-12-31T23:59:59.999999999Z\",",
            "\"stream_version\":18446744073709551615,",
            "\"workspace_seq\":18446744073709551615}"
        );
        self.head.len() + self.middle.len() + self.tail.len() + WIDEST_PLACE.len()
    }

    /// Returns the canonical body of the event recorded at `place` and its leaf hash.
    pub fn seal(&self, place: Place, recorded_at: &str) -> (Vec<u8>, LeafHash) {
        use std::io::Write;
        let mut rest = Vec::with_capacity(self.middle.len() + self.tail.len() + 96);
        write!(
            rest,
            "\"position\":{},\"recorded_at\":\"{recorded_at}\",",
            place.position
        )
        .expect("writing to a vector");
        rest.extend_from_slice(&self.middle);
        write!(rest, "\"stream_version\":{},", place.stream_version).expect("writing to a vector");
        rest.extend_from_slice(&self.tail);
        match place.workspace_seq {
            Some(seq) => write!(rest, "\"workspace_seq\":{seq}}}"),
            None => write!(rest, "\"workspace_seq\":null}}"),
        }
        .expect("writing to a vector");
        let mut hasher = self.head_hash.clone();
        hasher.update(&rest);
        let mut body = Vec::with_capacity(self.head.len() + rest.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(&rest);
        (body, hasher.finalize().into())
    }
}

/// Canonical encoding of one part of the envelope, JSON-representable by construction.
fn encode<T: Serialize>(part: &T) -> Vec<u8> {
    canonical_json(part).expect("envelope parts are valid JSON")
}

/// The part of an event its producer chose, whatever Chronicle assigned.
#[derive(Debug, PartialEq)]
pub struct EventContent<'a> {
    id: &'a Uuid,
    stream: &'a str,
    event_type: &'a str,
    workspace: Option<&'a str>,
    occurred_at: &'a str,
    actor: &'a Actor,
    context: &'a Context,
    data: &'a Value,
}

/// Where an event lands: assigned by the appender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub position: u64,
    pub stream_version: u64,
    pub workspace_seq: Option<u64>,
}

/// An event as Chronicle recorded it, exactly as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordedEvent {
    pub position: u64,
    pub workspace_seq: Option<u64>,
    pub id: Uuid,
    pub stream: String,
    pub stream_version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub workspace: Option<String>,
    pub occurred_at: String,
    pub recorded_at: String,
    pub actor: Actor,
    pub context: Context,
    pub data: Value,
    /// The token whose request appended it; absent from events recorded before v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// Hex SHA-256 leaf hash; empty until [`RecordedEvent::seal`] computed it.
    #[serde(default)]
    pub leaf_hash: String,
}

/// The recorded event without its leaf hash: what the hash is computed over.
#[derive(Serialize)]
struct HashedBody<'a> {
    position: u64,
    workspace_seq: Option<u64>,
    id: &'a Uuid,
    stream: &'a str,
    stream_version: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    workspace: Option<&'a str>,
    occurred_at: &'a str,
    recorded_at: &'a str,
    actor: &'a Actor,
    context: &'a Context,
    data: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    submitted_by: Option<&'a str>,
}

impl RecordedEvent {
    /// Returns the RFC 8785 encoding of the event without `leaf_hash`: the bytes the leaf hash
    /// covers, and the form the store keeps.
    pub fn canonical_body(&self) -> Vec<u8> {
        let body = HashedBody {
            position: self.position,
            workspace_seq: self.workspace_seq,
            id: &self.id,
            stream: &self.stream,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            workspace: self.workspace.as_deref(),
            occurred_at: &self.occurred_at,
            recorded_at: &self.recorded_at,
            actor: &self.actor,
            context: &self.context,
            data: &self.data,
            submitted_by: self.submitted_by.as_deref(),
        };
        canonical_json(&body).expect("a recorded event always has a canonical form")
    }

    /// Computes the leaf hash, stores its hex form in `leaf_hash`, and returns the canonical
    /// body with the hash.
    pub fn seal(&mut self) -> (Vec<u8>, LeafHash) {
        let body = self.canonical_body();
        let hash = leaf_hash(&body);
        self.leaf_hash = crate::merkle::to_hex(&hash);
        (body, hash)
    }

    /// Returns what the producer chose of this event (see [`NewEvent::content`]).
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            id: &self.id,
            stream: &self.stream,
            event_type: &self.event_type,
            workspace: self.workspace.as_deref(),
            occurred_at: &self.occurred_at,
            actor: &self.actor,
            context: &self.context,
            data: &self.data,
        }
    }

    /// Reads a stored canonical body back, with the stored leaf hash.
    pub fn from_stored(body: &[u8], hash: &LeafHash) -> Result<RecordedEvent, serde_json::Error> {
        let mut event: RecordedEvent = serde_json::from_slice(body)?;
        event.leaf_hash = crate::merkle::to_hex(hash);
        Ok(event)
    }
}

/// Parses an RFC 3339 timestamp (any offset).
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339)
}

/// Writes a time as RFC 3339 in UTC with a `Z`: milliseconds always, and micro- or nanoseconds
/// only when the time carries them, so `2026-11-24T03:50:26.123Z`.
pub fn format_timestamp(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    let nanos = time.nanosecond();
    let fraction = if nanos.is_multiple_of(1_000_000) {
        format!("{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{:06}", nanos / 1_000)
    } else {
        format!("{nanos:09}")
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{fraction}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, InvalidEvent> {
    match object.get(field) {
        None | Some(Value::Null) => Err(InvalidEvent::new(field, "missing required field")),
        Some(Value::String(text)) if text.is_empty() => {
            Err(InvalidEvent::new(field, "must not be empty"))
        }
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(InvalidEvent::new(field, "must be a string")),
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value, field: &str) -> Result<T, InvalidEvent> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // serde reports a missing field at its parent: name the field itself.
        let (path, message) = match inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
        {
            Some((name, _)) if path == "." => {
                (name.to_owned(), "missing required field".to_owned())
            }
            Some((name, _)) => (
                format!("{path}.{name}"),
                "missing required field".to_owned(),
            ),
            None => (path, first_clause(&inner)),
        };
        let field = if path == "." {
            field.to_owned()
        } else {
            format!("{field}.{path}")
        };
        InvalidEvent::new(field, message)
    })
}

/// Keeps serde's message but drops its " at line 1 column 5" tail, which means nothing here.
fn first_clause(message: &str) -> String {
    match message.find(" at line ") {
        Some(end) => message[..end].to_owned(),
        None => message.to_owned(),
    }
}

/// Splits `kind-id` and checks its form.
fn parse_stream(stream: &str) -> Result<(&str, &str), InvalidEvent> {
    let refusal = || {
        InvalidEvent::new(
            "stream",
            "must be `<kind>-<id>`: a kind of the catalogue, then 1 to 128 letters, digits or `_.:@-`",
        )
    };
    let (kind, id) = stream.split_once('-').ok_or_else(refusal)?;
    if kind.is_empty()
        || id.is_empty()
        || id.len() > MAX_ID_LENGTH
        || !id.chars().all(is_stream_char)
    {
        return Err(refusal());
    }
    Ok((kind, id))
}

fn is_stream_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-')
}

/// True for 1 to `max` bytes of printable characters without spaces.
fn is_identifier(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// True for a workspace name: 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn is_workspace_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// True for a stream name as a path may carry it: 1 to 200 printable ASCII characters, no `/`.
/// (A stream an event names is narrower still: `<kind>-<id>`.)
pub fn is_stream_name(text: &str) -> bool {
    (1..=200).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// The store's key of a stream: `WORKSPACE/STREAM`, or `/STREAM` for a stream of no workspace.
/// Neither name holds a `/`, so two workspaces' streams of one name never share a key.
pub fn stream_key(workspace: Option<&str>, stream: &str) -> String {
    format!("{}/{stream}", workspace.unwrap_or(""))
}

/// A `machine.moved` is sent from the workspace the machine leaves, to another valid one; the
/// destination's copy, with the machine's attributes, is Chronicle's to write.
fn check_move(event_type: &str, workspace: Option<&str>, data: &Value) -> Result<(), InvalidEvent> {
    if event_type != "machine.moved" {
        return Ok(());
    }
    let (from, to) = (&data["from_workspace"], &data["to_workspace"]);
    if from.as_str() != workspace {
        return Err(InvalidEvent::new(
            "data.from_workspace",
            "must be the event's workspace: a move is sent from the workspace the machine leaves",
        ));
    }
    if !to.as_str().is_some_and(is_workspace_name) {
        return Err(InvalidEvent::new(
            "data.to_workspace",
            "must be 1 to 64 letters, digits, `_`, `.` or `-`",
        ));
    }
    if to == from {
        return Err(InvalidEvent::new(
            "data.to_workspace",
            "must differ from from_workspace",
        ));
    }
    if data.get("machine").is_some() {
        return Err(InvalidEvent::new(
            "data.machine",
            "is recorded by chronicle itself and cannot be sent",
        ));
    }
    Ok(())
}

/// Streams named after a workspace must name the event's workspace.
fn check_stream_workspace(
    kind: &str,
    id: &str,
    workspace: Option<&str>,
) -> Result<(), InvalidEvent> {
    let Some(workspace) = workspace else {
        if WORKSPACELESS_KINDS.contains(&kind) {
            return Ok(());
        }
        return Err(InvalidEvent::new(
            "workspace",
            format!("a `{kind}-…` event must name its workspace"),
        ));
    };
    let stream_workspace = match kind {
        "workspace" | "billing" | "audit" => Some(id),
        "member" => Some(id.split_once(':').map(|(ws, _)| ws).unwrap_or("")),
        _ => None,
    };
    match stream_workspace {
        Some(named) if named != workspace => Err(InvalidEvent::new(
            "stream",
            format!("stream names workspace `{named}` but the event belongs to `{workspace}`"),
        )),
        _ => Ok(()),
    }
}

/// Refuses secrets sent in clear and integers no JSON reader holds exactly. A field named like
/// a secret (see [`is_secret_name`]), at any depth, may only hold `null` or a stand-in object
/// (see [`SECRET_STAND_IN_KEYS`]); any other value, whatever its JSON type, is refused.
fn check_clear_values(value: &Value, path: &str) -> Result<(), InvalidEvent> {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let child = format!("{path}.{key}");
                if is_secret_name(key) && !is_secret_stand_in(inner) {
                    return Err(InvalidEvent::new(
                        child,
                        "looks like a secret sent in clear: send a hash, a prefix or a length instead",
                    ));
                }
                check_clear_values(inner, &child)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                check_clear_values(inner, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        Value::Number(number) => {
            let too_large = match (number.as_u64(), number.as_i64()) {
                (Some(n), _) => n > MAX_SAFE_INTEGER,
                (None, Some(n)) => n.unsigned_abs() > MAX_SAFE_INTEGER,
                _ => false,
            };
            if too_large {
                return Err(InvalidEvent::new(
                    path,
                    "integer is larger than 2^53: send it as a string",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `null`, or an object whose keys are all among [`SECRET_STAND_IN_KEYS`] (at least one).
fn is_secret_stand_in(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => {
            !map.is_empty()
                && map
                    .keys()
                    .all(|key| SECRET_STAND_IN_KEYS.contains(&key.as_str()))
        }
        _ => false,
    }
}

/// True when a field's name, in any case and with any separator, ends with one of
/// [`SECRET_NAMES`] (also run together, `cardnumber`, or plural, `api_keys`): `smtp_password`,
/// `apiToken`, `clientSecret`, `card-number`, `SMTP-Password`, `cvv2`. `secret_rotated`,
/// `token_prefix` or `password_sha256` end with another word, so they are not secret names.
fn is_secret_name(key: &str) -> bool {
    let mut words = name_words(key);
    // A trailing number is an index or a variant (`password2`, `cvv2`), not what the field is.
    while words
        .last()
        .is_some_and(|word| word.chars().all(|c| c.is_numeric()))
    {
        words.pop();
    }
    let Some(last) = words.last().map(String::as_str) else {
        return false;
    };
    SECRET_NAMES.iter().any(|name| {
        let (head, tail) = name.split_at(name.len() - 1);
        let tail = tail[0];
        let before = &words[..words.len() - 1];
        let ends_with_head =
            before.len() >= head.len() && before[before.len() - head.len()..] == *head;
        let run_together = name.len() > 1 && last == name.concat();
        let tail_matches = last == tail || last.strip_suffix('s') == Some(tail);
        (ends_with_head && tail_matches) || run_together
    })
}

/// A field name as lowercase words: split at every character that is not a letter or a digit,
/// between letters and digits, and where camelCase turns (`apiToken`, `APIToken`, `SMTPPassword`).
fn name_words(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (index, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if let Some(before) = word.chars().last() {
            let next_is_lower = chars.get(index + 1).is_some_and(|next| next.is_lowercase());
            let boundary = (before.is_lowercase() && c.is_uppercase())
                || before.is_numeric() != c.is_numeric()
                || (before.is_uppercase() && c.is_uppercase() && next_is_lower);
            if boundary {
                words.push(std::mem::take(&mut word));
            }
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.into_iter().map(|word| word.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine_registered() -> Value {
        json!({
            "id": "0193a1b2-0000-7000-8000-000000000001",
            "stream": "machine-mch_9",
            "type": "machine.registered",
            "workspace": "ws_acme",
            "occurred_at": "2026-11-24T05:50:26.123+02:00",
            "actor": {"kind": "member", "id": "usr_4", "name": "alice@acme.test"},
            "context": {"request_id": "req_1", "source_ip": "203.0.113.7", "auth_method": "oauth"},
            "data": {"name": "web-01", "hostname": "web-01.acme.test", "os": "linux",
                     "os_version": "6.8", "arch": "x86_64", "agent_version": "1.4.2"}
        })
    }

    fn refusal(mut event: Value, edit: impl FnOnce(&mut Value)) -> InvalidEvent {
        edit(&mut event);
        NewEvent::from_json(&event, Uuid::nil()).unwrap_err()
    }

    #[test]
    fn accepts_and_normalises_a_valid_event() {
        let event = NewEvent::from_json(&machine_registered(), Uuid::nil()).unwrap();
        assert_eq!(event.occurred_at, "2026-11-24T03:50:26.123Z");
        assert_eq!(event.expected_version, ExpectedVersion::Any);
        assert_eq!(event.id.to_string(), "0193a1b2-0000-7000-8000-000000000001");
    }

    #[test]
    fn a_missing_id_takes_the_fresh_one() {
        let mut value = machine_registered();
        value.as_object_mut().unwrap().remove("id");
        let fresh = Uuid::from_u128(42);
        assert_eq!(NewEvent::from_json(&value, fresh).unwrap().id, fresh);
    }

    type Edit = Box<dyn FnOnce(&mut Value)>;

    #[test]
    fn refusals_name_the_field() {
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|e| e["type"] = json!("machine.exploded")), "type"),
            (Box::new(|e| e["type"] = json!("audit.searched")), "type"),
            (Box::new(|e| e["stream"] = json!("session-ses_1")), "stream"),
            (Box::new(|e| e["stream"] = json!("machine")), "stream"),
            (Box::new(|e| e["stream"] = json!("machine-a b")), "stream"),
            (
                Box::new(|e| e["occurred_at"] = json!("yesterday")),
                "occurred_at",
            ),
            (
                Box::new(|e| e["actor"]["kind"] = json!("robot")),
                "actor.kind",
            ),
            (
                Box::new(|e| {
                    e["actor"].as_object_mut().unwrap().remove("id");
                }),
                "actor.id",
            ),
            (
                Box::new(|e| e["context"]["source_ip"] = json!("999.1.1.1")),
                "context.source_ip",
            ),
            (
                Box::new(|e| e["context"]["response_code"] = json!(700)),
                "context.response_code",
            ),
            (
                Box::new(|e| {
                    e["data"].as_object_mut().unwrap().remove("hostname");
                }),
                "data.hostname",
            ),
            (
                Box::new(|e| e["data"]["password"] = json!("hunter2")),
                "data.password",
            ),
            (
                Box::new(|e| e["data"]["extra"] = json!({"api_token": "abc"})),
                "data.extra.api_token",
            ),
            (
                Box::new(|e| e["data"]["big"] = json!(9007199254740993u64)),
                "data.big",
            ),
            (
                Box::new(|e| e["expected_version"] = json!("sometimes")),
                "expected_version",
            ),
            (Box::new(|e| e["position"] = json!(4)), "position"),
            (Box::new(|e| e["workspace"] = json!(null)), "workspace"),
            (Box::new(|e| e["id"] = json!("not-a-uuid")), "id"),
        ];
        for (edit, field) in cases {
            assert_eq!(refusal(machine_registered(), edit).field, field);
        }
    }

    #[test]
    fn workspace_streams_must_name_the_events_workspace() {
        let event = json!({
            "stream": "member-ws_other:usr_4", "type": "member.suspended", "workspace": "ws_acme",
            "occurred_at": "2026-11-24T03:50:26Z", "actor": {"kind": "system", "id": "chronicle"},
            "data": {}
        });
        assert_eq!(
            NewEvent::from_json(&event, Uuid::nil()).unwrap_err().field,
            "stream"
        );
    }

    #[test]
    fn hashes_of_secrets_and_flags_are_allowed() {
        let mut value = machine_registered();
        value["data"]["password_sha256"] = json!("ab12");
        value["data"]["secret_rotated"] = json!(true);
        value["data"]["token_prefix"] = json!("cmd_ws1_ab12");
        NewEvent::from_json(&value, Uuid::nil()).unwrap();
    }

    #[test]
    fn recorded_events_round_trip_through_their_canonical_body() {
        let event = NewEvent::from_json(&machine_registered(), Uuid::nil()).unwrap();
        let place = Place {
            position: 7,
            stream_version: 1,
            workspace_seq: Some(3),
        };
        let mut recorded = event.record(place, "2026-11-24T03:50:27.000Z");
        let (body, hash) = recorded.seal();
        let back = RecordedEvent::from_stored(&body, &hash).unwrap();
        assert_eq!(back, recorded);
        assert_eq!(event.content(), back.content());
        // The API form minus leaf_hash canonicalises to the stored body.
        let mut api: Value = serde_json::to_value(&back).unwrap();
        api.as_object_mut().unwrap().remove("leaf_hash");
        assert_eq!(canonical_json(&api).unwrap(), body);
    }

    #[test]
    fn prepared_events_seal_to_the_canonical_body() {
        let event = NewEvent::from_json(&machine_registered(), Uuid::nil()).unwrap();
        let prepared = PreparedEvent::new(event, "tok_7");
        let event = &prepared.event;
        for place in [
            Place {
                position: 1,
                stream_version: 1,
                workspace_seq: Some(1),
            },
            Place {
                position: 9_007_199_254_740_000,
                stream_version: 12,
                workspace_seq: None,
            },
        ] {
            let mut recorded = event.record(place, "2026-11-24T03:50:27.000Z");
            assert_eq!(recorded.submitted_by.as_deref(), Some("tok_7"));
            let expected = recorded.seal();
            assert_eq!(prepared.seal(place, "2026-11-24T03:50:27.000Z"), expected);
        }
    }

    #[test]
    fn the_largest_leaf_data_bounds_the_widest_place() {
        let prepared = PreparedEvent::new(
            NewEvent::from_json(&machine_registered(), Uuid::nil()).unwrap(),
            "tok_7",
        );
        let widest = Place {
            position: u64::MAX,
            stream_version: u64::MAX,
            workspace_seq: Some(u64::MAX),
        };
        let (body, _) = prepared.seal(widest, "2026-11-24T03:50:27.123456789Z");
        assert!(body.len() <= prepared.largest_leaf_data());
        assert!(
            prepared.largest_leaf_data() - body.len() < 16,
            "the bound is tight"
        );
    }

    #[test]
    fn expected_versions() {
        assert!(ExpectedVersion::NoStream.admits(0) && !ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exists.admits(2) && !ExpectedVersion::Exists.admits(0));
        assert!(ExpectedVersion::Exact(3).admits(3) && !ExpectedVersion::Exact(3).admits(4));
    }

    #[test]
    fn timestamps_keep_their_precision() {
        let t = parse_timestamp("2026-01-02T03:04:05.123456+01:00").unwrap();
        assert_eq!(format_timestamp(t), "2026-01-02T02:04:05.123456Z");
        let t = parse_timestamp("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(format_timestamp(t), "2026-01-02T03:04:05.000Z");
    }

    #[test]
    fn secret_names_are_recognised_however_spelled() {
        for name in [
            "password",
            "smtp_password",
            "SMTP-Password",
            "apiToken",
            "APIToken",
            "x_api_token",
            "clientSecret",
            "client.secret",
            "card-number",
            "cardNumber",
            "cardnumber",
            "apiKey",
            "api key",
            "private_key",
            "PIN",
            "cvv2",
            "CVC",
            "passphrase",
            "tokens",
        ] {
            assert!(is_secret_name(name), "{name} is a secret name");
        }
        for name in [
            "secret_rotated",
            "token_prefix",
            "password_sha256",
            "pinned",
            "spin",
            "key",
            "number",
            "last4",
            "prefix",
            "tokenizer",
        ] {
            assert!(!is_secret_name(name), "{name} is not a secret name");
        }
    }

    #[test]
    fn no_catalogue_field_is_a_secret_name() {
        let catalogue = include_str!("catalogue.rs");
        for line in catalogue.lines() {
            let Some(rest) = line.trim().strip_prefix("pub ") else {
                continue;
            };
            if let Some((field, _)) = rest.split_once(':')
                && field
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                assert!(!is_secret_name(field), "catalogue field {field}");
            }
        }
    }

    #[test]
    fn secrets_in_clear_are_refused_at_any_depth_and_of_any_type() {
        let cases = [
            (json!({"smtp_password": true}), "data.smtp_password"),
            (json!({"apiToken": ["a", "b"]}), "data.apiToken"),
            (
                json!({"clientSecret": {"value": "s3cr3t"}}),
                "data.clientSecret",
            ),
            (
                json!({"card-number": 4111111111111111u64}),
                "data.card-number",
            ),
            (
                json!({"changes": {"smtp_password": {"from": "a", "to": "b"}}}),
                "data.changes.smtp_password",
            ),
            (
                json!({"changes": [{"x_api_token": "abc"}]}),
                "data.changes[0].x_api_token",
            ),
            (
                json!({"extra": {"SMTP-Password": ""}}),
                "data.extra.SMTP-Password",
            ),
            (
                json!({"apiKey": {"sha256": "ab12", "value": "k"}}),
                "data.apiKey",
            ),
            (json!({"pin": {}}), "data.pin"),
        ];
        for (data, field) in cases {
            let error = refusal(machine_registered(), |e| {
                for (key, value) in data.as_object().unwrap() {
                    e["data"][key] = value.clone();
                }
            });
            assert_eq!(error.field, field, "{data}");
            assert!(error.message.contains("secret sent in clear"), "{error:?}");
        }
    }

    #[test]
    fn secrets_as_null_or_stand_ins_are_allowed() {
        let mut value = machine_registered();
        value["data"]["smtp_password"] = json!(null);
        value["data"]["apiToken"] = json!({"prefix": "cmd_ws1", "length": 40});
        value["data"]["clientSecret"] = json!({"sha256": "ab12"});
        value["data"]["extra"] = json!({"card_number": {"hash": "ab", "bytes": 16}});
        NewEvent::from_json(&value, Uuid::nil()).unwrap();
    }
}
