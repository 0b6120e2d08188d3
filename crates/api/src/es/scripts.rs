//! The `script` of a request (`_update`, bulk `update`, `_update_by_query`, `_reindex`): its
//! JSON shapes (a string, or `source`, `lang`, `params`, `options`), compiled by
//! `sluice-script`; a script that does not compile answers 400 `script_exception`.

use std::sync::Arc;

use serde_json::Value;
use sluice_script::Script;
use sluice_search::UpdateScript;

use super::EsError;

/// Reads and compiles a request's `script`.
pub(crate) fn parse_script(value: &Value, scripted_upsert: bool) -> Result<UpdateScript, EsError> {
    let (source, params) = match value {
        Value::String(source) => (source.as_str(), Value::Object(Default::default())),
        Value::Object(fields) => {
            let mut source = None;
            let mut params = Value::Object(Default::default());
            for (key, value) in fields {
                match key.as_str() {
                    "source" => match value {
                        Value::String(text) => source = Some(text.as_str()),
                        _ => {
                            return Err(EsError::parse(
                                "[script] failed to parse field [source]: expected a string",
                            ));
                        }
                    },
                    "lang" => match value.as_str() {
                        Some("painless") => {}
                        Some(other) => {
                            return Err(EsError::illegal_argument(format!(
                                "script lang [{other}] is not supported by Sluice, only [painless]"
                            )));
                        }
                        None => {
                            return Err(EsError::parse("[script] failed to parse field [lang]"));
                        }
                    },
                    "params" => match value {
                        Value::Object(_) => params = value.clone(),
                        Value::Null => {}
                        _ => {
                            return Err(EsError::parse(
                                "[script] failed to parse field [params]: expected an object",
                            ));
                        }
                    },
                    "options" => {}
                    "id" => {
                        return Err(EsError::illegal_argument(
                            "stored scripts ([id]) are not supported by Sluice; send the script's [source]",
                        ));
                    }
                    other => {
                        return Err(EsError::parse(format!("[script] unknown field [{other}]")));
                    }
                }
            }
            match source {
                Some(source) => (source, params),
                None => {
                    return Err(EsError::parse(
                        "must specify either [source] for an inline script or [id] for a stored script",
                    ));
                }
            }
        }
        _ => return Err(EsError::parse("[script] expected a string or an object")),
    };
    let script = Script::compile(source).map_err(|error| EsError::script(&error))?;
    Ok(UpdateScript {
        script: Arc::new(script),
        params: sluice_script::Value::from_json(&params),
        scripted_upsert,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shapes_and_refusals() {
        assert!(parse_script(&json!("ctx._source.a = 1"), false).is_ok());
        let parsed = parse_script(
            &json!({"source": "ctx._source.a = params.a", "lang": "painless", "params": {"a": 1}}),
            true,
        )
        .unwrap();
        assert!(parsed.scripted_upsert);
        let error = parse_script(&json!({"source": "for (;;) {}"}), false).unwrap_err();
        assert_eq!(error.kind, "script_exception");
        assert_eq!(error.reason, "compile error");
        let body = error.body();
        assert_eq!(body["error"]["lang"], "painless");
        assert_eq!(
            body["error"]["caused_by"]["type"],
            "illegal_argument_exception"
        );
        assert_eq!(body["error"]["position"]["offset"], 0);
        assert_eq!(
            parse_script(&json!({"source": "1", "lang": "expression"}), false)
                .unwrap_err()
                .kind,
            "illegal_argument_exception"
        );
        assert_eq!(
            parse_script(&json!({"id": "stored"}), false)
                .unwrap_err()
                .kind,
            "illegal_argument_exception"
        );
        assert_eq!(
            parse_script(&json!({"sauce": "1"}), false)
                .unwrap_err()
                .kind,
            "parsing_exception"
        );
    }
}
