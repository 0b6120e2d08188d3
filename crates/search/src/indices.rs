//! The catalog of indices: a directory holding one sub-directory per index, named by the
//! index's uuid (names may contain characters a file name should not, and a uuid never repeats
//! across a delete and a re-create). Each holds `index.json`, `tantivy/` and `translog/`.
//! Deleting an index renames its directory to `<uuid>.deleted` (atomic) before removing it, so a
//! crash mid-delete never resurrects it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Result, SearchError};
use crate::ids;
use crate::index::Index;
use crate::mapping::Mappings;
use crate::settings::IndexSettings;
use crate::translog::sync_directory;

/// Longest index name, in bytes, as in Elasticsearch.
pub const INDEX_NAME_BYTES_MAX: usize = 255;

/// Checks an index name against Elasticsearch's rules, with its reason texts.
pub fn validate_index_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(SearchError::InvalidIndexName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("must not be empty");
    }
    if name.contains('#') {
        return invalid("must not contain '#'");
    }
    if name.contains(':') {
        return invalid("must not contain ':'");
    }
    if name.starts_with(['_', '-', '+']) {
        return invalid("must not start with '_', '-', or '+'");
    }
    if name.chars().any(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ','
        )
    }) {
        return invalid(
            r#"must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]"#,
        );
    }
    if name != name.to_lowercase() {
        return invalid("must be lowercase");
    }
    if name == "." || name == ".." {
        return invalid("must not be '.' or '..'");
    }
    if name.len() > INDEX_NAME_BYTES_MAX {
        return Err(SearchError::InvalidIndexName {
            name: name.to_string(),
            reason: format!(
                "index name is too long, ({} > {INDEX_NAME_BYTES_MAX})",
                name.len()
            ),
        });
    }
    Ok(())
}

pub struct Indices {
    directory: PathBuf,
    indices: RwLock<BTreeMap<String, Arc<Index>>>,
    /// Serialises creations and deletions so two auto-creates of one name make one index.
    catalog_lock: Mutex<()>,
}

impl Indices {
    /// Opens every index under `directory`, replaying translogs.
    pub fn open(directory: &Path) -> Result<Indices> {
        fs::create_dir_all(directory).map_err(|e| SearchError::io(directory, e))?;
        let mut indices = BTreeMap::new();
        for entry in fs::read_dir(directory).map_err(|e| SearchError::io(directory, e))? {
            let entry = entry.map_err(|e| SearchError::io(directory, e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.extension().is_some_and(|e| e == "deleted") {
                fs::remove_dir_all(&path).map_err(|e| SearchError::io(&path, e))?;
                continue;
            }
            if !path.join("index.json").exists() {
                // A creation that crashed before its metadata was written.
                fs::remove_dir_all(&path).map_err(|e| SearchError::io(&path, e))?;
                continue;
            }
            let index = Index::open(&path)?;
            indices.insert(index.name().to_string(), Arc::new(index));
        }
        Ok(Indices {
            directory: directory.to_path_buf(),
            indices: RwLock::new(indices),
            catalog_lock: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Index>>> {
        self.indices.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Index>>> {
        self.indices.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, name: &str) -> Result<Arc<Index>> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| SearchError::IndexNotFound {
                index: name.to_string(),
            })
    }

    pub fn exists(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    pub fn list(&self) -> Vec<Arc<Index>> {
        self.read().values().cloned().collect()
    }

    pub fn create(
        &self,
        name: &str,
        settings: IndexSettings,
        mappings: Mappings,
    ) -> Result<Arc<Index>> {
        validate_index_name(name)?;
        let _guard = self.catalog_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.read().get(name) {
            return Err(SearchError::IndexAlreadyExists {
                index: name.to_string(),
                uuid: existing.uuid().to_string(),
            });
        }
        let index = Arc::new(Index::create(
            &self.directory.join(ids::new_uuid()),
            name,
            settings,
            mappings,
        )?);
        self.write().insert(name.to_string(), index.clone());
        Ok(index)
    }

    /// The index, created with default settings and dynamic mapping if it does not exist.
    pub fn get_or_create(&self, name: &str) -> Result<Arc<Index>> {
        if let Ok(index) = self.get(name) {
            return Ok(index);
        }
        match self.create(name, IndexSettings::default(), Mappings::default()) {
            Err(SearchError::IndexAlreadyExists { .. }) => self.get(name),
            other => other,
        }
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        let _guard = self.catalog_lock.lock().unwrap_or_else(|p| p.into_inner());
        let index = self
            .write()
            .remove(name)
            .ok_or_else(|| SearchError::IndexNotFound {
                index: name.to_string(),
            })?;
        index.close(false)?;
        let directory = index.directory().to_path_buf();
        let doomed = directory.with_extension("deleted");
        fs::rename(&directory, &doomed).map_err(|e| SearchError::io(&directory, e))?;
        sync_directory(&self.directory)?;
        fs::remove_dir_all(&doomed).map_err(|e| SearchError::io(&doomed, e))?;
        Ok(())
    }

    /// Refreshes every index whose refresh interval has passed; called by a background worker.
    pub fn refresh_due(&self) {
        for index in self.list() {
            if let Err(error) = index.refresh_if_due() {
                tracing::error!(index = index.name(), %error, "scheduled refresh failed");
            }
        }
    }

    /// Commits every index; called on shutdown.
    pub fn close_all(&self) {
        for index in self.list() {
            if let Err(error) = index.close(true) {
                tracing::error!(index = index.name(), %error, "closing index failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_elasticsearch() {
        assert!(validate_index_name("logs-2016.02.25").is_ok());
        assert!(validate_index_name(".kibana").is_ok());
        let reason = |n: &str| validate_index_name(n).unwrap_err().to_string();
        assert_eq!(reason("Foo"), "Invalid index name [Foo], must be lowercase");
        assert_eq!(
            reason("_foo"),
            "Invalid index name [_foo], must not start with '_', '-', or '+'"
        );
        assert!(reason("a b").contains("must not contain the following characters"));
        assert!(reason("a#b").contains("must not contain '#'"));
        assert!(reason("..").contains("must not be '.' or '..'"));
        assert!(reason(&"a".repeat(256)).contains("index name is too long"));
    }
}
