//! The catalog of indices: a directory holding one sub-directory per index, named by the
//! index's uuid (names may contain characters a file name should not, and a uuid never repeats
//! across a delete and a re-create). Each holds `index.json`, `tantivy/` and `translog/`.
//! Deleting an index renames its directory to `<uuid>.deleted` (atomic) before removing it, so a
//! crash mid-delete never resurrects it.
//!
//! Beside the indices the catalog keeps aliases and index templates (`catalog.rs`), resolves
//! index expressions over both (`resolve.rs`), sends writes through an alias to its write index,
//! and applies the matching templates when an index is created, explicitly or by a write.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};

use crate::aliases::{AliasAction, AliasActionResult, AliasMetadata, validate_alias_name};
use crate::catalog::Catalog;
use crate::error::{Result, SearchError};
use crate::ids;
use crate::index::Index;
use crate::mapping::Mappings;
use crate::pattern::{is_pattern, simple_match};
use crate::resolve::{IndicesOptions, resolve_names};
use crate::settings::IndexSettings;
use crate::templates::{
    IndexTemplate, LegacyTemplate, TEMPLATES_MAX, conflicting_templates, merge_mappings,
    templates_for, validate_template,
};
use crate::translog::sync_directory;

/// Longest index name, in bytes, as in Elasticsearch.
pub const INDEX_NAME_BYTES_MAX: usize = 255;

/// Checks an index name against Elasticsearch's rules, with its reason texts.
pub fn validate_index_name(name: &str) -> Result<()> {
    validate_name_characters(name)?;
    if name != name.to_lowercase() {
        return Err(SearchError::InvalidIndexName {
            name: name.to_string(),
            reason: "must be lowercase".to_string(),
        });
    }
    Ok(())
}

/// The rules index and alias names share (Elasticsearch's `validateIndexOrAliasName`): all but
/// the lower-case rule, which only index names follow.
pub(crate) fn validate_name_characters(name: &str) -> Result<()> {
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

/// What `PUT /{index}` asks for; the templates that match the name go under it.
#[derive(Debug, Clone, Default)]
pub struct CreateIndex {
    /// Settings as given (nested or flat), read by [`IndexSettings`].
    pub settings: Option<Value>,
    /// The mapping as given, read by [`Mappings`] after the templates' mappings are laid under.
    pub mappings: Option<Value>,
    pub aliases: BTreeMap<String, AliasMetadata>,
}

/// One index an expression resolved to, with the alias filters it is read under.
#[derive(Clone)]
pub struct ResolvedIndex {
    pub index: Arc<Index>,
    /// `None`: the whole index; `Some`: documents matching any of these Query DSL filters.
    pub filters: Option<Vec<Value>>,
}

pub struct Indices {
    directory: PathBuf,
    indices: RwLock<BTreeMap<String, Arc<Index>>>,
    /// Aliases and templates; replaced whole (after `catalog.json`) on every change.
    catalog: RwLock<Arc<Catalog>>,
    /// Serialises creations, deletions and catalog changes, so two auto-creates of one name make
    /// one index and every change sees the one before it.
    catalog_lock: Mutex<()>,
    /// With a keyring, every index's translog is encrypted (`translog.rs`).
    keyring: Option<Arc<sluice_seal::Keyring>>,
}

impl Indices {
    /// Opens every index under `directory`, replaying translogs, and the catalog of aliases and
    /// templates.
    pub fn open(directory: &Path) -> Result<Indices> {
        Indices::open_with_keyring(directory, None)
    }

    /// [`Indices::open`]; with a keyring, translogs are encrypted.
    pub fn open_with_keyring(
        directory: &Path,
        keyring: Option<Arc<sluice_seal::Keyring>>,
    ) -> Result<Indices> {
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
            let index = Index::open_with_keyring(&path, keyring.clone())?;
            indices.insert(index.name().to_string(), Arc::new(index));
        }
        let mut catalog = Catalog::load(directory)?;
        // Aliases are written before their index is created and removed before it is deleted:
        // a crash in between leaves aliases of an index that is not there, dropped here.
        let before = catalog.aliases.len();
        catalog
            .aliases
            .retain(|index, aliases| indices.contains_key(index) && !aliases.is_empty());
        if catalog.aliases.len() != before {
            catalog.store(directory)?;
        }
        Ok(Indices {
            directory: directory.to_path_buf(),
            indices: RwLock::new(indices),
            catalog: RwLock::new(Arc::new(catalog)),
            catalog_lock: Mutex::new(()),
            keyring,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Index>>> {
        self.indices.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Index>>> {
        self.indices.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_catalog(&self) -> std::sync::MutexGuard<'_, ()> {
        self.catalog_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The aliases and templates as they are now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes `next` the catalog: durably first, then for readers.
    fn adopt(&self, next: Catalog) -> Result<()> {
        next.store(&self.directory)?;
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// The index of this name (not an alias).
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

    /// Resolves an index expression (names, aliases, wildcards, exclusions, `_all`) under
    /// `options`, in index-name order.
    pub fn resolve(
        &self,
        expression: Option<&str>,
        options: IndicesOptions,
    ) -> Result<Vec<ResolvedIndex>> {
        let indices = self.read().clone();
        let catalog = self.catalog();
        let visibility: BTreeMap<String, bool> = indices
            .iter()
            .map(|(name, index)| (name.clone(), index.settings().is_hidden()))
            .collect();
        resolve_names(expression, options, &visibility, &catalog)?
            .into_iter()
            .filter_map(|resolved| {
                indices.get(&resolved.index).map(|index| {
                    Ok(ResolvedIndex {
                        index: index.clone(),
                        filters: resolved.filters,
                    })
                })
            })
            .collect()
    }

    /// Where a write to `name` goes: the index, or the write index of the alias.
    pub fn write_index(&self, name: &str) -> Result<Arc<Index>> {
        if let Ok(index) = self.get(name) {
            return Ok(index);
        }
        let target = self.catalog().write_index_of(name)?;
        self.get(&target)
    }

    /// The one index a single-document read of `name` reads: the index, or the only index of
    /// the alias.
    pub fn single_index(&self, name: &str) -> Result<Arc<Index>> {
        if let Ok(index) = self.get(name) {
            return Ok(index);
        }
        let catalog = self.catalog();
        match catalog.alias_indices(name).as_slice() {
            [] => Err(SearchError::IndexNotFound {
                index: name.to_string(),
            }),
            [(index, _)] => self.get(index),
            several => Err(SearchError::illegal(format!(
                "alias [{name}] has more than one index associated with it [{}], can't execute a single index op",
                several
                    .iter()
                    .map(|(index, _)| *index)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The index a write to `name` goes to, created (with its templates) if neither an index
    /// nor an alias has the name.
    pub fn get_or_create(&self, name: &str) -> Result<Arc<Index>> {
        match self.write_index(name) {
            Err(SearchError::IndexNotFound { .. }) => {}
            found => return found,
        }
        match self.create(name, CreateIndex::default()) {
            Err(SearchError::IndexAlreadyExists { .. }) => self.write_index(name),
            other => other,
        }
    }

    /// Creates an index: the templates matching its name, then the request over them.
    pub fn create(&self, name: &str, request: CreateIndex) -> Result<Arc<Index>> {
        validate_index_name(name)?;
        let _guard = self.lock_catalog();
        if let Some(existing) = self.read().get(name) {
            return Err(SearchError::IndexAlreadyExists {
                index: name.to_string(),
                uuid: existing.uuid().to_string(),
            });
        }
        let catalog = self.catalog();
        if catalog.alias_exists(name) {
            return Err(SearchError::InvalidIndexName {
                name: name.to_string(),
                reason: "already exists as alias".into(),
            });
        }
        let applied = templates_for(name, &catalog.index_templates, &catalog.legacy_templates);
        let mut settings = IndexSettings::default();
        if !applied.settings.is_empty() {
            settings.update(&Value::Object(applied.settings), true)?;
        }
        if let Some(requested) = &request.settings {
            settings.update(requested, true)?;
        }
        let mut mappings = applied.mappings;
        if let Some(requested) = &request.mappings {
            merge_mappings(
                mappings.get_or_insert_with(|| Value::Object(Map::new())),
                requested,
            );
        }
        let mappings = match &mappings {
            Some(value) => Mappings::from_json(value)?,
            None => Mappings::default(),
        };
        let mut aliases = applied.aliases;
        aliases.extend(request.aliases);
        let mut next = (*catalog).clone();
        if !aliases.is_empty() {
            for alias in aliases.keys() {
                validate_alias_name(alias)?;
            }
            next.aliases.insert(name.to_string(), aliases);
            let mut names: BTreeSet<String> = self.read().keys().cloned().collect();
            names.insert(name.to_string());
            next.validate(&names)?;
            // The aliases first: a crash before the index exists leaves aliases that the next
            // open drops.
            self.adopt(next)?;
        }
        let created = Index::create_with_keyring(
            &self.directory.join(ids::new_uuid()),
            name,
            settings,
            mappings,
            self.keyring.clone(),
        );
        let index = match created {
            Ok(index) => Arc::new(index),
            Err(error) => {
                if catalog.aliases_of(name).is_none() && self.catalog().aliases_of(name).is_some() {
                    self.adopt((*catalog).clone())?;
                }
                return Err(error);
            }
        };
        self.write().insert(name.to_string(), index.clone());
        Ok(index)
    }

    /// Deletes an index and its aliases.
    pub fn delete(&self, name: &str) -> Result<()> {
        let _guard = self.lock_catalog();
        if !self.exists(name) {
            return Err(SearchError::IndexNotFound {
                index: name.to_string(),
            });
        }
        let catalog = self.catalog();
        if catalog.aliases_of(name).is_some() {
            let mut next = (*catalog).clone();
            next.aliases.remove(name);
            self.adopt(next)?;
        }
        self.remove_index_files(name)
    }

    /// Drops an index from the map and its directory from the disk (the caller holds the lock
    /// and has removed its aliases).
    fn remove_index_files(&self, name: &str) -> Result<()> {
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

    /// Applies `POST /_aliases` atomically: every action or none (a `remove` that finds no
    /// alias fails only itself, unless it says `must_exist: true`). Indices of `remove_index`
    /// are deleted after the new aliases are durable.
    pub fn update_aliases(&self, actions: &[AliasAction]) -> Result<Vec<AliasActionResult>> {
        let _guard = self.lock_catalog();
        let catalog = self.catalog();
        let mut next = (*catalog).clone();
        let mut names: BTreeSet<String> = self.read().keys().cloned().collect();
        let mut removed_indices: Vec<String> = Vec::new();
        let mut results = Vec::with_capacity(actions.len());
        let mut applied_any = false;
        for action in actions {
            let expressions = match action {
                AliasAction::Add { indices, .. }
                | AliasAction::Remove { indices, .. }
                | AliasAction::RemoveIndex { indices } => indices,
            };
            if let AliasAction::RemoveIndex { .. } = action
                && let Some(alias) = expressions
                    .iter()
                    .find(|e| !is_pattern(e) && catalog.alias_exists(e))
            {
                return Err(SearchError::illegal(format!(
                    "The provided expression [{alias}] matches an alias, specify the corresponding concrete indices instead."
                )));
            }
            let resolved = self.resolve(
                Some(&expressions.join(",")),
                IndicesOptions::STRICT_EXPAND_OPEN,
            )?;
            let indices: Vec<String> = resolved
                .iter()
                .map(|r| r.index.name().to_string())
                .collect();
            let mut outcome = Ok(());
            match action {
                AliasAction::Add {
                    aliases, metadata, ..
                } => {
                    for alias in aliases {
                        validate_alias_name(alias)?;
                    }
                    for index in &indices {
                        let entry = next.aliases.entry(index.clone()).or_default();
                        for alias in aliases {
                            entry.insert(alias.clone(), metadata.clone());
                            applied_any = true;
                        }
                    }
                }
                AliasAction::Remove {
                    aliases,
                    must_exist,
                    ..
                } => {
                    let mut removed = 0;
                    for index in &indices {
                        let existing: Vec<String> = catalog
                            .aliases_of(index)
                            .into_iter()
                            .flatten()
                            .map(|(alias, _)| alias.clone())
                            .filter(|alias| {
                                aliases
                                    .iter()
                                    .any(|p| p == "_all" || simple_match(p, alias))
                            })
                            .collect();
                        if let Some(entry) = next.aliases.get_mut(index) {
                            for alias in existing {
                                if entry.remove(&alias).is_some() {
                                    removed += 1;
                                }
                            }
                        }
                    }
                    if removed == 0 {
                        let missing = SearchError::AliasesNotFound {
                            aliases: aliases.clone(),
                        };
                        if *must_exist == Some(true) {
                            return Err(missing);
                        }
                        outcome = Err(missing);
                    } else {
                        applied_any = true;
                    }
                }
                AliasAction::RemoveIndex { .. } => {
                    for index in &indices {
                        next.aliases.remove(index);
                        names.remove(index);
                        if !removed_indices.contains(index) {
                            removed_indices.push(index.clone());
                        }
                        applied_any = true;
                    }
                }
            }
            results.push(AliasActionResult { indices, outcome });
        }
        if !applied_any && !actions.is_empty() {
            let mut aliases: Vec<String> = actions
                .iter()
                .flat_map(|action| match action {
                    AliasAction::Add { aliases, .. } | AliasAction::Remove { aliases, .. } => {
                        aliases.clone()
                    }
                    AliasAction::RemoveIndex { .. } => Vec::new(),
                })
                .collect();
            aliases.dedup();
            return Err(SearchError::AliasesNotFound { aliases });
        }
        // An `add` to an index that a `remove_index` of the same request deletes goes with it.
        next.aliases
            .retain(|index, aliases| names.contains(index) && !aliases.is_empty());
        next.validate(&names)?;
        self.adopt(next)?;
        for index in removed_indices {
            self.remove_index_files(&index)?;
        }
        Ok(results)
    }

    /// `PUT /_index_template/{name}`.
    pub fn put_index_template(
        &self,
        name: &str,
        template: IndexTemplate,
        create: bool,
    ) -> Result<()> {
        validate_template(name, &template.index_patterns)?;
        let _guard = self.lock_catalog();
        let catalog = self.catalog();
        if create && catalog.index_templates.contains_key(name) {
            return Err(SearchError::illegal(format!(
                "index template [{name}] already exists"
            )));
        }
        let conflicts = conflicting_templates(name, &template, &catalog.index_templates);
        if !conflicts.is_empty() {
            let names: Vec<&str> = conflicts.iter().map(|(n, _)| *n).collect();
            let patterns: Vec<String> = conflicts
                .iter()
                .map(|(n, p)| format!("{n} => [{}]", p.join(", ")))
                .collect();
            return Err(SearchError::illegal(format!(
                "index template [{name}] has index patterns [{}] matching patterns from existing templates [{}] with patterns ({}) that have the same priority [{}], multiple index templates may not match during index creation, please use a different priority",
                template.index_patterns.join(", "),
                names.join(","),
                patterns.join(","),
                template.priority.unwrap_or(0)
            )));
        }
        let mut next = (*catalog).clone();
        next.index_templates.insert(name.to_string(), template);
        self.check_template_count(&next)?;
        self.adopt(next)
    }

    /// `PUT /_template/{name}`.
    pub fn put_legacy_template(
        &self,
        name: &str,
        template: LegacyTemplate,
        create: bool,
    ) -> Result<()> {
        validate_template(name, &template.index_patterns)?;
        let _guard = self.lock_catalog();
        let catalog = self.catalog();
        if create && catalog.legacy_templates.contains_key(name) {
            return Err(SearchError::illegal(format!(
                "index_template [{name}] already exists"
            )));
        }
        let mut next = (*catalog).clone();
        next.legacy_templates.insert(name.to_string(), template);
        self.check_template_count(&next)?;
        self.adopt(next)
    }

    fn check_template_count(&self, catalog: &Catalog) -> Result<()> {
        if catalog.index_templates.len() + catalog.legacy_templates.len() > TEMPLATES_MAX {
            return Err(SearchError::illegal(format!(
                "the catalog may hold at most [{TEMPLATES_MAX}] index templates"
            )));
        }
        Ok(())
    }

    /// `DELETE /_index_template/{names}` (`DELETE /_template/{names}` with `legacy`): a comma
    /// list of names or patterns, each of which must match a template.
    pub fn delete_templates(&self, names: &str, legacy: bool) -> Result<()> {
        let _guard = self.lock_catalog();
        let catalog = self.catalog();
        let mut next = (*catalog).clone();
        let existing: Vec<String> = if legacy {
            catalog.legacy_templates.keys().cloned().collect()
        } else {
            catalog.index_templates.keys().cloned().collect()
        };
        let mut doomed = Vec::new();
        for part in names.split(',').filter(|p| !p.is_empty()) {
            let matched: Vec<&String> = existing
                .iter()
                .filter(|name| simple_match(part, name))
                .collect();
            if matched.is_empty() {
                return Err(SearchError::IndexTemplateMissing {
                    name: part.to_string(),
                });
            }
            doomed.extend(matched.into_iter().cloned());
        }
        for name in doomed {
            if legacy {
                next.legacy_templates.remove(&name);
            } else {
                next.index_templates.remove(&name);
            }
        }
        self.adopt(next)
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
