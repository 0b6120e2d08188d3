//! `sluice-objects`: where Sluice writes objects — delivery streams' backups, S3 destinations and
//! QLDB journal exports. Two backends behind one [`ObjectStores`]:
//!
//! - the local directory `<root>/<bucket>/<key>` (the default, unchanged: [`local`]), written
//!   whole and durably;
//! - real S3 or any S3-compatible service ([`s3`], through `object_store`'s S3 client): an
//!   endpoint URL, region, path-style or virtual-hosted addressing, credentials from the
//!   configuration or the usual AWS environment chain, multipart uploads past a threshold,
//!   SSE-S3 (`AES256`) and SSE-KMS headers passed through.
//!
//! A [`Placement`] says which backend one object goes to; [`ObjectStores::placement`] resolves
//! it from a bucket name (the [`ObjectStoreConfig`] of `--config` lists the buckets that live in
//! S3) and a per-use [`S3Target`] (a delivery stream's own endpoint, from the Firehose API).
//! Keys are the callers' (the same for both backends), so what lands in S3 is byte for byte what
//! the local directory holds. This crate knows nothing of delivery streams, ledgers or wire
//! shapes.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod local;
pub mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

pub use crate::local::LocalStore;
pub use crate::s3::S3Bucket;

/// Objects at least this large go up in parts (S3's multipart upload) unless the configuration
/// says otherwise; smaller ones in one PUT.
pub const MULTIPART_THRESHOLD_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;
/// The size of each part but the last. S3 refuses parts under 5 MiB (but the last), so a
/// configured part size below [`PART_BYTES_MIN`] is refused at start.
pub const PART_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;
/// S3's smallest part.
pub const PART_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// S3's largest part; a larger configured part size is refused at start.
pub const PART_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Parts of one upload in flight at once: bounds the memory an upload holds beyond its object.
pub const PARTS_IN_FLIGHT_MAX: usize = 4;
/// Attempts of one request to S3 beyond the first (object_store's retries with exponential
/// backoff and jitter on 5xx, 429 and connection errors). After them the write fails and its
/// caller retries later (a delivery keeps its batch; an export fails whole).
pub const REQUEST_RETRIES_MAX: usize = 4;
/// The longest a request and its retries may take before it fails.
pub const REQUEST_RETRY_TIMEOUT_SECONDS: u64 = 60;
/// Distinct S3 clients kept (one per bucket, endpoint and encryption); past it the cache is
/// emptied and clients are built again on use. Real deployments have a handful.
pub const CLIENTS_MAX: usize = 256;

/// Everything that can go wrong writing or reading an object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// A bucket, key or setting that cannot be used; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// S3 (or the way to it) failed after the retries.
    #[error("s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
}

impl ObjectsError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ObjectsError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = ObjectsError> = std::result::Result<T, E>;

/// Server-side encryption asked of S3 for the objects written; the local directory ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Encryption {
    /// No header: the bucket's default encryption applies.
    #[default]
    #[serde(rename = "none")]
    None,
    /// SSE-S3: `x-amz-server-side-encryption: AES256`.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS: `x-amz-server-side-encryption: aws:kms`, with the key id (or ARN) when given,
    /// else the account's default KMS key.
    #[serde(rename = "aws:kms")]
    Kms {
        #[serde(default)]
        key_id: Option<String>,
    },
}

impl Encryption {
    /// From S3's header value and key id, as the configuration names them.
    pub fn from_header(value: Option<&str>, key_id: Option<&str>) -> Result<Encryption> {
        match (value, key_id) {
            (None, None) => Ok(Encryption::None),
            (Some("AES256"), None) => Ok(Encryption::Aes256),
            (Some("aws:kms") | None, key_id) => Ok(Encryption::Kms {
                key_id: key_id.map(str::to_owned),
            }),
            (Some("AES256"), Some(_)) => Err(ObjectsError::Invalid(
                "a KMS key id goes with server-side encryption aws:kms, not AES256".to_owned(),
            )),
            (Some(other), _) => Err(ObjectsError::Invalid(format!(
                "server-side encryption {other} is not one of AES256, aws:kms"
            ))),
        }
    }

    /// S3's header value, if any.
    pub fn header(&self) -> Option<&'static str> {
        match self {
            Encryption::None => None,
            Encryption::Aes256 => Some("AES256"),
            Encryption::Kms { .. } => Some("aws:kms"),
        }
    }
}

/// Which S3 service, and how to address it. Kept in catalogs (a delivery stream's own
/// endpoint), so it holds no secrets: credentials come from [`S3Connection`] or the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000` (MinIO, moto…); `None`
    /// is AWS's endpoint for the region (or `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// `None` is `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// `bucket.endpoint/key` instead of the default path-style `endpoint/bucket/key` (which
    /// MinIO and moto need).
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

/// The `object_store` section of `--config`: how to reach S3 and which buckets live there.
/// Without it (the default) every object is written into the local directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// The S3 service and credentials used for every S3 bucket.
    #[serde(default)]
    pub s3: S3Connection,
    /// Buckets whose objects go to S3 instead of the local directory, with their encryption.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketConfig>,
}

/// How to reach S3. Credentials left out come from the usual AWS environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity, ECS or
/// instance metadata); a profile file is not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Connection {
    #[serde(flatten)]
    pub target: S3Target,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    /// Objects at least this large are uploaded in parts.
    #[serde(default = "multipart_threshold_default")]
    pub multipart_threshold_bytes: u64,
    /// The size of each part but the last (5 MiB to 5 GiB).
    #[serde(default = "part_bytes_default")]
    pub part_bytes: u64,
}

fn multipart_threshold_default() -> u64 {
    MULTIPART_THRESHOLD_BYTES_DEFAULT
}

fn part_bytes_default() -> u64 {
    PART_BYTES_DEFAULT
}

impl Default for S3Connection {
    fn default() -> Self {
        S3Connection {
            target: S3Target::default(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            multipart_threshold_bytes: MULTIPART_THRESHOLD_BYTES_DEFAULT,
            part_bytes: PART_BYTES_DEFAULT,
        }
    }
}

/// One bucket of [`ObjectStoreConfig::buckets`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS); none by default (the bucket's own default).
    #[serde(default)]
    pub server_side_encryption: Option<String>,
    /// The KMS key of SSE-KMS (implies `aws:kms`).
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

impl ObjectStoreConfig {
    /// Checks what can be checked before anything is written.
    pub fn validate(&self) -> Result<()> {
        let connection = &self.s3;
        if !(PART_BYTES_MIN..=PART_BYTES_MAX).contains(&connection.part_bytes) {
            return Err(ObjectsError::Invalid(format!(
                "object_store.s3.part_bytes must be between {PART_BYTES_MIN} and {PART_BYTES_MAX}, not {}",
                connection.part_bytes
            )));
        }
        if connection.multipart_threshold_bytes < connection.part_bytes {
            return Err(ObjectsError::Invalid(format!(
                "object_store.s3.multipart_threshold_bytes ({}) must be at least part_bytes ({})",
                connection.multipart_threshold_bytes, connection.part_bytes
            )));
        }
        if connection.access_key_id.is_some() != connection.secret_access_key.is_some() {
            return Err(ObjectsError::Invalid(
                "object_store.s3 needs both access_key_id and secret_access_key, or neither"
                    .to_owned(),
            ));
        }
        validate_target(&connection.target)?;
        for (bucket, config) in &self.buckets {
            validate_bucket(bucket)?;
            Encryption::from_header(
                config.server_side_encryption.as_deref(),
                config.kms_key_id.as_deref(),
            )
            .map_err(|error| {
                ObjectsError::Invalid(format!("object_store.buckets.{bucket}: {error}"))
            })?;
        }
        Ok(())
    }
}

/// An endpoint must be an `http(s)://` URL; anything else is refused before use.
pub fn validate_target(target: &S3Target) -> Result<()> {
    if let Some(url) = &target.endpoint_url {
        let valid = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && !url.chars().any(char::is_whitespace);
        if !valid {
            return Err(ObjectsError::Invalid(format!(
                "endpoint URL {url:?} must be an http:// or https:// URL"
            )));
        }
    }
    if let Some(region) = &target.region {
        let valid = !region.is_empty()
            && region.len() <= 64
            && region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(ObjectsError::Invalid(format!(
                "region {region:?} is not a region name"
            )));
        }
    }
    Ok(())
}

/// S3's bucket naming rules, which also make a bucket a safe directory name.
pub fn validate_bucket(name: &str) -> Result<()> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !name.starts_with('.')
        && !name.contains("..");
    if valid {
        Ok(())
    } else {
        Err(ObjectsError::Invalid(format!(
            "{name:?} is not a valid bucket name"
        )))
    }
}

/// Where one object goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placement {
    /// `<root>/<bucket>/<key>`.
    Local,
    /// An S3 bucket of `target`, written with `encryption`.
    S3 {
        target: S3Target,
        encryption: EncryptionKey,
    },
}

/// [`Encryption`] as a map key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EncryptionKey {
    None,
    Aes256,
    Kms(Option<String>),
}

impl From<&Encryption> for EncryptionKey {
    fn from(encryption: &Encryption) -> Self {
        match encryption {
            Encryption::None => EncryptionKey::None,
            Encryption::Aes256 => EncryptionKey::Aes256,
            Encryption::Kms { key_id } => EncryptionKey::Kms(key_id.clone()),
        }
    }
}

impl From<&EncryptionKey> for Encryption {
    fn from(key: &EncryptionKey) -> Self {
        match key {
            EncryptionKey::None => Encryption::None,
            EncryptionKey::Aes256 => Encryption::Aes256,
            EncryptionKey::Kms(key_id) => Encryption::Kms {
                key_id: key_id.clone(),
            },
        }
    }
}

/// Most files [`ObjectStores::put_directory`] uploads (a journal export's objects are bounded
/// the same way when read back).
pub const DIRECTORY_FILES_MAX: usize = 1_000_000;
/// Deepest folder [`ObjectStores::put_directory`] descends into (an export is four levels of
/// date folders under its own).
pub const DIRECTORY_DEPTH_MAX: usize = 32;

fn collect_files(
    directory: &Path,
    relative: String,
    depth: usize,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if depth > DIRECTORY_DEPTH_MAX {
        return Err(ObjectsError::Invalid(format!(
            "{} nests more than {DIRECTORY_DEPTH_MAX} folders",
            directory.display()
        )));
    }
    let io = |error| ObjectsError::io(format!("listing {}", directory.display()), error);
    for entry in std::fs::read_dir(directory).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(ObjectsError::Invalid(format!(
                "a file name under {} is not UTF-8",
                directory.display()
            )));
        };
        let child = format!("{relative}{name}");
        if kind.is_dir() {
            collect_files(&entry.path(), format!("{child}/"), depth + 1, files)?;
        } else if kind.is_file() {
            if files.len() >= DIRECTORY_FILES_MAX {
                return Err(ObjectsError::Invalid(format!(
                    "{} holds more than {DIRECTORY_FILES_MAX} files",
                    directory.display()
                )));
            }
            files.push((child, entry.path()));
        }
    }
    Ok(())
}

/// Where an object was written: a file, or an S3 URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl std::fmt::Display for Written {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Written::File(path) => write!(formatter, "{}", path.display()),
            Written::S3 { bucket, key } => write!(formatter, "s3://{bucket}/{key}"),
        }
    }
}

/// The object stores of a node: the local directory and the S3 buckets of its configuration,
/// with one S3 client per bucket, target and encryption, built on first use and kept.
pub struct ObjectStores {
    local: LocalStore,
    config: ObjectStoreConfig,
    clients: Mutex<BTreeMap<(String, Placement), Arc<S3Bucket>>>,
}

impl std::fmt::Debug for ObjectStores {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ObjectStores")
            .field("local", &self.local.root())
            .field(
                "s3_buckets",
                &self.config.buckets.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ObjectStores {
    /// Only the local directory under `root`.
    pub fn local(root: impl Into<PathBuf>) -> ObjectStores {
        ObjectStores {
            local: LocalStore::new(root),
            config: ObjectStoreConfig::default(),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// These stores writing the local directory's objects sealed under `keyring` (S3's own
    /// buckets get the plaintext, and their server-side encryption as configured).
    pub fn with_keyring(mut self, keyring: Option<Arc<sluice_seal::Keyring>>) -> ObjectStores {
        self.local = self.local.with_keyring(keyring);
        self
    }

    /// The local directory under `root` and the S3 buckets of `config` (checked first).
    pub fn new(root: impl Into<PathBuf>, config: ObjectStoreConfig) -> Result<ObjectStores> {
        config.validate()?;
        Ok(ObjectStores {
            local: LocalStore::new(root),
            config,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    /// The local directory (`data_dir/s3`).
    pub fn local_root(&self) -> &Path {
        self.local.root()
    }

    pub fn config(&self) -> &ObjectStoreConfig {
        &self.config
    }

    /// Where objects of `bucket` go: to `target` when one is given (a delivery stream's own
    /// endpoint), else to S3 when the configuration lists the bucket, else the local directory.
    /// `encryption` given for this use wins over the bucket's configured one.
    pub fn placement(
        &self,
        bucket: &str,
        target: Option<&S3Target>,
        encryption: Option<&Encryption>,
    ) -> Placement {
        let configured = self.config.buckets.get(bucket);
        let configured_encryption = configured
            .and_then(|config| {
                Encryption::from_header(
                    config.server_side_encryption.as_deref(),
                    config.kms_key_id.as_deref(),
                )
                .ok()
            })
            .unwrap_or_default();
        let encryption = EncryptionKey::from(encryption.unwrap_or(&configured_encryption));
        match (target, configured) {
            (Some(target), _) => Placement::S3 {
                target: target.clone(),
                encryption,
            },
            (None, Some(_)) => Placement::S3 {
                target: self.config.s3.target.clone(),
                encryption,
            },
            (None, None) => Placement::Local,
        }
    }

    /// Writes `bytes` as `bucket`/`key` where `placement` says, durably (fsynced files; S3's
    /// acknowledged PUT or completed multipart upload).
    pub fn put(
        &self,
        placement: &Placement,
        bucket: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<Written> {
        validate_bucket(bucket)?;
        match placement {
            Placement::Local => self.local.put(bucket, key, bytes).map(Written::File),
            Placement::S3 { .. } => {
                self.client(placement, bucket)?.put(key, bytes)?;
                Ok(Written::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
            }
        }
    }

    /// Writes every file under `directory` as `<key_prefix><its path below directory>`, in
    /// name order except that files whose name ends with `last_suffix` go last (an export's
    /// completed manifest, whose presence says the export is whole). Symbolic links are not
    /// followed; at most [`DIRECTORY_FILES_MAX`] files. Returns the keys written.
    pub fn put_directory(
        &self,
        placement: &Placement,
        bucket: &str,
        key_prefix: &str,
        directory: &Path,
        last_suffix: &str,
    ) -> Result<Vec<String>> {
        let mut files = Vec::new();
        collect_files(directory, String::new(), 0, &mut files)?;
        files.sort_by(|(a, _), (b, _)| {
            (a.ends_with(last_suffix), a.as_str()).cmp(&(b.ends_with(last_suffix), b.as_str()))
        });
        let mut keys = Vec::with_capacity(files.len());
        for (relative, path) in files {
            // Staged files may be sealed (an export written with a keyring): opened here, sealed
            // again for the local directory, sent as they are to S3.
            let bytes = std::fs::read(&path)
                .map_err(|error| ObjectsError::io(format!("reading {}", path.display()), error))?;
            let bytes = self.local.open_bytes(bytes)?;
            let key = format!("{key_prefix}{relative}");
            self.put(placement, bucket, &key, &bytes)?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Reads an object back (tests and tools; the delivery path never reads).
    pub fn get(&self, placement: &Placement, bucket: &str, key: &str) -> Result<Vec<u8>> {
        validate_bucket(bucket)?;
        match placement {
            Placement::Local => self.local.get(bucket, key),
            Placement::S3 { .. } => self.client(placement, bucket)?.get(key),
        }
    }

    fn client(&self, placement: &Placement, bucket: &str) -> Result<Arc<S3Bucket>> {
        let Placement::S3 { target, encryption } = placement else {
            return Err(ObjectsError::Invalid(
                "the local directory has no S3 client".to_owned(),
            ));
        };
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let cache_key = (bucket.to_owned(), placement.clone());
        if let Some(client) = clients.get(&cache_key) {
            return Ok(client.clone());
        }
        validate_target(target)?;
        let client = Arc::new(S3Bucket::new(
            bucket,
            target,
            &Encryption::from(encryption),
            &self.config.s3,
        )?);
        if clients.len() >= CLIENTS_MAX {
            clients.clear();
        }
        clients.insert(cache_key, client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> ObjectStoreConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_local_directory_is_the_default() {
        let stores = ObjectStores::local("/tmp/x");
        assert_eq!(stores.placement("b-1", None, None), Placement::Local);
    }

    #[test]
    fn configured_buckets_go_to_s3_with_their_encryption() {
        let stores = ObjectStores::new(
            "/tmp/x",
            config(
                r#"{"s3": {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1",
                    "access_key_id": "a", "secret_access_key": "s"},
                   "buckets": {"backups": {"server_side_encryption": "AES256"},
                               "exports": {"kms_key_id": "k-1"}}}"#,
            ),
        )
        .unwrap();
        let target = S3Target {
            endpoint_url: Some("http://127.0.0.1:9000".to_owned()),
            region: Some("eu-west-1".to_owned()),
            virtual_hosted_style: false,
        };
        assert_eq!(
            stores.placement("backups", None, None),
            Placement::S3 {
                target: target.clone(),
                encryption: EncryptionKey::Aes256
            }
        );
        assert_eq!(
            stores.placement("exports", None, None),
            Placement::S3 {
                target: target.clone(),
                encryption: EncryptionKey::Kms(Some("k-1".to_owned()))
            }
        );
        // The encryption asked for by one use wins over the bucket's.
        assert_eq!(
            stores.placement("backups", None, Some(&Encryption::None)),
            Placement::S3 {
                target,
                encryption: EncryptionKey::None
            }
        );
        assert_eq!(stores.placement("other", None, None), Placement::Local);
        // A stream's own endpoint sends any bucket to S3.
        let own = S3Target {
            endpoint_url: Some("http://127.0.0.1:1".to_owned()),
            ..S3Target::default()
        };
        assert_eq!(
            stores.placement("other", Some(&own), None),
            Placement::S3 {
                target: own,
                encryption: EncryptionKey::None
            }
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        for (json, needle) in [
            (r#"{"s3": {"part_bytes": 1024}}"#, "part_bytes"),
            (
                r#"{"s3": {"part_bytes": 6291456, "multipart_threshold_bytes": 5242880}}"#,
                "multipart_threshold_bytes",
            ),
            (r#"{"s3": {"access_key_id": "a"}}"#, "secret_access_key"),
            (r#"{"s3": {"endpoint_url": "ftp://x"}}"#, "http://"),
            (r#"{"s3": {"region": "eu west"}}"#, "region"),
            (r#"{"buckets": {"Bad_Name": {}}}"#, "bucket name"),
            (
                r#"{"buckets": {"b-1": {"server_side_encryption": "rot13"}}}"#,
                "rot13",
            ),
            (
                r#"{"buckets": {"b-1": {"server_side_encryption": "AES256", "kms_key_id": "k"}}}"#,
                "aws:kms",
            ),
        ] {
            let error = ObjectStores::new("/tmp/x", config(json)).unwrap_err();
            assert!(error.to_string().contains(needle), "{json}: {error}");
        }
        assert!(serde_json::from_str::<ObjectStoreConfig>(r#"{"s4": {}}"#).is_err());
    }

    #[test]
    fn encryption_from_headers() {
        assert_eq!(
            Encryption::from_header(None, None).unwrap(),
            Encryption::None
        );
        assert_eq!(
            Encryption::from_header(Some("AES256"), None).unwrap(),
            Encryption::Aes256
        );
        assert_eq!(
            Encryption::from_header(None, Some("k")).unwrap(),
            Encryption::Kms {
                key_id: Some("k".to_owned())
            }
        );
        assert_eq!(Encryption::Kms { key_id: None }.header(), Some("aws:kms"));
    }

    #[test]
    fn a_directory_goes_up_with_its_manifest_last() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        for (path, bytes) in [
            ("p/l/id/id.completed.manifest", "done"),
            ("p/l/id/id.started.manifest", "start"),
            ("p/l/id/2024/01/01/00/s.0-3.ion", "blocks"),
        ] {
            std::fs::create_dir_all(tree.join(path).parent().unwrap()).unwrap();
            std::fs::write(tree.join(path), bytes).unwrap();
        }
        let stores = ObjectStores::local(dir.path().join("s3"));
        let keys = stores
            .put_directory(&Placement::Local, "b-1", "x/", &tree, ".completed.manifest")
            .unwrap();
        assert_eq!(
            keys,
            [
                "x/p/l/id/2024/01/01/00/s.0-3.ion",
                "x/p/l/id/id.started.manifest",
                "x/p/l/id/id.completed.manifest"
            ]
        );
        assert_eq!(
            stores
                .get(&Placement::Local, "b-1", "x/p/l/id/id.completed.manifest")
                .unwrap(),
            b"done"
        );
    }

    #[test]
    fn local_objects_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let stores = ObjectStores::local(dir.path());
        let written = stores
            .put(&Placement::Local, "b-1", "p/2024/01/01/00/x", b"data")
            .unwrap();
        assert_eq!(
            written,
            Written::File(dir.path().join("b-1/p/2024/01/01/00/x"))
        );
        assert_eq!(
            stores
                .get(&Placement::Local, "b-1", "p/2024/01/01/00/x")
                .unwrap(),
            b"data"
        );
        assert!(stores.put(&Placement::Local, "B", "k", b"").is_err());
    }
}
