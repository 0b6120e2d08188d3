//! The catalog of delivery streams and their workers. The catalog is one JSON file,
//! `<data dir>/delivery/catalog.json` (`{"format_version":1,"delivery_streams":[…]}`), replaced
//! atomically on every create and delete; on open every stream in it is resumed from its
//! checkpoint. Each running stream has one worker thread; [`DeliveryStreams::shutdown`] stops
//! them all (a batch in flight is abandoned and redelivered on the next start).
//!
//! Create writes the DirectPut log stream before the catalog: a crash in between leaves a log
//! stream no catalog entry names, which the next create of that name deletes first.
//!
//! A stream of the catalog whose worker could not start (at create, or when resumed at open:
//! its Kinesis source was deleted, its log cannot be read) stays in the catalog without a worker,
//! and [`DeliveryStreams::start_failure`] says why, so the API can describe it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sluice_cluster::Clusters;
use sluice_log::{Clock, IteratorStart, Log, LogError, StreamConfig};
use sluice_objects::ObjectStores;
use sluice_search::Indices;

use crate::config::{DeliveryStreamConfig, Destination, Source, is_local_domain_arn};
use crate::error::{DeliveryError, Result};
use crate::limits::{
    BACKLOG_RECORDS_MAX, CATALOG_BYTES_MAX, DELIVERY_STREAMS_MAX, ERROR_BACKOFF_MS_FIRST,
    ERROR_BACKOFF_MS_MAX, PUMP_TICK_MS,
};
use crate::stream::{DeliveryStream, Pause, consumer_name, log_stream_name};
use crate::transform::Transformer;

const CATALOG_FORMAT_VERSION: u32 = 1;
const CATALOG_FILE_NAME: &str = "catalog.json";

#[derive(Debug, Clone)]
pub struct DeliveryStreamsOptions {
    pub clock: Arc<dyn Clock>,
    pub transformer: Arc<dyn Transformer>,
    /// Run a worker thread per stream; tests that pump by hand turn this off.
    pub start_workers: bool,
    /// Undelivered records of a DirectPut stream at which puts are throttled.
    pub backlog_records_max: u64,
    /// Where backups and S3 destinations are written; `None` is the local directory
    /// `data_dir/s3` only.
    pub objects: Option<Arc<ObjectStores>>,
    /// The external search clusters the configuration names (auth, CA, templates, domains);
    /// `None` knows none: a ClusterEndpoint is reached without authentication.
    pub clusters: Option<Arc<Clusters>>,
    /// With security on, what a stream's RoleARN may write into Sluice's own search; `None`:
    /// anything.
    pub index_authorizer: Option<Arc<dyn IndexAuthorizer>>,
    /// With a keyring, the catalog is written as a sealed file (encryption at rest).
    pub keyring: Option<Arc<sluice_seal::Keyring>>,
}

/// Whether a delivery stream may write into an index of Sluice's own search, under the roles of
/// a node with security on (the role ARN is mapped to roles as a backend role, as Amazon's
/// fine-grained access control maps IAM roles).
pub trait IndexAuthorizer: Send + Sync + std::fmt::Debug {
    /// `Err(reason)` when a stream whose role is `role_arn` (`None`: it has none) may not index
    /// documents into `index`, or create it when it does not `exist` yet.
    fn may_index(&self, role_arn: Option<&str>, index: &str, exists: bool) -> Result<(), String>;
}

impl DeliveryStreamsOptions {
    pub fn new(clock: Arc<dyn Clock>, transformer: Arc<dyn Transformer>) -> Self {
        DeliveryStreamsOptions {
            clock,
            transformer,
            start_workers: true,
            backlog_records_max: BACKLOG_RECORDS_MAX,
            objects: None,
            clusters: None,
            index_authorizer: None,
            keyring: None,
        }
    }
}

/// What the catalog's sealed form is for (the HKDF label).
const CATALOG_PURPOSE: sluice_seal::Purpose = sluice_seal::Purpose("sluice-delivery catalog");

#[derive(Serialize, Deserialize)]
struct CatalogFile {
    format_version: u32,
    delivery_streams: Vec<DeliveryStreamConfig>,
}

struct Running {
    stream: Arc<DeliveryStream>,
    /// Dropping it tells the worker to stop.
    stop: Option<mpsc::Sender<()>>,
    worker: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        self.stop.take();
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!(delivery_stream = %self.stream.name(), "delivery worker panicked");
        }
    }
}

/// When a delivery stream's worker failed to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPhase {
    /// Creating it: the catalog holds it, but it never ran.
    Create,
    /// Resuming it when the catalog was opened: it ran before.
    Resume,
}

/// Why a delivery stream of the catalog has no worker. It stays so until the stream is deleted
/// (or, after a resume, until the next open succeeds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub phase: StartPhase,
    /// The error, as logged.
    pub reason: String,
    /// When it failed, by the catalog's clock.
    pub failed_ms: u64,
}

pub struct DeliveryStreams {
    directory: PathBuf,
    objects: Arc<ObjectStores>,
    clusters: Arc<Clusters>,
    log: Arc<Log>,
    indices: Arc<Indices>,
    options: DeliveryStreamsOptions,
    configs: RwLock<BTreeMap<String, DeliveryStreamConfig>>,
    running: Mutex<BTreeMap<String, Running>>,
    /// Streams of the catalog that are not running, and why; at most one per catalog entry.
    start_failures: Mutex<BTreeMap<String, StartFailure>>,
    /// Serialises creates and deletes so each catalog rewrite sees the one before.
    catalog_lock: Mutex<()>,
}

impl std::fmt::Debug for DeliveryStreams {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DeliveryStreams")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

struct ChannelPause<'a>(&'a Receiver<()>);

impl Pause for ChannelPause<'_> {
    fn pause(&self, duration_ms: u64) -> bool {
        matches!(
            self.0
                .recv_timeout(std::time::Duration::from_millis(duration_ms)),
            Err(RecvTimeoutError::Timeout)
        )
    }
}

fn run_worker(stream: Arc<DeliveryStream>, stop: Receiver<()>) {
    let pause = ChannelPause(&stop);
    let mut error_backoff_ms = ERROR_BACKOFF_MS_FIRST;
    loop {
        if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
            break;
        }
        match stream.pump(&pause) {
            Ok(outcome) if outcome.flushed_records > 0 => error_backoff_ms = ERROR_BACKOFF_MS_FIRST,
            Ok(_) => {
                error_backoff_ms = ERROR_BACKOFF_MS_FIRST;
                if !pause.pause(PUMP_TICK_MS) {
                    break;
                }
            }
            Err(DeliveryError::Stopping(_)) => break,
            Err(error) => {
                tracing::error!(
                    delivery_stream = %stream.name(),
                    %error,
                    "delivery failed; the batch is kept and retried in {error_backoff_ms} ms"
                );
                if !pause.pause(error_backoff_ms) {
                    break;
                }
                error_backoff_ms = (error_backoff_ms * 2).min(ERROR_BACKOFF_MS_MAX);
            }
        }
    }
}

impl DeliveryStreams {
    /// Opens the catalog under `data_dir/delivery`, backups under `data_dir/s3` (or where
    /// [`DeliveryStreamsOptions::objects`] says), and resumes
    /// every delivery stream. A stream that cannot be resumed (its source stream was deleted) is
    /// logged and kept in the catalog, not running.
    pub fn open(
        data_dir: &Path,
        log: Arc<Log>,
        indices: Arc<Indices>,
        options: DeliveryStreamsOptions,
    ) -> Result<DeliveryStreams> {
        let directory = data_dir.join("delivery");
        fs::create_dir_all(&directory)
            .map_err(|e| DeliveryError::io(format!("creating {}", directory.display()), e))?;
        let configs = read_catalog(&directory, options.keyring.as_deref())?;
        if let Some(keyring) = options.keyring.as_deref()
            && let Ok(bytes) = fs::read(directory.join(CATALOG_FILE_NAME))
            && !sluice_seal::is_sealed_file(&bytes)
        {
            // A catalog written before the key was given is sealed now.
            write_catalog(&directory, &configs, Some(keyring))?;
        }
        let streams = DeliveryStreams {
            objects: options
                .objects
                .clone()
                .unwrap_or_else(|| Arc::new(ObjectStores::local(data_dir.join("s3")))),
            clusters: options.clusters.clone().unwrap_or_default(),
            configs: RwLock::new(configs),
            directory,
            log,
            indices,
            options,
            running: Mutex::new(BTreeMap::new()),
            start_failures: Mutex::new(BTreeMap::new()),
            catalog_lock: Mutex::new(()),
        };
        let configs: Vec<DeliveryStreamConfig> = streams.read_configs().values().cloned().collect();
        for config in configs {
            // Logged and remembered by `start`.
            let _ = streams.start(config, StartPhase::Resume);
        }
        Ok(streams)
    }

    fn read_configs(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, DeliveryStreamConfig>> {
        self.configs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The object stores of backups and S3 destinations.
    pub fn objects(&self) -> &Arc<ObjectStores> {
        &self.objects
    }

    fn source_stream_name(config: &DeliveryStreamConfig) -> Result<String> {
        Ok(match &config.source {
            Source::DirectPut => log_stream_name(&config.name),
            Source::KinesisStream { stream_name, .. } => stream_name.clone(),
        })
    }

    fn start_failures(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StartFailure>> {
        self.start_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a stream of the catalog; when that fails, logs it and remembers why for
    /// [`DeliveryStreams::start_failure`].
    fn start(
        &self,
        config: DeliveryStreamConfig,
        phase: StartPhase,
    ) -> Result<Arc<DeliveryStream>> {
        let name = config.name.clone();
        match self.try_start(config) {
            Ok(stream) => {
                self.start_failures().remove(&name);
                Ok(stream)
            }
            Err(error) => {
                let what = match phase {
                    StartPhase::Create => "cannot start new delivery stream",
                    StartPhase::Resume => "cannot resume delivery stream",
                };
                tracing::error!(delivery_stream = %name, %error, "{what}");
                let failure = StartFailure {
                    phase,
                    reason: error.to_string(),
                    failed_ms: self.options.clock.now_ms(),
                };
                self.start_failures().insert(name, failure);
                Err(error)
            }
        }
    }

    fn try_start(&self, config: DeliveryStreamConfig) -> Result<Arc<DeliveryStream>> {
        let source_name = Self::source_stream_name(&config)?;
        let source = match self.log.stream(&source_name) {
            Ok(source) => source,
            Err(LogError::StreamNotFound(_)) if matches!(config.source, Source::DirectPut) => {
                self.log.create_stream(&source_name, StreamConfig::new(1))?
            }
            Err(error) => return Err(error.into()),
        };
        let name = config.name.clone();
        let stream = Arc::new(DeliveryStream::open(
            config,
            source,
            self.indices.clone(),
            self.objects.clone(),
            &self.clusters,
            &self.options,
        )?);
        let (stop, stopped) = mpsc::channel();
        let worker = if self.options.start_workers {
            let worker_stream = stream.clone();
            Some(
                std::thread::Builder::new()
                    .name(format!("delivery-{name}"))
                    .spawn(move || run_worker(worker_stream, stopped))
                    .map_err(|e| DeliveryError::io("starting a delivery worker", e))?,
            )
        } else {
            None
        };
        self.running().insert(
            name,
            Running {
                stream: stream.clone(),
                stop: Some(stop),
                worker,
            },
        );
        Ok(stream)
    }

    /// A search destination named by DomainARN alone goes to the cluster the configuration
    /// says serves that domain, or to Sluice's own index for a domain of Sluice's own account;
    /// any other domain cannot be reached (Sluice does not ask AWS for its endpoint).
    fn resolve_domain(&self, config: &mut DeliveryStreamConfig) -> Result<()> {
        let Destination::Search(search) = &mut config.destination else {
            return Ok(());
        };
        let (None, Some(domain_arn)) = (&search.cluster_endpoint, &search.domain_arn) else {
            return Ok(());
        };
        if let Some(endpoint) = self.clusters.endpoint_of_domain(domain_arn) {
            search.cluster_endpoint = Some(endpoint.to_owned());
            return Ok(());
        }
        if is_local_domain_arn(domain_arn) {
            return Ok(());
        }
        Err(DeliveryError::invalid(format!(
            "DomainARN {domain_arn} names no cluster of the --config file's search_clusters; give its ClusterEndpoint instead, or configure the cluster with this domain_arn"
        )))
    }

    /// Creates a delivery stream and starts delivering.
    pub fn create(&self, mut config: DeliveryStreamConfig) -> Result<Arc<DeliveryStream>> {
        config.validate()?;
        self.resolve_domain(&mut config)?;
        let _guard = self
            .catalog_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.read_configs().contains_key(&config.name) {
            return Err(DeliveryError::AlreadyExists(config.name));
        }
        if self.read_configs().len() >= DELIVERY_STREAMS_MAX {
            return Err(DeliveryError::LimitExceeded(format!(
                "a node holds at most {DELIVERY_STREAMS_MAX} delivery streams"
            )));
        }
        config.created_time_ms = self.options.clock.now_ms();
        match &config.source {
            Source::DirectPut => {
                let log_name = log_stream_name(&config.name);
                match self.log.delete_stream(&log_name) {
                    Ok(()) | Err(LogError::StreamNotFound(_)) => {}
                    Err(error) => return Err(error.into()),
                }
                self.log.create_stream(&log_name, StreamConfig::new(1))?;
            }
            Source::KinesisStream {
                stream_arn,
                stream_name,
                ..
            } => {
                let source = self.log.stream(stream_name).map_err(|_| {
                    DeliveryError::invalid(format!("Kinesis stream {stream_arn} does not exist"))
                })?;
                // Firehose reads a Kinesis source from LATEST: checkpoint just before it.
                let consumer = consumer_name(&config.name);
                for shard in source.shards() {
                    let next = shard.position_for(IteratorStart::Latest)?;
                    if next.next_record_offset > 0 {
                        let last = sluice_log::SequenceNumber::from_shard_offset(
                            shard.shard_index(),
                            next.next_record_offset - 1,
                        );
                        source.write_checkpoint(&consumer, shard.shard_index(), last)?;
                    }
                }
            }
        }
        let mut configs = self.read_configs().clone();
        configs.insert(config.name.clone(), config.clone());
        write_catalog(&self.directory, &configs, self.options.keyring.as_deref())?;
        *self.configs.write().unwrap_or_else(PoisonError::into_inner) = configs;
        self.start(config, StartPhase::Create)
    }

    /// Stops and deletes a delivery stream (and its DirectPut log stream, records not yet
    /// delivered included, as Firehose's DeleteDeliveryStream).
    pub fn delete(&self, name: &str) -> Result<()> {
        let _guard = self
            .catalog_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut configs = self.read_configs().clone();
        let Some(config) = configs.remove(name) else {
            return Err(DeliveryError::NotFound(name.to_owned()));
        };
        write_catalog(&self.directory, &configs, self.options.keyring.as_deref())?;
        *self.configs.write().unwrap_or_else(PoisonError::into_inner) = configs;
        let running = self.running().remove(name);
        if let Some(mut running) = running {
            running.stop();
        }
        self.start_failures().remove(name);
        if matches!(config.source, Source::DirectPut) {
            match self.log.delete_stream(&log_stream_name(name)) {
                Ok(()) | Err(LogError::StreamNotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// A running delivery stream.
    pub fn get(&self, name: &str) -> Result<Arc<DeliveryStream>> {
        self.running()
            .get(name)
            .map(|running| running.stream.clone())
            .ok_or_else(|| DeliveryError::NotFound(name.to_owned()))
    }

    /// Why a delivery stream of the catalog is not running, if it is not; `None` for a running
    /// stream or a name the catalog does not hold.
    pub fn start_failure(&self, name: &str) -> Option<StartFailure> {
        self.start_failures().get(name).cloned()
    }

    /// Every delivery stream's configuration, by name.
    pub fn configs(&self) -> Vec<DeliveryStreamConfig> {
        self.read_configs().values().cloned().collect()
    }

    pub fn config(&self, name: &str) -> Result<DeliveryStreamConfig> {
        self.read_configs()
            .get(name)
            .cloned()
            .ok_or_else(|| DeliveryError::NotFound(name.to_owned()))
    }

    /// Every running delivery stream.
    pub fn list(&self) -> Vec<Arc<DeliveryStream>> {
        self.running()
            .values()
            .map(|running| running.stream.clone())
            .collect()
    }

    /// Stops every worker; batches in flight are redelivered on the next open.
    pub fn shutdown(&self) {
        let mut running = std::mem::take(&mut *self.running());
        for entry in running.values_mut() {
            entry.stop.take();
        }
        for entry in running.values_mut() {
            entry.stop();
        }
    }
}

impl Drop for DeliveryStreams {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read_catalog(
    directory: &Path,
    keyring: Option<&sluice_seal::Keyring>,
) -> Result<BTreeMap<String, DeliveryStreamConfig>> {
    let path = directory.join(CATALOG_FILE_NAME);
    let corrupt = |reason: String| DeliveryError::CorruptCatalog {
        path: path.display().to_string(),
        reason,
    };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => {
            return Err(DeliveryError::io(
                format!("opening {}", path.display()),
                error,
            ));
        }
    };
    let mut bytes = Vec::new();
    file.take(CATALOG_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DeliveryError::io(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > CATALOG_BYTES_MAX {
        return Err(corrupt(format!("larger than {CATALOG_BYTES_MAX} bytes")));
    }
    // Sealed when written with a keyring; a catalog from before it reads as it is.
    let bytes = sluice_seal::open_maybe_sealed(keyring, CATALOG_PURPOSE, bytes)
        .map_err(|error| corrupt(error.to_string()))?;
    let catalog: CatalogFile =
        serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
    if catalog.format_version != CATALOG_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} (this build reads {CATALOG_FORMAT_VERSION})",
            catalog.format_version
        )));
    }
    Ok(catalog
        .delivery_streams
        .into_iter()
        .map(|config| (config.name.clone(), config))
        .collect())
}

fn write_catalog(
    directory: &Path,
    configs: &BTreeMap<String, DeliveryStreamConfig>,
    keyring: Option<&sluice_seal::Keyring>,
) -> Result<()> {
    let catalog = CatalogFile {
        format_version: CATALOG_FORMAT_VERSION,
        delivery_streams: configs.values().cloned().collect(),
    };
    let bytes = serde_json::to_vec_pretty(&catalog)
        .map_err(|e| DeliveryError::invalid(format!("encoding the catalog: {e}")))?;
    let bytes = match keyring {
        None => bytes,
        Some(keyring) => keyring
            .seal_file(CATALOG_PURPOSE, &bytes)
            .map_err(|e| DeliveryError::invalid(format!("sealing the catalog: {e}")))?,
    };
    let path = directory.join(CATALOG_FILE_NAME);
    let temporary = directory.join(format!("{CATALOG_FILE_NAME}.tmp"));
    let io = |what: &str, e| DeliveryError::io(format!("{what} {}", path.display()), e);
    let mut file = File::create(&temporary).map_err(|e| io("creating", e))?;
    file.write_all(&bytes).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    drop(file);
    fs::rename(&temporary, &path).map_err(|e| io("replacing", e))?;
    File::open(directory)
        .and_then(|folder| folder.sync_all())
        .map_err(|e| io("syncing the folder of", e))?;
    Ok(())
}
