//! Every wire format of Sluice. `es` speaks Elasticsearch's REST API over the `node`'s engines,
//! `aws` the AWS JSON and REST-JSON protocols; `http` is the small HTTP/1.1 server they run on,
//! and `json` the one parser of JSON bodies (nesting bounded) that every API uses. `ui` serves
//! the dashboard (`sluice-ui`'s embedded assets and its saved objects) and `cors` lets that page
//! call the other ports from its origin only. Only this
//! crate knows HTTP and JSON wire shapes, and each API family maps its errors to statuses in one
//! place (`es::error`, `aws::AwsError`).

pub mod api_keys;
pub mod audit;
pub mod aws;
pub mod cors;
pub mod es;
pub mod http;
pub mod identities;
pub mod json;
pub mod json_patch;
pub mod rates;
pub mod roles;
pub mod security;
mod self_wake;
pub mod sigv4;
pub mod tls;
pub mod ui;

pub use http::{Server, ServerHandle};
