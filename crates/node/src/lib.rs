//! The running system: the data directory's layout, the engines opened in it, and the background
//! workers that keep them going (refresh), with an orderly shutdown.
//!
//! Layout of `--data-dir`:
//! - `sluice.lock`: held (flock) while a process uses the directory, so two never share it;
//! - `indices/`: the search indices (see `sluice-search`);
//! - `streams/`: the durable log of streams and their consumer checkpoints (see `sluice-log`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_log::{Log, LogOptions};
use sluice_search::Indices;

/// How often the refresh worker looks for indices whose refresh interval has passed.
pub const REFRESH_TICK: Duration = Duration::from_millis(100);

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
}

pub struct Node {
    data_dir: PathBuf,
    indices: Arc<Indices>,
    log: Arc<Log>,
    stop_refresher: mpsc::Sender<()>,
    refresher: Option<JoinHandle<()>>,
    _lock: File,
}

impl Node {
    /// Opens (or creates) the data directory, recovers every engine in it, and starts the
    /// background workers.
    pub fn open(data_dir: &Path) -> Result<Node, NodeError> {
        let io = |source| NodeError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(data_dir).map_err(io)?;
        let lock = File::create(data_dir.join("sluice.lock")).map_err(io)?;
        lock.try_lock()
            .map_err(|_| NodeError::Locked(data_dir.to_path_buf()))?;
        let indices = Arc::new(Indices::open(&data_dir.join("indices"))?);
        let log = Arc::new(Log::open(data_dir.join("streams"), LogOptions::default())?);
        let (stop_refresher, stopped) = mpsc::channel();
        let refresher = {
            let indices = indices.clone();
            std::thread::Builder::new()
                .name("sluice-refresh".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_TICK) {
                        indices.refresh_due();
                    }
                })
                .map_err(io)?
        };
        Ok(Node {
            data_dir: data_dir.to_path_buf(),
            indices,
            log,
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

    /// Stops the workers and commits every engine.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.stop_refresher.send(());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
            self.indices.close_all();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}
