//! One S3 bucket through `object_store`'s S3 client: path-style or virtual-hosted addressing,
//! credentials from the configuration or the AWS environment chain, SSE headers on every PUT
//! and multipart upload, retries with exponential backoff and jitter on 5xx, 429 and connection
//! errors, multipart uploads for large objects (aborted when they fail, so no parts linger).
//!
//! Callers are synchronous (delivery workers, blocking API threads): each call runs on one
//! process-wide runtime of [`RUNTIME_WORKER_THREADS`] threads that owns the clients' connection
//! pools, entered with `block_on`. It must not be called from inside an async task.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use crate::local::validate_key;
use crate::{
    Encryption, ObjectsError, PARTS_IN_FLIGHT_MAX, REQUEST_RETRIES_MAX,
    REQUEST_RETRY_TIMEOUT_SECONDS, Result, S3Connection, S3Target,
};

/// Threads of the runtime that drives every S3 request of the process. S3 writes are few and
/// large; one thread keeps the connection pools and timers going while callers wait.
pub const RUNTIME_WORKER_THREADS: usize = 1;
/// The longest one HTTP request to S3 may take (a part of [`crate::PART_BYTES_MAX`] over a slow
/// link is the long case); it is then retried.
pub const REQUEST_TIMEOUT_SECONDS: u64 = 300;
/// The longest a connection may take to open.
pub const CONNECT_TIMEOUT_SECONDS: u64 = 10;
/// Largest object read back whole by [`S3Bucket::get`] (tests and tools).
pub const READ_BYTES_MAX: usize = 1024 * 1024 * 1024;

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The process's S3 runtime, made on first use and never dropped (dropping a runtime inside an
/// async context panics, and the node may be dropped in one).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            // reqwest is built without a bundled crypto provider: Sluice's TLS is ring's. Another
            // part of the process may have installed it first, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_WORKER_THREADS)
                .thread_name("sluice-s3")
                .enable_all()
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| ObjectsError::Invalid(format!("cannot start the S3 runtime: {error}")))
}

/// One bucket of one S3 service, written with one encryption.
pub struct S3Bucket {
    bucket: String,
    store: AmazonS3,
    multipart_threshold_bytes: u64,
    part_bytes: usize,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("S3Bucket")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl S3Bucket {
    /// A client for `bucket` at `target`; credentials from `connection` when it has them, else
    /// the environment. Nothing is sent until the first request.
    pub fn new(
        bucket: &str,
        target: &S3Target,
        encryption: &Encryption,
        connection: &S3Connection,
    ) -> Result<S3Bucket> {
        // The runtime installs the crypto provider the client's TLS needs: make sure it exists.
        runtime()?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(target.virtual_hosted_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: REQUEST_RETRIES_MAX,
                retry_timeout: Duration::from_secs(REQUEST_RETRY_TIMEOUT_SECONDS),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECONDS))
                    .with_connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECONDS)),
            );
        if let Some(endpoint) = &target.endpoint_url {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        match &target.region {
            Some(region) => builder = builder.with_region(region),
            None => {
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    builder = builder.with_region("us-east-1");
                }
            }
        }
        if let (Some(key_id), Some(secret)) =
            (&connection.access_key_id, &connection.secret_access_key)
        {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
            if let Some(token) = &connection.session_token {
                builder = builder.with_token(token);
            }
        }
        // The header's configuration key (object_store does not export its enum).
        let server_side_encryption = || {
            "aws_server_side_encryption"
                .parse::<AmazonS3ConfigKey>()
                .map_err(|error| ObjectsError::Invalid(error.to_string()))
        };
        builder = match encryption {
            Encryption::None => builder,
            Encryption::Aes256 => builder.with_config(server_side_encryption()?, "AES256"),
            Encryption::Kms { key_id: Some(key) } => builder.with_sse_kms_encryption(key),
            Encryption::Kms { key_id: None } => {
                builder.with_config(server_side_encryption()?, "aws:kms")
            }
        };
        let store = builder.build().map_err(|error| ObjectsError::S3 {
            bucket: bucket.to_owned(),
            key: String::new(),
            message: error.to_string(),
        })?;
        Ok(S3Bucket {
            bucket: bucket.to_owned(),
            store,
            multipart_threshold_bytes: connection.multipart_threshold_bytes,
            part_bytes: usize::try_from(connection.part_bytes).unwrap_or(usize::MAX),
        })
    }

    fn failed(&self, key: &str, error: impl std::fmt::Display) -> ObjectsError {
        ObjectsError::S3 {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message: error.to_string(),
        }
    }

    fn path(key: &str) -> Result<ObjectPath> {
        validate_key(key)?;
        ObjectPath::parse(key)
            .map_err(|error| ObjectsError::Invalid(format!("object key {key:?}: {error}")))
    }

    /// Writes the object: one PUT below the multipart threshold, else a multipart upload of
    /// `part_bytes` parts, [`PARTS_IN_FLIGHT_MAX`] at a time, aborted if any part fails.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = Self::path(key)?;
        let payload = Bytes::copy_from_slice(bytes);
        runtime()?.block_on(async {
            if (bytes.len() as u64) < self.multipart_threshold_bytes {
                self.store
                    .put(&path, PutPayload::from_bytes(payload))
                    .await
                    .map(|_| ())
                    .map_err(|error| self.failed(key, error))
            } else {
                let upload = self
                    .store
                    .put_multipart(&path)
                    .await
                    .map_err(|error| self.failed(key, error))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
                let mut rest = payload;
                while !rest.is_empty() {
                    if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT_MAX).await {
                        let _ = writer.abort().await;
                        return Err(self.failed(key, error));
                    }
                    let chunk = rest.split_to(self.part_bytes.min(rest.len()));
                    writer.put(chunk);
                }
                writer
                    .finish()
                    .await
                    .map(|_| ())
                    .map_err(|error| self.failed(key, error))
            }
        })
    }

    /// Reads an object whole (at most [`READ_BYTES_MAX`]).
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = Self::path(key)?;
        runtime()?.block_on(async {
            let result = self
                .store
                .get(&path)
                .await
                .map_err(|error| self.failed(key, error))?;
            if usize::try_from(result.meta.size).unwrap_or(usize::MAX) > READ_BYTES_MAX {
                return Err(self.failed(key, format!("larger than {READ_BYTES_MAX} bytes")));
            }
            let bytes = result
                .bytes()
                .await
                .map_err(|error| self.failed(key, error))?;
            Ok(bytes.to_vec())
        })
    }
}

/// Keeps the type's users honest about sharing: one client serves every thread.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Arc<S3Bucket>>();
};
