//! Tests of delivery streams with a manual clock and hand-driven pumps: buffering, rotation,
//! ids, retries into `elasticsearch_failed/`, processors, and the checkpoint rule.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;
use sluice_log::{Clock, Log, LogOptions, ManualClock, SequenceNumber};
use sluice_search::{Indices, Query};
use time::macros::datetime;

use crate::*;

/// 2016-02-25T13:00:00Z, Firehose's example arrival time.
const T0_MS: u64 = 1_456_405_200_000;

#[derive(Debug)]
struct AdvanceClock(Arc<ManualClock>);

impl Pause for AdvanceClock {
    fn pause(&self, duration_ms: u64) -> bool {
        self.0.advance_ms(duration_ms);
        true
    }
}

#[derive(Debug)]
struct StopAtOnce;

impl Pause for StopAtOnce {
    fn pause(&self, _duration_ms: u64) -> bool {
        false
    }
}

/// Answers per record by its content: `drop` → Dropped, `fail` → ProcessingFailed, else Ok with
/// the data upper-cased. Remembers the record ids it saw.
#[derive(Debug, Default)]
struct FakeFunction {
    seen_record_ids: Mutex<Vec<String>>,
}

impl Transformer for FakeFunction {
    fn transform(
        &self,
        _delivery_stream_arn: &str,
        _lambda_arn: &str,
        _number_of_retries: u32,
        records: &[TransformInput],
    ) -> Result<Vec<TransformOutput>, TransformFailure> {
        let mut seen = self.seen_record_ids.lock().unwrap();
        Ok(records
            .iter()
            .map(|record| {
                seen.push(record.record_id.clone());
                let text = String::from_utf8_lossy(&record.data).to_string();
                let result = if text.contains("drop") {
                    TransformResult::Dropped
                } else if text.contains("fail") {
                    TransformResult::ProcessingFailed
                } else {
                    TransformResult::Ok
                };
                TransformOutput {
                    record_id: record.record_id.clone(),
                    result,
                    data: text.replace("hello", "bye").into_bytes(),
                }
            })
            .collect())
    }
}

struct Fixture {
    _directory: tempfile::TempDir,
    clock: Arc<ManualClock>,
    indices: Arc<Indices>,
    streams: DeliveryStreams,
    root: std::path::PathBuf,
}

fn fixture_with(transformer: Arc<dyn Transformer>) -> Fixture {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (indices, streams) = open(&root, &clock, transformer);
    Fixture {
        _directory: directory,
        clock,
        indices,
        streams,
        root,
    }
}

fn open(
    root: &Path,
    clock: &Arc<ManualClock>,
    transformer: Arc<dyn Transformer>,
) -> (Arc<Indices>, DeliveryStreams) {
    let log = Arc::new(
        Log::open(
            root.join("streams"),
            LogOptions {
                clock: clock.clone(),
                ..LogOptions::default()
            },
        )
        .unwrap(),
    );
    let indices = Arc::new(Indices::open(&root.join("indices")).unwrap());
    let mut options = DeliveryStreamsOptions::new(clock.clone(), transformer);
    options.start_workers = false;
    let streams = DeliveryStreams::open(root, log, indices.clone(), options).unwrap();
    (indices, streams)
}

fn search_config(
    name: &str,
    rotation: IndexRotation,
    retry_duration_s: u64,
) -> DeliveryStreamConfig {
    DeliveryStreamConfig {
        name: name.to_owned(),
        source: Source::DirectPut,
        buffering: BufferingHints::from_firehose(1, 60).unwrap(),
        processors: Vec::new(),
        destination: Destination::Search(SearchDestination {
            flavor: SearchFlavor::Elasticsearch,
            domain_arn: None,
            cluster_endpoint: None,
            role_arn: None,
            index_name: "example".to_owned(),
            type_name: None,
            rotation,
            document_id: DocumentIdOption::FirehoseDefault,
            retry_duration_s,
            backup_mode: BackupMode::FailedDocumentsOnly,
            backup: S3Location {
                bucket_arn: "arn:aws:s3:::backup".to_owned(),
                prefix: String::new(),
                error_output_prefix: None,
                role_arn: None,
                s3: None,
                encryption: None,
            },
        }),
        created_time_ms: 0,
    }
}

fn hello(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"message\": \"hello world {i}\"}}").into_bytes())
        .collect()
}

fn count(indices: &Indices, index: &str) -> u64 {
    let index = indices.get(index).unwrap();
    index.refresh().unwrap();
    index.count(&Query::MatchAll { boost: 1.0 }).unwrap()
}

fn files_under(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn rotation_names_follow_firehose() {
    let name = |rotation| rotated_index_name("myindex", rotation, T0_MS);
    assert_eq!(name(IndexRotation::NoRotation), "myindex");
    assert_eq!(name(IndexRotation::OneHour), "myindex-2016-02-25-13");
    assert_eq!(name(IndexRotation::OneDay), "myindex-2016-02-25");
    assert_eq!(name(IndexRotation::OneMonth), "myindex-2016-02");
    // The documented rule (weeks start on Sunday; week 1 holds January 1st) puts Thursday
    // 2016-02-25 in the week of Sunday 2016-02-21, the 9th week of 2016.
    assert_eq!(name(IndexRotation::OneWeek), "myindex-2016-w09");
}

#[test]
fn week_rule_edges() {
    // 2016-01-01 is a Friday: its week (Sun 2015-12-27 .. Sat 2016-01-02) is 2016's week 1.
    assert_eq!(week_of_year(datetime!(2015-12-27 0:00).date()), (2016, 1));
    assert_eq!(week_of_year(datetime!(2016-01-02 0:00).date()), (2016, 1));
    assert_eq!(week_of_year(datetime!(2016-01-03 0:00).date()), (2016, 2));
    // 2017-01-01 is a Sunday: 2016-12-31 (Saturday) stays in 2016's last week, 53.
    assert_eq!(week_of_year(datetime!(2016-12-31 0:00).date()), (2016, 53));
    assert_eq!(week_of_year(datetime!(2017-01-01 0:00).date()), (2017, 1));
    // Firehose's own example of the format, 2020-w33: the week of Sun 2020-08-09.
    assert_eq!(week_of_year(datetime!(2020-08-09 0:00).date()), (2020, 33));
    assert_eq!(week_of_year(datetime!(2020-08-15 0:00).date()), (2020, 33));
    let hour_ms = |t: time::OffsetDateTime| u64::try_from(t.unix_timestamp()).unwrap() * 1000;
    assert_eq!(
        rotated_index_name(
            "x",
            IndexRotation::OneWeek,
            hour_ms(datetime!(2015-12-31 23:00 UTC))
        ),
        "x-2016-w01"
    );
}

#[test]
fn document_ids_come_from_log_positions() {
    let id = document_id(SequenceNumber::from_shard_offset(0, 7));
    assert_eq!(id.len(), 56);
    assert!(id.ends_with('7'));
    assert_ne!(id, document_id(SequenceNumber::from_shard_offset(1, 7)));
}

#[test]
fn buffer_flushes_on_interval_with_the_manual_clock() {
    let f = fixture_with(Arc::new(NoFunctions));
    let stream = f
        .streams
        .create(search_config("hello", IndexRotation::OneHour, 60))
        .unwrap();
    let outcomes = stream.put_records(&hello(499)).unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    let pause = AdvanceClock(f.clock.clone());
    let outcome = stream.pump(&pause).unwrap();
    assert_eq!(outcome.flushed_records, 0);
    assert_eq!(outcome.buffered_records, 499);
    assert!(!f.indices.exists("example-2016-02-25-13"));
    f.clock.advance_ms(59_999);
    assert_eq!(stream.pump(&pause).unwrap().flushed_records, 0);
    f.clock.advance_ms(1);
    assert_eq!(stream.pump(&pause).unwrap().flushed_records, 499);
    assert_eq!(count(&f.indices, "example-2016-02-25-13"), 499);
    let metrics = stream.metrics().snapshot();
    assert_eq!(metrics.incoming_records, 499);
    assert_eq!(metrics.delivery_records, 499);
    assert_eq!(metrics.data_freshness_s, 60);
}

#[test]
fn buffer_flushes_on_size_before_the_interval() {
    let f = fixture_with(Arc::new(NoFunctions));
    let stream = f
        .streams
        .create(search_config("big", IndexRotation::NoRotation, 60))
        .unwrap();
    // 1 MiB hint: three puts of 400 KiB records reach it without any time passing.
    let record = format!("{{\"blob\": \"{}\"}}", "x".repeat(400 * 1024)).into_bytes();
    for _ in 0..3 {
        stream.put_records(std::slice::from_ref(&record)).unwrap();
    }
    let outcome = stream.pump(&AdvanceClock(f.clock.clone())).unwrap();
    assert_eq!(outcome.flushed_records, 3);
    assert_eq!(count(&f.indices, "example"), 3);
}

#[test]
fn rotation_uses_each_record_arrival_time() {
    let f = fixture_with(Arc::new(NoFunctions));
    let stream = f
        .streams
        .create(search_config("rotate", IndexRotation::OneHour, 60))
        .unwrap();
    stream.put_records(&hello(2)).unwrap();
    f.clock.advance_ms(3_600_000);
    stream.put_records(&hello(3)).unwrap();
    stream.pump(&AdvanceClock(f.clock.clone())).unwrap();
    assert_eq!(count(&f.indices, "example-2016-02-25-13"), 2);
    assert_eq!(count(&f.indices, "example-2016-02-25-14"), 3);
}

#[test]
fn checkpoint_moves_only_after_the_destination_acknowledged() {
    let f = fixture_with(Arc::new(NoFunctions));
    let mut config = search_config("crashy", IndexRotation::NoRotation, 60);
    config.buffering.interval_ms = 0;
    let stream = f.streams.create(config).unwrap();
    let mut records = hello(5);
    records.push(b"not json".to_vec());
    stream.put_records(&records).unwrap();
    // The bad record keeps failing; the worker is stopped during the retries.
    let error = stream.pump(&StopAtOnce).unwrap_err();
    assert!(matches!(error, DeliveryError::Stopping(_)));
    assert_eq!(
        stream
            .source_stream()
            .read_checkpoint("delivery.crashy", 0)
            .unwrap(),
        None
    );
    assert_eq!(count(&f.indices, "example"), 5);
    // A restart redelivers the whole batch: the good records again, under the same ids.
    let root = f.root.clone();
    f.streams.shutdown();
    drop(stream);
    drop(f.streams);
    f.indices.close_all();
    drop(f.indices);
    let (indices, streams) = open(&root, &f.clock, Arc::new(NoFunctions));
    let stream = streams.get("crashy").unwrap();
    stream.pump(&AdvanceClock(f.clock.clone())).unwrap();
    assert_eq!(count(&indices, "example"), 5);
    assert!(
        stream
            .source_stream()
            .read_checkpoint("delivery.crashy", 0)
            .unwrap()
            .is_some()
    );
    // Nothing left to deliver: another pump changes nothing.
    assert_eq!(
        stream
            .pump(&AdvanceClock(f.clock.clone()))
            .unwrap()
            .flushed_records,
        0
    );
}

#[test]
fn failed_documents_after_the_retry_duration_go_to_elasticsearch_failed() {
    let f = fixture_with(Arc::new(NoFunctions));
    let mut config = search_config("failing", IndexRotation::NoRotation, 60);
    config.buffering.interval_ms = 0;
    let stream = f.streams.create(config).unwrap();
    stream
        .put_records(&[b"{\"ok\": 1}".to_vec(), b"not json".to_vec()])
        .unwrap();
    stream.pump(&AdvanceClock(f.clock.clone())).unwrap();
    assert!(
        f.clock.now_ms() >= T0_MS + 60_000,
        "retried until the duration passed"
    );
    let failed = files_under(&f.root.join("s3/backup/elasticsearch_failed"));
    assert_eq!(failed.len(), 1, "{failed:?}");
    let key = failed[0]
        .strip_prefix(f.root.join("s3/backup"))
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        key.starts_with("elasticsearch_failed/2016/02/25/13/failing-1-2016-02-25-13-"),
        "{key}"
    );
    let text = std::fs::read_to_string(&failed[0]).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let line = lines[0].as_object().unwrap();
    let keys: Vec<&str> = line.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "attemptsMade",
            "arrivalTimestamp",
            "errorCode",
            "errorMessage",
            "attemptEndingTimestamp",
            "esDocumentId",
            "esIndexName",
            "esTypeName",
            "rawData"
        ]
    );
    assert_eq!(line["errorCode"], "400");
    assert_eq!(line["esIndexName"], "example");
    assert_eq!(line["arrivalTimestamp"], T0_MS);
    assert!(line["attemptsMade"].as_u64().unwrap() > 1);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(line["rawData"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, b"not json");
    assert_eq!(count(&f.indices, "example"), 1);
    let metrics = stream.metrics().snapshot();
    assert_eq!(metrics.failed_documents, 1);
    assert_eq!(metrics.delivery_records, 1);
}

#[test]
fn processors_keep_ok_drop_dropped_and_back_up_processing_failed() {
    let function = Arc::new(FakeFunction::default());
    let f = fixture_with(function.clone());
    let mut config = search_config("processed", IndexRotation::NoRotation, 0);
    config.buffering.interval_ms = 0;
    config.processors.push(LambdaProcessor {
        lambda_arn: "arn:aws:lambda:us-east-1:000000000000:function:fake".to_owned(),
        number_of_retries: 0,
        buffer_size_bytes: limits::PROCESSOR_BUFFER_BYTES_DEFAULT,
        buffer_interval_s: 60,
    });
    let stream = f.streams.create(config).unwrap();
    let outcomes = stream
        .put_records(&[
            b"{\"message\": \"hello\"}".to_vec(),
            b"{\"message\": \"drop me\"}".to_vec(),
            b"{\"message\": \"fail me\"}".to_vec(),
        ])
        .unwrap();
    stream.pump(&AdvanceClock(f.clock.clone())).unwrap();
    let ids: Vec<String> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(*function.seen_record_ids.lock().unwrap(), ids);
    let index = f.indices.get("example").unwrap();
    index.refresh().unwrap();
    assert_eq!(index.count(&Query::MatchAll { boost: 1.0 }).unwrap(), 1);
    let stored = index.get(&ids[0]).unwrap().unwrap();
    assert_eq!(
        stored.source.as_deref(),
        Some(&b"{\"message\": \"bye\"}"[..])
    );
    let failed = files_under(&f.root.join("s3/backup/processing-failed"));
    assert_eq!(failed.len(), 1);
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&failed[0]).unwrap().trim()).unwrap();
    assert_eq!(line["errorCode"], "Lambda.ProcessingFailed");
    assert_eq!(
        line["lambdaArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:fake"
    );
    let metrics = stream.metrics().snapshot();
    assert_eq!(metrics.dropped_records, 1);
    assert_eq!(metrics.processing_failed_records, 1);
}

/// Fails every call while `failing` is set, as a function that cannot start does; otherwise
/// answers every record Ok and unchanged.
#[derive(Debug, Default)]
struct BrokenFunction {
    failing: std::sync::atomic::AtomicBool,
}

impl Transformer for BrokenFunction {
    fn transform(
        &self,
        _delivery_stream_arn: &str,
        _lambda_arn: &str,
        number_of_retries: u32,
        records: &[TransformInput],
    ) -> Result<Vec<TransformOutput>, TransformFailure> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TransformFailure {
                error_code: "Lambda.FunctionError".to_owned(),
                error_message: "function bye could not start `python3 -m awslambdaric missing.handler`: it exited with status 1 before asking for its first event; stderr: No module named awslambdaric".to_owned(),
                attempts: number_of_retries + 1,
            });
        }
        Ok(records
            .iter()
            .map(|record| TransformOutput {
                record_id: record.record_id.clone(),
                result: TransformResult::Ok,
                data: record.data.clone(),
            })
            .collect())
    }
}

#[test]
fn a_failing_function_is_described_counted_and_cleared_by_its_next_success() {
    let function = Arc::new(BrokenFunction::default());
    function
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let f = fixture_with(function.clone());
    let mut config = search_config("broken", IndexRotation::NoRotation, 0);
    config.buffering.interval_ms = 0;
    let lambda_arn = "arn:aws:lambda:us-east-1:000000000000:function:bye";
    config.processors.push(LambdaProcessor {
        lambda_arn: lambda_arn.to_owned(),
        number_of_retries: 3,
        buffer_size_bytes: limits::PROCESSOR_BUFFER_BYTES_DEFAULT,
        buffer_interval_s: 60,
    });
    let stream = f.streams.create(config).unwrap();
    assert!(stream.processing_failures().is_empty());

    // Two batches fail: both are described as one burst, and their records are backed up.
    let pause = AdvanceClock(f.clock.clone());
    for batch in 0..2u64 {
        f.clock.advance_ms(1000);
        let outcomes = stream.put_records(&hello(3)).unwrap();
        assert!(outcomes.iter().all(Result::is_ok), "puts are accepted");
        assert_eq!(stream.pump(&pause).unwrap().flushed_records, 3);
        let failures = stream.processing_failures();
        assert_eq!(failures.len(), 1);
        let failure = &failures[0];
        assert_eq!(failure.lambda_arn, lambda_arn);
        assert_eq!(failure.error_code, "Lambda.FunctionError");
        assert!(
            failure
                .error_message
                .contains("No module named awslambdaric")
        );
        assert_eq!(failure.failed_invocations, batch + 1);
        assert_eq!(failure.failed_records, 3 * (batch + 1));
        assert_eq!(failure.first_failed_ms, T0_MS + 1000);
        assert_eq!(failure.last_failed_ms, T0_MS + 1000 * (batch + 1));
    }
    let failed = files_under(&f.root.join("s3/backup/processing-failed"));
    assert_eq!(failed.len(), 2);
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&failed[0])
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["errorCode"], "Lambda.FunctionError");
    assert_eq!(line["attemptsMade"], 4);
    let metrics = stream.metrics().snapshot();
    assert_eq!(metrics.processing_failed_records, 6);
    assert_eq!(
        metrics.processing_failures,
        vec![("bye".to_owned(), "Lambda.FunctionError".to_owned(), 2)]
    );
    assert!(f.indices.get("example").is_err(), "nothing was delivered");

    // The function starts working: the next batch is delivered and the failure is cleared;
    // the counter keeps its history.
    function
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    stream.put_records(&hello(2)).unwrap();
    assert_eq!(stream.pump(&pause).unwrap().flushed_records, 2);
    assert!(stream.processing_failures().is_empty());
    assert_eq!(count(&f.indices, "example"), 2);
    assert_eq!(
        stream.metrics().snapshot().processing_failures,
        vec![("bye".to_owned(), "Lambda.FunctionError".to_owned(), 2)]
    );
}

#[test]
fn processing_failure_series_are_bounded() {
    let metrics = Metrics::default();
    for n in 0..limits::PROCESSING_FAILURE_SERIES_MAX + 10 {
        metrics.add_processing_failure(&format!("f{n}"), "Lambda.FunctionError");
    }
    let series = metrics.snapshot().processing_failures;
    assert_eq!(series.len(), limits::PROCESSING_FAILURE_SERIES_MAX + 1);
    assert!(series.contains(&(OTHER_SERIES.to_owned(), OTHER_SERIES.to_owned(), 10)));
}

#[test]
fn lambda_function_names_come_from_arns() {
    assert_eq!(
        lambda_function_name("arn:aws:lambda:us-east-1:000000000000:function:bye"),
        "bye"
    );
    assert_eq!(
        lambda_function_name("arn:aws:lambda:us-east-1:000000000000:function:bye:$LATEST"),
        "bye"
    );
    assert_eq!(lambda_function_name("bye"), "bye");
}

#[test]
fn catalog_survives_reopen_and_delete_removes_the_stream() {
    let f = fixture_with(Arc::new(NoFunctions));
    f.streams
        .create(search_config("kept", IndexRotation::OneDay, 10))
        .unwrap();
    assert!(matches!(
        f.streams
            .create(search_config("kept", IndexRotation::OneDay, 10)),
        Err(DeliveryError::AlreadyExists(_))
    ));
    let root = f.root.clone();
    drop(f.streams);
    f.indices.close_all();
    drop(f.indices);
    let (_indices, streams) = open(&root, &f.clock, Arc::new(NoFunctions));
    assert_eq!(streams.config("kept").unwrap().name, "kept");
    streams.delete("kept").unwrap();
    assert!(matches!(
        streams.get("kept"),
        Err(DeliveryError::NotFound(_))
    ));
    assert!(streams.configs().is_empty());
}

/// The issue's case of a worker that does not run: the Kinesis stream a delivery stream reads
/// was deleted while the node was down. The stream stays in the catalog, not running, and says
/// why until it is deleted.
#[test]
fn a_stream_that_cannot_resume_says_why_until_deleted() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let open_with_log = |create_orders: bool| {
        let log = Arc::new(
            Log::open(
                root.join("streams"),
                LogOptions {
                    clock: clock.clone(),
                    ..LogOptions::default()
                },
            )
            .unwrap(),
        );
        if create_orders {
            log.create_stream("orders", sluice_log::StreamConfig::new(1))
                .unwrap();
        }
        let indices = Arc::new(Indices::open(&root.join("indices")).unwrap());
        let mut options = DeliveryStreamsOptions::new(clock.clone(), Arc::new(NoFunctions));
        options.start_workers = false;
        (
            Arc::clone(&log),
            DeliveryStreams::open(&root, log, indices, options).unwrap(),
        )
    };
    let (log, streams) = open_with_log(true);
    streams
        .create(DeliveryStreamConfig {
            name: "archive".to_owned(),
            source: Source::KinesisStream {
                stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders".to_owned(),
                stream_name: "orders".to_owned(),
                role_arn: None,
            },
            buffering: BufferingHints::from_firehose(1, 0).unwrap(),
            processors: Vec::new(),
            destination: Destination::S3(S3Destination {
                location: S3Location {
                    bucket_arn: "arn:aws:s3:::archive".to_owned(),
                    prefix: String::new(),
                    error_output_prefix: None,
                    role_arn: None,
                    s3: None,
                    encryption: None,
                },
            }),
            created_time_ms: 0,
        })
        .unwrap();
    assert_eq!(streams.start_failure("archive"), None, "it runs");
    drop(streams);
    log.delete_stream("orders").unwrap();
    drop(log);

    clock.advance_ms(60_000);
    let (_log, streams) = open_with_log(false);
    let failure = streams.start_failure("archive").expect("a start failure");
    assert_eq!(failure.phase, StartPhase::Resume);
    assert_eq!(failure.failed_ms, T0_MS + 60_000);
    assert!(failure.reason.contains("orders"), "{}", failure.reason);
    assert!(matches!(
        streams.get("archive"),
        Err(DeliveryError::NotFound(_))
    ));
    assert_eq!(streams.config("archive").unwrap().name, "archive");

    streams.delete("archive").unwrap();
    assert_eq!(streams.start_failure("archive"), None);
    assert!(streams.configs().is_empty());
}

#[test]
fn puts_over_the_limits_are_refused_whole() {
    let f = fixture_with(Arc::new(NoFunctions));
    let stream = f
        .streams
        .create(search_config("limits", IndexRotation::NoRotation, 0))
        .unwrap();
    assert!(matches!(
        stream.put_records(&hello(501)),
        Err(DeliveryError::LimitExceeded(_))
    ));
    assert!(matches!(
        stream.put_records(&[vec![b'x'; limits::RECORD_BYTES_MAX + 1]]),
        Err(DeliveryError::LimitExceeded(_))
    ));
}

#[test]
fn kinesis_source_is_read_from_latest_and_s3_destination_gets_objects() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let log = Arc::new(
        Log::open(
            root.join("streams"),
            LogOptions {
                clock: clock.clone(),
                ..LogOptions::default()
            },
        )
        .unwrap(),
    );
    let orders = log
        .create_stream("orders", sluice_log::StreamConfig::new(2))
        .unwrap();
    orders
        .append(&sluice_log::AppendRecord::new("a", b"before".to_vec()))
        .unwrap();
    let indices = Arc::new(Indices::open(&root.join("indices")).unwrap());
    let mut options = DeliveryStreamsOptions::new(clock.clone(), Arc::new(NoFunctions));
    options.start_workers = false;
    let streams = DeliveryStreams::open(&root, log, indices, options).unwrap();
    let location = S3Location {
        bucket_arn: "arn:aws:s3:::archive".to_owned(),
        prefix: "orders/".to_owned(),
        error_output_prefix: None,
        role_arn: None,
        s3: None,
        encryption: None,
    };
    let stream = streams
        .create(DeliveryStreamConfig {
            name: "archive".to_owned(),
            source: Source::KinesisStream {
                stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders".to_owned(),
                stream_name: "orders".to_owned(),
                role_arn: None,
            },
            buffering: BufferingHints::from_firehose(1, 0).unwrap(),
            processors: Vec::new(),
            destination: Destination::S3(S3Destination { location }),
            created_time_ms: 0,
        })
        .unwrap();
    assert!(
        stream.put_records(&hello(1)).is_err(),
        "no PutRecord on a Kinesis source"
    );
    for key in ["a", "b", "c"] {
        orders
            .append(&sluice_log::AppendRecord::new(
                key,
                format!("{key};").into_bytes(),
            ))
            .unwrap();
    }
    let outcome = stream.pump(&AdvanceClock(clock.clone())).unwrap();
    assert_eq!(
        outcome.flushed_records, 3,
        "the record from before the create is skipped"
    );
    let objects = files_under(&root.join("s3/archive/orders/2016/02/25/13"));
    assert_eq!(objects.len(), 1);
    let mut parts: Vec<String> = std::fs::read_to_string(&objects[0])
        .unwrap()
        .split_terminator(';')
        .map(str::to_owned)
        .collect();
    parts.sort();
    assert_eq!(parts, ["a", "b", "c"]);
    assert_eq!(stream.metrics().snapshot().incoming_records, 3);
}

#[test]
fn puts_are_throttled_past_the_backlog_limit_until_delivery_catches_up() {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let log = Arc::new(
        Log::open(
            root.join("streams"),
            LogOptions {
                clock: clock.clone(),
                ..LogOptions::default()
            },
        )
        .unwrap(),
    );
    let indices = Arc::new(Indices::open(&root.join("indices")).unwrap());
    let mut options = DeliveryStreamsOptions::new(clock.clone(), Arc::new(NoFunctions));
    options.start_workers = false;
    options.backlog_records_max = 10;
    let streams = DeliveryStreams::open(&root, log, indices, options).unwrap();
    let stream = streams
        .create(search_config("slow", IndexRotation::NoRotation, 0))
        .unwrap();
    stream.put_records(&hello(10)).unwrap();
    assert!(matches!(
        stream.put_records(&hello(1)),
        Err(DeliveryError::Throttled(_))
    ));
    assert_eq!(stream.metrics().snapshot().throttled_records, 1);
    clock.advance_ms(60_000);
    assert_eq!(
        stream
            .pump(&AdvanceClock(clock.clone()))
            .unwrap()
            .flushed_records,
        10
    );
    stream.put_records(&hello(10)).unwrap();
}

#[test]
fn a_failed_object_write_keeps_the_batch_is_described_and_is_retried() {
    let fixture = fixture_with(Arc::new(NoFunctions));
    let stream = fixture
        .streams
        .create(DeliveryStreamConfig {
            name: "archive".to_owned(),
            source: Source::DirectPut,
            buffering: BufferingHints::from_firehose(1, 0).unwrap(),
            processors: Vec::new(),
            destination: Destination::S3(S3Destination {
                location: S3Location {
                    bucket_arn: "arn:aws:s3:::archive".to_owned(),
                    prefix: "p/".to_owned(),
                    error_output_prefix: None,
                    role_arn: None,
                    s3: None,
                    encryption: None,
                },
            }),
            created_time_ms: 0,
        })
        .unwrap();
    // The bucket's folder cannot be made: a file stands where it goes.
    std::fs::create_dir_all(fixture.root.join("s3")).unwrap();
    std::fs::write(fixture.root.join("s3/archive"), b"in the way").unwrap();
    stream.put_records(&hello(3)).unwrap();
    let pause = AdvanceClock(fixture.clock.clone());
    assert!(matches!(
        stream.pump(&pause),
        Err(DeliveryError::Objects(_))
    ));
    assert!(stream.pump(&pause).is_err());
    let failure = stream.delivery_failure().unwrap();
    assert_eq!(failure.failed_attempts, 2);
    assert!(failure.error_message.contains("archive"), "{failure:?}");
    assert_eq!(stream.metrics().snapshot().delivery_failures, 2);
    assert_eq!(stream.metrics().snapshot().delivery_records, 0);

    // Once the write works, the same records are delivered, and the failure is cleared.
    std::fs::remove_file(fixture.root.join("s3/archive")).unwrap();
    assert_eq!(stream.pump(&pause).unwrap().flushed_records, 3);
    assert_eq!(stream.delivery_failure(), None);
    let objects = files_under(&fixture.root.join("s3/archive/p"));
    assert_eq!(objects.len(), 1);
    assert_eq!(std::fs::read(&objects[0]).unwrap(), hello(3).concat());
    assert_eq!(stream.pump(&pause).unwrap().flushed_records, 0);
}

/// A cluster that answers each bulk request with the status its documents ask for:
/// `"answer": 400` always, `"answer": 429` the first time it sees the document's id; others
/// 201. It keeps every request's NDJSON lines.
fn start_fake_cluster() -> (String, Arc<Mutex<Vec<Vec<Value>>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut rejected_once = std::collections::BTreeSet::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end;
                }
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0);
                buffer.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            let mut body = buffer[head_end + 4..].to_vec();
            while body.len() < length {
                let n = stream.read(&mut chunk).unwrap();
                body.extend_from_slice(&chunk[..n]);
            }
            let lines: Vec<Value> = body
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| serde_json::from_slice(line).unwrap())
                .collect();
            let mut items = Vec::new();
            for pair in lines.chunks(2) {
                let id = pair[0]["index"]["_id"].as_str().unwrap().to_owned();
                let status = match pair[1]["answer"].as_u64() {
                    Some(400) => 400,
                    Some(429) if rejected_once.insert(id.clone()) => 429,
                    _ => 201,
                };
                let mut item = serde_json::json!({"_index": pair[0]["index"]["_index"], "_id": id, "status": status});
                if status >= 400 {
                    item["error"] = serde_json::json!({"type": if status == 400 {"document_parsing_exception"} else {"es_rejected_execution_exception"}, "reason": "said so"});
                }
                items.push(serde_json::json!({"index": item}));
            }
            seen.lock().unwrap().push(lines);
            let answer = serde_json::json!({"took": 1, "errors": true, "items": items}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, requests)
}

#[test]
fn an_external_cluster_gets_the_same_ids_and_only_failed_items_are_retried() {
    let f = fixture_with(Arc::new(NoFunctions));
    let (url, requests) = start_fake_cluster();
    let mut config = search_config("external", IndexRotation::OneDay, 60);
    config.buffering.interval_ms = 0;
    if let Destination::Search(search) = &mut config.destination {
        search.cluster_endpoint = Some(url);
    }
    let stream = f.streams.create(config).unwrap();
    let ids: Vec<String> = stream
        .put_records(&[
            br#"{"answer": 201}"#.to_vec(),
            br#"{"answer": 400}"#.to_vec(),
            br#"{"answer": 429}"#.to_vec(),
        ])
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stream
            .pump(&AdvanceClock(f.clock.clone()))
            .unwrap()
            .flushed_records,
        3
    );

    let requests = requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        2,
        "one attempt, then one retry: {requests:?}"
    );
    let action_ids = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .step_by(2)
            .map(|line| line["index"]["_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(action_ids(&requests[0]), ids, "ids are the log positions");
    assert_eq!(
        requests[0][0]["index"]["_index"], "example-2016-02-25",
        "rotated"
    );
    assert_eq!(
        action_ids(&requests[1]),
        vec![ids[2].clone()],
        "only the rejected item is sent again; the refused one is not"
    );
    assert!(
        f.clock.now_ms() < T0_MS + 60_000,
        "nothing waited for the retry duration"
    );

    let failed = files_under(&f.root.join("s3/backup/elasticsearch_failed"));
    assert_eq!(failed.len(), 1);
    let text = std::fs::read_to_string(&failed[0]).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["esDocumentId"], ids[1]);
    assert_eq!(lines[0]["errorCode"], "400");
    assert_eq!(lines[0]["attemptsMade"], 1);
    assert!(
        lines[0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("document_parsing_exception")
    );
    let metrics = stream.metrics().snapshot();
    assert_eq!(metrics.delivery_records, 2);
    assert_eq!(metrics.failed_documents, 1);
    assert!(
        f.indices.get("example-2016-02-25").is_err(),
        "nothing went into Sluice's own index"
    );
}

#[test]
fn a_domain_arn_is_sluice_s_own_index_only_in_sluice_s_account() {
    let f = fixture_with(Arc::new(NoFunctions));
    let mut config = search_config("own", IndexRotation::NoRotation, 60);
    if let Destination::Search(search) = &mut config.destination {
        search.domain_arn = Some("arn:aws:es:us-east-1:000000000000:domain/sluice".to_owned());
    }
    let stream = f.streams.create(config.clone()).unwrap();
    assert!(matches!(
        &stream.config().destination,
        Destination::Search(SearchDestination {
            cluster_endpoint: None,
            ..
        })
    ));
    config.name = "elsewhere".to_owned();
    if let Destination::Search(search) = &mut config.destination {
        search.domain_arn = Some("arn:aws:es:eu-west-1:123456789012:domain/logs".to_owned());
    }
    let refused = f.streams.create(config).unwrap_err().to_string();
    assert!(refused.contains("search_clusters"), "{refused}");
}
