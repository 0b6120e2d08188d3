//! Index settings as Elasticsearch reads them (`number_of_shards`, `number_of_replicas`,
//! `refresh_interval`, …), flattened to `index.*` keys, and Elasticsearch's time values.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Result, SearchError};

/// How often an index is refreshed when its settings say nothing.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// `index.max_result_window`: the deepest page `from + size` may reach.
pub const DEFAULT_MAX_RESULT_WINDOW: u64 = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct IndexSettings {
    pub number_of_shards: u64,
    pub number_of_replicas: u64,
    /// `None` when refresh is off (`-1`).
    pub refresh_interval: Option<Duration>,
    pub max_result_window: u64,
    /// Every setting as given, flattened to `index.*` keys, values as strings.
    pub flat: Map<String, Value>,
}

impl IndexSettings {
    /// `index.mapping.nested_objects.limit`: nested objects one document may hold.
    pub fn nested_objects_max(&self) -> Result<usize> {
        const KEY: &str = "index.mapping.nested_objects.limit";
        match self.flat.get(KEY) {
            None => Ok(crate::mapping::NESTED_OBJECTS_MAX_DEFAULT),
            Some(value) => value
                .as_str()
                .and_then(|text| text.parse::<usize>().ok())
                .ok_or_else(|| {
                    SearchError::illegal(format!(
                        "Failed to parse value [{}] for setting [{KEY}]",
                        value.as_str().unwrap_or_default()
                    ))
                }),
        }
    }
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            number_of_shards: 1,
            number_of_replicas: 1,
            refresh_interval: Some(DEFAULT_REFRESH_INTERVAL),
            max_result_window: DEFAULT_MAX_RESULT_WINDOW,
            flat: Map::new(),
        }
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), Value::String(s.clone()));
        }
        Value::Null => {
            out.remove(prefix);
        }
        other => {
            out.insert(prefix.to_string(), Value::String(other.to_string()));
        }
    }
}

/// Parses an Elasticsearch time value: `1s`, `500ms`, `2m`, `1h`, `1d`, or `-1` (off).
pub fn parse_time_value(text: &str) -> Option<Option<Duration>> {
    let text = text.trim();
    if text == "-1" {
        return Some(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit {
        "nanos" => number / 1e6,
        "micros" => number / 1e3,
        "ms" => number,
        "s" => number * 1e3,
        "m" => number * 60e3,
        "h" => number * 3600e3,
        "d" => number * 86_400e3,
        _ => return None,
    };
    (millis.is_finite() && millis >= 0.0)
        .then(|| Some(Duration::from_micros((millis * 1e3) as u64)))
}

impl IndexSettings {
    /// Reads `settings` from `PUT /index`, nested or flat, with or without the `index.` prefix.
    pub fn from_json(value: &Value) -> Result<IndexSettings> {
        let mut settings = IndexSettings::default();
        settings.update(value, true)?;
        Ok(settings)
    }

    /// Applies new settings over these. Static settings can only be set at creation.
    pub fn update(&mut self, value: &Value, creating: bool) -> Result<()> {
        if !value.is_object() {
            return Err(SearchError::illegal("settings must be an object"));
        }
        let mut given = Map::new();
        flatten("", value, &mut given);
        let mut flat = self.flat.clone();
        for (key, value) in given {
            let key = if key.starts_with("index.") {
                key
            } else {
                format!("index.{key}")
            };
            flat.insert(key, value);
        }
        let text = |key: &str| flat.get(key).and_then(Value::as_str).map(str::to_string);
        let number = |key: &str| -> Result<Option<u64>> {
            match text(key) {
                None => Ok(None),
                Some(t) => t.parse::<u64>().map(Some).map_err(|_| {
                    SearchError::illegal(format!("Failed to parse value [{t}] for setting [{key}]"))
                }),
            }
        };
        // Elasticsearch 8 only creates indices with soft deletes (Sluice's tombstones play
        // that part): turning them off is refused in its words.
        if flat.get("index.soft_deletes.enabled") == Some(&Value::String("false".into())) {
            return Err(SearchError::illegal(
                "Creating indices with soft-deletes disabled is no longer supported. Please do not specify a value for setting [index.soft_deletes.enabled].",
            ));
        }
        let shards = number("index.number_of_shards")?.unwrap_or(1);
        if shards == 0 || shards > 1024 {
            return Err(SearchError::illegal(format!(
                "Failed to parse value [{shards}] for setting [index.number_of_shards] must be >= 1 and <= 1024"
            )));
        }
        if !creating
            && flat.get("index.number_of_shards") != self.flat.get("index.number_of_shards")
        {
            return Err(SearchError::illegal(
                "final index setting [index.number_of_shards], not updateable",
            ));
        }
        // Checked here so that a bad limit is refused when set, not when a document meets it.
        number("index.mapping.nested_objects.limit")?;
        let replicas = number("index.number_of_replicas")?.unwrap_or(1);
        let max_result_window =
            number("index.max_result_window")?.unwrap_or(DEFAULT_MAX_RESULT_WINDOW);
        let refresh_interval = match text("index.refresh_interval") {
            None => Some(DEFAULT_REFRESH_INTERVAL),
            Some(t) => parse_time_value(&t).ok_or_else(|| {
                SearchError::illegal(format!(
                    "failed to parse setting [index.refresh_interval] with value [{t}] as a time value: unit is missing or unrecognized"
                ))
            })?,
        };
        *self = IndexSettings {
            number_of_shards: shards,
            number_of_replicas: replicas,
            refresh_interval,
            max_result_window,
            flat,
        };
        Ok(())
    }

    /// `index.hidden`: wildcards skip the index unless they ask for hidden ones.
    pub fn is_hidden(&self) -> bool {
        self.flat.get("index.hidden").and_then(Value::as_str) == Some("true")
    }

    /// Settings as `GET /index/_settings` shows them: nested under `index`, values as strings.
    pub fn to_json(&self, uuid: &str, name: &str, creation_date_ms: u64) -> Value {
        let mut flat = self.flat.clone();
        flat.insert(
            "index.number_of_shards".into(),
            Value::String(self.number_of_shards.to_string()),
        );
        flat.insert(
            "index.number_of_replicas".into(),
            Value::String(self.number_of_replicas.to_string()),
        );
        flat.insert("index.uuid".into(), Value::String(uuid.to_string()));
        flat.insert(
            "index.provided_name".into(),
            Value::String(name.to_string()),
        );
        flat.insert(
            "index.creation_date".into(),
            Value::String(creation_date_ms.to_string()),
        );
        flat.insert(
            "index.version.created".into(),
            Value::String("8521000".into()),
        );
        let mut nested = Map::new();
        for (key, value) in flat {
            insert_nested(&mut nested, &key, value);
        }
        Value::Object(nested)
    }
}

fn insert_nested(map: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            map.insert(key.to_string(), value);
        }
        Some((head, tail)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert_nested(inner, tail, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn time_values() {
        assert_eq!(parse_time_value("1s"), Some(Some(Duration::from_secs(1))));
        assert_eq!(
            parse_time_value("250ms"),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(parse_time_value("-1"), Some(None));
        assert_eq!(parse_time_value("5"), None);
    }

    #[test]
    fn nested_and_flat_settings() {
        let s = IndexSettings::from_json(&json!({"number_of_shards": 1, "index": {"refresh_interval": "-1", "number_of_replicas": 0}})).unwrap();
        assert_eq!(s.refresh_interval, None);
        assert_eq!(s.number_of_replicas, 0);
        let shown = s.to_json("u", "n", 5);
        assert_eq!(shown["index"]["refresh_interval"], json!("-1"));
        assert_eq!(shown["index"]["number_of_replicas"], json!("0"));
        assert!(IndexSettings::from_json(&json!({"refresh_interval": "soon"})).is_err());
        assert!(IndexSettings::from_json(&json!({"number_of_shards": 0})).is_err());
        assert!(
            IndexSettings::from_json(&json!({"soft_deletes": {"enabled": false}}))
                .unwrap_err()
                .to_string()
                .starts_with("Creating indices with soft-deletes disabled is no longer supported")
        );
        assert!(IndexSettings::from_json(&json!({"soft_deletes.enabled": true})).is_ok());
    }
}
