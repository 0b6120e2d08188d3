//! Bulk requests as this crate writes them, and answers as Elasticsearch 7.x/8.x and OpenSearch
//! 1.x–3.x give them. The answers are the examples of those engines' public documentation (the
//! bulk API pages of Elasticsearch 8 and OpenSearch 2, their version-conflict and error
//! examples), with the Elasticsearch 7 / OpenSearch 1 `_type` member where those versions send
//! it, and what Amazon's gateway answers in front of a domain.

use serde_json::{Value, json};

use crate::bulk::{
    BulkAction, BulkOperation, ItemError, ItemOutcome, encode_operation, parse_bulk_response,
};
use crate::{ClusterAuth, ClusterConnection, Clusters, SigV4Service, parse_endpoint};

fn index(index: &str, id: &str, version: Option<u64>) -> BulkOperation {
    BulkOperation {
        index: index.to_owned(),
        id: Some(id.to_owned()),
        version,
        action: BulkAction::Index {
            source: br#"{"field1":"value1"}"#.to_vec(),
        },
    }
}

fn delete(index: &str, id: &str, version: Option<u64>) -> BulkOperation {
    BulkOperation {
        index: index.to_owned(),
        id: Some(id.to_owned()),
        version,
        action: BulkAction::Delete,
    }
}

fn parse(status: u16, body: &Value, operations: &[BulkOperation]) -> Vec<ItemOutcome> {
    let operations: Vec<&BulkOperation> = operations.iter().collect();
    parse_bulk_response(status, body.to_string().as_bytes(), &operations).unwrap()
}

fn body_lines(operations: &[BulkOperation], type_name: Option<&str>) -> Vec<Value> {
    let mut body = Vec::new();
    for operation in operations {
        encode_operation(operation, type_name, &mut body).unwrap();
    }
    assert!(body.ends_with(b"\n"), "NDJSON ends with a newline");
    body.split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect()
}

#[test]
fn requests_carry_ids_external_versions_and_deletes() {
    let operations = [
        index(
            "logs-2026-12-02",
            "49650000000000000000000000000000000000000000000000000001",
            None,
        ),
        index("ledger-cars", "doc1", Some(7)),
        delete("ledger-cars", "doc2", Some(3)),
        BulkOperation {
            id: None,
            ..index("logs", "unused", None)
        },
    ];
    assert_eq!(
        body_lines(&operations, None),
        vec![
            json!({"index": {"_index": "logs-2026-12-02", "_id": "49650000000000000000000000000000000000000000000000000001"}}),
            json!({"field1": "value1"}),
            json!({"index": {"_index": "ledger-cars", "_id": "doc1", "version": 7, "version_type": "external"}}),
            json!({"field1": "value1"}),
            json!({"delete": {"_index": "ledger-cars", "_id": "doc2", "version": 3, "version_type": "external"}}),
            json!({"index": {"_index": "logs"}}),
            json!({"field1": "value1"}),
        ]
    );
    // Firehose's TypeName (Elasticsearch 6 and 7 destinations) goes into the action line.
    assert_eq!(
        body_lines(&operations[..1], Some("_doc"))[0],
        json!({"index": {"_index": "logs-2026-12-02", "_id": "49650000000000000000000000000000000000000000000000000001", "_type": "_doc"}})
    );
}

#[test]
fn a_source_over_several_lines_is_sent_as_one_and_one_that_is_not_an_object_is_refused() {
    let pretty = BulkOperation {
        action: BulkAction::Index {
            source: b"{\n  \"message\": \"a\\nb\",\r\n  \"n\": 1\n}".to_vec(),
        },
        ..index("logs", "1", None)
    };
    assert_eq!(
        body_lines(&[pretty], None)[1],
        json!({"message": "a\nb", "n": 1})
    );
    for source in [
        &b"[1, 2]"[..],
        b"not json",
        b"",
        b"\"text\"\n",
        b"{\n broken",
    ] {
        let operation = BulkOperation {
            action: BulkAction::Index {
                source: source.to_vec(),
            },
            ..index("logs", "1", None)
        };
        let mut body = Vec::new();
        let refused = encode_operation(&operation, None, &mut body).unwrap_err();
        assert_eq!(refused.code, "400");
        assert!(refused.message.contains("mapper_parsing_exception"));
        assert!(body.is_empty(), "nothing of a refused operation is sent");
    }
}

/// Elasticsearch 8's bulk API page: an index, a delete of a missing document, a create and an
/// update, none failing.
#[test]
fn elasticsearch_8_bulk_without_errors() {
    let answer = json!({
       "took": 30,
       "errors": false,
       "items": [
          {"index": {"_index": "test", "_id": "1", "_version": 1, "result": "created",
             "_shards": {"total": 2, "successful": 1, "failed": 0}, "status": 201,
             "_seq_no": 0, "_primary_term": 1}},
          {"delete": {"_index": "test", "_id": "2", "_version": 1, "result": "not_found",
             "_shards": {"total": 2, "successful": 1, "failed": 0}, "status": 404,
             "_seq_no": 1, "_primary_term": 2}},
          {"create": {"_index": "test", "_id": "3", "_version": 1, "result": "created",
             "_shards": {"total": 2, "successful": 1, "failed": 0}, "status": 201,
             "_seq_no": 2, "_primary_term": 3}},
          {"update": {"_index": "test", "_id": "1", "_version": 2, "result": "updated",
             "_shards": {"total": 2, "successful": 1, "failed": 0}, "status": 200,
             "_seq_no": 3, "_primary_term": 4}}
       ]
    });
    let operations = [
        index("test", "1", None),
        delete("test", "2", None),
        index("test", "3", None),
        index("test", "1", None),
    ];
    assert_eq!(
        parse(200, &answer, &operations),
        vec![ItemOutcome::Applied; 4],
        "a delete that found nothing to delete has done its work"
    );
}

/// Elasticsearch 8's "bulk response with errors" example, with a version conflict of an
/// external version and a rejection (429) among the items.
#[test]
fn elasticsearch_8_bulk_with_mixed_statuses() {
    let answer = json!({
      "took": 486,
      "errors": true,
      "items": [
        {"update": {"_index": "index1", "_id": "5", "status": 404,
          "error": {"type": "document_missing_exception", "reason": "[5]: document missing",
            "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0", "index": "index1"}}},
        {"index": {"_index": "index1", "_id": "6", "status": 409,
          "error": {"type": "version_conflict_engine_exception",
            "reason": "[6]: version conflict, current version [5] is higher or equal to the one provided [3]",
            "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0", "index": "index1"}}},
        {"create": {"_index": "index1", "_id": "7", "_version": 1, "result": "created",
          "_shards": {"total": 2, "successful": 1, "failed": 0},
          "_seq_no": 0, "_primary_term": 1, "status": 201}},
        {"index": {"_index": "index1", "_id": "8", "status": 429,
          "error": {"type": "es_rejected_execution_exception",
            "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1048576, max_coordinating_and_primary_bytes=0]"}}},
        {"index": {"_index": "index1", "_id": "9", "status": 400,
          "error": {"type": "document_parsing_exception",
            "reason": "[1:15] failed to parse field [n] of type [long] in document with id '9'. Preview of field's value: 'abc'",
            "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"abc\""}}}},
        {"index": {"_index": "index1", "_id": "10", "status": 503,
          "error": {"type": "unavailable_shards_exception",
            "reason": "[index1][0] primary shard is not active Timeout: [1m]"}}}
      ]
    });
    let operations = [
        index("index1", "5", None),
        index("index1", "6", Some(3)),
        index("index1", "7", None),
        index("index1", "8", None),
        index("index1", "9", None),
        index("index1", "10", None),
    ];
    let outcomes = parse(200, &answer, &operations);
    assert!(
        matches!(&outcomes[0], ItemOutcome::Failed(ItemError { code, message }) if code == "404" && message.contains("document_missing_exception"))
    );
    assert_eq!(
        outcomes[1],
        ItemOutcome::Applied,
        "the cluster holds version 5 already: an external version 3 is applied"
    );
    assert_eq!(outcomes[2], ItemOutcome::Applied);
    assert!(
        matches!(&outcomes[3], ItemOutcome::Retry(ItemError { code, message }) if code == "429" && message.contains("es_rejected_execution_exception"))
    );
    assert!(
        matches!(&outcomes[4], ItemOutcome::Failed(ItemError { code, message }) if code == "400" && message.contains("caused_by"))
    );
    assert!(matches!(&outcomes[5], ItemOutcome::Retry(ItemError { code, .. }) if code == "503"));
}

/// A 409 on a document without an external version is a real conflict (a `create` of an id
/// that exists): not applied, not worth retrying.
#[test]
fn a_conflict_without_an_external_version_is_a_failure() {
    let answer = json!({"took": 3, "errors": true, "items": [
        {"create": {"_index": "movies", "_id": "tt1392214", "status": 409,
          "error": {"type": "version_conflict_engine_exception",
            "reason": "[tt1392214]: version conflict, document already exists (current version [1])",
            "index": "movies", "shard": "0", "index_uuid": "yhizhusbSWmP0G7OJnmcLg"}}}
    ]});
    assert!(matches!(
        &parse(200, &answer, &[index("movies", "tt1392214", None)])[0],
        ItemOutcome::Failed(ItemError { code, .. }) if code == "409"
    ));
}

/// OpenSearch 2's bulk API page (index created, create in conflict, update of a missing
/// document), answered to operations of our kinds.
#[test]
fn opensearch_2_bulk_with_mixed_statuses() {
    let answer = json!({
      "took": 11,
      "errors": true,
      "items": [
        {"index": {"_index": "movies", "_id": "tt1979320", "_version": 1, "result": "created",
          "_shards": {"total": 2, "successful": 1, "failed": 0},
          "_seq_no": 1, "_primary_term": 1, "status": 201}},
        {"create": {"_index": "movies", "_id": "tt1392214", "status": 409,
          "error": {"type": "version_conflict_engine_exception",
            "reason": "[tt1392214]: version conflict, document already exists (current version [1])",
            "index": "movies", "shard": "0", "index_uuid": "yhizhusbSWmP0G7OJnmcLg"}}},
        {"update": {"_index": "movies", "_id": "tt0816711", "status": 404,
          "error": {"type": "document_missing_exception",
            "reason": "[_doc][tt0816711]: document missing",
            "index": "movies", "shard": "0", "index_uuid": "yhizhusbSWmP0G7OJnmcLg"}}},
        {"delete": {"_index": "movies", "_id": "tt0000001", "_version": 4, "result": "deleted",
          "_shards": {"total": 2, "successful": 1, "failed": 0},
          "_seq_no": 2, "_primary_term": 1, "status": 200}},
        {"index": {"_index": "movies", "_id": "tt0000002", "status": 429,
          "error": {"type": "rejected_execution_exception",
            "reason": "rejected execution of primary operation [shard_detail=[movies][0][P], shard_primary_bytes=0] OpenSearchRejectedExecutionException"}}}
      ]
    });
    let operations = [
        index("movies", "tt1979320", None),
        index("movies", "tt1392214", Some(1)),
        index("movies", "tt0816711", None),
        delete("movies", "tt0000001", Some(4)),
        index("movies", "tt0000002", None),
    ];
    let outcomes = parse(200, &answer, &operations);
    assert_eq!(outcomes[0], ItemOutcome::Applied);
    assert_eq!(
        outcomes[1],
        ItemOutcome::Applied,
        "external version already there"
    );
    assert!(matches!(&outcomes[2], ItemOutcome::Failed(ItemError { code, .. }) if code == "404"));
    assert_eq!(outcomes[3], ItemOutcome::Applied);
    assert!(matches!(&outcomes[4], ItemOutcome::Retry(ItemError { code, .. }) if code == "429"));
}

/// Elasticsearch 7 and OpenSearch 1 name the type in every item; a delete with an external
/// version older than the tombstone's conflicts, which is applied.
#[test]
fn elasticsearch_7_and_opensearch_1_items_with_types() {
    let answer = json!({"took": 7, "errors": true, "items": [
        {"index": {"_index": "test", "_type": "_doc", "_id": "1", "_version": 1,
          "result": "created", "forced_refresh": false,
          "_shards": {"total": 2, "successful": 1, "failed": 0},
          "_seq_no": 0, "_primary_term": 1, "status": 201}},
        {"delete": {"_index": "test", "_type": "_doc", "_id": "2", "status": 409,
          "error": {"type": "version_conflict_engine_exception",
            "reason": "[_doc][2]: version conflict, current version [9] is higher or equal to the one provided [4]",
            "index_uuid": "ZtqvOlJ8QeOCfZ1nqKjuDQ", "shard": "0", "index": "test"}}},
        {"delete": {"_index": "test", "_type": "_doc", "_id": "3", "_version": 2,
          "result": "not_found", "_shards": {"total": 2, "successful": 1, "failed": 0},
          "_seq_no": 1, "_primary_term": 1, "status": 404}}
    ]});
    let operations = [
        index("test", "1", None),
        delete("test", "2", Some(4)),
        delete("test", "3", Some(2)),
    ];
    assert_eq!(
        parse(200, &answer, &operations),
        vec![ItemOutcome::Applied; 3]
    );
}

/// A request refused whole: Elasticsearch's error object (OpenSearch 2's malformed action
/// line), a 429 of the cluster, and the texts a gateway answers.
#[test]
fn requests_that_fail_whole_keep_the_error_of_the_answer() {
    let operations = [index("logs", "1", None)];
    let sent: Vec<&BulkOperation> = operations.iter().collect();
    let opensearch = json!({"error": {"root_cause": [{"type": "illegal_argument_exception",
        "reason": "Malformed action/metadata line [1], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]"}],
        "type": "illegal_argument_exception",
        "reason": "Malformed action/metadata line [1], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]"},
        "status": 400});
    let failure = parse_bulk_response(400, opensearch.to_string().as_bytes(), &sent).unwrap_err();
    assert_eq!(failure.error.code, "400");
    let error: Value = serde_json::from_str(&failure.error.message).unwrap();
    assert_eq!(error["type"], "illegal_argument_exception");

    let elasticsearch = json!({"error": {"root_cause": [{"type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation"}],
        "type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation"}, "status": 429});
    let failure =
        parse_bulk_response(429, elasticsearch.to_string().as_bytes(), &sent).unwrap_err();
    assert_eq!(failure.error.code, "429");

    let gateway = br#"{"Message":"Request size exceeded 10485760 bytes"}"#;
    let failure = parse_bulk_response(413, gateway, &sent).unwrap_err();
    assert!(failure.error.message.contains("Request size exceeded"));

    let proxy = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
    let failure = parse_bulk_response(502, proxy, &sent).unwrap_err();
    assert_eq!(failure.error.code, "502");
    assert!(failure.error.message.contains("502 Bad Gateway"));
}

#[test]
fn answers_without_one_item_per_operation_fail_the_request() {
    let operations = [index("logs", "1", None), index("logs", "2", None)];
    let sent: Vec<&BulkOperation> = operations.iter().collect();
    let short = json!({"took": 1, "errors": false, "items": [
        {"index": {"_index": "logs", "_id": "1", "status": 201}}]});
    assert!(parse_bulk_response(200, short.to_string().as_bytes(), &sent).is_err());
    assert!(parse_bulk_response(200, b"not json", &sent).is_err());
    assert!(parse_bulk_response(200, b"", &sent).is_err());
}

#[test]
fn endpoints_are_http_urls_without_credentials() {
    assert!(parse_endpoint("https://search.example:9200").is_ok());
    assert!(parse_endpoint("http://127.0.0.1:9200/prefix").is_ok());
    for bad in [
        "search.example:9200",
        "ftp://search.example",
        "https://user:secret@search.example",
        "https://search.example/?q=1",
        "http://",
    ] {
        assert!(parse_endpoint(bad).is_err(), "{bad} is refused");
    }
    let refused = parse_endpoint("https://elastic:changeme@search.example")
        .unwrap_err()
        .to_string();
    assert!(
        !refused.contains("changeme") && refused.contains("search_clusters"),
        "{refused}"
    );
}

#[test]
fn the_configuration_resolves_domains_and_never_prints_secrets() {
    let config: Vec<ClusterConnection> = serde_json::from_value(json!([
        {"endpoint": "https://search-logs.eu-west-1.es.amazonaws.com/",
         "domain_arn": "arn:aws:es:eu-west-1:123456789012:domain/logs",
         "auth": {"type": "sigv4", "service": "es"}},
        {"endpoint": "https://elastic.example:9200",
         "auth": {"type": "basic", "username": "firehose", "password": "s3cr3t"},
         "index_templates": {"logs": {"index_patterns": ["logs-*"], "template": {}}}},
        {"endpoint": "https://keyed.example:9200",
         "auth": {"type": "api_key", "id": "VuaCfGcBCdbkQm-e5aOx", "api_key": "ui2lp2axTNmsyakw9tvNnw"}}
    ]))
    .unwrap();
    assert_eq!(
        config[0].auth,
        ClusterAuth::Sigv4 {
            service: SigV4Service::Es,
            region: None
        }
    );
    let printed = format!("{config:?}");
    assert!(
        !printed.contains("s3cr3t") && !printed.contains("ui2lp2ax"),
        "{printed}"
    );
    assert_eq!(
        config[2].auth.api_key_encoded().unwrap(),
        "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    );
    let clusters = Clusters::new(config).unwrap();
    assert_eq!(
        clusters.endpoint_of_domain("arn:aws:es:eu-west-1:123456789012:domain/logs"),
        Some("https://search-logs.eu-west-1.es.amazonaws.com")
    );
    assert_eq!(
        clusters.endpoint_of_domain("arn:aws:es:eu-west-1:123456789012:domain/other"),
        None
    );
    let client = clusters.client("https://elastic.example:9200/").unwrap();
    assert!(client.has_index_templates());
    assert!(
        !clusters
            .client("http://127.0.0.1:1")
            .unwrap()
            .has_index_templates()
    );

    let unknown_member = serde_json::from_value::<Vec<ClusterConnection>>(json!([
        {"endpoint": "https://x.example", "auth": {"type": "basic", "username": "u", "password": "p", "token": "t"}}
    ]));
    assert!(unknown_member.is_err());
    let twice = vec![
        ClusterConnection::plain("https://x.example:9200"),
        ClusterConnection::plain("https://x.example:9200/"),
    ];
    assert!(Clusters::new(twice).is_err());
    let mut bad_template = ClusterConnection::plain("https://x.example:9200");
    bad_template
        .index_templates
        .insert("../_cluster".to_owned(), json!({}));
    assert!(Clusters::new(vec![bad_template]).is_err());
}

#[test]
fn a_ca_file_must_hold_a_certificate() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let mut connection = ClusterConnection::plain("https://x.example:9200");
    connection.ca_file = Some(path);
    let refused = Clusters::new(vec![connection.clone()])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("ca.pem"), "{refused}");
    connection.ca_file = Some(directory.path().join("missing.pem"));
    assert!(Clusters::new(vec![connection]).is_err());
}
