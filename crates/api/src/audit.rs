//! The audit log: authentication failures, permission denials and privileged actions (changes
//! of users, roles, mappings and keys; deletes of indices, streams, tables, ledgers and
//! functions) as JSON lines in `DATA_DIR/security/audit.log`, and counted at `/metrics`.
//!
//! Requests only queue their events ([`AUDIT_QUEUE_MAX`] of them; beyond, an event is dropped
//! and counted as dropped, so a flood of bad requests cannot hold up the good ones); one thread
//! appends them, fsyncing after each batch it drains. At [`AUDIT_FILE_BYTES_MAX`] the file
//! becomes `audit.log.1` (replacing the previous one) and a new one starts. One line:
//! `{"@timestamp":"2026-12-02T13:40:00.000Z","category":"permission_denied","port":"search",
//! "principal":"bob","action":"indices:data/read/search","resource":"secrets","status":403,
//! "reason":"…"}`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use serde::Serialize;

use crate::identities::IDENTITIES_DIR;

/// Events queued for the writer at most; more are dropped (and counted).
pub const AUDIT_QUEUE_MAX: usize = 10_000;
/// Size at which the file is rotated.
pub const AUDIT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Longest reason or resource kept in an event; longer ones are cut.
const FIELD_CHARS_MAX: usize = 1024;
const AUDIT_FILE: &str = "audit.log";

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    AuthenticationFailure,
    PermissionDenied,
    PrivilegedAction,
}

impl Category {
    const ALL: [Category; 3] = [
        Category::AuthenticationFailure,
        Category::PermissionDenied,
        Category::PrivilegedAction,
    ];

    fn name(self) -> &'static str {
        match self {
            Category::AuthenticationFailure => "authentication_failure",
            Category::PermissionDenied => "permission_denied",
            Category::PrivilegedAction => "privileged_action",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// One audited event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub category: Category,
    /// `search`, `aws` or `dashboard`.
    pub port: &'static str,
    /// Who: the user, access key or API key owner; `None` when authentication failed before a
    /// name was known.
    pub principal: Option<String>,
    /// What: an action name (`indices:admin/delete`, `kinesis:DeleteStream`) or a method and
    /// path.
    pub action: String,
    /// On what: an index expression, an ARN, a path.
    pub resource: String,
    pub status: u16,
    pub reason: String,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

fn cut(text: &mut String) {
    if text.chars().count() > FIELD_CHARS_MAX {
        *text = text.chars().take(FIELD_CHARS_MAX).collect::<String>() + "…";
    }
}

/// The log of a data directory (or, without one, only its counters).
#[derive(Debug)]
pub struct AuditLog {
    sender: Option<SyncSender<(u64, AuditEvent)>>,
    counts: [AtomicU64; 3],
    dropped: Arc<AtomicU64>,
    clock: Arc<dyn sluice_log::Clock>,
}

impl AuditLog {
    /// Counts events without writing them anywhere (tests, nodes without a data directory).
    pub fn counting_only(clock: Arc<dyn sluice_log::Clock>) -> AuditLog {
        AuditLog {
            sender: None,
            counts: Default::default(),
            dropped: Arc::new(AtomicU64::new(0)),
            clock,
        }
    }

    /// Appends to `DATA_DIR/security/audit.log` from a thread of its own.
    pub fn open(data_dir: &Path, clock: Arc<dyn sluice_log::Clock>) -> std::io::Result<AuditLog> {
        let directory = data_dir.join(IDENTITIES_DIR);
        std::fs::create_dir_all(&directory)?;
        let path = directory.join(AUDIT_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let (sender, receiver) = sync_channel(AUDIT_QUEUE_MAX);
        let dropped = Arc::new(AtomicU64::new(0));
        let failed = dropped.clone();
        std::thread::Builder::new()
            .name("sluice-audit".to_owned())
            .spawn(move || write_events(&path, file, &receiver, &failed))?;
        Ok(AuditLog {
            sender: Some(sender),
            counts: Default::default(),
            dropped,
            clock,
        })
    }

    /// Records `event` (never blocks: a full queue drops it and counts the drop).
    pub fn record(&self, mut event: AuditEvent) {
        if let Some(count) = self.counts.get(event.category.slot()) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let Some(sender) = &self.sender else {
            return;
        };
        cut(&mut event.reason);
        cut(&mut event.resource);
        cut(&mut event.action);
        match sender.try_send((self.clock.now_ms(), event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters in Prometheus text format.
    pub fn prometheus_text(&self) -> String {
        let mut text = String::from(
            "# HELP sluice_audit_events_total Audited events by category.\n# TYPE sluice_audit_events_total counter\n",
        );
        for category in Category::ALL {
            let count = self
                .counts
                .get(category.slot())
                .map_or(0, |count| count.load(Ordering::Relaxed));
            text.push_str(&format!(
                "sluice_audit_events_total{{category=\"{}\"}} {count}\n",
                category.name()
            ));
        }
        text.push_str(&format!(
            "# HELP sluice_audit_events_dropped_total Audited events not written: the queue was full or the file failed.\n# TYPE sluice_audit_events_dropped_total counter\nsluice_audit_events_dropped_total {}\n",
            self.dropped.load(Ordering::Relaxed)
        ));
        text
    }
}

fn iso(ms: u64) -> String {
    sluice_search::date::format_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The writer thread: drains the queue, appends each batch and fsyncs it, rotating the file at
/// [`AUDIT_FILE_BYTES_MAX`]. A write that fails counts its events as dropped and is tried again
/// with the next batch on a reopened file.
fn write_events(
    path: &PathBuf,
    file: std::fs::File,
    receiver: &Receiver<(u64, AuditEvent)>,
    dropped: &AtomicU64,
) {
    let mut file = Some(file);
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while let Ok(next) = receiver.try_recv() {
            batch.push(next);
        }
        let mut text = Vec::new();
        for (at_ms, event) in &batch {
            let line = Line {
                timestamp: iso(*at_ms),
                event,
            };
            if serde_json::to_writer(&mut text, &line).is_ok() {
                text.push(b'\n');
            }
        }
        let written = (|| -> std::io::Result<()> {
            if file.is_none() {
                file = Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?,
                );
            }
            let Some(open) = file.as_mut() else {
                return Ok(());
            };
            open.write_all(&text)?;
            open.sync_data()?;
            if open.metadata()?.len() >= AUDIT_FILE_BYTES_MAX {
                std::fs::rename(path, path.with_extension("log.1"))?;
                file = None;
            }
            Ok(())
        })();
        if let Err(error) = written {
            tracing::warn!(%error, path = %path.display(), "writing the audit log failed");
            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(category: Category) -> AuditEvent {
        AuditEvent {
            category,
            port: "search",
            principal: Some("bob".into()),
            action: "indices:admin/delete".into(),
            resource: "x".repeat(5000),
            status: 403,
            reason: "no".into(),
        }
    }

    #[test]
    fn events_are_written_as_json_lines_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), Arc::new(sluice_log::SystemClock)).unwrap();
        log.record(event(Category::PermissionDenied));
        log.record(event(Category::PrivilegedAction));
        let path = dir.path().join(IDENTITIES_DIR).join(AUDIT_FILE);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            if lines.len() == 2 || std::time::Instant::now() > deadline {
                break lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["category"], "permission_denied");
        assert_eq!(lines[0]["principal"], "bob");
        assert!(lines[0]["@timestamp"].as_str().unwrap().ends_with('Z'));
        // Long fields are cut.
        assert!(lines[0]["resource"].as_str().unwrap().chars().count() <= FIELD_CHARS_MAX + 1);
        let text = log.prometheus_text();
        assert!(text.contains("sluice_audit_events_total{category=\"permission_denied\"} 1"));
        assert!(text.contains("sluice_audit_events_total{category=\"privileged_action\"} 1"));
        assert!(text.contains("sluice_audit_events_dropped_total 0"));
    }
}
