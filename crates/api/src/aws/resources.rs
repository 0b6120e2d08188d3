//! The resources of an AWS request, as IAM names them: the ARNs of the streams, delivery
//! streams, tables, functions, event-source mappings and ledgers it acts on, read from its body
//! or path; `*` for an operation on no particular resource (`ListStreams`). Only read when a
//! role's IAM statements name the request's action (see `roles.rs`).

use serde_json::Value;

use super::REGION;
use sluice_delivery::LOCAL_ACCOUNT_ID;

fn arn(service: &str, resource: &str) -> String {
    format!("arn:aws:{service}:{REGION}:{LOCAL_ACCOUNT_ID}:{resource}")
}

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// The resources of `action` (`service:Operation`), or `None` when an earlier request was
/// checked for them (a QLDB session's commands after `StartSession`).
pub(super) fn of(action: &str, body: &[u8], segments: &[String]) -> Option<Vec<String>> {
    let (service, operation) = action.split_once(':').unwrap_or((action, ""));
    // A body that is not JSON (an Ion import, a broken one) names nothing: its operation
    // refuses it later.
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut found = Vec::new();
    match service {
        "kinesis" => {
            if let Some(stream) = text(&body, "StreamARN").or(text(&body, "ConsumerARN")) {
                found.push(stream.to_owned());
            } else if let Some(name) = text(&body, "StreamName") {
                found.push(arn("kinesis", &format!("stream/{name}")));
            }
        }
        "firehose" => {
            if let Some(name) = text(&body, "DeliveryStreamName") {
                found.push(arn("firehose", &format!("deliverystream/{name}")));
            }
        }
        "dynamodb" => {
            let table = |name: &str| arn("dynamodb", &format!("table/{name}"));
            if let Some(stream) = text(&body, "StreamArn") {
                found.push(stream.to_owned());
            }
            if let Some(name) = text(&body, "TableName") {
                found.push(table(name));
            }
            if let Some(Value::Object(items)) = body.get("RequestItems") {
                found.extend(items.keys().map(|name| table(name)));
            }
            if let Some(Value::Array(items)) = body.get("TransactItems") {
                for item in items {
                    if let Value::Object(kinds) = item {
                        for inner in kinds.values() {
                            if let Some(name) = text(inner, "TableName") {
                                found.push(table(name));
                            }
                        }
                    }
                }
            }
        }
        "qldb" if operation == "SendCommand" => {
            let started = body.get("StartSession")?;
            if let Some(ledger) = text(started, "LedgerName") {
                found.push(arn("qldb", &format!("ledger/{ledger}")));
            }
        }
        "qldb" => match segments {
            [first, name, ..] if first == "ledgers" => {
                found.push(arn("qldb", &format!("ledger/{name}")));
            }
            _ => {
                if let Some(name) = text(&body, "Name") {
                    found.push(arn("qldb", &format!("ledger/{name}")));
                }
            }
        },
        "lambda" => match segments {
            [_, kind, name, ..] if kind == "functions" => {
                found.push(arn("lambda", &format!("function:{name}")));
            }
            [_, kind, uuid] if kind == "event-source-mappings" => {
                found.push(arn("lambda", &format!("event-source-mapping:{uuid}")));
            }
            _ => {
                if let Some(name) = text(&body, "FunctionName") {
                    found.push(if name.starts_with("arn:") {
                        name.to_owned()
                    } else {
                        arn("lambda", &format!("function:{name}"))
                    });
                }
            }
        },
        _ => {}
    }
    if found.is_empty() {
        found.push("*".to_owned());
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn resources_by_service() {
        let stream = arn("kinesis", "stream/orders");
        assert_eq!(
            of("kinesis:PutRecord", br#"{"StreamName":"orders"}"#, &[]),
            Some(vec![stream.clone()])
        );
        assert_eq!(
            of(
                "kinesis:PutRecord",
                format!(r#"{{"StreamARN":"{stream}"}}"#).as_bytes(),
                &[]
            ),
            Some(vec![stream])
        );
        assert_eq!(
            of("kinesis:ListStreams", b"{}", &[]),
            Some(vec!["*".to_owned()])
        );
        assert_eq!(
            of(
                "dynamodb:BatchWriteItem",
                br#"{"RequestItems":{"a":[],"b":[]}}"#,
                &[]
            ),
            Some(vec![arn("dynamodb", "table/a"), arn("dynamodb", "table/b")])
        );
        assert_eq!(
            of(
                "qldb:SendCommand",
                br#"{"StartSession":{"LedgerName":"cars"}}"#,
                &[]
            ),
            Some(vec![arn("qldb", "ledger/cars")])
        );
        assert_eq!(
            of("qldb:SendCommand", br#"{"SessionToken":"t"}"#, &[]),
            None
        );
        assert_eq!(
            of("qldb:GetDigest", b"", &segments("/ledgers/cars/digest")),
            Some(vec![arn("qldb", "ledger/cars")])
        );
        assert_eq!(
            of(
                "lambda:InvokeFunction",
                b"{}",
                &segments("/2015-03-31/functions/f/invocations")
            ),
            Some(vec![arn("lambda", "function:f")])
        );
        assert_eq!(
            of("firehose:PutRecord", b"not json", &[]),
            Some(vec!["*".to_owned()])
        );
    }
}
