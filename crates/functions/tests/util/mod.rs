//! Helpers shared by the integration tests: Firehose events and handler scripts in temp dirs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sluice_functions::{FirehoseEventRecord, FirehoseTransformationEvent};

/// A Firehose event whose records carry `datas`, with ids `r0`, `r1`, …
pub fn event(datas: &[&str]) -> FirehoseTransformationEvent {
    FirehoseTransformationEvent {
        invocation_id: "00540a87-5050-496a-84e4-e7d92bbaf5e2".into(),
        delivery_stream_arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/test".into(),
        region: "us-east-1".into(),
        records: datas
            .iter()
            .enumerate()
            .map(|(index, data)| FirehoseEventRecord {
                record_id: format!("r{index}"),
                approximate_arrival_timestamp: 1_700_000_000_000 + i64::try_from(index).unwrap(),
                data: data.as_bytes().to_vec(),
            })
            .collect(),
    }
}

/// Writes `text` to `dir/name` and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `["sh", "-c", script]`.
pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Lines of a file, empty when it does not exist.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
