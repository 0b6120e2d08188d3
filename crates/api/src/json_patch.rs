//! JSON Patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy` and `test` operations on a
//! JSON document, addressed by JSON Pointers (RFC 6901), applied in order to a copy so that a
//! failing operation leaves the document as it was. The security API's PATCH uses it.

use serde_json::Value;

/// Most operations in one patch.
pub const OPERATIONS_MAX: usize = 1000;

/// A pointer's reference tokens (`/a/b~1c/0` is `a`, `b/c`, `0`).
fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "[{pointer}] is not a JSON pointer: it must start with '/'"
        ));
    };
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index_of(token: &str, len: usize, appending: bool) -> Result<usize, String> {
    if appending && token == "-" {
        return Ok(len);
    }
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let index: usize = if valid {
        token
            .parse()
            .map_err(|_| format!("[{token}] is not an array index"))?
    } else {
        return Err(format!("[{token}] is not an array index"));
    };
    let limit = if appending {
        len
    } else {
        len.saturating_sub(1)
    };
    if index > limit || (!appending && len == 0) {
        return Err(format!("array index [{index}] is out of bounds"));
    }
    Ok(index)
}

/// The parent of the location `path` names, and the last token.
fn parent<'a>(document: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = tokens(path)?;
    let Some(last) = tokens.pop() else {
        return Err("the root cannot be the target of this operation".to_owned());
    };
    let mut current = document;
    for token in tokens {
        current = match current {
            Value::Object(map) => map
                .get_mut(&token)
                .ok_or_else(|| format!("[{path}] does not exist"))?,
            Value::Array(items) => {
                let index = index_of(&token, items.len(), false)?;
                items
                    .get_mut(index)
                    .ok_or_else(|| format!("[{path}] does not exist"))?
            }
            _ => return Err(format!("[{path}] does not exist")),
        };
    }
    Ok((current, last))
}

fn get<'a>(document: &'a Value, path: &str) -> Result<&'a Value, String> {
    let mut current = document;
    for token in tokens(path)? {
        current = match current {
            Value::Object(map) => map.get(&token),
            Value::Array(items) => items.get(index_of(&token, items.len(), false)?),
            _ => None,
        }
        .ok_or_else(|| format!("[{path}] does not exist"))?;
    }
    Ok(current)
}

fn add(document: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    let (parent, last) = parent(document, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = index_of(&last, items.len(), true)?;
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("[{path}] has no parent object or array")),
    }
}

fn remove(document: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent(document, path)?;
    match parent {
        Value::Object(map) => map
            .remove(&last)
            .ok_or_else(|| format!("[{path}] does not exist")),
        Value::Array(items) => {
            let index = index_of(&last, items.len(), false)?;
            Ok(items.remove(index))
        }
        _ => Err(format!("[{path}] does not exist")),
    }
}

/// Applies `patch` (an array of operations) to a copy of `document`.
pub fn apply(document: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Array(operations) = patch else {
        return Err("a JSON patch is an array of operations".to_owned());
    };
    if operations.len() > OPERATIONS_MAX {
        return Err(format!(
            "a JSON patch has at most {OPERATIONS_MAX} operations"
        ));
    }
    let mut patched = document.clone();
    for operation in operations {
        let text = |field: &str| -> Result<&str, String> {
            operation
                .get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("an operation needs [{field}]: {operation}"))
        };
        let value = || -> Result<Value, String> {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| format!("an operation needs [value]: {operation}"))
        };
        let path = text("path")?;
        match text("op")? {
            "add" => add(&mut patched, path, value()?)?,
            "remove" => {
                remove(&mut patched, path)?;
            }
            "replace" => {
                get(&patched, path)?;
                if path.is_empty() {
                    patched = value()?;
                } else {
                    remove(&mut patched, path)?;
                    add(&mut patched, path, value()?)?;
                }
            }
            "move" => {
                let from = text("from")?;
                if path.starts_with(&format!("{from}/")) {
                    return Err(format!("cannot move [{from}] into itself"));
                }
                let moved = remove(&mut patched, from)?;
                add(&mut patched, path, moved)?;
            }
            "copy" => {
                let copied = get(&patched, text("from")?)?.clone();
                add(&mut patched, path, copied)?;
            }
            "test" => {
                if get(&patched, path)? != &value()? {
                    return Err(format!("test failed: [{path}] is not the value given"));
                }
            }
            other => return Err(format!("unknown JSON patch operation [{other}]")),
        }
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_rfc_6902_operations() {
        let document = json!({"a": {"b": [1, 2]}, "c": "x"});
        let patched = apply(
            &document,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "add", "path": "/a/b/0", "value": 0},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/a/e"},
                {"op": "remove", "path": "/a/b/1"},
                {"op": "test", "path": "/a/e", "value": "y"},
                {"op": "add", "path": "/with~1slash", "value": true}
            ]),
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"a": {"b": [0, 2, 3], "e": "y"}, "c": "y", "with/slash": true})
        );
    }

    #[test]
    fn a_failing_operation_changes_nothing() {
        let document = json!({"a": 1});
        for patch in [
            json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/missing"}]),
            json!([{"op": "test", "path": "/a", "value": 2}]),
            json!([{"op": "replace", "path": "/nope", "value": 2}]),
            json!([{"op": "explode", "path": "/a"}]),
            json!({"op": "add"}),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "move", "from": "/a", "path": "/a/b"}]),
        ] {
            assert!(apply(&document, &patch).is_err(), "{patch}");
        }
        assert_eq!(document, json!({"a": 1}));
    }
}
