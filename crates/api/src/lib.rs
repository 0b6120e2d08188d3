//! Every wire format of Sluice. `es` speaks Elasticsearch's REST API over the `node`'s engines;
//! `http` is the small HTTP/1.1 server they run on. Only this crate knows HTTP and JSON wire
//! shapes, and each API family maps its errors to statuses in one place (`es::error`).

pub mod aws;
pub mod es;
pub mod http;

pub use http::{Server, ServerHandle};
