//! Aliases: second names for one or more indices, each with an optional filter, routing, and the
//! write-index flag that says where writes through the alias go. An alias belongs to its indices
//! (the catalog keeps them by index), so deleting an index deletes its aliases.
//!
//! A filter is kept as the Query DSL JSON it was given: this crate does not read the Query DSL,
//! the API converts the filter with the same parser as a search body each time it is used, so a
//! filter gains every clause the parser learns.

use serde_json::{Map, Value};

use crate::error::{Result, SearchError};

/// One alias of one index, as `GET /_alias` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasMetadata {
    /// Query DSL JSON, kept as given; the API checks that it parses before it is stored.
    pub filter: Option<Value>,
    pub index_routing: Option<String>,
    pub search_routing: Option<String>,
    /// `None` when not given: a lone index of an alias is then its write index.
    pub is_write_index: Option<bool>,
    pub is_hidden: Option<bool>,
}

impl AliasMetadata {
    /// The alias as Elasticsearch shows it (and as the catalog stores it): only what was set.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        if let Some(filter) = &self.filter {
            body.insert("filter".into(), filter.clone());
        }
        if let Some(routing) = &self.index_routing {
            body.insert("index_routing".into(), Value::String(routing.clone()));
        }
        if let Some(routing) = &self.search_routing {
            body.insert("search_routing".into(), Value::String(routing.clone()));
        }
        if let Some(write) = self.is_write_index {
            body.insert("is_write_index".into(), Value::Bool(write));
        }
        if let Some(hidden) = self.is_hidden {
            body.insert("is_hidden".into(), Value::Bool(hidden));
        }
        Value::Object(body)
    }

    /// Reads an alias as the catalog stores it.
    pub(crate) fn from_stored(value: &Value) -> Option<AliasMetadata> {
        let body = value.as_object()?;
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        Some(AliasMetadata {
            filter: body.get("filter").cloned(),
            index_routing: text("index_routing"),
            search_routing: text("search_routing"),
            is_write_index: body.get("is_write_index").and_then(Value::as_bool),
            is_hidden: body.get("is_hidden").and_then(Value::as_bool),
        })
    }
}

/// One action of `POST /_aliases`. Index and alias names may hold wildcards where Elasticsearch
/// allows them: indices always, aliases in `remove`.
#[derive(Debug, Clone, PartialEq)]
pub enum AliasAction {
    Add {
        indices: Vec<String>,
        aliases: Vec<String>,
        metadata: AliasMetadata,
    },
    Remove {
        indices: Vec<String>,
        aliases: Vec<String>,
        /// `Some(true)`: a missing alias fails the whole request; otherwise only this action.
        must_exist: Option<bool>,
    },
    /// Deletes the indices, atomically with the other actions.
    RemoveIndex { indices: Vec<String> },
}

impl AliasAction {
    pub fn kind(&self) -> &'static str {
        match self {
            AliasAction::Add { .. } => "add",
            AliasAction::Remove { .. } => "remove",
            AliasAction::RemoveIndex { .. } => "remove_index",
        }
    }
}

/// What became of one action of an otherwise successful `POST /_aliases`.
#[derive(Debug)]
pub struct AliasActionResult {
    /// The concrete indices the action's expressions resolved to.
    pub indices: Vec<String>,
    /// `Err` when a `remove` found none of its aliases (and `must_exist` was not `true`).
    pub outcome: Result<()>,
}

/// Checks an alias name against Elasticsearch's rules for index and alias names (which, unlike
/// index names, allow upper case).
pub fn validate_alias_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(SearchError::InvalidAliasName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("alias name is required");
    }
    if let Err(SearchError::InvalidIndexName { reason, .. }) =
        crate::indices::validate_name_characters(name)
    {
        return invalid(&reason);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_round_trips_and_shows_only_what_was_set() {
        let alias = AliasMetadata {
            filter: Some(json!({"term": {"user": "kimchy"}})),
            index_routing: Some("1".into()),
            search_routing: Some("1,2".into()),
            is_write_index: Some(true),
            is_hidden: None,
        };
        let stored = alias.to_json();
        assert_eq!(
            stored,
            json!({"filter": {"term": {"user": "kimchy"}}, "index_routing": "1", "search_routing": "1,2", "is_write_index": true})
        );
        assert_eq!(AliasMetadata::from_stored(&stored), Some(alias));
        assert_eq!(AliasMetadata::default().to_json(), json!({}));
    }

    #[test]
    fn alias_names_follow_elasticsearch() {
        assert!(validate_alias_name("logs-Write").is_ok());
        let reason = |n: &str| validate_alias_name(n).unwrap_err().to_string();
        assert_eq!(
            reason("test_*"),
            r#"Invalid alias name [test_*]: must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]"#
        );
        assert_eq!(
            reason("_a"),
            "Invalid alias name [_a]: must not start with '_', '-', or '+'"
        );
        assert!(reason("").contains("alias name is required"));
    }
}
