//! The AWS-compatible port: AWS JSON 1.0/1.1 services dispatched by `X-Amz-Target`
//! (`Kinesis_20131202.PutRecord`, `Firehose_20150804.PutRecordBatch`, …) and REST-JSON services
//! dispatched by path (the QLDB control plane). Each service maps its errors to
//! `{"__type","message"}` with the status AWS gives, through [`AwsError`].
//!
//! Request signatures (SigV4) are accepted unchecked on loopback; authentication is a later layer.

pub mod kinesis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::http::{Handler, Refusal, Request, Response};

pub mod firehose;
pub mod qldb;
pub mod qldb_session;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error as AWS JSON protocols report it.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: StatusCode,
    /// The `__type`: `ResourceNotFoundException`, `ValidationException`, …
    pub kind: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// A 400 error of the given type.
    pub fn client(kind: &'static str, message: impl Into<String>) -> AwsError {
        AwsError::new(StatusCode::BAD_REQUEST, kind, message)
    }

    pub fn validation(message: impl Into<String>) -> AwsError {
        AwsError::client("ValidationException", message)
    }

    pub fn internal(message: impl Into<String>) -> AwsError {
        AwsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            message,
        )
    }

    pub fn body(&self) -> Value {
        json!({"__type": self.kind, "message": self.message})
    }
}

/// An AWS JSON service: operations named by the `X-Amz-Target` header, JSON in and out.
pub trait JsonService: Send + Sync + 'static {
    /// The part of `X-Amz-Target` before the dot, e.g. `Kinesis_20131202`.
    fn target_prefix(&self) -> &'static str;
    fn call<'a>(
        &'a self,
        operation: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>>;
}

/// A REST-JSON service: claims requests by path, answers them whole.
pub trait RestService: Send + Sync + 'static {
    /// `None` when the request's path is not this service's.
    fn handle<'a>(&'a self, request: &'a Request) -> Option<BoxFuture<'a, Response>>;
}

#[derive(Default)]
pub struct AwsApi {
    json_services: Vec<Arc<dyn JsonService>>,
    rest_services: Vec<Arc<dyn RestService>>,
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn request_id() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub(crate) fn aws_response(
    status: StatusCode,
    content_type: &'static str,
    body: &Value,
) -> Response {
    let mut response = Response::new(
        status,
        content_type,
        serde_json::to_vec(body).unwrap_or_default(),
    );
    response.headers.push(("x-amzn-requestid", request_id()));
    response
}

pub(crate) fn error_response(error: &AwsError, content_type: &'static str) -> Response {
    let mut response = aws_response(error.status, content_type, &error.body());
    response
        .headers
        .push(("x-amzn-errortype", error.kind.to_string()));
    response
}

impl AwsApi {
    pub fn new() -> AwsApi {
        AwsApi::default()
    }

    pub fn with_json_service(mut self, service: Arc<dyn JsonService>) -> AwsApi {
        self.json_services.push(service);
        self
    }

    pub fn with_rest_service(mut self, service: Arc<dyn RestService>) -> AwsApi {
        self.rest_services.push(service);
        self
    }

    async fn route(&self, request: Request) -> Response {
        let target = request
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = match request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
        {
            Some(t) if t.contains("x-amz-json-1.0") => "application/x-amz-json-1.0",
            _ => "application/x-amz-json-1.1",
        };
        let Some(target) = target else {
            for service in &self.rest_services {
                if let Some(response) = service.handle(&request) {
                    return response.await;
                }
            }
            let error = AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("no operation at {} {}", request.method, request.raw_path),
            );
            return error_response(&error, "application/json");
        };
        let (prefix, operation) = target.split_once('.').unwrap_or((target.as_str(), ""));
        let Some(service) = self
            .json_services
            .iter()
            .find(|s| s.target_prefix() == prefix)
        else {
            let error = AwsError::client(
                "UnknownOperationException",
                format!("unknown target {target}"),
            );
            return error_response(&error, content_type);
        };
        let body = if request.body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice::<Value>(&request.body) {
                Ok(body @ Value::Object(_)) => body,
                Ok(_) => {
                    return error_response(
                        &AwsError::client(
                            "SerializationException",
                            "the request body must be a JSON object",
                        ),
                        content_type,
                    );
                }
                Err(error) => {
                    return error_response(
                        &AwsError::client(
                            "SerializationException",
                            format!("malformed JSON: {error}"),
                        ),
                        content_type,
                    );
                }
            }
        };
        match service.call(operation, body).await {
            Ok(body) => aws_response(StatusCode::OK, content_type, &body),
            Err(error) => error_response(&error, content_type),
        }
    }
}

impl Handler for AwsApi {
    fn handle(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(self.route(request))
    }

    fn refuse(&self, refusal: Refusal, headers: &HeaderMap) -> Response {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let content_type = match headers.get("content-type").and_then(|v| v.to_str().ok()) {
            Some(t) if t.contains("x-amz-json-1.0") => "application/x-amz-json-1.0",
            Some(t) if t.contains("x-amz-json-1.1") => "application/x-amz-json-1.1",
            _ => "application/json",
        };
        error_response(&refusal_error(refusal, target), content_type)
    }
}

/// The AWS error for a request the HTTP server refused. Overload gets the error each service's
/// clients retry: the SDKs retry every 5xx and the throttling codes botocore lists
/// (`ProvisionedThroughputExceededException`, `LimitExceededException`, `ThrottlingException`…),
/// and pyqldb retries QLDBSession's 500 and 503.
fn refusal_error(refusal: Refusal, target: &str) -> AwsError {
    let (service, operation) = target.split_once('.').unwrap_or((target, ""));
    match refusal {
        Refusal::BodyTooLarge => AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!(
                "request body is larger than {} bytes",
                crate::http::BODY_BYTES_MAX
            ),
        ),
        Refusal::BodyBroken(reason) => AwsError::client(
            "SerializationException",
            format!("failed to read request body: {reason}"),
        ),
        Refusal::BadPath(reason) => AwsError::client("InvalidArgumentException", reason),
        // botocore retries RequestTimeoutException as a transient error.
        Refusal::BodyTooSlow { received_bytes } => AwsError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            format!(
                "the request body arrived too slowly: {received_bytes} bytes received, fewer than {} bytes per second",
                crate::http::BODY_READ_MIN_BYTES_PER_S
            ),
        ),
        Refusal::BufferFull {
            requested_bytes,
            reserved_bytes,
            budget_bytes,
        } => {
            let message = format!(
                "Rate exceeded: {reserved_bytes} bytes of requests are buffered, this one needs {requested_bytes} more, at most {budget_bytes}; retry later"
            );
            match service {
                "Kinesis_20131202"
                    if matches!(operation, "PutRecord" | "PutRecords" | "GetRecords") =>
                {
                    AwsError::client("ProvisionedThroughputExceededException", message)
                }
                "Kinesis_20131202" => AwsError::client("LimitExceededException", message),
                "Firehose_20150804" => AwsError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    format!("Slow down. {message}"),
                ),
                "QLDBSession" => AwsError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CapacityExceededException",
                    message,
                ),
                _ => AwsError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    message,
                ),
            }
        }
        Refusal::TooManyConnections { connections_max } => {
            let kind = if service == "QLDBSession" {
                "CapacityExceededException"
            } else {
                "ServiceUnavailableException"
            };
            AwsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                kind,
                format!(
                    "the server already serves {connections_max} connections on this port; retry later"
                ),
            )
        }
        Refusal::Panicked => {
            AwsError::internal("the request failed on an internal error; the server logged it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_gets_the_error_each_services_clients_retry() {
        let full = || Refusal::BufferFull {
            requested_bytes: 10,
            reserved_bytes: 20,
            budget_bytes: 25,
        };
        let kind_and_status = |refusal, target| {
            let error = refusal_error(refusal, target);
            (error.kind, error.status.as_u16())
        };
        assert_eq!(
            kind_and_status(full(), "Kinesis_20131202.PutRecords"),
            ("ProvisionedThroughputExceededException", 400)
        );
        assert_eq!(
            kind_and_status(full(), "Kinesis_20131202.CreateStream"),
            ("LimitExceededException", 400)
        );
        assert_eq!(
            kind_and_status(full(), "Firehose_20150804.PutRecordBatch"),
            ("ServiceUnavailableException", 503)
        );
        assert_eq!(
            kind_and_status(full(), "QLDBSession.SendCommand"),
            ("CapacityExceededException", 503)
        );
        assert_eq!(kind_and_status(full(), ""), ("ThrottlingException", 429));
        assert_eq!(
            kind_and_status(
                Refusal::TooManyConnections { connections_max: 1 },
                "Kinesis_20131202.PutRecord"
            ),
            ("ServiceUnavailableException", 503)
        );
        assert_eq!(
            kind_and_status(Refusal::BodyTooSlow { received_bytes: 0 }, ""),
            ("RequestTimeoutException", 408)
        );
        assert_eq!(
            kind_and_status(Refusal::Panicked, "Kinesis_20131202.PutRecord"),
            ("InternalFailure", 500)
        );
    }
}
