//! Index expressions, as every API that reads several indices takes them: a name, an alias, a
//! comma list, wildcard patterns (`logs-*`), exclusions after a wildcard (`logs-*,-logs-old`),
//! `_all`, or nothing; with Elasticsearch's `ignore_unavailable`, `allow_no_indices` and
//! `expand_wildcards`.
//!
//! As in Elasticsearch, an expression first names resources (indices and aliases), exclusions
//! remove resources by name, and aliases are expanded to their indices last. An index reached
//! only through aliases with filters is searched under those filters (any of them); reached
//! directly, or through an alias without a filter, it is searched whole.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::Catalog;
use crate::error::{Result, SearchError};
use crate::pattern::{is_pattern, simple_match};

/// How an expression resolves, as Elasticsearch's `IndicesOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndicesOptions {
    /// Missing concrete names are skipped instead of failing.
    pub ignore_unavailable: bool,
    /// An expression may resolve to nothing (else: `index_not_found_exception`).
    pub allow_no_indices: bool,
    /// Wildcards match open indices (every Sluice index is open).
    pub expand_open: bool,
    /// Wildcards also match hidden indices and aliases.
    pub expand_hidden: bool,
}

impl IndicesOptions {
    /// Searches, counts, field capabilities: missing names fail, empty patterns do not.
    pub const LENIENT_EXPAND_OPEN: IndicesOptions = IndicesOptions {
        ignore_unavailable: false,
        allow_no_indices: true,
        expand_open: true,
        expand_hidden: false,
    };
    /// Alias actions: every expression must resolve to something.
    pub const STRICT_EXPAND_OPEN: IndicesOptions = IndicesOptions {
        ignore_unavailable: false,
        allow_no_indices: false,
        expand_open: true,
        expand_hidden: false,
    };

    /// Applies `expand_wildcards` (`open`, `closed`, `hidden`, `none`, `all`, comma separated).
    pub fn with_expand_wildcards(mut self, states: &str) -> Result<IndicesOptions> {
        self.expand_open = false;
        self.expand_hidden = false;
        for state in states.split(',').map(str::trim) {
            match state {
                "open" => self.expand_open = true,
                // Sluice has no closed indices: asking for them matches nothing more.
                "closed" => {}
                "hidden" => self.expand_hidden = true,
                "none" => {
                    self.expand_open = false;
                    self.expand_hidden = false;
                }
                "all" => {
                    self.expand_open = true;
                    self.expand_hidden = true;
                }
                other => {
                    return Err(SearchError::illegal(format!(
                        "No enum constant org.elasticsearch.action.support.IndicesOptions.WildcardStates.{}",
                        other.to_uppercase()
                    )));
                }
            }
        }
        Ok(self)
    }
}

/// One index an expression resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedName {
    pub index: String,
    /// `None`: the whole index. `Some`: only documents matching any of these alias filters
    /// (Query DSL JSON, as stored).
    pub filters: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Index(String),
    Alias(String),
}

impl Resource {
    fn name(&self) -> &str {
        match self {
            Resource::Index(name) | Resource::Alias(name) => name,
        }
    }
}

/// Resolves `expression` over the indices (name → hidden) and aliases there are.
pub fn resolve_names(
    expression: Option<&str>,
    options: IndicesOptions,
    indices: &BTreeMap<String, bool>,
    catalog: &Catalog,
) -> Result<Vec<ResolvedName>> {
    let expression = expression.unwrap_or("").trim();
    let parts: Vec<&str> = if expression.is_empty() {
        vec!["_all"]
    } else {
        expression.split(',').filter(|p| !p.is_empty()).collect()
    };
    let mut resources: Vec<Resource> = Vec::new();
    let add = |resource: Resource, resources: &mut Vec<Resource>| {
        if !resources.contains(&resource) {
            resources.push(resource);
        }
    };
    let mut after_wildcard = false;
    for part in parts {
        if after_wildcard && let Some(excluded) = part.strip_prefix('-') {
            resources.retain(|r| !simple_match(excluded, r.name()));
            continue;
        }
        if part == "_all" || is_pattern(part) {
            after_wildcard = true;
            let pattern = if part == "_all" { "*" } else { part };
            let mut matched = false;
            if options.expand_open {
                for (name, hidden) in indices {
                    let hidden = *hidden || (name.starts_with('.') && !pattern.starts_with('.'));
                    if simple_match(pattern, name) && (!hidden || options.expand_hidden) {
                        matched = true;
                        add(Resource::Index(name.clone()), &mut resources);
                    }
                }
                for alias in catalog.alias_names() {
                    let hidden = catalog.alias_is_hidden(alias)
                        || (alias.starts_with('.') && !pattern.starts_with('.'));
                    if simple_match(pattern, alias) && (!hidden || options.expand_hidden) {
                        matched = true;
                        add(Resource::Alias(alias.to_string()), &mut resources);
                    }
                }
            }
            if !matched && !options.allow_no_indices {
                return Err(SearchError::IndexNotFound {
                    index: part.to_string(),
                });
            }
            continue;
        }
        if indices.contains_key(part) {
            add(Resource::Index(part.to_string()), &mut resources);
        } else if catalog.alias_exists(part) {
            add(Resource::Alias(part.to_string()), &mut resources);
        } else if !options.ignore_unavailable {
            return Err(SearchError::IndexNotFound {
                index: part.to_string(),
            });
        }
    }
    // Aliases last, so that an index reached directly anywhere is searched whole.
    let mut filters: BTreeMap<String, Option<Vec<Value>>> = BTreeMap::new();
    for resource in &resources {
        match resource {
            Resource::Index(name) => {
                filters.insert(name.clone(), None);
            }
            Resource::Alias(alias) => {
                for (index, metadata) in catalog.alias_indices(alias) {
                    let entry = filters
                        .entry(index.to_string())
                        .or_insert_with(|| Some(Vec::new()));
                    match (entry, &metadata.filter) {
                        (Some(list), Some(filter)) => list.push(filter.clone()),
                        (entry, None) => *entry = None,
                        (None, Some(_)) => {}
                    }
                }
            }
        }
    }
    if filters.is_empty() && !options.allow_no_indices {
        return Err(SearchError::IndexNotFound {
            index: if expression.is_empty() {
                "_all".to_string()
            } else {
                expression.to_string()
            },
        });
    }
    Ok(filters
        .into_iter()
        .map(|(index, filters)| ResolvedName { index, filters })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliases::AliasMetadata;
    use serde_json::json;

    fn world() -> (BTreeMap<String, bool>, Catalog) {
        let mut indices = BTreeMap::new();
        for name in ["logs-1", "logs-2", "logs-old", "metrics", ".internal"] {
            indices.insert(name.to_string(), false);
        }
        indices.insert("secret".to_string(), true);
        let mut catalog = Catalog::default();
        let mut alias = |index: &str, alias: &str, filter: Option<Value>| {
            catalog.aliases.entry(index.into()).or_default().insert(
                alias.into(),
                AliasMetadata {
                    filter,
                    ..AliasMetadata::default()
                },
            );
        };
        alias("logs-1", "recent", Some(json!({"term": {"a": 1}})));
        alias("logs-2", "recent", None);
        alias(
            "logs-1",
            "errors",
            Some(json!({"term": {"level": "error"}})),
        );
        alias("metrics", "everything", None);
        (indices, catalog)
    }

    fn names(expression: &str, options: IndicesOptions) -> Result<Vec<String>> {
        let (indices, catalog) = world();
        Ok(
            resolve_names(Some(expression), options, &indices, &catalog)?
                .into_iter()
                .map(|r| r.index)
                .collect(),
        )
    }

    const SEARCH: IndicesOptions = IndicesOptions::LENIENT_EXPAND_OPEN;

    #[test]
    fn names_lists_wildcards_and_all() {
        assert_eq!(names("logs-1", SEARCH).unwrap(), ["logs-1"]);
        assert_eq!(
            names("metrics,logs-2", SEARCH).unwrap(),
            ["logs-2", "metrics"]
        );
        assert_eq!(
            names("logs-*", SEARCH).unwrap(),
            ["logs-1", "logs-2", "logs-old"]
        );
        assert_eq!(
            names("_all", SEARCH).unwrap(),
            ["logs-1", "logs-2", "logs-old", "metrics"]
        );
        assert_eq!(names("", SEARCH).unwrap(), names("*", SEARCH).unwrap());
        assert_eq!(names(".*", SEARCH).unwrap(), [".internal"]);
        assert_eq!(names("nothing-*", SEARCH).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn exclusions_follow_a_wildcard() {
        assert_eq!(
            names("logs-*,-logs-old", SEARCH).unwrap(),
            ["logs-1", "logs-2"]
        );
        assert_eq!(
            names("*,-logs-*,-recent,-errors", SEARCH).unwrap(),
            ["metrics"]
        );
        // Exclusions remove names, not indices: `*` also matched the aliases of logs-1 and
        // logs-2, which still lead to them (as in Elasticsearch).
        assert_eq!(
            names("*,-logs-*", SEARCH).unwrap(),
            ["logs-1", "logs-2", "metrics"]
        );
        // Without a wildcard before it, `-x` is a name, and no index can have it.
        assert!(names("-logs-1", SEARCH).is_err());
    }

    #[test]
    fn options() {
        let missing = names("logs-1,nope", SEARCH).unwrap_err();
        assert_eq!(missing.to_string(), "no such index [nope]");
        let lenient = IndicesOptions {
            ignore_unavailable: true,
            ..SEARCH
        };
        assert_eq!(names("logs-1,nope", lenient).unwrap(), ["logs-1"]);
        let strict = IndicesOptions::STRICT_EXPAND_OPEN;
        assert_eq!(
            names("nothing-*", strict).unwrap_err().to_string(),
            "no such index [nothing-*]"
        );
        let none = SEARCH.with_expand_wildcards("none").unwrap();
        assert!(names("logs-*", none).unwrap().is_empty());
        let hidden = SEARCH.with_expand_wildcards("open,hidden").unwrap();
        assert!(names("*", hidden).unwrap().contains(&"secret".to_string()));
        assert!(!names("*", SEARCH).unwrap().contains(&"secret".to_string()));
        assert_eq!(names("secret", SEARCH).unwrap(), ["secret"]);
        assert!(SEARCH.with_expand_wildcards("bogus").is_err());
    }

    #[test]
    fn aliases_expand_with_their_filters() {
        let (indices, catalog) = world();
        let resolve =
            |expression: &str| resolve_names(Some(expression), SEARCH, &indices, &catalog).unwrap();
        assert_eq!(
            resolve("recent"),
            [
                ResolvedName {
                    index: "logs-1".into(),
                    filters: Some(vec![json!({"term": {"a": 1}})])
                },
                ResolvedName {
                    index: "logs-2".into(),
                    filters: None
                },
            ]
        );
        // Two filtered aliases of one index: either filter lets a document through.
        assert_eq!(
            resolve("recent,errors")[0].filters.as_ref().map(Vec::len),
            Some(2)
        );
        // Named directly as well: no filter.
        assert_eq!(resolve("recent,logs-1")[0].filters, None);
        // A wildcard matches aliases too.
        assert_eq!(resolve("every*")[0].index, "metrics");
    }
}
