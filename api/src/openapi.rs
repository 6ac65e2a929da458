//! `/openapi.json`, generated from the handlers' annotations, so it cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
