//! A delivery stream into an external cluster: a second `sluice up` is the cluster (its API is
//! Elasticsearch's), behind a small proxy in this test that injects faults — whole answers of
//! 429 and 502, connections dropped before and after the cluster applied the request, slow
//! answers, and single items of a bulk answer turned into 429s. Every record must end exactly
//! once in the cluster's index or in the `elasticsearch_failed/` backup, none lost; the index
//! template of the configuration must be on the cluster and shape the rotated index.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use util::Server;

/// Records put into the delivery stream; every tenth cannot fit the template's mapping.
const RECORDS: usize = 400;
/// How long the test waits for every record to be accounted for before it fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a slow answer is held back (well under the client's request timeout).
const SLOW_ANSWER: Duration = Duration::from_millis(1500);

/// What the proxy does to the n-th request, in a cycle: most requests go through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    TooManyRequests,
    BadGateway,
    DropBeforeForwarding,
    DropAfterForwarding,
    Slow,
    ItemRejected,
}

const CYCLE: [Fault; 9] = [
    Fault::None,
    Fault::TooManyRequests,
    Fault::None,
    Fault::BadGateway,
    Fault::DropBeforeForwarding,
    Fault::ItemRejected,
    Fault::DropAfterForwarding,
    Fault::None,
    Fault::Slow,
];

#[derive(Default)]
struct Injected {
    requests: AtomicUsize,
    by_fault: [AtomicUsize; 7],
}

fn fault_index(fault: Fault) -> usize {
    match fault {
        Fault::None => 0,
        Fault::TooManyRequests => 1,
        Fault::BadGateway => 2,
        Fault::DropBeforeForwarding => 3,
        Fault::DropAfterForwarding => 4,
        Fault::Slow => 5,
        Fault::ItemRejected => 6,
    }
}

/// Reads one HTTP/1.1 message head and its `Content-Length` body from `stream`.
fn read_message(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// `head` with `Connection: close` instead of any connection or length header, and the length
/// of `body`.
fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut message = String::new();
    for line in head.lines() {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name == "connection" || name == "content-length" || name == "transfer-encoding" {
            continue;
        }
        message.push_str(line);
        message.push_str("\r\n");
    }
    message.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = message.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn answer(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    with_body(
        &format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}"),
        body,
    )
}

/// Sends the request to the cluster and reads its whole answer.
fn forward(upstream: &str, head: &str, body: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut cluster = TcpStream::connect(upstream).ok()?;
    cluster.write_all(&with_body(head, body)).ok()?;
    read_message(&mut cluster)
}

/// The first item of a bulk answer turned into a rejection, as a busy node answers it.
fn reject_first_item(body: &[u8]) -> Vec<u8> {
    let mut answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(first) = answer["items"].get_mut(0).and_then(Value::as_object_mut)
        && let Some((_, item)) = first.iter_mut().next()
    {
        *item = json!({"_index": item["_index"], "_id": item["_id"], "status": 429,
            "error": {"type": "es_rejected_execution_exception",
                      "reason": "rejected execution (injected by the test's proxy)"}});
        answer["errors"] = json!(true);
    }
    answer.to_string().into_bytes()
}

/// Which fault the n-th request (with its head) meets.
type Plan = fn(usize, &str) -> Fault;

/// The faults of [`CYCLE`] in turn, whatever the request.
fn cycle(n: usize, _head: &str) -> Fault {
    CYCLE[n % CYCLE.len()]
}

fn serve(mut client: TcpStream, upstream: &str, injected: &Injected, plan: Plan) {
    let Some((head, body)) = read_message(&mut client) else {
        return;
    };
    let n = injected.requests.fetch_add(1, Ordering::SeqCst);
    let fault = plan(n, &head);
    injected.by_fault[fault_index(fault)].fetch_add(1, Ordering::SeqCst);
    let reply = match fault {
        Fault::TooManyRequests => answer(
            "429 Too Many Requests",
            "application/json",
            br#"{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"injected"}],"type":"es_rejected_execution_exception","reason":"injected"},"status":429}"#,
        ),
        Fault::BadGateway => answer(
            "502 Bad Gateway",
            "text/html",
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        Fault::DropBeforeForwarding => return,
        Fault::DropAfterForwarding => {
            let _ = forward(upstream, &head, &body);
            return;
        }
        Fault::None | Fault::Slow | Fault::ItemRejected => {
            let Some((answer_head, answer_body)) = forward(upstream, &head, &body) else {
                return;
            };
            if fault == Fault::Slow {
                std::thread::sleep(SLOW_ANSWER);
            }
            let is_bulk = head.starts_with("POST") && head.contains("/_bulk");
            let answer_body = if fault == Fault::ItemRejected && is_bulk {
                reject_first_item(&answer_body)
            } else {
                answer_body
            };
            with_body(&answer_head, &answer_body)
        }
    };
    let _ = client.write_all(&reply);
}

/// Starts the proxy in front of `upstream` (`host:port`); returns its URL.
fn start_proxy(upstream: String, injected: Arc<Injected>, plan: Plan) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            let injected = injected.clone();
            std::thread::spawn(move || serve(client, &upstream, &injected, plan));
        }
    });
    format!("http://{address}")
}

/// A second Sluice as the external cluster, behind a proxy that injects the faults of `plan`:
/// its directory, the server, the proxy's fault counts and the proxy's URL.
fn cluster_behind_proxy(plan: Plan) -> (tempfile::TempDir, Server, Arc<Injected>, String) {
    let cluster_dir = tempfile::tempdir().unwrap();
    let cluster = Server::start(cluster_dir.path());
    let upstream = cluster
        .es_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let injected = Arc::new(Injected::default());
    let proxy = start_proxy(upstream, injected.clone(), plan);
    (cluster_dir, cluster, injected, proxy)
}

fn firehose(server: &Server, operation: &str, body: &Value) -> Value {
    let target = format!("Firehose_20150804.{operation}");
    let reply = server.aws(
        "POST",
        "/",
        &[
            ("X-Amz-Target", target.as_str()),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{operation}: {}", reply.text());
    reply.json()
}

fn failed_backup_lines(data_dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut directories = vec![data_dir.join("s3/backup/elasticsearch_failed")];
    while let Some(directory) = directories.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                directories.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                lines.extend(text.lines().map(|line| serde_json::from_str(line).unwrap()));
            }
        }
    }
    lines
}

fn indexed_ids(cluster: &Server) -> Vec<String> {
    cluster.es("POST", "/ext-*/_refresh", &[], b"");
    let reply = cluster.es(
        "POST",
        "/ext-*/_search",
        util::JSON,
        json!({"size": 10_000, "_source": false})
            .to_string()
            .as_bytes(),
    );
    if reply.status != 200 {
        return Vec::new();
    }
    reply.json()["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|hit| hit["_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_record_ends_once_in_the_cluster_or_the_failed_backup_through_faults() {
    let (_cluster_dir, cluster, injected, proxy) = cluster_behind_proxy(cycle);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"search_clusters": [{
            "endpoint": &proxy,
            "domain_arn": "arn:aws:es:eu-west-1:123456789012:domain/external",
            "index_templates": {"ext-template": {
                "index_patterns": ["ext-*"],
                "template": {"mappings": {"properties": {
                    "n": {"type": "long"}, "message": {"type": "keyword"}}}}
            }}
        }]})
        .to_string(),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let sluice = Server::start_with(&data_dir, &["--config", config.to_str().unwrap()]);

    firehose(
        &sluice,
        "CreateDeliveryStream",
        &json!({
            "DeliveryStreamName": "to-cluster",
            "DeliveryStreamType": "DirectPut",
            "AmazonopensearchserviceDestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "DomainARN": "arn:aws:es:eu-west-1:123456789012:domain/external",
                "IndexName": "ext",
                "IndexRotationPeriod": "OneDay",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
                "RetryOptions": {"DurationInSeconds": 600},
                "S3BackupMode": "FailedDocumentsOnly",
                "S3Configuration": {
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": "arn:aws:s3:::backup"
                }
            }
        }),
    );
    let described = firehose(
        &sluice,
        "DescribeDeliveryStream",
        &json!({"DeliveryStreamName": "to-cluster"}),
    );
    assert_eq!(
        described["DeliveryStreamDescription"]["Destinations"][0]["AmazonopensearchserviceDestinationDescription"]
            ["ClusterEndpoint"],
        json!(proxy),
        "the DomainARN resolved to the configured endpoint: {described}"
    );

    let mut record_ids = Vec::new();
    let mut unmappable = BTreeSet::new();
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(50) {
        // One batch at a time, each reaching the proxy before the next is sent: the delivery
        // would otherwise read every batch into one bulk request and the fault cycle (one
        // fault per request) would not come round.
        let requests_before = injected.requests.load(Ordering::SeqCst);
        let records: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                let document = if i % 10 == 9 {
                    json!({"n": format!("not a number {i}"), "message": format!("record {i}")})
                } else {
                    json!({"n": i, "message": format!("record {i}")})
                };
                json!({"Data": base64::engine::general_purpose::STANDARD
                    .encode(document.to_string())})
            })
            .collect();
        let answer = firehose(
            &sluice,
            "PutRecordBatch",
            &json!({"DeliveryStreamName": "to-cluster", "Records": records}),
        );
        assert_eq!(answer["FailedPutCount"], 0, "{answer}");
        let sent = Instant::now();
        while injected.requests.load(Ordering::SeqCst) == requests_before {
            assert!(
                sent.elapsed() < SETTLE_TIMEOUT,
                "the batch never reached the cluster"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for (&i, response) in chunk
            .iter()
            .zip(answer["RequestResponses"].as_array().unwrap())
        {
            let id = response["RecordId"].as_str().unwrap().to_owned();
            if i % 10 == 9 {
                unmappable.insert(id.clone());
            }
            record_ids.push(id);
        }
    }
    let expected: BTreeSet<String> = record_ids.iter().cloned().collect();
    assert_eq!(expected.len(), RECORDS);

    let started = Instant::now();
    let (indexed, failed) = loop {
        let indexed = indexed_ids(&cluster);
        let failed = failed_backup_lines(&sluice.data_dir);
        if indexed.len() + failed.len() >= RECORDS {
            break (indexed, failed);
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "after {SETTLE_TIMEOUT:?}, {} records indexed and {} backed up of {RECORDS}: {}",
            indexed.len(),
            failed.len(),
            sluice.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let indexed_set: BTreeSet<String> = indexed.iter().cloned().collect();
    assert_eq!(indexed_set.len(), indexed.len(), "no document twice");
    let failed_ids: Vec<String> = failed
        .iter()
        .map(|line| line["esDocumentId"].as_str().unwrap().to_owned())
        .collect();
    let failed_set: BTreeSet<String> = failed_ids.iter().cloned().collect();
    assert_eq!(
        failed_set.len(),
        failed_ids.len(),
        "no record backed up twice"
    );
    assert!(
        indexed_set.is_disjoint(&failed_set),
        "a record both indexed and backed up"
    );
    let all: BTreeSet<String> = indexed_set.union(&failed_set).cloned().collect();
    assert_eq!(all, expected, "every record accounted for, none lost");
    assert_eq!(
        failed_set, unmappable,
        "exactly the records the mapping refuses are backed up"
    );
    for line in &failed {
        assert_eq!(line["errorCode"], "400", "{line}");
        assert!(
            line["esIndexName"].as_str().unwrap().starts_with("ext-"),
            "{line}"
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(line["rawData"].as_str().unwrap())
            .unwrap();
        assert!(String::from_utf8_lossy(&raw).contains("not a number"));
    }

    // Each kind of fault happened, so each was survived.
    for fault in CYCLE {
        assert!(
            injected.by_fault[fault_index(fault)].load(Ordering::SeqCst) > 0,
            "{fault:?} never injected"
        );
    }
    // The template is on the cluster and shaped the rotated index.
    let template = cluster.es("GET", "/_index_template/ext-template", &[], b"");
    assert_eq!(template.status, 200, "{}", template.text());
    let mapping = cluster.es("GET", "/ext-*/_mapping", &[], b"").json();
    let (_, index) = mapping.as_object().unwrap().iter().next().unwrap();
    assert_eq!(
        index["mappings"]["properties"]["n"]["type"], "long",
        "{mapping}"
    );
}

#[test]
fn a_document_whose_answers_were_lost_until_the_retry_time_ended_is_not_also_backed_up() {
    // Every bulk request reaches the cluster and is applied, and its answer is lost; the
    // `_mget` that asks what the cluster holds goes through.
    fn lose_bulk_answers(_n: usize, head: &str) -> Fault {
        if head.contains("/_bulk") {
            Fault::DropAfterForwarding
        } else {
            Fault::None
        }
    }
    let (_cluster_dir, cluster, injected, proxy) = cluster_behind_proxy(lose_bulk_answers);
    let dir = tempfile::tempdir().unwrap();
    let sluice = Server::start(&dir.path().join("data"));
    firehose(
        &sluice,
        "CreateDeliveryStream",
        &json!({
            "DeliveryStreamName": "lossy",
            "DeliveryStreamType": "DirectPut",
            "ElasticsearchDestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "ClusterEndpoint": &proxy,
                "IndexName": "ext-lossy",
                "IndexRotationPeriod": "NoRotation",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
                "RetryOptions": {"DurationInSeconds": 0},
                "S3BackupMode": "FailedDocumentsOnly",
                "S3Configuration": {
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": "arn:aws:s3:::backup"
                }
            }
        }),
    );
    let records: Vec<Value> = (0..10)
        .map(|i| {
            json!({"Data": base64::engine::general_purpose::STANDARD
                .encode(json!({"n": i}).to_string())})
        })
        .collect();
    let answer = firehose(
        &sluice,
        "PutRecordBatch",
        &json!({"DeliveryStreamName": "lossy", "Records": records}),
    );
    assert_eq!(answer["FailedPutCount"], 0, "{answer}");
    // The delivery gives up after its first attempt (no retry time), asks the cluster, and
    // finds every document there: it counts them delivered and backs none up.
    let started = Instant::now();
    let delivered = || {
        firehose(
            &sluice,
            "DescribeDeliveryStream",
            &json!({"DeliveryStreamName": "lossy"}),
        )["DeliveryStreamDescription"]["SluiceMetrics"]["DeliveryToElasticsearch.Records"]
            .as_u64()
            .unwrap_or(0)
    };
    while delivered() < 10 {
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "the documents were never counted delivered: {}",
            sluice.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(injected.by_fault[fault_index(Fault::DropAfterForwarding)].load(Ordering::SeqCst) > 0);
    assert_eq!(indexed_ids(&cluster).len(), 10);
    assert!(
        failed_backup_lines(&sluice.data_dir).is_empty(),
        "documents both indexed and backed up"
    );
}

#[test]
fn a_domain_of_another_account_without_a_configured_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = Server::start(dir.path());
    let reply = sluice.aws(
        "POST",
        "/",
        &[
            ("X-Amz-Target", "Firehose_20150804.CreateDeliveryStream"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        json!({
            "DeliveryStreamName": "unknown-domain",
            "ElasticsearchDestinationConfiguration": {
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "DomainARN": "arn:aws:es:eu-west-1:123456789012:domain/logs",
                "IndexName": "logs",
                "S3Configuration": {"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                    "BucketARN": "arn:aws:s3:::backup"}
            }
        })
        .to_string()
        .as_bytes(),
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = reply.json();
    assert_eq!(error["__type"], "InvalidArgumentException");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("search_clusters"),
        "{error}"
    );
}
