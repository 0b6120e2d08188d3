//! The catalog state beside the indices themselves: aliases (kept by index) and index templates
//! of both kinds, in `indices/catalog.json`, replaced atomically on every change (see
//! `docs/search-format.md`). It is small and read far more often than written, so readers take
//! an `Arc` snapshot and a change builds a new one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::aliases::AliasMetadata;
use crate::error::{Result, SearchError};
use crate::index::write_atomically;
use crate::templates::{IndexTemplate, LegacyTemplate};

/// Format of `catalog.json`; bump when its shape changes, and keep reading the old ones.
pub const CATALOG_FORMAT_VERSION: u64 = 1;
/// The file's name in the indices directory.
pub const CATALOG_FILE: &str = "catalog.json";
/// Alias entries (one alias of one index) the catalog holds; beyond it, adding one is refused.
pub const ALIAS_ENTRIES_MAX: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Index name → alias name → the alias.
    pub aliases: BTreeMap<String, BTreeMap<String, AliasMetadata>>,
    pub index_templates: BTreeMap<String, IndexTemplate>,
    pub legacy_templates: BTreeMap<String, LegacyTemplate>,
}

impl Catalog {
    /// Reads the catalog; a directory without one (made before aliases existed) has none.
    pub(crate) fn load(directory: &Path) -> Result<Catalog> {
        let path = directory.join(CATALOG_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalog::default());
            }
            Err(error) => return Err(SearchError::io(&path, error)),
        };
        let corrupt = |reason: String| SearchError::Corrupt {
            what: path.display().to_string(),
            reason,
        };
        let stored: Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let format = stored
            .get("format_version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if format != CATALOG_FORMAT_VERSION {
            return Err(corrupt(format!(
                "unknown catalog.json format version {format}"
            )));
        }
        let section = |key: &str| -> Result<Map<String, Value>> {
            match stored.get(key) {
                None => Ok(Map::new()),
                Some(Value::Object(map)) => Ok(map.clone()),
                Some(_) => Err(corrupt(format!("[{key}] is not an object"))),
            }
        };
        let mut catalog = Catalog::default();
        for (index, aliases) in section("aliases")? {
            let mut parsed = BTreeMap::new();
            for (alias, metadata) in aliases.as_object().into_iter().flatten() {
                let metadata = AliasMetadata::from_stored(metadata)
                    .ok_or_else(|| corrupt(format!("alias [{alias}] of [{index}]")))?;
                parsed.insert(alias.clone(), metadata);
            }
            catalog.aliases.insert(index, parsed);
        }
        for (name, template) in section("index_templates")? {
            let template = IndexTemplate::from_stored(&template)
                .ok_or_else(|| corrupt(format!("index template [{name}]")))?;
            catalog.index_templates.insert(name, template);
        }
        for (name, template) in section("legacy_templates")? {
            let template = LegacyTemplate::from_stored(&template)
                .ok_or_else(|| corrupt(format!("legacy template [{name}]")))?;
            catalog.legacy_templates.insert(name, template);
        }
        Ok(catalog)
    }

    /// Writes the catalog so that a crash leaves the old or the new one.
    pub(crate) fn store(&self, directory: &Path) -> Result<()> {
        let aliases: Map<String, Value> = self
            .aliases
            .iter()
            .filter(|(_, aliases)| !aliases.is_empty())
            .map(|(index, aliases)| (index.clone(), crate::templates::aliases_json(aliases)))
            .collect();
        let index_templates: Map<String, Value> = self
            .index_templates
            .iter()
            .map(|(name, t)| (name.clone(), t.to_stored()))
            .collect();
        let legacy_templates: Map<String, Value> = self
            .legacy_templates
            .iter()
            .map(|(name, t)| (name.clone(), t.to_stored()))
            .collect();
        let stored = json!({
            "format_version": CATALOG_FORMAT_VERSION,
            "aliases": aliases,
            "index_templates": index_templates,
            "legacy_templates": legacy_templates,
        });
        write_atomically(&directory.join(CATALOG_FILE), stored.to_string().as_bytes())
    }

    /// The aliases of one index.
    pub fn aliases_of(&self, index: &str) -> Option<&BTreeMap<String, AliasMetadata>> {
        self.aliases
            .get(index)
            .filter(|aliases| !aliases.is_empty())
    }

    /// Every alias name, once.
    pub fn alias_names(&self) -> BTreeSet<&str> {
        self.aliases
            .values()
            .flat_map(|aliases| aliases.keys().map(String::as_str))
            .collect()
    }

    pub fn alias_exists(&self, alias: &str) -> bool {
        self.aliases
            .values()
            .any(|aliases| aliases.contains_key(alias))
    }

    /// The indices of an alias, in name order, with the alias as each holds it.
    pub fn alias_indices(&self, alias: &str) -> Vec<(&str, &AliasMetadata)> {
        self.aliases
            .iter()
            .filter_map(|(index, aliases)| aliases.get(alias).map(|a| (index.as_str(), a)))
            .collect()
    }

    /// Whether an alias is hidden (from wildcards that do not ask for hidden).
    pub fn alias_is_hidden(&self, alias: &str) -> bool {
        self.alias_indices(alias)
            .iter()
            .any(|(_, a)| a.is_hidden == Some(true))
    }

    /// Where writes through `alias` go: its write index, or its only index unless that says
    /// `is_write_index: false`.
    pub fn write_index_of(&self, alias: &str) -> Result<String> {
        let indices = self.alias_indices(alias);
        if let Some((index, _)) = indices.iter().find(|(_, a)| a.is_write_index == Some(true)) {
            return Ok(index.to_string());
        }
        match indices.as_slice() {
            [(index, alias)] if alias.is_write_index != Some(false) => Ok(index.to_string()),
            [] => Err(SearchError::IndexNotFound {
                index: alias.to_string(),
            }),
            _ => Err(SearchError::illegal(format!(
                "no write index is defined for alias [{alias}]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index"
            ))),
        }
    }

    /// Alias entries in all.
    pub fn alias_entries(&self) -> usize {
        self.aliases.values().map(BTreeMap::len).sum()
    }

    /// Checks what every change must leave true: no alias is also an index name, at most one
    /// write index per alias, a bounded number of entries.
    pub(crate) fn validate(&self, index_names: &BTreeSet<String>) -> Result<()> {
        for alias in self.alias_names() {
            if index_names.contains(alias) {
                return Err(SearchError::InvalidAliasName {
                    name: alias.to_string(),
                    reason: "an index or data stream exists with the same name as the alias".into(),
                });
            }
            let writers: Vec<&str> = self
                .alias_indices(alias)
                .into_iter()
                .filter(|(_, a)| a.is_write_index == Some(true))
                .map(|(index, _)| index)
                .collect();
            if writers.len() > 1 {
                return Err(SearchError::IllegalState {
                    reason: format!(
                        "alias [{alias}] has more than one write index [{}]",
                        writers.join(",")
                    ),
                });
            }
        }
        if self.alias_entries() > ALIAS_ENTRIES_MAX {
            return Err(SearchError::illegal(format!(
                "the catalog may hold at most [{ALIAS_ENTRIES_MAX}] aliases of indices"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::TemplateBody;

    fn with_alias(catalog: &mut Catalog, index: &str, alias: &str, write: Option<bool>) {
        catalog.aliases.entry(index.into()).or_default().insert(
            alias.into(),
            AliasMetadata {
                is_write_index: write,
                ..AliasMetadata::default()
            },
        );
    }

    #[test]
    fn write_index_rules() {
        let mut catalog = Catalog::default();
        with_alias(&mut catalog, "a", "one", None);
        assert_eq!(catalog.write_index_of("one").unwrap(), "a");
        with_alias(&mut catalog, "b", "one", None);
        assert!(
            catalog
                .write_index_of("one")
                .unwrap_err()
                .to_string()
                .starts_with("no write index is defined for alias [one]")
        );
        with_alias(&mut catalog, "b", "one", Some(true));
        assert_eq!(catalog.write_index_of("one").unwrap(), "b");
        with_alias(&mut catalog, "c", "off", Some(false));
        assert!(catalog.write_index_of("off").is_err());
        assert!(matches!(
            catalog.write_index_of("nothing"),
            Err(SearchError::IndexNotFound { .. })
        ));
    }

    #[test]
    fn invariants_are_checked() {
        let mut catalog = Catalog::default();
        with_alias(&mut catalog, "a", "x", Some(true));
        with_alias(&mut catalog, "b", "x", Some(true));
        let names: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert_eq!(
            catalog.validate(&names).unwrap_err().to_string(),
            "alias [x] has more than one write index [a,b]"
        );
        let mut catalog = Catalog::default();
        with_alias(&mut catalog, "a", "b", None);
        assert_eq!(
            catalog.validate(&names).unwrap_err().to_string(),
            "Invalid alias name [b]: an index or data stream exists with the same name as the alias"
        );
    }

    #[test]
    fn survives_a_store_and_a_load() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(Catalog::load(directory.path()).unwrap(), Catalog::default());
        let mut catalog = Catalog::default();
        with_alias(&mut catalog, "a", "x", Some(true));
        catalog.index_templates.insert(
            "t".into(),
            IndexTemplate {
                index_patterns: vec!["a*".into()],
                template: TemplateBody::new(
                    Some(&json!({"number_of_shards": 1})),
                    Some(&json!({"properties": {"f": {"type": "keyword"}}})),
                    BTreeMap::new(),
                )
                .unwrap(),
                priority: Some(3),
                version: Some(1),
                meta: Some(json!({"by": "test"})),
                allow_auto_create: None,
            },
        );
        catalog.legacy_templates.insert(
            "old".into(),
            LegacyTemplate {
                index_patterns: vec!["b*".into()],
                order: -1,
                ..LegacyTemplate::default()
            },
        );
        catalog.store(directory.path()).unwrap();
        assert_eq!(Catalog::load(directory.path()).unwrap(), catalog);
        std::fs::write(
            directory.path().join(CATALOG_FILE),
            b"{\"format_version\": 9}",
        )
        .unwrap();
        assert!(Catalog::load(directory.path()).is_err());
    }
}
