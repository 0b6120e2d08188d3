//! Lambda's event filter patterns (`FilterCriteria.Filters[].Pattern`): which records of a batch
//! reach the function. A pattern is a JSON object whose leaves are arrays of alternatives:
//! literal values (strings, numbers, `null`, booleans) and the matchers `prefix`, `suffix`,
//! `equals-ignore-case`, `anything-but`, `numeric` and `exists`; `$or` holds alternative
//! patterns. A record is kept when any filter matches it; a field that is an array matches when
//! any of its elements does. Patterns are compiled once, when the mapping is created, so a bad
//! one is refused with a reason instead of filtering everything out at run time.

use serde_json::{Map, Value};

use crate::limits::{FILTER_PATTERN_BYTES_MAX, FILTER_PATTERN_DEPTH_MAX, FILTERS_MAX};

/// A compiled pattern: all of its fields must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    fields: Vec<(String, Node)>,
    /// Alternatives of `$or`: one of them must match too.
    any_of: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Object(Pattern),
    Alternatives(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Equals(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    Numeric(Vec<(Comparison, f64)>),
    Exists(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

/// Compiles the filters of a mapping; at most [`FILTERS_MAX`].
pub fn compile_all(patterns: &[String]) -> Result<Vec<Pattern>, String> {
    if patterns.len() > FILTERS_MAX {
        return Err(format!("at most {FILTERS_MAX} filters are allowed"));
    }
    patterns.iter().map(|text| compile(text)).collect()
}

/// Compiles one pattern from its JSON text.
pub fn compile(text: &str) -> Result<Pattern, String> {
    if text.len() > FILTER_PATTERN_BYTES_MAX {
        return Err(format!(
            "a filter pattern may have at most {FILTER_PATTERN_BYTES_MAX} bytes"
        ));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|error| format!("invalid filter pattern: {error}"))?;
    match value {
        Value::Object(object) => compile_object(&object, 0),
        _ => Err("a filter pattern must be a JSON object".to_owned()),
    }
}

fn compile_object(object: &Map<String, Value>, depth: usize) -> Result<Pattern, String> {
    if depth > FILTER_PATTERN_DEPTH_MAX {
        return Err(format!(
            "a filter pattern may nest at most {FILTER_PATTERN_DEPTH_MAX} levels"
        ));
    }
    let mut pattern = Pattern {
        fields: Vec::new(),
        any_of: Vec::new(),
    };
    for (name, value) in object {
        if name == "$or" {
            let Value::Array(alternatives) = value else {
                return Err("$or must be an array of patterns".to_owned());
            };
            if alternatives.len() < 2 {
                return Err("$or must have at least two patterns".to_owned());
            }
            for alternative in alternatives {
                let Value::Object(alternative) = alternative else {
                    return Err("$or must be an array of patterns".to_owned());
                };
                pattern.any_of.push(compile_object(alternative, depth + 1)?);
            }
            continue;
        }
        let node = match value {
            Value::Object(inner) => Node::Object(compile_object(inner, depth + 1)?),
            Value::Array(alternatives) => Node::Alternatives(
                alternatives
                    .iter()
                    .map(|alternative| compile_matcher(name, alternative))
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(format!(
                    "the value of {name:?} in a filter pattern must be an object or an array"
                ));
            }
        };
        pattern.fields.push((name.clone(), node));
    }
    Ok(pattern)
}

fn compile_matcher(name: &str, value: &Value) -> Result<Matcher, String> {
    let Value::Object(object) = value else {
        return match value {
            Value::Array(_) => Err(format!("the alternatives of {name:?} may not hold arrays")),
            literal => Ok(Matcher::Equals(literal.clone())),
        };
    };
    let mut entries = object.iter();
    let (Some((operator, operand)), None) = (entries.next(), entries.next()) else {
        return Err(format!(
            "a matcher of {name:?} must have exactly one operator"
        ));
    };
    let text = |operand: &Value| {
        operand
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{operator} of {name:?} takes a string"))
    };
    match operator.as_str() {
        "prefix" => Ok(Matcher::Prefix(text(operand)?)),
        "suffix" => Ok(Matcher::Suffix(text(operand)?)),
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(text(operand)?)),
        "exists" => operand
            .as_bool()
            .map(Matcher::Exists)
            .ok_or_else(|| format!("exists of {name:?} takes true or false")),
        "anything-but" => match operand {
            Value::Array(values) => Ok(Matcher::AnythingBut(values.clone())),
            Value::Object(inner) => match inner.get("prefix").and_then(Value::as_str) {
                Some(prefix) if inner.len() == 1 => Ok(Matcher::AnythingButPrefix(prefix.into())),
                _ => Err(format!(
                    "anything-but of {name:?} takes a value, an array or {{\"prefix\": …}}"
                )),
            },
            single => Ok(Matcher::AnythingBut(vec![single.clone()])),
        },
        "numeric" => {
            let Value::Array(terms) = operand else {
                return Err(format!("numeric of {name:?} takes an array"));
            };
            let mut comparisons = Vec::new();
            let mut terms = terms.iter();
            while let Some(operator) = terms.next() {
                let comparison = match operator.as_str() {
                    Some("<") => Comparison::Less,
                    Some("<=") => Comparison::LessOrEqual,
                    Some("=") => Comparison::Equal,
                    Some(">=") => Comparison::GreaterOrEqual,
                    Some(">") => Comparison::Greater,
                    _ => return Err(format!("numeric of {name:?} has an unknown operator")),
                };
                let bound = terms.next().and_then(Value::as_f64).ok_or_else(|| {
                    format!("numeric of {name:?} needs a number after each operator")
                })?;
                comparisons.push((comparison, bound));
            }
            if comparisons.is_empty() || comparisons.len() > 2 {
                return Err(format!("numeric of {name:?} takes one or two comparisons"));
            }
            Ok(Matcher::Numeric(comparisons))
        }
        other => Err(format!("unknown filter operator {other:?} for {name:?}")),
    }
}

impl Pattern {
    /// Whether `event` (a JSON object) matches.
    pub fn matches(&self, event: &Value) -> bool {
        self.fields.iter().all(|(name, node)| {
            let field = event.get(name);
            match node {
                Node::Object(inner) => match field {
                    Some(Value::Array(elements)) => {
                        elements.iter().any(|element| inner.matches(element))
                    }
                    Some(value) => inner.matches(value),
                    None => inner.matches(&Value::Null),
                },
                Node::Alternatives(matchers) => {
                    matchers.iter().any(|matcher| matcher.matches(field))
                }
            }
        }) && (self.any_of.is_empty() || self.any_of.iter().any(|pattern| pattern.matches(event)))
    }
}

impl Matcher {
    fn matches(&self, field: Option<&Value>) -> bool {
        match (self, field) {
            (Matcher::Exists(wanted), field) => {
                *wanted == field.is_some_and(|value| !value.is_object())
            }
            (_, Some(Value::Array(elements))) => {
                elements.iter().any(|element| self.matches(Some(element)))
            }
            (Matcher::Equals(Value::Null), None) => false,
            (_, None) => false,
            (Matcher::Equals(expected), Some(value)) => values_equal(expected, value),
            (Matcher::Prefix(prefix), Some(Value::String(text))) => text.starts_with(prefix),
            (Matcher::Suffix(suffix), Some(Value::String(text))) => text.ends_with(suffix),
            (Matcher::EqualsIgnoreCase(expected), Some(Value::String(text))) => {
                text.to_lowercase() == expected.to_lowercase()
            }
            (Matcher::AnythingBut(excluded), Some(value)) => !excluded
                .iter()
                .any(|excluded| values_equal(excluded, value)),
            (Matcher::AnythingButPrefix(prefix), Some(Value::String(text))) => {
                !text.starts_with(prefix)
            }
            (Matcher::Numeric(comparisons), Some(Value::Number(number))) => {
                number.as_f64().is_some_and(|number| {
                    comparisons
                        .iter()
                        .all(|(comparison, bound)| match comparison {
                            Comparison::Less => number < *bound,
                            Comparison::LessOrEqual => number <= *bound,
                            Comparison::Equal => number == *bound,
                            Comparison::GreaterOrEqual => number >= *bound,
                            Comparison::Greater => number > *bound,
                        })
                })
            }
            _ => false,
        }
    }
}

/// Numbers compare by value (`5` equals `5.0`), everything else exactly.
fn values_equal(expected: &Value, value: &Value) -> bool {
    match (expected, value) {
        (Value::Number(left), Value::Number(right)) => left.as_f64() == right.as_f64(),
        (left, right) => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(pattern: &str, event: Value) -> bool {
        compile(pattern).unwrap().matches(&event)
    }

    #[test]
    fn literals_and_nesting() {
        let pattern = r#"{"data": {"status": ["paid", "refunded"]}}"#;
        assert!(check(pattern, json!({"data": {"status": "paid"}})));
        assert!(!check(pattern, json!({"data": {"status": "open"}})));
        assert!(!check(pattern, json!({"data": "not json"})));
        assert!(check(
            pattern,
            json!({"data": {"status": ["open", "paid"]}})
        ));
    }

    #[test]
    fn matchers() {
        assert!(check(r#"{"k": [{"prefix": "ab"}]}"#, json!({"k": "abc"})));
        assert!(check(r#"{"k": [{"suffix": "bc"}]}"#, json!({"k": "abc"})));
        assert!(check(
            r#"{"k": [{"equals-ignore-case": "ABC"}]}"#,
            json!({"k": "abc"})
        ));
        assert!(check(
            r#"{"k": [{"anything-but": ["x"]}]}"#,
            json!({"k": "abc"})
        ));
        assert!(!check(
            r#"{"k": [{"anything-but": "abc"}]}"#,
            json!({"k": "abc"})
        ));
        assert!(!check(
            r#"{"k": [{"anything-but": {"prefix": "a"}}]}"#,
            json!({"k": "abc"})
        ));
        assert!(check(
            r#"{"n": [{"numeric": [">", 0, "<=", 5]}]}"#,
            json!({"n": 5})
        ));
        assert!(!check(
            r#"{"n": [{"numeric": [">", 0, "<=", 5]}]}"#,
            json!({"n": 6})
        ));
        assert!(check(r#"{"n": [5]}"#, json!({"n": 5.0})));
        assert!(check(r#"{"k": [{"exists": true}]}"#, json!({"k": 1})));
        assert!(check(r#"{"k": [{"exists": false}]}"#, json!({"j": 1})));
        assert!(!check(r#"{"k": [{"exists": false}]}"#, json!({"k": 1})));
        assert!(check(r#"{"k": [null]}"#, json!({"k": null})));
    }

    #[test]
    fn or_alternatives() {
        let pattern = r#"{"$or": [{"a": [1]}, {"b": [2]}]}"#;
        assert!(check(pattern, json!({"b": 2})));
        assert!(!check(pattern, json!({"a": 2, "b": 1})));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert!(compile("[1]").unwrap_err().contains("object"));
        assert!(
            compile(r#"{"a": 1}"#)
                .unwrap_err()
                .contains("object or an array")
        );
        assert!(
            compile(r#"{"a": [{"nope": 1}]}"#)
                .unwrap_err()
                .contains("unknown")
        );
        assert!(compile(r#"{"a": [{"numeric": ["<"]}]}"#).is_err());
        assert!(compile("{").unwrap_err().contains("invalid filter pattern"));
        let deep = format!("{}[1]{}", r#"{"a":"#.repeat(40), "}".repeat(40));
        assert!(compile(&deep).is_err());
    }
}
