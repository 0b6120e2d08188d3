//! The running system: the data directory's layout, the engines opened in it, and the background
//! workers that keep them going (index refresh, one delivery worker per delivery stream), with an
//! orderly shutdown: delivery workers stop before the indices they write into are closed.
//!
//! Layout of `--data-dir`:
//! - `sluice.lock`: held (flock) while a process uses the directory, so two never share it;
//! - `indices/`: the search indices (see `sluice-search`);
//! - `streams/`: the durable log of streams and their consumer checkpoints (see `sluice-log`);
//! - `ledgers/`: the verifiable ledgers, one directory each, a journal and its derived state (see `sluice-ledger`);
//! - `tables/`: the DynamoDB-like tables and their stream records, one redb database (see `sluice-tables`);
//! - `delivery/`: the catalog of delivery streams (see `sluice-delivery`);
//! - `mappings/`: the catalog of event-source mappings and their table-stream checkpoints (see
//!   `sluice-mappings`; log-stream checkpoints live with the stream, consumer `lambda.<uuid>`);
//! - `ledger-index/`: the built-in indexer's position in each ledger (see [`ledger_index`]);
//! - `table-index/`: the built-in table indexer's position in each table's stream (see
//!   [`table_index`]);
//! - `journal-streams/`: the catalog of the ledgers' journal streams and their positions
//!   (see [`journal_streams`]);
//! - `kinesis-sources/`: the catalog of external Kinesis streams read into copies in the log
//!   for delivery streams and mappings, and how far each was read (see [`kinesis_sources`]);
//! - `replicas/`: the catalog of ledger replicas declared at run time (see [`replica`]);
//! - `s3/<bucket>/<key>`: the local S3-like store, the default home of delivery backups, S3
//!   destinations and QLDB's ExportJournalToS3; buckets that [`NodeOptions::object_store`] lists
//!   (or a delivery stream's own endpoint) go to real S3 instead, with the same keys;
//! - `s3-staging/`: journal exports bound for real S3, written here first and uploaded whole
//!   (removed after; what a crash leaves is removed at the next open).
//!
//! Ledger restores and imports read only from the `s3/` store and the operator's import
//! directories ([`NodeOptions::import_dirs`]); long ledger operations (export, restore, import)
//! share one [`CancelToken`] that [`Node::cancel_long_operations`] sets when the node stops.
//!
//! The directory itself is mode 0700 (created so, and tightened at open when it is not), so no
//! other user can read anything under it; `sluice up` also runs with umask 077, which makes the
//! files 0600 and the directories below 0700. Its path is made absolute at open, so every path
//! the node hands out (the export directories of ExportJournalToS3, for example) is absolute.

mod functions;
mod index_writes;
pub mod journal_streams;
pub mod kinesis_client;
pub mod kinesis_sources;
pub mod kpl;
pub mod ledger_index;
mod position_file;
pub mod replica;
pub mod replica_assembler;
pub mod replica_source;
pub mod table_index;
mod worker;

pub use functions::{FunctionsInvoker, FunctionsTransformer};
pub use journal_streams::JournalStreams;
pub use kinesis_client::{KinesisEndpoint, KinesisEndpoints};
pub use kinesis_sources::KinesisSources;
pub use ledger_index::{LedgerIndexConfig, LedgerIndexer};
pub use replica::{ReplicaConfig, Replicas};
pub use sluice_delivery::IndexAuthorizer;
pub use table_index::{TableIndexConfig, TableIndexer};

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_delivery::{DeliveryStreams, DeliveryStreamsOptions, NoFunctions, Transformer};
use sluice_ledger::{CancelToken, ImportRoots, Ledgers, Limits};
use sluice_log::{Clock, Log, LogOptions, SystemClock};
use sluice_mappings::{EventSourceMappings, InvokeFailure, Invoker};
use sluice_objects::{ObjectStoreConfig, ObjectStores};
use sluice_search::Indices;
use sluice_tables::Tables;

/// How often the maintenance worker deletes stream segments past their retention (by age, per
/// the log's clock, or by size), table stream records past theirs, and table items whose Time
/// to Live has passed (each pass reads every TTL-enabled table once; DynamoDB itself promises
/// only removal within days, so a minute's delay is well inside it).
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// How often the maintenance worker looks for indices whose refresh interval has passed.
pub const REFRESH_TICK: Duration = Duration::from_millis(100);

/// The folder of the data directory where journal exports bound for S3 are staged.
pub const S3_STAGING_DIR: &str = "s3-staging";

/// Mode of the data directory: only its owner may list or enter it.
#[cfg(unix)]
pub const DATA_DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another sluice process")]
    Locked(PathBuf),
    #[error(transparent)]
    Search(#[from] sluice_search::SearchError),
    #[error(transparent)]
    Log(#[from] sluice_log::LogError),
    #[error(transparent)]
    Ledger(#[from] sluice_ledger::LedgerError),
    #[error(transparent)]
    Delivery(#[from] sluice_delivery::DeliveryError),
    #[error(transparent)]
    Tables(#[from] sluice_tables::TablesError),
    #[error(transparent)]
    Mappings(#[from] sluice_mappings::MappingError),
    #[error(transparent)]
    Objects(#[from] sluice_objects::ObjectsError),
    #[error(transparent)]
    Cluster(#[from] sluice_cluster::ClusterError),
    #[error(transparent)]
    JournalStreams(#[from] journal_streams::JournalStreamError),
    #[error(transparent)]
    LedgerIndex(#[from] ledger_index::LedgerIndexError),
    #[error(transparent)]
    Replica(#[from] replica::ReplicaError),
    #[error(transparent)]
    TableIndex(#[from] table_index::TableIndexError),
    #[error(transparent)]
    KinesisSources(#[from] kinesis_sources::KinesisSourceError),
    #[error("{0}")]
    Config(String),
}

/// What a node is opened with besides its directory.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The wall clock of arrival times, retention, buffering, rotation and retries.
    pub clock: Arc<dyn Clock>,
    /// Runs delivery streams' Lambda processors.
    pub transformer: Arc<dyn Transformer>,
    /// Runs the functions of event-source mappings.
    pub invoker: Arc<dyn Invoker>,
    /// Directories ledger restores and imports may read besides the data directory's `s3/`
    /// store (`sluice up --import-dir`); none by default. Each must exist.
    pub import_dirs: Vec<PathBuf>,
    /// Which ledgers and tables the built-in indexer writes into search, and where; every
    /// table of every ledger into `<ledger>-<table>` by default.
    pub ledger_index: LedgerIndexConfig,
    /// Ledgers replicated into other ledgers of this node (the `--config` file's
    /// `ledger_replicas`); none by default.
    pub ledger_replicas: Vec<ReplicaConfig>,
    /// Which tables the built-in indexer writes into search, and where; none by default.
    pub table_index: TableIndexConfig,
    /// Which buckets live in real S3 and how to reach it (the `--config` file's
    /// `object_store`); none by default: every object goes into `data_dir/s3`.
    pub object_store: ObjectStoreConfig,
    /// External Elasticsearch/OpenSearch clusters delivery streams may name (the `--config`
    /// file's `search_clusters`: endpoint, domain, auth, CA, index templates); none by default.
    pub search_clusters: Vec<sluice_cluster::ClusterConnection>,
    /// Kinesis APIs outside this node, by the region and account of their streams' ARNs (the
    /// `--config` file's `kinesis_endpoints`); none by default: every stream ARN is local.
    pub kinesis_endpoints: Vec<KinesisEndpoint>,
    /// With security on, what delivery streams' roles may write into Sluice's own search;
    /// `None`: anything.
    pub index_authorizer: Option<Arc<dyn sluice_delivery::IndexAuthorizer>>,
    /// The master key of encryption at rest (`--encryption-key-file`, `SLUICE_ENCRYPTION_KEY`):
    /// with it, what the node writes from now on is encrypted under the data directory's
    /// keyring (`security/keyring.json`, created at the first start with a key). A data
    /// directory that has a keyring does not open without its key.
    pub encryption_key: Option<sluice_seal::MasterKey>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            clock: Arc::new(SystemClock),
            transformer: Arc::new(NoFunctions),
            invoker: Arc::new(NoInvoker),
            import_dirs: Vec::new(),
            ledger_index: LedgerIndexConfig::default(),
            ledger_replicas: Vec::new(),
            table_index: TableIndexConfig::default(),
            object_store: ObjectStoreConfig::default(),
            search_clusters: Vec::new(),
            kinesis_endpoints: Vec::new(),
            index_authorizer: None,
            encryption_key: None,
        }
    }
}

/// The keyring of `data_dir` under `key`, created at the first start with one; without a key, a
/// data directory that has a keyring is refused (its encrypted files would not open).
fn open_keyring(
    data_dir: &Path,
    key: Option<sluice_seal::MasterKey>,
) -> Result<Option<Arc<sluice_seal::Keyring>>, NodeError> {
    let security = data_dir.join("security");
    match key {
        Some(key) => Ok(Some(Arc::new(
            sluice_seal::Keyring::open_or_create(&security, key)
                .map_err(|error| NodeError::Config(error.to_string()))?,
        ))),
        None if sluice_seal::Keyring::exists(&security) => Err(NodeError::Config(format!(
            "{} was encrypted (it has {}): start Sluice with its key, --encryption-key-file FILE or {}",
            data_dir.display(),
            sluice_seal::Keyring::path_in(&security).display(),
            sluice_seal::MASTER_KEY_ENV
        ))),
        None => Ok(None),
    }
}

/// The invoker of a node without a function host: every invocation fails, so mappings keep
/// their records until a host is there.
#[derive(Debug)]
pub struct NoInvoker;

impl Invoker for NoInvoker {
    fn invoke(
        &self,
        function_arn: &str,
        _event: &serde_json::Value,
    ) -> Result<serde_json::Value, InvokeFailure> {
        Err(InvokeFailure {
            error_type: "ResourceNotFoundException".to_owned(),
            message: format!("no function host to run {function_arn}"),
            function_did_not_run: true,
        })
    }
}

pub struct Node {
    data_dir: PathBuf,
    indices: Arc<Indices>,
    log: Arc<Log>,
    ledgers: Arc<Ledgers>,
    tables: Arc<Tables>,
    import_roots: ImportRoots,
    keyring: Option<Arc<sluice_seal::Keyring>>,
    objects: Arc<ObjectStores>,
    long_operations: CancelToken,
    delivery: Arc<DeliveryStreams>,
    mappings: Arc<EventSourceMappings>,
    journal_streams: Arc<JournalStreams>,
    kinesis_endpoints: KinesisEndpoints,
    kinesis_sources: Arc<KinesisSources>,
    ledger_indexer: LedgerIndexer,
    replicas: Arc<Replicas>,
    table_indexer: TableIndexer,
    stop_refresher: mpsc::Sender<()>,
    refresher: Option<JoinHandle<()>>,
    _lock: File,
}

impl Node {
    /// Opens (or creates) the data directory, recovers every engine in it, and starts the
    /// background workers.
    pub fn open(data_dir: &Path) -> Result<Node, NodeError> {
        Node::open_with(data_dir, NodeOptions::default())
    }

    /// [`Node::open`] with an injected clock and function host.
    pub fn open_with(data_dir: &Path, options: NodeOptions) -> Result<Node, NodeError> {
        let io = |source| NodeError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        let kinesis_endpoints =
            KinesisEndpoints::new(options.kinesis_endpoints.clone()).map_err(NodeError::Config)?;
        create_private_dir(data_dir).map_err(io)?;
        let data_dir = &fs::canonicalize(data_dir).map_err(io)?;
        let mut lock = File::create(data_dir.join("sluice.lock")).map_err(io)?;
        lock.try_lock()
            .map_err(|_| NodeError::Locked(data_dir.to_path_buf()))?;
        // The holder's process id, for tools that signal it (`sluice security rotate-key`).
        std::io::Write::write_all(&mut lock, std::process::id().to_string().as_bytes())
            .map_err(io)?;
        let keyring = open_keyring(data_dir, options.encryption_key.clone())?;
        let indices = Arc::new(Indices::open_with_keyring(
            &data_dir.join("indices"),
            keyring.clone(),
        )?);
        let log = Arc::new(Log::open(
            data_dir.join("streams"),
            LogOptions {
                clock: options.clock.clone(),
                keyring: keyring.clone(),
                ..LogOptions::default()
            },
        )?);
        let ledgers = Arc::new(
            Ledgers::open_dir(
                data_dir.join("ledgers"),
                Arc::new(sluice_ledger::SystemClock),
                Limits::default(),
            )?
            .with_keyring(keyring.clone()),
        );
        let tables = Arc::new(Tables::open(
            &data_dir.join("tables"),
            options.clock.clone(),
        )?);
        let import_roots = ImportRoots::new(&data_dir.join("s3"), &options.import_dirs)?
            .with_keyring(keyring.clone());
        let objects = Arc::new(
            ObjectStores::new(data_dir.join("s3"), options.object_store.clone())?
                .with_keyring(keyring.clone()),
        );
        let staging = data_dir.join(S3_STAGING_DIR);
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io)?;
        }
        let delivery = Arc::new(DeliveryStreams::open(
            data_dir,
            log.clone(),
            indices.clone(),
            DeliveryStreamsOptions {
                objects: Some(objects.clone()),
                clusters: Some(Arc::new(sluice_cluster::Clusters::new(
                    options.search_clusters.clone(),
                )?)),
                index_authorizer: options.index_authorizer.clone(),
                keyring: keyring.clone(),
                ..DeliveryStreamsOptions::new(options.clock.clone(), options.transformer.clone())
            },
        )?);
        let mappings = Arc::new(EventSourceMappings::open(
            &data_dir.join("mappings"),
            log.clone(),
            tables.clone(),
            options.invoker.clone(),
            options.clock.clone(),
        )?);
        let journal_streams = Arc::new(JournalStreams::open(
            data_dir,
            ledgers.clone(),
            log.clone(),
            kinesis_endpoints.clone(),
        )?);
        let kinesis_sources = Arc::new(KinesisSources::open(data_dir, log.clone())?);
        kinesis_sources.start_all(|owner| match owner.split_once('/') {
            Some(("firehose", name)) => delivery.config(name).is_ok(),
            Some(("lambda", uuid)) => mappings.get(uuid).is_ok(),
            _ => false,
        })?;
        let ledger_indexer = LedgerIndexer::start(
            data_dir,
            ledgers.clone(),
            indices.clone(),
            options.ledger_index.clone(),
        )?;
        let replicas = Arc::new(Replicas::start(
            data_dir,
            ledgers.clone(),
            log.clone(),
            options.ledger_replicas.clone(),
        )?);
        let table_indexer = TableIndexer::start(
            data_dir,
            tables.clone(),
            indices.clone(),
            options.table_index.clone(),
        )?;
        let (stop_refresher, stopped) = mpsc::channel();
        let refresher = {
            let indices = indices.clone();
            let log = log.clone();
            let tables = tables.clone();
            std::thread::Builder::new()
                .name("sluice-maintenance".into())
                .spawn(move || {
                    let mut last_retention = std::time::Instant::now();
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_TICK) {
                        indices.refresh_due();
                        if last_retention.elapsed() >= RETENTION_CHECK_INTERVAL {
                            last_retention = std::time::Instant::now();
                            match log.enforce_retention() {
                                Ok(outcome) => {
                                    tracing::debug!(?outcome, "stream retention enforced")
                                }
                                Err(error) => {
                                    tracing::error!(%error, "enforcing stream retention failed")
                                }
                            }
                            match tables.trim_streams() {
                                Ok(removed) => {
                                    tracing::debug!(removed, "table stream retention enforced")
                                }
                                Err(error) => {
                                    tracing::error!(%error, "enforcing table stream retention failed")
                                }
                            }
                            match tables.expire_items() {
                                Ok(removed) => {
                                    tracing::debug!(removed, "expired table items removed")
                                }
                                Err(error) => {
                                    tracing::error!(%error, "removing expired table items failed")
                                }
                            }
                        }
                    }
                })
                .map_err(io)?
        };
        Ok(Node {
            data_dir: data_dir.to_path_buf(),
            indices,
            log,
            ledgers,
            tables,
            import_roots,
            keyring,
            objects,
            long_operations: CancelToken::new(),
            delivery,
            mappings,
            journal_streams,
            kinesis_endpoints,
            kinesis_sources,
            ledger_indexer,
            replicas,
            table_indexer,
            stop_refresher,
            refresher: Some(refresher),
            _lock: lock,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn indices(&self) -> &Arc<Indices> {
        &self.indices
    }

    /// The streams (Kinesis-like) and their consumer checkpoints.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The verifiable ledgers (QLDB-like). Their files are opened lazily, on first use.
    pub fn ledgers(&self) -> &Arc<Ledgers> {
        &self.ledgers
    }

    /// The DynamoDB-like tables and their streams.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Where ExportJournalToS3 writes by default: `data_dir/s3`, holding one directory per
    /// bucket, `<bucket>/<prefix>/…`.
    pub fn s3_dir(&self) -> PathBuf {
        self.data_dir.join("s3")
    }

    /// Where journal exports bound for real S3 are written before they are uploaded: a fresh
    /// directory under `data_dir/s3-staging` (emptied at every open).
    pub fn s3_staging_dir(&self) -> PathBuf {
        self.data_dir.join(S3_STAGING_DIR)
    }

    /// The object stores: the local `s3/` directory and the configured S3 buckets.
    pub fn objects(&self) -> &Arc<ObjectStores> {
        &self.objects
    }

    /// Where ledger restores and imports may read: the `s3/` store and the import directories.
    /// The keyring of encryption at rest, when the node was opened with a key: reloaded on
    /// SIGHUP after `sluice security rotate-key`.
    pub fn keyring(&self) -> Option<&Arc<sluice_seal::Keyring>> {
        self.keyring.as_ref()
    }

    pub fn import_roots(&self) -> &ImportRoots {
        &self.import_roots
    }

    /// The token every long ledger operation (export, restore, import) checks.
    pub fn long_operations(&self) -> &CancelToken {
        &self.long_operations
    }

    /// Asks every long ledger operation to stop at its next check: they answer `Cancelled`
    /// and leave nothing half-made. Called first at shutdown, so none holds the stop up.
    pub fn cancel_long_operations(&self) {
        self.long_operations.cancel();
    }

    /// The delivery streams (Firehose-like) and their workers.
    pub fn delivery(&self) -> &Arc<DeliveryStreams> {
        &self.delivery
    }

    /// The event-source mappings and their workers.
    pub fn mappings(&self) -> &Arc<EventSourceMappings> {
        &self.mappings
    }

    /// The ledgers' journal streams (QLDB's StreamJournalToKinesis) and their workers.
    pub fn journal_streams(&self) -> &Arc<JournalStreams> {
        &self.journal_streams
    }

    /// Which stream ARNs name streams outside this node.
    pub fn kinesis_endpoints(&self) -> &KinesisEndpoints {
        &self.kinesis_endpoints
    }

    /// The external Kinesis streams read for delivery streams and mappings.
    pub fn kinesis_sources(&self) -> &Arc<KinesisSources> {
        &self.kinesis_sources
    }

    /// The built-in indexer of ledgers into search.
    pub fn ledger_indexer(&self) -> &LedgerIndexer {
        &self.ledger_indexer
    }

    /// The ledger replicas (configured and declared) and their worker.
    pub fn replicas(&self) -> &Arc<Replicas> {
        &self.replicas
    }

    /// The built-in indexer of tables into search.
    pub fn table_indexer(&self) -> &TableIndexer {
        &self.table_indexer
    }

    /// Stops the workers and commits every engine.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.long_operations.cancel();
        // Mapping workers first (their functions may write anywhere).
        self.mappings.shutdown();
        // Journal streams write into streams that delivery workers may read.
        self.journal_streams.shutdown();
        self.replicas.shutdown();
        // Sources fill copies that delivery workers and mappings read.
        self.kinesis_sources.shutdown();
        // Delivery workers and the ledger indexer before the indices: they write into the ones closed
        // below.
        self.ledger_indexer.shutdown();
        self.table_indexer.shutdown();
        self.delivery.shutdown();
        let _ = self.stop_refresher.send(());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
            self.indices.close_all();
        }
    }
}

/// Creates the data directory (and missing parents) with [`DATA_DIR_MODE`]; an existing one
/// readable by other users is tightened to it, with a warning. A directory whose mode cannot be
/// changed (owned by another user) is used as it is, with a warning too.
fn create_private_dir(data_dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !data_dir.exists() {
            return fs::DirBuilder::new()
                .recursive(true)
                .mode(DATA_DIR_MODE)
                .create(data_dir);
        }
        let mode = fs::metadata(data_dir)?.permissions().mode() & 0o777;
        if mode & !DATA_DIR_MODE != 0 {
            match fs::set_permissions(data_dir, fs::Permissions::from_mode(DATA_DIR_MODE)) {
                Ok(()) => tracing::warn!(
                    data_dir = %data_dir.display(),
                    "the data directory was open to other users (mode {mode:o}); it is now {DATA_DIR_MODE:o}"
                ),
                Err(error) => tracing::warn!(
                    data_dir = %data_dir.display(),
                    %error,
                    "the data directory is open to other users (mode {mode:o}) and could not be restricted"
                ),
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    fs::create_dir_all(data_dir)
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_data_dir_is_private_and_its_path_absolute() {
        let parent = tempfile::tempdir().unwrap();
        // A path with `..` in it, which the node resolves.
        let data_dir = parent.path().join("new-data");
        let winding = parent.path().join("new-data/../new-data");
        let node = Node::open(&winding).unwrap();
        assert_eq!(mode(&data_dir), DATA_DIR_MODE);
        assert_eq!(node.data_dir(), fs::canonicalize(&data_dir).unwrap());
        assert!(node.s3_dir().is_absolute());
        drop(node);

        // An existing directory open to others is tightened at open.
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let node = Node::open(&data_dir).unwrap();
        assert_eq!(mode(&data_dir), DATA_DIR_MODE);
        drop(node);
    }
}
