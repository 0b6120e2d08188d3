//! Targets of reads: the index expression of a path (`a,b`, `logs-*,-logs-old`, an alias,
//! `_all`, none) resolved under the request's `ignore_unavailable`, `allow_no_indices` and
//! `expand_wildcards`, and the alias filters it brings, converted to queries by the same Query
//! DSL parser as search bodies. Every search, count, msearch and field-caps request resolves its
//! targets here.

use std::sync::Arc;

use serde_json::Value;
use sluice_node::Node;
use sluice_search::{Index, IndicesOptions, Query, ResolvedIndex};

use super::search::parse_query;
use super::{EsApi, EsError};
use crate::http::Request;
use crate::roles::{Grants, Visibility};

/// One index to read, with the query restrictions its alias filters and the reader's
/// document-level security impose.
#[derive(Clone)]
pub(crate) struct Target {
    pub index: Arc<Index>,
    /// `None`: the whole index; `Some`: documents matching any of these filters.
    pub filters: Option<Vec<Query>>,
    /// The reader's DLS queries: `None`, every document; `Some`, documents matching any.
    pub dls: Option<Vec<Query>>,
}

impl Target {
    /// `query` as it runs on this target's index.
    pub fn scope(&self, query: &Query) -> Query {
        query
            .clone()
            .with_alias_filters(self.filters.clone())
            .with_alias_filters(self.dls.clone())
    }
}

/// The DLS queries `grants` impose on searches of `index` (`None`: no restriction). A query
/// that no longer parses hides everything rather than nothing.
pub(crate) fn dls_of(grants: Option<&Grants>, index: &str) -> Result<Option<Vec<Query>>, EsError> {
    let Some(grants) = grants else {
        return Ok(None);
    };
    match grants.visibility(super::access::SEARCH, index) {
        None | Some(Visibility::All) => Ok(None),
        Some(Visibility::Matching(texts)) => {
            let mut queries = Vec::with_capacity(texts.len());
            for text in texts {
                let value = super::parse_json_body(text.as_bytes(), "parsing_exception")?;
                queries.push(parse_query(&value)?);
            }
            if queries.is_empty() {
                queries.push(Query::MatchNone);
            }
            Ok(Some(queries))
        }
    }
}

/// The request's index options over `defaults`, read from URL parameters.
pub(crate) fn indices_options(
    request: &Request,
    defaults: IndicesOptions,
) -> Result<IndicesOptions, EsError> {
    options_from(|name| request.param(name), defaults)
}

/// Index options read by `param` (URL parameters, or an `_msearch` header's fields).
pub(crate) fn options_from<'a>(
    param: impl Fn(&str) -> Option<&'a str>,
    defaults: IndicesOptions,
) -> Result<IndicesOptions, EsError> {
    let flag = |name: &str| -> Result<Option<bool>, EsError> {
        match param(name) {
            None => Ok(None),
            Some("true") | Some("") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(EsError::illegal_argument(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            ))),
        }
    };
    let mut options = defaults;
    if let Some(ignore) = flag("ignore_unavailable")? {
        options.ignore_unavailable = ignore;
    }
    if let Some(allow) = flag("allow_no_indices")? {
        options.allow_no_indices = allow;
    }
    if let Some(states) = param("expand_wildcards") {
        options = options.with_expand_wildcards(states)?;
    }
    Ok(options)
}

/// Resolves `expression` to the indices to read and their alias filters as queries.
pub(crate) fn resolve_targets(
    api: &EsApi,
    grants: Option<&Grants>,
    expression: Option<&str>,
    options: IndicesOptions,
) -> Result<Vec<Target>, EsError> {
    resolve_with(&api.node, grants, expression, options)
}

/// [`resolve_targets`] for work that holds the node rather than the API (blocking tasks).
pub(crate) fn resolve_with(
    node: &Node,
    grants: Option<&Grants>,
    expression: Option<&str>,
    options: IndicesOptions,
) -> Result<Vec<Target>, EsError> {
    let resolved = node.indices().resolve(expression, options)?;
    resolved
        .into_iter()
        .map(|resolved| target_of(resolved, grants))
        .collect()
}

fn target_of(resolved: ResolvedIndex, grants: Option<&Grants>) -> Result<Target, EsError> {
    let dls = dls_of(grants, resolved.index.name())?;
    let filters = match resolved.filters {
        None => None,
        Some(filters) => Some(
            filters
                .iter()
                .map(parse_alias_filter)
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Target {
        index: resolved.index,
        filters,
        dls,
    })
}

/// An alias filter as a query; it was checked when the alias was added, so an error here means
/// the parser changed under a stored filter.
pub(crate) fn parse_alias_filter(filter: &Value) -> Result<Query, EsError> {
    parse_query(filter)
}
