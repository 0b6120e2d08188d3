//! Mappings against a real log and real tables, with functions played by closures: event
//! shapes, checkpoints across reopen, partial batch failures with bisecting and an OnFailure
//! stream, filters, and table streams.

use std::collections::BTreeSet;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sluice_log::{AppendRecord, IteratorStart, Log, LogOptions, StreamConfig, SystemClock};
use sluice_tables::{
    AttributeValue, CreateTable, KeyAttribute, KeySchema, Number, ScalarType, StreamViewType,
    Tables, Write,
};

use crate::*;

/// How long a test waits for the workers before it fails: generous, the machine is shared.
const WAIT: Duration = Duration::from_secs(60);

type Handler = dyn Fn(&Value) -> Result<Value, InvokeFailure> + Send + Sync;

/// A function played by a closure; every event it receives is also sent to the test.
struct FakeFunction {
    handler: Box<Handler>,
    events: Mutex<Sender<Value>>,
}

impl std::fmt::Debug for FakeFunction {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("FakeFunction")
    }
}

impl Invoker for FakeFunction {
    fn invoke(&self, _function_arn: &str, event: &Value) -> Result<Value, InvokeFailure> {
        let answer = (self.handler)(event);
        let _ = self.events.lock().unwrap().send(event.clone());
        answer
    }
}

fn fake(
    handler: impl Fn(&Value) -> Result<Value, InvokeFailure> + Send + Sync + 'static,
) -> (Arc<FakeFunction>, Receiver<Value>) {
    let (events, received) = mpsc::channel();
    (
        Arc::new(FakeFunction {
            handler: Box::new(handler),
            events: Mutex::new(events),
        }),
        received,
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    log: Arc<Log>,
    tables: Arc<Tables>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("streams"), LogOptions::default()).unwrap());
    let tables = Arc::new(Tables::open(&dir.path().join("tables"), Arc::new(SystemClock)).unwrap());
    Fixture { dir, log, tables }
}

impl Fixture {
    fn open(&self, invoker: Arc<dyn Invoker>) -> EventSourceMappings {
        EventSourceMappings::open(
            &self.dir.path().join("mappings"),
            self.log.clone(),
            self.tables.clone(),
            invoker,
            Arc::new(SystemClock),
        )
        .unwrap()
    }
}

fn stream_mapping(uuid: &str, stream: &str) -> MappingConfig {
    MappingConfig::new(
        uuid.into(),
        format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"),
        SourceSpec::Stream {
            stream: stream.into(),
            copy: false,
        },
        "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        StartingPosition::TrimHorizon,
    )
}

fn data_of(record: &Value) -> String {
    let data = record["kinesis"]["data"].as_str().unwrap();
    String::from_utf8(BASE64.decode(data).unwrap()).unwrap()
}

/// Receives events until `done` says the test has seen enough.
fn receive_until(received: &Receiver<Value>, mut done: impl FnMut(&Value) -> bool) {
    loop {
        let event = received
            .recv_timeout(WAIT)
            .expect("the mapping did not invoke the function in time");
        if done(&event) {
            return;
        }
    }
}

#[test]
fn kinesis_events_have_lambdas_shape_and_the_checkpoint_survives_reopen() {
    let fixture = fixture();
    let stream = fixture
        .log
        .create_stream("orders", StreamConfig::new(1))
        .unwrap();
    for n in 0..5 {
        stream
            .append(&AppendRecord::new(
                format!("key-{n}"),
                format!("record-{n}"),
            ))
            .unwrap();
    }
    let (function, received) = fake(|_| Ok(json!(null)));
    let mappings = fixture.open(function);
    let mut config = stream_mapping("m1", "orders");
    config.batch_size = 2;
    mappings.create(config).unwrap();
    let mut seen = Vec::new();
    receive_until(&received, |event| {
        for record in event["Records"].as_array().unwrap() {
            seen.push(data_of(record));
        }
        seen.len() >= 5
    });
    assert_eq!(
        seen,
        (0..5).map(|n| format!("record-{n}")).collect::<Vec<_>>()
    );
    mappings.shutdown();
    drop(mappings);

    // The event's shape, as Lambda's.
    let (function, received) = fake(|_| Ok(json!({})));
    let mappings = fixture.open(function);
    stream
        .append(&AppendRecord::new("key-5", "record-5"))
        .unwrap();
    let event = received.recv_timeout(WAIT).unwrap();
    let records = event["Records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        1,
        "only the record after the checkpoint: {event}"
    );
    let record = &records[0];
    assert_eq!(data_of(record), "record-5");
    assert_eq!(record["eventName"], "aws:kinesis:record");
    assert_eq!(record["eventSource"], "aws:kinesis");
    assert_eq!(record["eventVersion"], "1.0");
    assert_eq!(
        record["eventSourceARN"],
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
    );
    assert_eq!(record["kinesis"]["partitionKey"], "key-5");
    assert_eq!(record["kinesis"]["kinesisSchemaVersion"], "1.0");
    let sequence = record["kinesis"]["sequenceNumber"].as_str().unwrap();
    assert_eq!(
        record["eventID"],
        format!("shardId-000000000000:{sequence}")
    );
    assert!(record["kinesis"]["approximateArrivalTimestamp"].is_f64());
    assert_eq!(mappings.list().len(), 1);
}

#[test]
fn a_poison_record_ends_on_the_failure_stream_and_the_others_are_delivered() {
    let fixture = fixture();
    let stream = fixture
        .log
        .create_stream("payments", StreamConfig::new(1))
        .unwrap();
    let failures = fixture
        .log
        .create_stream("failures", StreamConfig::new(1))
        .unwrap();
    let n_records = 20;
    let poison = 13;
    for n in 0..n_records {
        stream
            .append(&AppendRecord::new("k", format!("{n}")))
            .unwrap();
    }
    // Succeeds on every record but the poison one, which it reports; it remembers what it
    // processed successfully, as an idempotent consumer would.
    let processed: Arc<Mutex<Vec<String>>> = Arc::default();
    let processed_by_handler = processed.clone();
    let (function, received) = fake(move |event| {
        let mut failures = Vec::new();
        for record in event["Records"].as_array().unwrap() {
            let data = data_of(record);
            if data == format!("{poison}") {
                failures.push(json!({"itemIdentifier": record["kinesis"]["sequenceNumber"]}));
            } else if failures.is_empty() {
                processed_by_handler.lock().unwrap().push(data);
            }
        }
        Ok(json!({"batchItemFailures": failures}))
    });
    let mappings = fixture.open(function);
    let mut config = stream_mapping("m2", "payments");
    config.batch_size = 8;
    config.maximum_retry_attempts = 2;
    config.bisect_batch_on_function_error = true;
    config.report_batch_item_failures = true;
    config.on_failure_destination =
        Some("arn:aws:kinesis:us-east-1:000000000000:stream/failures".into());
    config.on_failure_stream = Some("failures".into());
    mappings.create(config).unwrap();
    let last = format!("{}", n_records - 1);
    receive_until(&received, |event| {
        event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|record| data_of(record) == last)
    });
    // The failure record is written before the checkpoint passes the poison record, and the
    // last batch is invoked after that: wait for the checkpoint to pass the last record.
    let consumer = consumer_name("m2");
    let last_sequence = stream
        .shard(0)
        .unwrap()
        .position_for(IteratorStart::Latest)
        .unwrap()
        .next_record_offset
        - 1;
    let deadline = std::time::Instant::now() + WAIT;
    while stream
        .read_checkpoint(&consumer, 0)
        .unwrap()
        .is_none_or(|done| done.record_offset() < last_sequence)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "checkpoint did not move"
        );
        let _ = received.recv_timeout(Duration::from_millis(50));
    }
    let delivered: BTreeSet<String> = processed.lock().unwrap().iter().cloned().collect();
    let expected: BTreeSet<String> = (0..n_records)
        .filter(|n| *n != poison)
        .map(|n| format!("{n}"))
        .collect();
    assert_eq!(delivered, expected);

    let failed = failures
        .shard(0)
        .unwrap()
        .read(
            failures
                .shard(0)
                .unwrap()
                .position_for(IteratorStart::TrimHorizon)
                .unwrap(),
            10,
            1 << 20,
        )
        .unwrap()
        .records;
    assert_eq!(failed.len(), 1, "one failure record");
    let failure: Value = serde_json::from_slice(&failed[0].data).unwrap();
    let info = &failure["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1, "{failure}");
    assert_eq!(info["startSequenceNumber"], info["endSequenceNumber"]);
    assert_eq!(info["shardId"], "shardId-000000000000");
    assert_eq!(
        info["streamArn"],
        "arn:aws:kinesis:us-east-1:000000000000:stream/payments"
    );
    assert_eq!(
        failure["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 3);
    // The failure names the poison record.
    let poison_sequence = stream
        .shard(0)
        .unwrap()
        .read(
            stream
                .shard(0)
                .unwrap()
                .position_for(IteratorStart::TrimHorizon)
                .unwrap(),
            100,
            1 << 20,
        )
        .unwrap()
        .records
        .into_iter()
        .find(|record| record.data == format!("{poison}").into_bytes())
        .unwrap()
        .sequence_number
        .to_string();
    assert_eq!(info["startSequenceNumber"], poison_sequence);
}

#[test]
fn filters_keep_only_matching_records() {
    let fixture = fixture();
    let stream = fixture
        .log
        .create_stream("events", StreamConfig::new(1))
        .unwrap();
    for (n, status) in ["paid", "open", "paid", "void"].iter().enumerate() {
        stream
            .append(&AppendRecord::new(
                "k",
                json!({"n": n, "status": status}).to_string(),
            ))
            .unwrap();
    }
    stream.append(&AppendRecord::new("k", "not json")).unwrap();
    stream
        .append(&AppendRecord::new(
            "k",
            json!({"n": 9, "status": "paid"}).to_string(),
        ))
        .unwrap();
    let (function, received) = fake(|_| Ok(json!({})));
    let mappings = fixture.open(function);
    let mut config = stream_mapping("m3", "events");
    config.filters = vec![r#"{"data": {"status": ["paid"]}}"#.into()];
    config.batch_size = 1;
    mappings.create(config).unwrap();
    let mut seen = Vec::new();
    receive_until(&received, |event| {
        for record in event["Records"].as_array().unwrap() {
            let data: Value = serde_json::from_str(&data_of(record)).unwrap();
            seen.push(data["n"].as_u64().unwrap());
        }
        seen.contains(&9)
    });
    assert_eq!(seen, vec![0, 2, 9]);
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).unwrap())
}

#[test]
fn table_stream_events_have_lambdas_dynamodb_shape() {
    let fixture = fixture();
    let key = |name: &str| KeyAttribute {
        name: name.into(),
        scalar_type: ScalarType::N,
    };
    let table = fixture
        .tables
        .create_table(CreateTable {
            name: "transactions".into(),
            key_schema: KeySchema {
                partition: key("userId"),
                sort: Some(key("transactionId")),
            },
            attribute_definitions: vec![key("userId"), key("transactionId")],
            billing_mode: "PAY_PER_REQUEST".into(),
            provisioned_throughput: None,
            stream_view_type: Some(StreamViewType::NewAndOldImages),
            indexes: Vec::new(),
            tags: Default::default(),
        })
        .unwrap();
    let stream_id = table.definition.stream.unwrap().stream_id;
    let item = |amount: &str| {
        [
            ("userId".to_owned(), n("3")),
            ("transactionId".to_owned(), n("51")),
            ("amount".to_owned(), n(amount)),
        ]
        .into_iter()
        .collect()
    };
    fixture
        .tables
        .write(Write::put("transactions", item("1.5")))
        .unwrap();
    fixture
        .tables
        .write(Write::put("transactions", item("2")))
        .unwrap();
    let (function, received) = fake(|_| Ok(json!({})));
    let mappings = fixture.open(function);
    let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/transactions/stream/label";
    let mut config = MappingConfig::new(
        "m4".into(),
        arn.into(),
        SourceSpec::TableStream {
            stream_id,
            table: "transactions".into(),
            view_type: "NEW_AND_OLD_IMAGES".into(),
        },
        "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        StartingPosition::TrimHorizon,
    );
    config.filters = vec![r#"{"eventName": ["INSERT"]}"#.into()];
    mappings.create(config).unwrap();
    let event = received.recv_timeout(WAIT).unwrap();
    let records = event["Records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        1,
        "only the INSERT passes the filter: {event}"
    );
    let record = &records[0];
    assert_eq!(record["eventName"], "INSERT");
    assert_eq!(record["eventSource"], "aws:dynamodb");
    assert_eq!(record["eventSourceARN"], arn);
    assert_eq!(
        record["dynamodb"]["Keys"],
        json!({"userId": {"N": "3"}, "transactionId": {"N": "51"}})
    );
    assert_eq!(
        record["dynamodb"]["NewImage"]["amount"],
        json!({"N": "1.5"})
    );
    assert_eq!(
        record["dynamodb"]["SequenceNumber"],
        "000000000000000000001"
    );
    assert_eq!(record["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert!(record["dynamodb"]["SizeBytes"].as_u64().unwrap() > 0);
    assert!(record["dynamodb"].get("OldImage").is_none());
}

#[test]
fn the_catalog_refuses_duplicates_and_unknown_versions() {
    let fixture = fixture();
    fixture
        .log
        .create_stream("s", StreamConfig::new(2))
        .unwrap();
    let (function, _received) = fake(|_| Ok(json!({})));
    let mappings = fixture.open(function.clone());
    mappings.create(stream_mapping("a", "s")).unwrap();
    assert!(matches!(
        mappings.create(stream_mapping("b", "s")),
        Err(MappingError::Conflict(_))
    ));
    assert!(matches!(
        mappings.create(stream_mapping("c", "missing")),
        Err(MappingError::SourceNotFound(_))
    ));
    let updated = mappings
        .update("a", |config| {
            config.enabled = false;
            config.batch_size = 7;
            Ok(())
        })
        .unwrap();
    assert!(!updated.config.enabled);
    drop(mappings);
    let mappings = fixture.open(function.clone());
    assert_eq!(mappings.get("a").unwrap().config.batch_size, 7);
    mappings.delete("a").unwrap();
    assert!(matches!(mappings.get("a"), Err(MappingError::NotFound(_))));
    drop(mappings);
    std::fs::write(
        fixture.dir.path().join("mappings/catalog.json"),
        r#"{"format_version": 99, "mappings": []}"#,
    )
    .unwrap();
    let error = EventSourceMappings::open(
        &fixture.dir.path().join("mappings"),
        fixture.log.clone(),
        fixture.tables.clone(),
        function,
        Arc::new(SystemClock),
    )
    .unwrap_err();
    assert!(error.to_string().contains("format version 99"), "{error}");
}

#[test]
fn a_parallelization_factor_runs_batches_of_one_shard_at_once_keeping_each_key_in_order() {
    let fixture = fixture();
    let stream = fixture
        .log
        .create_stream("clicks", StreamConfig::new(1))
        .unwrap();
    let n_records = 200;
    for n in 0..n_records {
        stream
            .append(&AppendRecord::new(
                format!("user-{}", n % 16),
                format!("{n}"),
            ))
            .unwrap();
    }
    // Each invocation waits (boundedly) for a second one to be in flight, so lanes that run at
    // once are seen to.
    let in_flight: Arc<(Mutex<usize>, std::sync::Condvar)> = Arc::default();
    let most_at_once = Arc::new(Mutex::new(0usize));
    let (in_flight_by_handler, most_by_handler) = (in_flight.clone(), most_at_once.clone());
    let (function, received) = fake(move |_| {
        let (count, changed) = &*in_flight_by_handler;
        let mut current = count.lock().unwrap();
        *current += 1;
        {
            let mut most = most_by_handler.lock().unwrap();
            *most = (*most).max(*current);
        }
        changed.notify_all();
        let (mut current, _) = changed
            .wait_timeout_while(current, Duration::from_secs(1), |current| *current < 2)
            .unwrap();
        *current -= 1;
        Ok(json!({}))
    });
    let mappings = fixture.open(function);
    let mut config = stream_mapping("m6", "clicks");
    config.batch_size = 10;
    config.parallelization_factor = 4;
    mappings.create(config).unwrap();
    let mut by_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut n_seen = 0;
    receive_until(&received, |event| {
        for record in event["Records"].as_array().unwrap() {
            let key = record["kinesis"]["partitionKey"]
                .as_str()
                .unwrap()
                .to_owned();
            by_key
                .entry(key)
                .or_default()
                .push(data_of(record).parse().unwrap());
            n_seen += 1;
        }
        n_seen >= n_records
    });
    assert_eq!(n_seen, n_records, "each record once without failures");
    for (key, numbers) in &by_key {
        assert!(
            numbers.windows(2).all(|pair| pair[0] < pair[1]),
            "{key}: {numbers:?}"
        );
    }
    assert!(
        *most_at_once.lock().unwrap() >= 2,
        "lanes ran one at a time"
    );
}

#[test]
fn a_function_that_did_not_run_is_retried_without_using_up_the_retries() {
    let fixture = fixture();
    let stream = fixture
        .log
        .create_stream("late", StreamConfig::new(1))
        .unwrap();
    stream.append(&AppendRecord::new("k", "only")).unwrap();
    let calls = Arc::new(Mutex::new(0u32));
    let calls_by_handler = calls.clone();
    // Throttled three times, then it runs: with no retries allowed, the record still arrives.
    let (function, received) = fake(move |_| {
        let mut calls = calls_by_handler.lock().unwrap();
        *calls += 1;
        if *calls <= 3 {
            return Err(InvokeFailure {
                error_type: "TooManyRequestsException".into(),
                message: "throttled".into(),
                function_did_not_run: true,
            });
        }
        Ok(json!({}))
    });
    let mappings = fixture.open(function);
    let mut config = stream_mapping("m7", "late");
    config.maximum_retry_attempts = 0;
    mappings.create(config).unwrap();
    for _ in 0..4 {
        let event = received.recv_timeout(WAIT).unwrap();
        assert_eq!(data_of(&event["Records"][0]), "only");
    }
    assert_eq!(*calls.lock().unwrap(), 4);
}
