//! The values scripts compute with, typed as Painless types them (`Integer`, `Long`, `Double`,
//! `String`, `List`, `Map`), and their conversions from and to JSON.

use std::fmt::Write as _;

/// A map with its keys in insertion order, as `ctx._source` and `params` are in Painless.
pub type Map = indexmap::IndexMap<String, Value>;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Java's `int`: integer literals and JSON integers that fit.
    Int(i32),
    /// Java's `long`.
    Long(i64),
    Double(f64),
    Str(String),
    List(Vec<Value>),
    Map(Map),
    /// The values of one field of a document, as `doc['f']` gives them (sorted, possibly
    /// empty): `.value` is the first, `.size()`, `.empty`, `[i]`.
    DocValues(Vec<Value>),
}

impl Value {
    /// A JSON value as Painless sees it after Elasticsearch parsed it: integers as `Integer`
    /// when they fit, else `Long`, else `Double`.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    match i32::try_from(i) {
                        Ok(i) => Value::Int(i),
                        Err(_) => Value::Long(i),
                    }
                } else {
                    Value::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value as JSON; a non-finite double becomes null, as JSON has no such number.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Long(i) => serde_json::Value::from(*i),
            Value::Double(d) => serde_json::Number::from_f64(*d)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(items) | Value::DocValues(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
        }
    }

    /// The Java class name Painless shows in its errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "java.lang.Boolean",
            Value::Int(_) => "java.lang.Integer",
            Value::Long(_) => "java.lang.Long",
            Value::Double(_) => "java.lang.Double",
            Value::Str(_) => "java.lang.String",
            Value::List(_) => "java.util.ArrayList",
            Value::Map(_) => "java.util.LinkedHashMap",
            Value::DocValues(_) => "org.elasticsearch.index.fielddata.ScriptDocValues",
        }
    }

    /// How much work copying or scanning this value costs: one unit per node.
    pub(crate) fn weight(&self) -> u64 {
        match self {
            Value::List(items) | Value::DocValues(items) => {
                1 + items.iter().map(Value::weight).sum::<u64>()
            }
            Value::Map(map) => 1 + map.values().map(Value::weight).sum::<u64>(),
            Value::Str(s) => 1 + (s.len() as u64) / 64,
            _ => 1,
        }
    }

    /// Java's `String.valueOf`, which string concatenation uses.
    pub fn java_string(&self) -> String {
        let mut out = String::new();
        self.write_java(&mut out);
        out
    }

    fn write_java(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Long(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Double(d) => out.push_str(&java_double(*d)),
            Value::Str(s) => out.push_str(s),
            Value::List(items) | Value::DocValues(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_java(out);
                }
                out.push(']');
            }
            Value::Map(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(key);
                    out.push('=');
                    value.write_java(out);
                }
                out.push('}');
            }
        }
    }
}

/// Java's `Double.toString`: the shortest digits that read back as the same double, plain
/// between 10^-3 and 10^7 and in computerized scientific notation (`1.0E10`) outside.
pub fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let magnitude = d.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let plain = format!("{d}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let scientific = format!("{d:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
        assert_eq!(java_double(-2.5), "-2.5");
        assert_eq!(java_double(123456.0), "123456.0");
    }

    #[test]
    fn json_numbers_become_the_narrowest_java_type() {
        assert_eq!(Value::from_json(&serde_json::json!(5)), Value::Int(5));
        assert_eq!(
            Value::from_json(&serde_json::json!(5_000_000_000i64)),
            Value::Long(5_000_000_000)
        );
        assert_eq!(
            Value::from_json(&serde_json::json!(1.5)),
            Value::Double(1.5)
        );
        assert_eq!(
            Value::from_json(&serde_json::json!({"a": [1, "x", null]})).to_json(),
            serde_json::json!({"a": [1, "x", null]})
        );
    }
}
