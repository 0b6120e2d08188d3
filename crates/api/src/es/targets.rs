//! Targets of reads: the index expression of a path (`a,b`, `logs-*,-logs-old`, an alias,
//! `_all`, none) resolved under the request's `ignore_unavailable`, `allow_no_indices` and
//! `expand_wildcards`, and the alias filters it brings, converted to queries by the same Query
//! DSL parser as search bodies. Every search, count, msearch and field-caps request resolves its
//! targets here.

use std::sync::Arc;

use serde_json::Value;
use sluice_node::Node;
use sluice_search::field_security::{FieldFilter, Restricted};
use sluice_search::{Index, IndicesOptions, Query, ResolvedIndex};

use super::search::parse_query;
use super::{EsApi, EsError};
use crate::http::Request;
use crate::roles::{FieldAccess, Grants, Visibility};

/// One index to read, with the query restrictions its alias filters and the reader's
/// document- and field-level security impose.
#[derive(Clone)]
pub(crate) struct Target {
    pub index: Arc<Index>,
    /// `None`: the whole index; `Some`: documents matching any of these filters.
    pub filters: Option<Vec<Query>>,
    /// What the reader may see of the index.
    pub restrictions: Restrictions,
}

impl Target {
    /// `query` as it runs on this target's index: inside its alias filters and the reader's
    /// DLS queries, the whole under the reader's field-level security.
    pub fn scope(&self, query: &Query) -> Query {
        let scoped = query
            .clone()
            .with_alias_filters(self.filters.clone())
            .with_alias_filters(self.restrictions.dls.clone());
        self.restrictions.restrict(scoped, &self.index)
    }
}

/// What one reader may see of one index.
#[derive(Clone, Default)]
pub(crate) struct Restrictions {
    /// The reader's DLS queries: `None`, every document; `Some`, documents matching any.
    pub dls: Option<Vec<Query>>,
    /// The reader's field-level security: `None`, every field.
    pub fields: Option<Arc<FieldAccess>>,
}

impl Restrictions {
    /// No document at all.
    pub fn nothing() -> Restrictions {
        Restrictions {
            dls: Some(vec![Query::MatchNone]),
            fields: Some(Arc::new(FieldAccess::nothing())),
        }
    }

    /// `query` under the field-level security, when there is some.
    pub fn restrict(&self, query: Query, index: &Index) -> Query {
        match &self.fields {
            None => query,
            Some(fields) => {
                let filter: Arc<dyn FieldFilter> = fields.clone();
                Query::Restricted(Box::new(Restricted::new(query, filter, &index.mappings())))
            }
        }
    }

    /// The index's mapping as the reader may see it.
    pub fn mappings(&self, index: &Index) -> Arc<sluice_search::Mappings> {
        let mappings = index.mappings();
        match &self.fields {
            None => mappings,
            Some(fields) => Arc::new(mappings.restricted_to(fields.as_ref())),
        }
    }

    /// A stored source as the reader may see it.
    pub fn source(&self, source: Option<Arc<[u8]>>) -> Option<Arc<[u8]>> {
        match (&self.fields, source) {
            (Some(fields), Some(bytes)) => {
                sluice_search::field_security::filter_source(&bytes, fields.as_ref())
            }
            (_, source) => source,
        }
    }
}

/// What `grants` let `action` see of `index`, counting the grants on its aliases too.
/// Restrictions that cannot be worked out (no grant allows the action: the check in
/// `access.rs` let it through by another route) hide everything rather than nothing.
pub(crate) fn restrictions_of(
    node: &Node,
    grants: Option<&Grants>,
    action: &str,
    index: &str,
) -> Result<Restrictions, EsError> {
    let Some(grants) = grants else {
        return Ok(Restrictions::default());
    };
    let catalog = node.indices().catalog();
    let mut names = vec![index];
    if let Some(aliases) = catalog.aliases_of(index) {
        names.extend(aliases.keys().map(String::as_str));
    }
    Ok(Restrictions {
        dls: dls_of(grants, action, &names)?,
        fields: grants.field_access(action, &names).map(Arc::new),
    })
}

/// The DLS queries `grants` impose on `action` over an index known by `names` (`None`: no
/// restriction). A query that no longer parses hides everything rather than nothing.
fn dls_of(grants: &Grants, action: &str, names: &[&str]) -> Result<Option<Vec<Query>>, EsError> {
    match grants.visibility_of(action, names) {
        None => Ok(Some(vec![Query::MatchNone])),
        Some(Visibility::All) => Ok(None),
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
/// What the reader (the request's grants) may see of each comes from the grants allowing
/// `action`.
pub(crate) fn resolve_targets(
    api: &EsApi,
    request: &Request,
    action: &str,
    expression: Option<&str>,
    options: IndicesOptions,
) -> Result<Vec<Target>, EsError> {
    let grants = request.grants.as_deref();
    resolve_with(&api.node, grants, action, expression, options)
}

/// [`resolve_targets`] for work that holds the node rather than the API (blocking tasks).
pub(crate) fn resolve_with(
    node: &Node,
    grants: Option<&Grants>,
    action: &str,
    expression: Option<&str>,
    options: IndicesOptions,
) -> Result<Vec<Target>, EsError> {
    let resolved = node.indices().resolve(expression, options)?;
    resolved
        .into_iter()
        .map(|resolved| target_of(node, resolved, grants, action))
        .collect()
}

fn target_of(
    node: &Node,
    resolved: ResolvedIndex,
    grants: Option<&Grants>,
    action: &str,
) -> Result<Target, EsError> {
    let restrictions = restrictions_of(node, grants, action, resolved.index.name())?;
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
        restrictions,
    })
}

/// An alias filter as a query; it was checked when the alias was added, so an error here means
/// the parser changed under a stored filter.
pub(crate) fn parse_alias_filter(filter: &Value) -> Result<Query, EsError> {
    parse_query(filter)
}
