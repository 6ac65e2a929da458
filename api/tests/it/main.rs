//! The API over real HTTP on loopback, against a real SQLite file in a temporary directory.

mod append;
mod auth;
mod bulk_reads;
mod evidence;
mod hostile;
mod integrity;
mod live;
mod models;
mod openapi;
mod overload;
mod read;
mod search;
mod support;
mod tenancy;
mod webhooks;
