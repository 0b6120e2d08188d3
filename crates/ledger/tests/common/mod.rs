//! Shared helpers of the ledger's integration tests: a temp data dir, a manual clock, Ion parsing,
//! and a reader of the journal's frames that knows only their byte layout.
#![allow(dead_code)]

use std::sync::Arc;

use ion_rs::Element;
use sluice_ledger::{Ledger, Ledgers, Limits, ManualClock};
use time::macros::datetime;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub ledgers: Ledgers,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2024-01-02 03:04:05.678 UTC)));
        let ledgers = Ledgers::open_dir(dir.path().join("ledgers"), clock.clone(), limits).unwrap();
        Fixture {
            dir,
            clock,
            ledgers,
        }
    }

    pub fn ledger(&self, name: &str) -> Arc<Ledger> {
        self.ledgers.create_ledger(name, true).unwrap()
    }

    /// Reopens the data dir as after a restart.
    pub fn reopen(&mut self) {
        self.ledgers = Ledgers::open_dir(
            self.dir.path().join("ledgers"),
            self.clock.clone(),
            Limits::default(),
        )
        .unwrap();
    }
}

pub fn ion(text: &str) -> Element {
    Element::read_one(text).unwrap()
}

pub fn ion_all(text: &str) -> Vec<Element> {
    Element::read_all(text).unwrap().into_iter().collect()
}

/// Runs a statement in its own transaction.
pub fn run(ledger: &Arc<Ledger>, sql: &str) -> Vec<Element> {
    ledger
        .execute(sql, &[])
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Asserts two bags of Ion values are equal, ignoring order.
pub fn assert_bag_eq(actual: &[Element], expected_text: &str) {
    let expected = ion_all(expected_text);
    let mut remaining: Vec<Element> = expected.clone();
    for value in actual {
        let position = remaining.iter().position(|candidate| candidate == value);
        match position {
            Some(position) => {
                remaining.remove(position);
            }
            None => panic!("unexpected {value} in {actual:?}, expected {expected:?}"),
        }
    }
    assert!(remaining.is_empty(), "missing {remaining:?} in {actual:?}");
}

pub fn document_id(result: &[Element]) -> String {
    result[0]
        .as_struct()
        .unwrap()
        .get("documentId")
        .unwrap()
        .as_text()
        .unwrap()
        .to_owned()
}

/// Ion binary of `depth` nested lists around the int 1, built from the inside out without
/// recursion (ion-rs would need a deep stack to encode it).
pub fn nested_binary_lists(depth: usize) -> Vec<u8> {
    let mut value = vec![0x21, 0x01];
    for _ in 0..depth {
        let mut wrapped = if value.len() < 14 {
            vec![0xB0 | value.len() as u8]
        } else {
            let mut groups = Vec::new();
            let mut length = value.len();
            loop {
                groups.push((length & 0x7F) as u8);
                length >>= 7;
                if length == 0 {
                    break;
                }
            }
            groups.reverse();
            if let Some(last) = groups.last_mut() {
                *last |= 0x80;
            }
            let mut header = vec![0xBE];
            header.extend(groups);
            header
        };
        wrapped.extend_from_slice(&value);
        value = wrapped;
    }
    let mut stream = vec![0xE0, 0x01, 0x00, 0xEA];
    stream.extend(value);
    stream
}

/// One frame of a journal: its offset, its length and its block's bytes.
pub type Frame = (usize, usize, Vec<u8>);

/// The bytes and frames of a closed ledger's journal: frames from the header on until a zero
/// frame header (the pre-allocated tail) or the end, each block as its frame stores it after
/// decoding (LZ4 in a version 4 journal).
pub fn journal_frames(path: &std::path::Path) -> (Vec<u8>, Vec<Frame>) {
    let bytes = std::fs::read(path).unwrap();
    let journal = sluice_ledger::journal_file::JournalFile::open(path, None).unwrap();
    let mut frames = Vec::new();
    journal
        .scan(journal.header_bytes(), 0, |frame| {
            frames.push((
                frame.position.offset as usize,
                frame.position.length as usize,
                frame.block_bytes.to_vec(),
            ));
            Ok(true)
        })
        .unwrap();
    (bytes, frames)
}

/// Where a journal's frames end, after checking that only zeros follow them.
pub fn journal_frames_end(path: &std::path::Path) -> u64 {
    let (bytes, frames) = journal_frames(path);
    let end = frames.last().map_or(
        sluice_ledger::journal_file::HEADER_BYTES as usize,
        |(offset, length, _)| offset + length,
    );
    assert!(
        bytes[end..].iter().all(|byte| *byte == 0),
        "{}: bytes other than zeros after the last frame",
        path.display()
    );
    end as u64
}
