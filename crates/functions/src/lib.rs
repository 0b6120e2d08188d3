//! The function host: runs AWS Lambda handlers out of process for Firehose transformations,
//! event-source mappings (Kinesis and DynamoDB stream events) and the Lambda API.
//!
//! A [`FunctionRegistry`] holds [`FunctionDefinition`]s by name and resolves Lambda ARNs to
//! them. [`FunctionRegistry::invoke`] sends a JSON event and returns the JSON answer;
//! [`FunctionRegistry::transform_firehose`] builds on it with the typed Firehose contract
//! ([`FirehoseTransformationEvent`] in, a strictly validated
//! [`FirehoseTransformationResponse`] out). Two kinds run the code:
//!
//! - [`FunctionKind::Command`]: a process per invocation, event on stdin, answer on stdout;
//! - [`FunctionKind::RuntimeApi`]: warm processes that speak the Lambda Runtime API to a server
//!   the host runs on 127.0.0.1, so unchanged handlers run under Lambda's own runtime clients.
//!
//! Every invocation is bounded: payloads in and out by [`PAYLOAD_BYTES_MAX`], time by the
//! definition's timeout, parallelism by its concurrency with a bounded wait queue, and retries
//! by [`InvokeOptions::number_of_retries`]. A handler process gets a cleared environment: the
//! variables of [`INHERITED_ENVIRONMENT`] from the host, the ones Lambda sets, and the
//! definition's own `environment`. A process that cannot start fails with
//! [`Error::StartFailed`], which names its command and carries the tail of its stderr. This
//! crate knows nothing of delivery streams: the `delivery` crate decides what a failed batch
//! means.
//!
//! ```no_run
//! # async fn example() -> Result<(), sluice_functions::Error> {
//! use sluice_functions::{FunctionDefinition, FunctionKind, FunctionRegistry};
//!
//! let registry = FunctionRegistry::new();
//! registry.register(FunctionDefinition::new(
//!     "upper",
//!     FunctionKind::Command,
//!     vec!["python3".into(), "upper.py".into()],
//! ))?;
//! let answer = registry
//!     .invoke("arn:aws:lambda:us-east-1:000000000000:function:upper", &serde_json::json!({}))
//!     .await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod arn;
mod clock;
mod command;
mod definition;
mod error;
pub mod firehose;
mod limits;
mod process;
mod registry;
mod runtime_api;

pub use clock::{Clock, SystemClock};
pub use definition::{FunctionDefinition, FunctionKind};
pub use error::{Error, Result, firehose_codes};
pub use firehose::{
    FirehoseEventRecord, FirehoseRecordMetadata, FirehoseRecordResult, FirehoseTransformationEvent,
    FirehoseTransformationResponse, FirehoseTransformedRecord,
};
pub use limits::*;
pub use process::{INHERITED_ENVIRONMENT, INHERITED_ENVIRONMENT_PREFIXES, LogTail, is_inherited};
pub use registry::{FunctionRegistry, Invocation, InvokeOptions};
