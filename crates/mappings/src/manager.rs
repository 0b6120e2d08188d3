//! The mappings of a node: the catalog (`mappings/catalog.json`, with a format version, written
//! atomically on every change) and one worker thread per mapping and source shard. Creating a
//! mapping resolves its starting position at once (LATEST means the records after the create),
//! so a restart before its first record neither skips nor replays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sluice_log::{Clock, Log};
use sluice_tables::Tables;

use crate::config::MappingConfig;
use crate::error::{MappingError, Result};
use crate::limits::{MAPPINGS_MAX, RETRY_BACKOFF_MAX};
use crate::source::{open_sources, write_atomically};
use crate::worker::{Invoker, StopSignal, Worker};

/// Version of `catalog.json`; a build refuses a catalog with a version it does not know.
pub const CATALOG_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    format_version: u32,
    mappings: Vec<CatalogEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogEntry {
    config: MappingConfig,
    /// A worker opened every shard once and wrote the starting position as checkpoints.
    start_resolved: bool,
}

/// A mapping as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingDescription {
    pub config: MappingConfig,
    /// `OK`, `No records processed`, or what stopped its workers from starting.
    pub last_processing_result: String,
}

struct Running {
    entry: CatalogEntry,
    problem: Option<String>,
    workers: Vec<(Arc<StopSignal>, JoinHandle<()>)>,
}

/// Every mapping of a node and its workers.
pub struct EventSourceMappings {
    directory: PathBuf,
    log: Arc<Log>,
    tables: Arc<Tables>,
    invoker: Arc<dyn Invoker>,
    clock: Arc<dyn Clock>,
    mappings: Mutex<BTreeMap<String, Running>>,
}

impl std::fmt::Debug for EventSourceMappings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EventSourceMappings")
            .field("directory", &self.directory)
            .finish()
    }
}

impl EventSourceMappings {
    /// Opens the catalog in `directory` (created when missing) and starts the workers of every
    /// enabled mapping. A mapping whose source is gone stays, with the problem as its result.
    pub fn open(
        directory: &Path,
        log: Arc<Log>,
        tables: Arc<Tables>,
        invoker: Arc<dyn Invoker>,
        clock: Arc<dyn Clock>,
    ) -> Result<EventSourceMappings> {
        std::fs::create_dir_all(directory).map_err(|source| MappingError::Io {
            context: format!("creating {}", directory.display()),
            source,
        })?;
        let catalog_path = directory.join("catalog.json");
        let entries = match std::fs::read(&catalog_path) {
            Ok(bytes) => {
                let catalog: CatalogFile =
                    serde_json::from_slice(&bytes).map_err(|error| MappingError::Catalog {
                        path: catalog_path.display().to_string(),
                        reason: error.to_string(),
                    })?;
                if catalog.format_version != CATALOG_FORMAT_VERSION {
                    return Err(MappingError::Catalog {
                        path: catalog_path.display().to_string(),
                        reason: format!(
                            "format version {} is not supported (this build reads {CATALOG_FORMAT_VERSION})",
                            catalog.format_version
                        ),
                    });
                }
                catalog.mappings
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(MappingError::Io {
                    context: format!("reading {}", catalog_path.display()),
                    source,
                });
            }
        };
        let mappings = EventSourceMappings {
            directory: directory.to_path_buf(),
            log,
            tables,
            invoker,
            clock,
            mappings: Mutex::new(BTreeMap::new()),
        };
        {
            let mut running = mappings.lock();
            for entry in entries {
                let uuid = entry.config.uuid.clone();
                let started = mappings.start(entry);
                running.insert(uuid, started);
            }
            mappings.persist(&running)?;
        }
        Ok(mappings)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Running>> {
        self.mappings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a mapping and starts its workers when it is enabled.
    pub fn create(&self, mut config: MappingConfig) -> Result<MappingDescription> {
        config.validate()?;
        config.last_modified_ms = self.clock.now_ms();
        let mut running = self.lock();
        if running.len() >= MAPPINGS_MAX {
            return Err(MappingError::LimitExceeded(format!(
                "at most {MAPPINGS_MAX} event source mappings may exist"
            )));
        }
        if running.values().any(|other| {
            other.entry.config.event_source_arn == config.event_source_arn
                && other.entry.config.function_arn == config.function_arn
        }) {
            return Err(MappingError::Conflict(format!(
                "An event source mapping with event source ({}) and function ({}) already exists. Please update or delete the existing mapping.",
                config.event_source_arn, config.function_arn
            )));
        }
        if running.contains_key(&config.uuid) {
            return Err(MappingError::Conflict(format!(
                "event source mapping {} already exists",
                config.uuid
            )));
        }
        // Resolve the starting position now; a missing source fails the create.
        open_sources(
            &config,
            false,
            &self.log,
            &self.tables,
            &self.checkpoint_dir(),
        )?;
        let entry = CatalogEntry {
            config,
            start_resolved: true,
        };
        let uuid = entry.config.uuid.clone();
        let started = self.start(entry);
        let description = describe(&started);
        running.insert(uuid, started);
        self.persist(&running)?;
        Ok(description)
    }

    /// One mapping.
    pub fn get(&self, uuid: &str) -> Result<MappingDescription> {
        self.lock()
            .get(uuid)
            .map(describe)
            .ok_or_else(|| MappingError::NotFound(uuid.to_owned()))
    }

    /// Every mapping, by UUID.
    pub fn list(&self) -> Vec<MappingDescription> {
        self.lock().values().map(describe).collect()
    }

    /// Changes a mapping: its workers stop, `change` edits the configuration, and they start
    /// again from the checkpoint with the new one.
    pub fn update(
        &self,
        uuid: &str,
        change: impl FnOnce(&mut MappingConfig) -> Result<()>,
    ) -> Result<MappingDescription> {
        let mut running = self.lock();
        let current = running
            .get(uuid)
            .ok_or_else(|| MappingError::NotFound(uuid.to_owned()))?;
        let mut config = current.entry.config.clone();
        change(&mut config)?;
        config.validate()?;
        config.last_modified_ms = self.clock.now_ms();
        let Some(old) = running.remove(uuid) else {
            return Err(MappingError::NotFound(uuid.to_owned()));
        };
        stop_workers(old.workers);
        let started = self.start(CatalogEntry {
            config,
            start_resolved: old.entry.start_resolved,
        });
        let description = describe(&started);
        running.insert(uuid.to_owned(), started);
        self.persist(&running)?;
        Ok(description)
    }

    /// Deletes a mapping after its workers stopped; its checkpoints go with it.
    pub fn delete(&self, uuid: &str) -> Result<MappingDescription> {
        let mut running = self.lock();
        let removed = running
            .remove(uuid)
            .ok_or_else(|| MappingError::NotFound(uuid.to_owned()))?;
        let description = MappingDescription {
            config: removed.entry.config.clone(),
            last_processing_result: "OK".to_owned(),
        };
        stop_workers(removed.workers);
        self.persist(&running)?;
        let _ = std::fs::remove_file(self.checkpoint_dir().join(format!("{uuid}.checkpoint")));
        Ok(description)
    }

    /// Stops every worker; records in flight are redone at the next start.
    pub fn shutdown(&self) {
        let mut running = self.lock();
        for mapping in running.values_mut() {
            stop_workers(std::mem::take(&mut mapping.workers));
        }
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.directory.join("checkpoints")
    }

    fn persist(&self, running: &BTreeMap<String, Running>) -> Result<()> {
        let catalog = CatalogFile {
            format_version: CATALOG_FORMAT_VERSION,
            mappings: running
                .values()
                .map(|mapping| mapping.entry.clone())
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&catalog).map_err(|error| MappingError::Catalog {
            path: self.directory.display().to_string(),
            reason: error.to_string(),
        })?;
        write_atomically(&self.directory.join("catalog.json"), &bytes)
    }

    /// Starts the workers of an enabled mapping, one per shard of its source.
    fn start(&self, entry: CatalogEntry) -> Running {
        if !entry.config.enabled {
            return Running {
                entry,
                problem: None,
                workers: Vec::new(),
            };
        }
        let sources = match open_sources(
            &entry.config,
            entry.start_resolved,
            &self.log,
            &self.tables,
            &self.checkpoint_dir(),
        ) {
            Ok(sources) => sources,
            Err(error) => {
                tracing::error!(mapping = %entry.config.uuid, %error, "event source mapping cannot start");
                return Running {
                    entry,
                    problem: Some(format!("PROBLEM: {error}")),
                    workers: Vec::new(),
                };
            }
        };
        let mut workers = Vec::new();
        for (shard, source) in sources.into_iter().enumerate() {
            let stop = Arc::new(StopSignal::default());
            let stopped = Arc::clone(&stop);
            let config = entry.config.clone();
            let log = Arc::clone(&self.log);
            let tables = Arc::clone(&self.tables);
            let invoker = Arc::clone(&self.invoker);
            let clock = Arc::clone(&self.clock);
            let checkpoint_dir = self.checkpoint_dir();
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-mapping-{shard}"))
                .spawn(move || {
                    let mut source = Some(source);
                    while let Some(current) = source.take() {
                        let worker = Worker::new(
                            config.clone(),
                            current,
                            Arc::clone(&invoker),
                            Arc::clone(&log),
                            Arc::clone(&clock),
                            &stopped,
                        );
                        if worker.run() {
                            break;
                        }
                        // The worker failed (a checkpoint or failure record could not be
                        // written, the source went away): reopen from the checkpoint after a
                        // pause, unless asked to stop meanwhile.
                        if stopped.wait(RETRY_BACKOFF_MAX) {
                            break;
                        }
                        source = match open_sources(&config, true, &log, &tables, &checkpoint_dir)
                        {
                            Ok(sources) => sources.into_iter().nth(shard),
                            Err(error) => {
                                tracing::error!(mapping = %config.uuid, %error, "event source mapping cannot reopen its source");
                                None
                            }
                        };
                    }
                });
            match spawned {
                Ok(handle) => workers.push((stop, handle)),
                Err(error) => {
                    tracing::error!(mapping = %entry.config.uuid, %error, "cannot start a mapping worker")
                }
            }
        }
        Running {
            entry,
            problem: None,
            workers,
        }
    }
}

fn describe(running: &Running) -> MappingDescription {
    MappingDescription {
        config: running.entry.config.clone(),
        last_processing_result: running.problem.clone().unwrap_or_else(|| "OK".to_owned()),
    }
}

fn stop_workers(workers: Vec<(Arc<StopSignal>, JoinHandle<()>)>) {
    for (stop, _) in &workers {
        stop.request();
    }
    for (_, handle) in workers {
        let _ = handle.join();
    }
}
