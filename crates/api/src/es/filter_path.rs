//! `filter_path`: the response filtering every Elasticsearch endpoint accepts
//! (`?filter_path=took,hits.hits._id`, `**` for any depth, `*` inside a name, `-` to exclude).
//!
//! Filters apply to successful JSON responses only, as in Elasticsearch (errors are never
//! filtered). Arrays are transparent: a path names the fields of the objects inside them. An
//! object that keeps nothing under an include filter disappears, as do array elements that keep
//! nothing; excludes then remove what they match from what the includes kept.

use serde_json::{Map, Value};

use super::wildcard_match;

/// Patterns one `filter_path` may hold; beyond it the request is refused rather than matched
/// against an unbounded list for every field of the response.
pub const FILTER_PATH_PATTERNS_MAX: usize = 256;

/// The parsed `filter_path`: include and exclude patterns, each a list of name segments.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FilterPath {
    includes: Vec<Vec<String>>,
    excludes: Vec<Vec<String>>,
}

/// Where a pattern stands while walking down the response: the pattern, and the segment the
/// next field name must match.
type Position<'p> = (&'p [String], usize);

impl FilterPath {
    /// Reads `filter_path` (comma-separated); `None` when it filters nothing.
    pub fn parse(text: &str) -> Result<Option<FilterPath>, String> {
        let mut filter = FilterPath::default();
        for pattern in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (target, pattern) = match pattern.strip_prefix('-') {
                Some(excluded) => (&mut filter.excludes, excluded),
                None => (&mut filter.includes, pattern),
            };
            let segments: Vec<String> = pattern
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if !segments.is_empty() {
                target.push(segments);
            }
        }
        if filter.includes.len() + filter.excludes.len() > FILTER_PATH_PATTERNS_MAX {
            return Err(format!(
                "[filter_path] may hold at most {FILTER_PATH_PATTERNS_MAX} patterns"
            ));
        }
        if filter.includes.is_empty() && filter.excludes.is_empty() {
            return Ok(None);
        }
        Ok(Some(filter))
    }

    /// The response with only what the filter keeps.
    pub fn apply(&self, value: &Value) -> Value {
        let included = if self.includes.is_empty() {
            value.clone()
        } else {
            let start: Vec<Position<'_>> = self.includes.iter().map(|p| (&p[..], 0)).collect();
            include(value, &start).unwrap_or_else(|| Value::Object(Map::new()))
        };
        if self.excludes.is_empty() {
            return included;
        }
        let start: Vec<Position<'_>> = self.excludes.iter().map(|p| (&p[..], 0)).collect();
        exclude(&included, &start)
    }
}

/// Whether a pattern has nothing left to match (only `**`, which may match no level).
fn finished(pattern: &[String], at: usize) -> bool {
    pattern
        .get(at..)
        .is_none_or(|rest| rest.iter().all(|s| s == "**"))
}

/// The positions after matching field `name`, and whether some pattern matched it completely.
fn step<'p>(positions: &[Position<'p>], name: &str) -> (bool, Vec<Position<'p>>) {
    let mut complete = false;
    let mut next = Vec::new();
    let mut push = |position: Position<'p>, next: &mut Vec<Position<'p>>| {
        if finished(position.0, position.1) {
            complete = true;
        } else if !next.contains(&position) {
            next.push(position);
        }
    };
    for &(pattern, at) in positions {
        let mut at = at;
        // `**` may match no level: try the segments after it too.
        while let Some(segment) = pattern.get(at) {
            if segment == "**" {
                push((pattern, at), &mut next);
                at += 1;
                continue;
            }
            if wildcard_match(segment, name) {
                push((pattern, at + 1), &mut next);
            }
            break;
        }
    }
    (complete, next)
}

fn include(value: &Value, positions: &[Position<'_>]) -> Option<Value> {
    match value {
        Value::Object(object) => {
            let mut kept = Map::new();
            for (name, child) in object {
                let (complete, next) = step(positions, name);
                if complete {
                    kept.insert(name.clone(), child.clone());
                } else if !next.is_empty()
                    && let Some(child) = include(child, &next)
                {
                    kept.insert(name.clone(), child);
                }
            }
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| include(item, positions))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn exclude(value: &Value, positions: &[Position<'_>]) -> Value {
    match value {
        Value::Object(object) => {
            let mut kept = Map::new();
            for (name, child) in object {
                let (complete, next) = step(positions, name);
                if complete {
                    continue;
                }
                let child = if next.is_empty() {
                    child.clone()
                } else {
                    exclude(child, &next)
                };
                kept.insert(name.clone(), child);
            }
            Value::Object(kept)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| exclude(i, positions)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filtered(filter: &str, value: Value) -> Value {
        FilterPath::parse(filter).unwrap().unwrap().apply(&value)
    }

    fn search() -> Value {
        json!({"took": 3, "_shards": {"total": 1, "failed": 0}, "hits": {"total": 2, "hits": [
            {"_index": "i", "_id": "1", "_score": 1.0, "_source": {"name": "a", "properties": {"size": 1, "meta": {"foo": "x", "baz": "y"}}}},
            {"_index": "i", "_id": "2", "_score": 1.0, "_source": {"name": "b", "properties": {"size": 2, "meta": {"foo": "x"}}}}
        ]}})
    }

    #[test]
    fn includes_wildcards_and_any_depth() {
        assert_eq!(filtered("took", search()), json!({"took": 3}));
        assert_eq!(
            filtered("_shards.*", search()),
            json!({"_shards": {"total": 1, "failed": 0}})
        );
        assert_eq!(
            filtered("hits.**._i*,**.total", search()),
            json!({"_shards": {"total": 1}, "hits": {"total": 2, "hits": [
                {"_index": "i", "_id": "1"}, {"_index": "i", "_id": "2"}]}})
        );
        assert_eq!(
            filtered("*", json!({"a": {"b": 1}})),
            json!({"a": {"b": 1}})
        );
        assert_eq!(filtered("nothing", search()), json!({}));
    }

    #[test]
    fn excludes_alone_and_with_includes() {
        assert_eq!(
            filtered("-*", json!({"count": 1, "_shards": {}})),
            json!({})
        );
        let hits = filtered("-**._source.properties,**._source", search());
        assert_eq!(hits["hits"]["hits"][1], json!({"_source": {"name": "b"}}));
        let properties = filtered("**.properties,-hits.hits._source.properties.meta", search());
        assert_eq!(
            properties["hits"]["hits"][0],
            json!({"_source": {"properties": {"size": 1}}})
        );
        let foo = filtered("**._source,-**.meta.foo", search());
        assert_eq!(
            foo["hits"]["hits"][0]["_source"]["properties"],
            json!({"size": 1, "meta": {"baz": "y"}})
        );
    }

    #[test]
    fn empty_filters_filter_nothing_and_long_ones_are_refused() {
        assert_eq!(FilterPath::parse(" , ").unwrap(), None);
        let many = vec!["a"; FILTER_PATH_PATTERNS_MAX + 1].join(",");
        assert!(FilterPath::parse(&many).is_err());
    }
}
