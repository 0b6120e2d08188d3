//! Frozen views of indices that later searches read: what points in time, scrolls and (later)
//! by-query operations page through.
//!
//! A [`SearcherSnapshot`] holds one index's tantivy searcher as of one refresh: its segments stay
//! readable (tantivy keeps the files of a searcher's segments while it lives) and its document
//! numbers stay stable, so `search_after` on `_doc`/`_shard_doc` pages through exactly the
//! documents that were there. [`Snapshots`] is a registry of open readers by id, each with a
//! keep-alive on an injected clock; at most [`OPEN_SNAPSHOTS_MAX`] are open at once, and
//! expired ones are dropped whenever the registry is used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tantivy::Searcher;

use crate::error::{Result, SearchError};

/// Readers (points in time and scrolls) open at once on a node, Elasticsearch's
/// `search.max_open_scroll_context` default; opening one more is refused until one is closed
/// or expires.
pub const OPEN_SNAPSHOTS_MAX: usize = 500;

/// The longest keep-alive a reader may ask for (Elasticsearch's `search.max_keep_alive`);
/// longer is refused.
pub const KEEP_ALIVE_MAX_MS: u64 = 24 * 3600 * 1000;

/// One index as of one refresh.
#[derive(Clone)]
pub struct SearcherSnapshot {
    pub(crate) searcher: Searcher,
}

impl SearcherSnapshot {
    /// Documents of the snapshot, tombstones included (an upper bound for paging).
    pub fn max_doc(&self) -> u64 {
        self.searcher
            .segment_readers()
            .iter()
            .map(|segment| u64::from(segment.max_doc()))
            .sum()
    }
}

impl std::fmt::Debug for SearcherSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearcherSnapshot")
            .field("segments", &self.searcher.segment_readers().len())
            .finish()
    }
}

struct Entry<T> {
    value: Arc<T>,
    expires_at_ms: u64,
}

/// Open readers by id, each kept until its keep-alive passes without use.
pub struct Snapshots<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
    now_ms: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl<T> Snapshots<T> {
    /// A registry on the clock `now_ms` (milliseconds; tests move it by hand).
    pub fn new(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Snapshots<T> {
        Snapshots {
            entries: Mutex::new(HashMap::new()),
            now_ms: Box::new(now_ms),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry<T>>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live entries, expired ones dropped.
    fn live(&self) -> MutexGuard<'_, HashMap<String, Entry<T>>> {
        let now = (self.now_ms)();
        let mut entries = self.lock();
        entries.retain(|_, entry| entry.expires_at_ms > now);
        entries
    }

    fn check_keep_alive(keep_alive_ms: u64) -> Result<()> {
        if keep_alive_ms > KEEP_ALIVE_MAX_MS {
            return Err(SearchError::illegal(format!(
                "Keep alive for request ({keep_alive_ms}ms) is too large. It must be less than ({KEEP_ALIVE_MAX_MS}ms). This limit can be set by changing the [search.max_keep_alive] cluster level setting."
            )));
        }
        Ok(())
    }

    /// Opens a reader kept for `keep_alive_ms`; returns its id.
    pub fn open(&self, value: T, keep_alive_ms: u64) -> Result<String> {
        Self::check_keep_alive(keep_alive_ms)?;
        let now = (self.now_ms)();
        let mut entries = self.live();
        if entries.len() >= OPEN_SNAPSHOTS_MAX {
            return Err(SearchError::Rejected {
                reason: format!(
                    "Trying to create too many scroll contexts. Must be less than or equal to: [{OPEN_SNAPSHOTS_MAX}]. This limit can be set by changing the [search.max_open_scroll_context] setting."
                ),
            });
        }
        let id = crate::ids::new_document_id();
        entries.insert(
            id.clone(),
            Entry {
                value: Arc::new(value),
                expires_at_ms: now.saturating_add(keep_alive_ms),
            },
        );
        Ok(id)
    }

    /// The reader `id`, its keep-alive renewed to `keep_alive_ms` from now when given.
    pub fn get(&self, id: &str, keep_alive_ms: Option<u64>) -> Result<Option<Arc<T>>> {
        if let Some(keep_alive_ms) = keep_alive_ms {
            Self::check_keep_alive(keep_alive_ms)?;
        }
        let now = (self.now_ms)();
        let mut entries = self.live();
        Ok(entries.get_mut(id).map(|entry| {
            if let Some(keep_alive_ms) = keep_alive_ms {
                entry.expires_at_ms = now.saturating_add(keep_alive_ms);
            }
            entry.value.clone()
        }))
    }

    /// Closes the reader `id`; returns whether it was open.
    pub fn close(&self, id: &str) -> bool {
        self.live().remove(id).is_some()
    }

    /// Closes the readers that `keep` selects; returns how many.
    pub fn close_where(&self, keep: impl Fn(&T) -> bool) -> usize {
        let mut entries = self.live();
        let before = entries.len();
        entries.retain(|_, entry| !keep(&entry.value));
        before - entries.len()
    }

    /// Readers open now.
    pub fn len(&self) -> usize {
        self.live().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn readers_expire_on_the_clock_and_are_bounded() {
        let clock = Arc::new(AtomicU64::new(1_000));
        let now = clock.clone();
        let snapshots: Snapshots<u32> = Snapshots::new(move || now.load(Ordering::SeqCst));
        let id = snapshots.open(7, 60_000).unwrap();
        clock.store(60_000, Ordering::SeqCst);
        // Use renews the keep-alive.
        assert_eq!(
            snapshots.get(&id, Some(60_000)).unwrap().as_deref(),
            Some(&7)
        );
        clock.store(119_999, Ordering::SeqCst);
        assert!(snapshots.get(&id, None).unwrap().is_some());
        clock.store(120_000, Ordering::SeqCst);
        assert!(snapshots.get(&id, None).unwrap().is_none());
        assert!(!snapshots.close(&id));
        for n in 0..OPEN_SNAPSHOTS_MAX {
            snapshots.open(n as u32, 1_000).unwrap();
        }
        assert!(matches!(
            snapshots.open(0, 1_000),
            Err(SearchError::Rejected { .. })
        ));
        assert_eq!(snapshots.close_where(|n| *n < 10), 10);
        assert!(snapshots.open(0, 1_000).is_ok());
        assert!(snapshots.open(0, KEEP_ALIVE_MAX_MS + 1).is_err());
        // Everything expires.
        clock.store(u64::MAX / 2, Ordering::SeqCst);
        assert!(snapshots.is_empty());
    }
}
