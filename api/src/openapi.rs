//! `/openapi.json`, generated from the handlers' annotations, so it cannot drift from the code.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use chronicle_projections::Model;

use crate::error::{ErrorBody, ErrorDetail};
use crate::{
    events, export, integrity, live, models, observability, search, server, tokens, webhooks,
};

/// Every route of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Chronicle", description = "A tamper-evident, event-sourced audit log."),
    paths(
        events::append,
        events::read_log,
        events::read_event,
        events::read_stream,
        events::read_workspace_event,
        events::read_workspace_stream,
        events::head,
        integrity::log_checkpoint,
        integrity::workspace_checkpoint,
        integrity::public_key,
        integrity::log_inclusion,
        integrity::workspace_inclusion,
        integrity::log_consistency,
        integrity::workspace_consistency,
        tokens::create,
        tokens::list,
        tokens::revoke,
        live::server_sent_events,
        live::websocket,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::delete_webhook,
        webhooks::resume_webhook,
        webhooks::list_deliveries,
        search::audit,
        export::export,
        export::evidence,
        models::rebuild,
        models::machines,
        models::machine,
        models::sessions,
        models::session,
        models::schedules,
        models::schedule,
        models::runs,
        models::members,
        models::billing,
        models::activity,
        server::healthz,
        server::ready,
        observability::metrics,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerToken),
    security(("bearer" = [])),
)]
pub(crate) struct ApiDoc;

/// Declares the bearer token every `/v1` route takes.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)))]
pub(crate) async fn openapi_json() -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(document).clone())
}

/// The generated document, with every parameter described as the server checks it.
fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, operations) in paths {
            let operations = operations
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut());
            for operation in operations {
                let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                parameters.retain(|parameter| offered(path, parameter));
                for parameter in parameters {
                    describe_parameter(path, parameter);
                }
            }
        }
    }
    describe_bodies(&mut document);
    document
}

/// The body of `POST /v1/events`: the envelope as `NewEvent::from_json` reads it. The
/// `data` of each type is the catalogue's.
fn append_body() -> Value {
    let types: Vec<&str> = chronicle_domain::catalogue::EVENT_TYPES
        .iter()
        .copied()
        .filter(|event_type| !chronicle_domain::catalogue::is_reserved(event_type))
        .collect();
    let time = json!({"type": "string", "format": "date-time", "pattern": format!("^{TIME}$")});
    json!({
        "type": "object",
        "required": ["events"],
        "additionalProperties": false,
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {
            "type": "object",
            "description": "One event to append. Chronicle assigns position, stream_version, workspace_seq, recorded_at, submitted_by and leaf_hash.",
            "required": ["stream", "type", "occurred_at", "actor", "data"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "format": "uuid", "description": "Makes a retry idempotent; a UUID v7 is assigned when absent"},
                "stream": {"type": "string", "description": "`KIND-ID`, the kind the type belongs in (`machine-mch_9` for machine.*)"},
                "type": {"type": "string", "enum": types},
                "workspace": {"oneOf": [{"type": "null"}, segment("A-Za-z0-9_.-", "A-Za-z0-9_-", 64)]},
                "occurred_at": time,
                "actor": {"$ref": "#/components/schemas/Actor"},
                "context": {"$ref": "#/components/schemas/Context"},
                "data": {"type": "object", "description": "The type's fields, as the event catalogue defines them"},
                "expected_version": {"oneOf": [
                    {"type": "null"},
                    {"type": "string", "enum": ["any", "no_stream", "exists"]},
                    {"type": "integer", "minimum": 0}
                ]}
            }
        }}}
    })
}

/// Describes request bodies' fields as the handlers check them.
fn describe_bodies(document: &mut Value) {
    document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        append_body();
    let time = || json!({"type": "string", "format": "date-time", "pattern": format!("^{TIME}$")});
    let schemas = &mut document["components"]["schemas"];
    for field in ["from", "to"] {
        schemas["EvidenceBody"]["properties"][field] = time();
    }
    let token = &mut schemas["CreateToken"]["properties"];
    token["name"] = json!({"type": "string", "minLength": 1, "maxLength": 100});
    token["workspace"] =
        json!({"oneOf": [{"type": "null"}, segment("A-Za-z0-9_.-", "A-Za-z0-9_-", 64)]});
    token["expires_at"] = json!({"oneOf": [{"type": "null"}, time()]});
    token["scopes"]["minItems"] = json!(1);
    let models: Vec<&str> = Model::ALL.iter().map(|model| model.name()).collect();
    schemas["RebuildRequest"]["properties"]["models"]["items"] =
        json!({"type": "string", "enum": models});
}

/// False for a read-model filter the list at `path` does not take: one list of parameters is
/// declared for every model, each model takes its own (`Model::filters`).
fn offered(path: &str, parameter: &Value) -> bool {
    let name = parameter["name"].as_str().unwrap_or_default();
    let list = path.rsplit('/').next().and_then(Model::from_name);
    match list {
        Some(model) if path.starts_with("/v1/workspaces/") && FILTERS.contains(&name) => {
            model.filters().contains(&name)
        }
        _ => true,
    }
}

/// The query parameters of the read-model lists that filter.
const FILTERS: &[&str] = &[
    "status", "os", "tag", "q", "machine", "actor", "state", "from", "to",
];

/// An RFC 3339 UTC time the server reads (days up to 28, so every one generated exists).
const TIME: &str = "[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?Z";

/// A name of 1 to `max` characters of `allowed`, at least one of them not a dot (a client
/// would read `.` or `..` in a path as a step up the path).
fn segment(allowed: &str, not_dot: &str, max: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[{allowed}]*[{not_dot}][{allowed}]*$"),
    })
}

/// Describes one parameter as `auth::validated_workspace` and the handlers check it: path
/// segments by their rule, ids that are UUIDs as UUIDs, `limit` from 1 to 1,000, and a proof's
/// positions as required.
fn describe_parameter(path: &str, parameter: &mut Value) {
    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
    let place = parameter["in"].as_str().unwrap_or_default().to_owned();
    let uuid_id = path.contains("/events/{id}") || path.contains("/webhooks/{id}");
    let schema = match (place.as_str(), name.as_str()) {
        (_, "workspace") => Some(segment("A-Za-z0-9_.-", "A-Za-z0-9_-", 64)),
        ("path", "stream") => Some(segment("!-.0-~", "!-,\\-0-~", 200)),
        ("path", "id") if uuid_id => Some(json!({"type": "string", "format": "uuid",
            "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"})),
        ("path", "id") => Some(segment("!-~", "!-,\\-/-~", 128)),
        ("query", "limit") => Some(json!({"type": "integer", "minimum": 1, "maximum": 1_000})),
        ("query", "from" | "to") if !path.contains("/proofs/") => {
            Some(json!({"type": "string", "format": "date-time", "pattern": format!("^{TIME}$")}))
        }
        ("query", "as_of") => Some(json!({"type": "string",
            "pattern": format!("^([0-9]{{1,18}}|{TIME})$")})),
        _ => None,
    };
    if let Some(schema) = schema {
        parameter["schema"] = schema;
    }
    if place == "query" && path.contains("/proofs/") {
        parameter["required"] = json!(true);
    }
}
