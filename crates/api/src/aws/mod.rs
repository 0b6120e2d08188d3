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

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::http::{BodyError, Handler, Request, Response};

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

    fn body_error(&self, error: BodyError) -> Response {
        let error = match error {
            BodyError::TooLarge => AwsError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!(
                    "request body is larger than {} bytes",
                    crate::http::BODY_BYTES_MAX
                ),
            ),
            BodyError::Broken(reason) => AwsError::client(
                "SerializationException",
                format!("failed to read request body: {reason}"),
            ),
            BodyError::BadPath(reason) => AwsError::client("InvalidArgumentException", reason),
        };
        error_response(&error, "application/x-amz-json-1.1")
    }
}
