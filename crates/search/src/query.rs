//! Sluice's own query tree, which the API builds from the Elasticsearch Query DSL and the index
//! turns into tantivy queries under its mapping.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    MatchAll {
        boost: f32,
    },
    MatchNone,
    /// An exact value of a field (for `text`, one token as indexed).
    Term {
        field: String,
        value: Value,
        boost: f32,
    },
    /// Any of several exact values.
    Terms {
        field: String,
        values: Vec<Value>,
        boost: f32,
    },
    /// Documents by `_id`.
    Ids {
        values: Vec<String>,
        boost: f32,
    },
    /// The hits of `query` that also match at least one of `filters`, scored by `query` alone:
    /// a search through aliases with filters.
    AliasFiltered {
        query: Box<Query>,
        filters: Vec<Query>,
    },
}

impl Query {
    pub fn match_all() -> Query {
        Query::MatchAll { boost: 1.0 }
    }

    /// `query` restricted to documents matching any of the alias `filters` (`None`: no filter).
    pub fn with_alias_filters(self, filters: Option<Vec<Query>>) -> Query {
        match filters {
            None => self,
            Some(filters) => Query::AliasFiltered {
                query: Box::new(self),
                filters,
            },
        }
    }
}
