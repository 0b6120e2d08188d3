//! The commit pipeline: group commit across concurrent transactions, and the background
//! checkpoints of the derived state.
//!
//! A committing transaction joins a queue with where its outcome goes ([`CommitDelivery`]): a
//! channel its own thread waits on ([`Transaction::commit`]), or, for an async server, a oneshot
//! its task awaits without holding a thread ([`Transaction::submit_commit_with_digest`]).
//! Whoever finds no leader becomes it ([`Ledger::lead_commits`]) and takes the queue as one
//! group: inside one redb write transaction it validates each member's read set
//! against the state that already includes the members before it, builds its block and applies
//! it to the derived state. It appends every block of the group to the journal with one write
//! and hands the fsync to the ledger's [`JournalSyncer`] thread (the two poll for each other
//! briefly before parking, see [`SYNC_HAND_OFF_POLL`], and the leader runs the fsync itself if
//! the thread has not taken it by the time the leader would wait); while the disk works it applies
//! the last member's block and commits the redb transaction, without fsync. Readers do not see
//! that commit yet: they read the ledger's published snapshot, which the leader replaces only
//! once the fsync succeeded, so nothing a reader sees can be lost by a crash. Members are
//! acknowledged after that, so their writes are visible to every later transaction. A failed
//! journal write or fsync poisons the ledger until it is reopened, and recovery decides from the
//! journal what was committed.
//!
//! redb makes its state durable only in a checkpoint (a durable redb commit, run by
//! [`Checkpointer`] every [`CHECKPOINT_INTERVAL`] or after [`CHECKPOINT_JOURNAL_BYTES`] of
//! journal) or a settings change, and both hold the tip lock, which the leader holds from its
//! redb write to the fsync's outcome: a durable state is always a prefix of the durable journal,
//! and a crash anywhere leaves a state that opening brings up to the journal's end. If the fsync
//! fails after the redb commit, the ledger is poisoned before the lock is released, and its
//! redb handle is never closed (closing would make that commit durable): the state reverts to
//! the last checkpoint when the process next opens the ledger.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};

use crate::error::LedgerError;
use crate::journal_file::sync_error;
use crate::ledger::Ledger;
use crate::state::{AppliedBlock, StateWriter, Tip};
use crate::transaction::{CommitResult, Transaction};

/// Most transactions one leader commits as one group: one journal write and one fsync. Later
/// arrivals wait for the next group. Each member already holds its writes in memory, so the
/// bound is on the group's frame buffer (at most this many blocks of 40 documents).
pub const GROUP_TRANSACTIONS_MAX: usize = 128;

/// The derived state is checkpointed (a durable redb commit) at least this often while it has
/// changed, which bounds the work a crash leaves to replay, redb's file growth (pages freed by
/// non-durable commits are reused only after a durable one), and above all how long a checkpoint
/// holds the writers: it writes every page dirtied since the last one and fsyncs, and no group
/// commits meanwhile. At 2 s one client's commits left about 2.7 MiB and a 19 ms wait; at 250 ms,
/// about 400 KiB and 3.5 ms, four times a second, with the same throughput (BENCHMARKS.md).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// A checkpoint also starts once this much journal was appended since the last one, so a burst
/// of large commits can neither leave much to replay after a crash nor make one checkpoint long.
pub const CHECKPOINT_JOURNAL_BYTES: u64 = 8 * 1024 * 1024;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a committing transaction's outcome goes: called once, by the leader of its group
/// (or at once, for an outcome known without the group).
pub type CommitDelivery = Box<dyn FnOnce(Result<CommitResult, LedgerError>) + Send>;

/// What [`Transaction::submit_commit_with_digest`] did with a transaction.
#[derive(Debug)]
pub enum CommitSubmitted {
    /// Its outcome is already delivered: it wrote nothing, or it was refused before the group.
    Delivered,
    /// Queued: a leader commits it and delivers its outcome.
    Queued,
    /// Queued, and nobody leads: the caller must call [`Ledger::lead_commits`] on this ledger
    /// until it answers false, on a thread that may block. Nothing else commits meanwhile.
    Lead(Arc<Ledger>),
}

/// Transactions waiting to commit, with where their outcomes go.
#[derive(Default)]
struct QueueState {
    waiting: VecDeque<(Transaction, CommitDelivery)>,
    leader_active: bool,
}

/// The group-commit queue of one ledger.
#[derive(Default)]
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
}

impl std::fmt::Debug for CommitQueue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        formatter
            .debug_struct("CommitQueue")
            .field("waiting", &state.waiting.len())
            .field("leader_active", &state.leader_active)
            .finish()
    }
}

fn lost_outcome() -> LedgerError {
    LedgerError::Internal("a committing transaction lost its outcome".to_owned())
}

/// Delivers a group's outcomes even if the leader panics, so no member waits forever.
struct LeaderGuard<'a> {
    ledger: &'a Ledger,
    deliveries: Vec<CommitDelivery>,
}

impl LeaderGuard<'_> {
    fn deliver(mut self, outcomes: Vec<Result<CommitResult, LedgerError>>) {
        let deliveries = std::mem::take(&mut self.deliveries);
        let mut outcomes = outcomes.into_iter();
        for deliver in deliveries {
            deliver(outcomes.next().unwrap_or_else(|| {
                Err(LedgerError::Internal(
                    "the group lost this transaction's outcome".to_owned(),
                ))
            }));
        }
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.deliveries.is_empty() {
            return;
        }
        // The leader unwound mid-group: the state of its redb transaction is unknown. The ledger
        // is poisoned, so every transaction still queued is refused too, and nobody is left
        // waiting for a leader.
        self.ledger.poison();
        let queued: Vec<(Transaction, CommitDelivery)> = {
            let mut state = lock(&self.ledger.commits.state);
            state.leader_active = false;
            state.waiting.drain(..).collect()
        };
        for deliver in std::mem::take(&mut self.deliveries) {
            deliver(Err(LedgerError::Internal(
                "the commit of this transaction's group failed".to_owned(),
            )));
        }
        for (_, deliver) in queued {
            deliver(Err(self.ledger.poisoned_error()));
        }
    }
}

impl Ledger {
    /// Commits a transaction that wrote something, as part of a group; returns once its block is
    /// durable in the journal and applied to the derived state.
    ///
    /// A caller that finds nobody leading leads until its own group is committed. If others
    /// queued meanwhile, it hands the turn to a thread of its own and returns: led until the
    /// queue ran dry, a steady stream of other sessions' commits would hold its answer back for
    /// as long as the stream lasts (1.5 s under 16 clients, 2026-12-06).
    pub(crate) fn commit_in_group(
        self: &Arc<Self>,
        transaction: Transaction,
    ) -> Result<CommitResult, LedgerError> {
        let (sender, own) = std::sync::mpsc::sync_channel(1);
        let deliver: CommitDelivery = Box::new(move |outcome| {
            // The receiver is this thread, waiting below.
            let _ = sender.send(outcome);
        });
        if self.submit_to_group(transaction, deliver) {
            self.lead_until_delivered(&own)
        } else {
            own.recv().unwrap_or_else(|_| Err(lost_outcome()))
        }
    }

    /// The leader's turn of a caller whose transaction's outcome comes through `own`: leads a
    /// group at a time until that outcome is in, then hands the turn over if others wait.
    fn lead_until_delivered(
        self: &Arc<Self>,
        own: &std::sync::mpsc::Receiver<Result<CommitResult, LedgerError>>,
    ) -> Result<CommitResult, LedgerError> {
        loop {
            let more = self.lead_commits(1);
            match own.try_recv() {
                Ok(outcome) => {
                    if more {
                        self.hand_over_lead();
                    }
                    return outcome;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) if more => {}
                // Nothing waits any more, so every queued outcome was delivered: ours is lost.
                Err(_) => return Err(lost_outcome()),
            }
        }
    }

    /// Hands the leader's turn, with transactions waiting, to a new thread that leads until
    /// none wait. If no thread can be started, the caller leads on.
    fn hand_over_lead(self: &Arc<Self>) {
        let ledger = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ledger-lead-{}", self.name()))
            .spawn(move || while ledger.lead_commits(usize::MAX) {});
        if let Err(error) = spawned {
            tracing::warn!(ledger = %self.name(), %error, "no thread to hand the commit lead to; leading on");
            while self.lead_commits(usize::MAX) {}
        }
    }

    /// Queues a transaction for the next group; answers whether the caller must lead.
    pub(crate) fn submit_to_group(
        &self,
        transaction: Transaction,
        deliver: CommitDelivery,
    ) -> bool {
        let mut state = lock(&self.commits.state);
        state.waiting.push_back((transaction, deliver));
        !std::mem::replace(&mut state.leader_active, true)
    }

    /// The leader's turn: commits up to `groups_max` groups of the waiting transactions, each
    /// with one journal append and one fsync, and delivers their outcomes. Answers whether
    /// transactions still wait: then the caller is still the leader and must call again (or
    /// hand the turn to a thread that will); otherwise nobody leads any more.
    pub fn lead_commits(&self, groups_max: usize) -> bool {
        for _ in 0..groups_max {
            let (group, deliveries): (Vec<Transaction>, Vec<CommitDelivery>) = {
                let mut state = lock(&self.commits.state);
                if state.waiting.is_empty() {
                    state.leader_active = false;
                    return false;
                }
                let take = state.waiting.len().min(GROUP_TRANSACTIONS_MAX);
                state.waiting.drain(..take).unzip()
            };
            let guard = LeaderGuard {
                ledger: self,
                deliveries,
            };
            let outcomes = self.commit_group(group);
            guard.deliver(outcomes);
        }
        let mut state = lock(&self.commits.state);
        if state.waiting.is_empty() {
            state.leader_active = false;
            false
        } else {
            true
        }
    }

    /// The leader's work for one group: each member's outcome, in order.
    fn commit_group(&self, group: Vec<Transaction>) -> Vec<Result<CommitResult, LedgerError>> {
        match self.try_commit_group(&group) {
            Ok(outcomes) => outcomes,
            Err(error) => {
                self.poison();
                tracing::error!(ledger = self.name(), %error, "group commit failed; ledger poisoned until reopened");
                group
                    .iter()
                    .map(|_| Err(LedgerError::Storage(error.to_string())))
                    .collect()
            }
        }
    }

    /// Validates, builds and applies every member, appends the group's blocks and fsyncs them
    /// while the last block is applied, then commits the derived state. An `Err` is fatal to the
    /// whole group (storage failed before its blocks were durable).
    fn try_commit_group(
        &self,
        group: &[Transaction],
    ) -> Result<Vec<Result<CommitResult, LedgerError>>, LedgerError> {
        if self.is_poisoned() {
            return Ok(group.iter().map(|_| Err(self.poisoned_error())).collect());
        }
        // A group of one (a lone client) has the sync thread wake while it builds its block. A
        // larger group means other clients keep the cores busy: a thread polling there would
        // take CPU from this leader, whose work every queued member waits behind, so the fsync
        // request wakes it instead (and the leader runs the fsync itself if it is late).
        if group.len() == 1 {
            self.syncer.forewarn();
        }
        let mut tip = lock(&self.tip);
        if self.is_deleted() {
            return Ok(group.iter().map(|_| Err(self.deleted_error())).collect());
        }
        let mut write = self.database.begin_write()?;
        write.set_durability(redb::Durability::None)?;
        let journal_start = tip.journal_end;
        let mut frames = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let known = self.cached_catalog();
        let mut state = StateWriter::load_with_catalog(
            &write,
            &self.journal,
            tip.clone(),
            known
                .as_ref()
                .map(|(version, tables)| (*version, tables.as_slice())),
        )?;
        // Each member is validated against the state with every earlier member's block applied;
        // the last block is applied while the journal syncs.
        let mut unapplied: Option<AppliedBlock> = None;
        for transaction in group {
            if let Some(block) = unapplied.take() {
                state.apply(block)?;
            }
            match transaction.build_block(&state, &mut frames) {
                Ok((result, block)) => {
                    outcomes.push(Ok(result));
                    unapplied = Some(block);
                }
                // Refused alone: it changed nothing.
                Err(refusal) => outcomes.push(Err(refusal)),
            }
        }
        if frames.is_empty() {
            // Every member was refused: nothing to append, nothing changed.
            return Ok(outcomes);
        }
        self.journal.write_at(&frames, journal_start)?;
        let sync_started = self.syncer.start();
        // While the disk works: apply the last block (nothing is left unapplied when the members
        // after the last block were refused) and commit redb without fsync. Readers keep the
        // published snapshot, and no durable redb commit can run (they take the tip lock), until
        // the fsync succeeded.
        let mut redb_committed = false;
        let committed = unapplied
            .map_or(Ok(()), |block| state.apply(block))
            .and_then(|()| state.finish())
            .and_then(|new_tip| {
                write.commit()?;
                redb_committed = true;
                Ok((new_tip, self.database.begin_read()?))
            });
        let synced = self
            .syncer
            .wait(sync_started)
            .and_then(|()| self.injected_sync_failure(journal_start, frames.len()));
        if let Err(error) = synced {
            if redb_committed {
                // redb holds blocks the journal may not: see `Drop for Ledger`.
                self.state_ahead_of_journal.store(true, Ordering::SeqCst);
            }
            // Poisoned before the tip lock is released, so no checkpoint makes that state durable.
            self.poison();
            return Err(error);
        }
        // The blocks are durable from here: every member is committed, whatever happens below.
        // A failure leaves the in-memory state behind the journal until reopened.
        match committed {
            Ok((new_tip, read)) => {
                *tip = new_tip;
                self.publish(read);
            }
            Err(error) => {
                self.poison();
                tracing::error!(ledger = self.name(), %error, "applying committed blocks failed; ledger poisoned until reopened (they will be replayed)");
            }
        }
        drop(tip);
        self.checkpointer.note_appended(frames.len() as u64);
        Ok(outcomes)
    }

    /// For fault-injection tests: the next group's journal fsync reports a failure, and its
    /// frames are overwritten with zeros, as if the disk had lost them.
    #[doc(hidden)]
    pub fn fail_next_journal_sync(&self) {
        self.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// For tests of what waits on a slow disk: the next journal fsync (whoever runs it) first
    /// sleeps for `by`.
    #[doc(hidden)]
    pub fn delay_next_journal_sync(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.syncer
            .shared
            .delay_next_micros
            .store(micros, Ordering::SeqCst);
    }

    fn injected_sync_failure(&self, start: u64, length: usize) -> Result<(), LedgerError> {
        if !self.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        self.journal.write_at(&vec![0; length], start)?;
        Err(LedgerError::Storage(format!(
            "syncing journal {}: injected failure",
            self.journal.path().display()
        )))
    }

    /// Whether a storage failure made the ledger refuse transactions until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// Refuses every later transaction of a ledger being deleted. Taken under the tip lock, so
    /// a group in flight finishes first (and was acknowledged before the deletion) and every
    /// later group sees the mark.
    pub(crate) fn mark_deleted(&self) {
        let _tip = lock(&self.tip);
        self.deleted.store(true, Ordering::SeqCst);
        self.checkpointer.discard();
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    pub(crate) fn deleted_error(&self) -> LedgerError {
        LedgerError::NotFound(format!("the ledger {} was deleted", self.name()))
    }

    pub(crate) fn poisoned_error(&self) -> LedgerError {
        LedgerError::Storage(format!(
            "ledger {} refuses transactions after a failed commit; reopen it",
            self.name()
        ))
    }

    /// Makes the derived state durable now (a durable redb commit), so a crash replays nothing
    /// before this point. The background checkpointer calls it; so can tests and shutdown.
    pub fn checkpoint(&self) -> Result<(), LedgerError> {
        self.checkpointer.shared.checkpoint()
    }

    /// How long checkpoints held the writers' lock since the last call (which resets it).
    pub fn take_checkpoint_stats(&self) -> CheckpointStats {
        std::mem::take(&mut *lock(&self.checkpointer.shared.held))
    }

    /// For tests: the number of checkpoints made so far, readable after the ledger is gone.
    #[doc(hidden)]
    pub fn checkpoint_counter(&self) -> Arc<AtomicU64> {
        self.checkpointer.shared.made.clone()
    }
}

/// What the checkpoint thread and the ledger share.
#[derive(Debug)]
struct CheckpointShared {
    ledger_name: String,
    database: Arc<Database>,
    poisoned: Arc<AtomicBool>,
    /// The ledger's tip, the writers' lock: a checkpoint holds it so that it never makes durable
    /// a derived state whose blocks the commit leader has not yet fsynced.
    tip: Arc<Mutex<Tip>>,
    signal: Mutex<CheckpointSignal>,
    wake: Condvar,
    /// Set once the ledger is deleted (under the writers' lock): its files are gone, and no
    /// checkpoint is made any more, the last one at close included.
    discarded: AtomicBool,
    /// Checkpoints made so far ([`Ledger::checkpoint_counter`], for tests).
    made: Arc<AtomicU64>,
    /// How long checkpoints held the writers' lock since last taken ([`Ledger::take_checkpoint_stats`]).
    held: Mutex<CheckpointStats>,
}

/// How long checkpoints held the writers' lock, during which no transaction commits.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct CheckpointStats {
    /// Checkpoints counted.
    pub count: u64,
    /// Their time under the writers' lock, together.
    pub total: Duration,
    /// The longest one.
    pub max: Duration,
}

impl CheckpointStats {
    fn add(&mut self, held: Duration) {
        self.count += 1;
        self.total += held;
        self.max = self.max.max(held);
    }
}

#[derive(Debug, Default)]
struct CheckpointSignal {
    stop: bool,
    /// Journal bytes appended since the last checkpoint started.
    dirty_bytes: u64,
    /// Whether anything was applied since the last checkpoint started.
    dirty: bool,
}

impl CheckpointShared {
    fn checkpoint(&self) -> Result<(), LedgerError> {
        let writers = lock(&self.tip);
        if self.poisoned.load(Ordering::SeqCst) || self.discarded.load(Ordering::SeqCst) {
            return Ok(());
        }
        let locked = Instant::now();
        let result = (|| {
            let mut write = self.database.begin_write()?;
            write.set_durability(redb::Durability::Immediate)?;
            // A crash after this commit reopens without a full repair of the file.
            write.set_quick_repair(true);
            write.commit()?;
            self.made.fetch_add(1, Ordering::SeqCst);
            Ok::<(), LedgerError>(())
        })();
        drop(writers);
        lock(&self.held).add(locked.elapsed());
        if let Err(error) = &result {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(ledger = %self.ledger_name, %error, "checkpoint failed; ledger poisoned until reopened");
        }
        result
    }
}

/// The background thread that checkpoints one ledger's derived state.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    shared: Arc<CheckpointShared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(
        ledger_name: &str,
        database: Arc<Database>,
        poisoned: Arc<AtomicBool>,
        tip: Arc<Mutex<Tip>>,
    ) -> Result<Checkpointer, LedgerError> {
        let shared = Arc::new(CheckpointShared {
            ledger_name: ledger_name.to_owned(),
            database,
            poisoned,
            tip,
            signal: Mutex::new(CheckpointSignal::default()),
            wake: Condvar::new(),
            discarded: AtomicBool::new(false),
            made: Arc::default(),
            held: Mutex::default(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ledger-checkpoint-{ledger_name}"))
            .spawn(move || checkpoint_loop(&thread_shared))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// No checkpoint is made from now on; called under the writers' lock, so none is under
    /// way either.
    fn discard(&self) {
        self.shared.discarded.store(true, Ordering::SeqCst);
    }

    /// Tells the thread to stop and hands back its handle to join (after which dropping `self`
    /// waits for nothing).
    pub(crate) fn stop_detached(&mut self) -> Option<JoinHandle<()>> {
        lock(&self.shared.signal).stop = true;
        self.shared.wake.notify_all();
        self.thread.take()
    }

    /// Called by the leader after a group: wakes the thread once enough journal piled up.
    fn note_appended(&self, bytes: u64) {
        let mut signal = lock(&self.shared.signal);
        signal.dirty = true;
        signal.dirty_bytes += bytes;
        if signal.dirty_bytes >= CHECKPOINT_JOURNAL_BYTES {
            self.shared.wake.notify_all();
        }
    }
}

fn checkpoint_loop(shared: &CheckpointShared) {
    loop {
        let mut signal = lock(&shared.signal);
        if !signal.stop && signal.dirty_bytes < CHECKPOINT_JOURNAL_BYTES {
            signal = shared
                .wake
                .wait_timeout(signal, CHECKPOINT_INTERVAL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let stop = signal.stop;
        let due = signal.dirty;
        signal.dirty = false;
        signal.dirty_bytes = 0;
        drop(signal);
        if due {
            // A failure is logged and poisons the ledger; the next open replays the journal.
            let _ = shared.checkpoint();
        }
        if stop {
            return;
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the thread after a last checkpoint (none for a deleted ledger), so a clean close
    /// replays nothing on open.
    fn drop(&mut self) {
        if let Some(thread) = self.stop_detached()
            && thread.join().is_err()
        {
            tracing::error!(ledger = %self.shared.ledger_name, "the checkpoint thread panicked");
        }
    }
}

/// The longest either side of the leader/sync-thread hand-off polls for the other before parking.
/// With one client committing back to back, a request follows the last fsync within about
/// 100–200 µs and an fsync ends within a few hundred: polling (yielding the CPU to any other
/// runnable thread) catches both without the futex wake-up, which costs 15–20 µs on each side
/// on a virtual machine, a tenth of a commit. The sync thread polls for twice what it waited
/// last time when that fits within this bound, and not at all otherwise: a slower stream of
/// commits (over HTTP, where a transaction takes three round trips) parks at once instead of
/// burning a core, and is woken by each leader of a one-transaction group as it starts, ahead
/// of its request ([`JournalSyncer::forewarn`]); under concurrency the request itself wakes it,
/// so that no polling thread competes with the leader for the cores. The leader polls for what
/// the fsync should still take ([`leader_poll_budget`]).
pub const SYNC_HAND_OFF_POLL: Duration = Duration::from_micros(500);

/// How long to poll next, given how long the last wait took.
fn poll_budget(last_wait: Duration) -> Duration {
    let budget = last_wait.saturating_mul(2);
    if budget > SYNC_HAND_OFF_POLL {
        Duration::ZERO
    } else {
        budget
    }
}

/// Slack on the leader's polling for an fsync that runs a little longer than the last one.
const LEADER_POLL_SLACK: Duration = Duration::from_micros(100);

/// How long the leader polls for the fsync it started `elapsed` ago, the last one having taken
/// `last_sync`: what the fsync should still take (the leader applied a block meanwhile, so on a
/// slow disk a long fsync can have a short rest), twice over plus some slack, within
/// [`SYNC_HAND_OFF_POLL`]; nothing when even the expected rest is longer than half of that.
fn leader_poll_budget(last_sync: Duration, elapsed: Duration) -> Duration {
    let rest = last_sync.saturating_sub(elapsed);
    if rest.saturating_mul(2) > SYNC_HAND_OFF_POLL {
        Duration::ZERO
    } else {
        (rest.saturating_mul(2) + LEADER_POLL_SLACK).min(SYNC_HAND_OFF_POLL)
    }
}

/// The thread that fsyncs a ledger's journal for the commit leader, so the leader can apply the
/// group's last block to the derived state while the disk works. One leader at a time uses it:
/// each [`JournalSyncer::start`] is followed by one [`JournalSyncer::wait`].
#[derive(Debug)]
pub(crate) struct JournalSyncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct SyncShared {
    /// A handle of the journal file (`fdatasync` on it covers every write through any handle).
    file: File,
    path: PathBuf,
    /// The hand-off's truth; the flags below mirror it for polling without the lock.
    state: Mutex<SyncState>,
    /// Mirrors `SyncState::requested`.
    requested: AtomicBool,
    /// Set with `SyncState::outcome`.
    finished: AtomicBool,
    /// How long the last fsync took, in microseconds (the leader's polling budget).
    last_sync_micros: AtomicU64,
    /// A delay the next fsync sleeps first ([`Ledger::delay_next_journal_sync`], tests only).
    delay_next_micros: AtomicU64,
    wake_syncer: Condvar,
    wake_leader: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    requested: bool,
    /// A leader started a group: a parked sync thread wakes and polls for its request.
    forewarned: bool,
    outcome: Option<std::io::Result<()>>,
    stop: bool,
    /// Whether a side waits on its condition variable (so the other side must notify it).
    syncer_parked: bool,
    leader_parked: bool,
}

impl SyncShared {
    fn new(file: File, path: &Path) -> Arc<SyncShared> {
        Arc::new(SyncShared {
            file,
            path: path.to_owned(),
            state: Mutex::new(SyncState::default()),
            requested: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            last_sync_micros: AtomicU64::new(0),
            delay_next_micros: AtomicU64::new(0),
            wake_syncer: Condvar::new(),
            wake_leader: Condvar::new(),
        })
    }
}

/// Polls `flag` until it is set or `budget` is spent; the caller then checks under the lock.
fn poll_for(flag: &AtomicBool, budget: Duration) {
    let started = Instant::now();
    while !flag.load(Ordering::Acquire) && started.elapsed() < budget {
        std::thread::yield_now();
    }
}

impl JournalSyncer {
    pub(crate) fn start_thread(
        ledger_name: &str,
        file: File,
        path: &Path,
    ) -> Result<JournalSyncer, LedgerError> {
        let shared = SyncShared::new(file, path);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ledger-sync-{ledger_name}"))
            .spawn(move || sync_loop(&thread_shared))?;
        Ok(JournalSyncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the thread to stop and hands back its handle to join (after which dropping `self`
    /// waits for nothing).
    pub(crate) fn stop_detached(&mut self) -> Option<JoinHandle<()>> {
        lock(&self.shared.state).stop = true;
        self.shared.wake_syncer.notify_all();
        self.thread.take()
    }

    /// Tells a parked sync thread that a leader started a group and will ask for an fsync once
    /// its blocks are built: the thread wakes now and polls for the request, so its wake-up
    /// (tens of microseconds on a virtual machine, more when the cores are busy) overlaps the
    /// group's validation and block building instead of delaying the fsync. A thread that is
    /// already polling (commits back to back) is left alone.
    fn forewarn(&self) {
        let mut state = lock(&self.shared.state);
        if !state.syncer_parked {
            return;
        }
        state.forewarned = true;
        drop(state);
        self.shared.wake_syncer.notify_one();
    }

    /// Starts an fsync of everything written to the journal so far; returns when it was asked
    /// for, which [`Self::wait`] takes.
    fn start(&self) -> Instant {
        let mut state = lock(&self.shared.state);
        state.requested = true;
        state.outcome = None;
        self.shared.finished.store(false, Ordering::Release);
        self.shared.requested.store(true, Ordering::Release);
        let parked = state.syncer_parked;
        drop(state);
        if parked {
            self.shared.wake_syncer.notify_one();
        }
        Instant::now()
    }

    /// Waits for the fsync [`Self::start`] asked for at `started`. If the sync thread has not
    /// taken it yet (it was parked and is still waking up), the leader, its own work done, runs
    /// the fsync itself: a late wake-up never adds to a commit's latency.
    fn wait(&self, started: Instant) -> Result<(), LedgerError> {
        let mut state = lock(&self.shared.state);
        if state.requested {
            state.requested = false;
            self.shared.requested.store(false, Ordering::Release);
            drop(state);
            let outcome = sync_timed(&self.shared);
            return outcome.map_err(|error| sync_error(&self.shared.path, &error));
        }
        drop(state);
        let last_sync = Duration::from_micros(self.shared.last_sync_micros.load(Ordering::Relaxed));
        poll_for(
            &self.shared.finished,
            leader_poll_budget(last_sync, started.elapsed()),
        );
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(outcome) = state.outcome.take() {
                return outcome.map_err(|error| sync_error(&self.shared.path, &error));
            }
            state.leader_parked = true;
            state = self
                .shared
                .wake_leader
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.leader_parked = false;
        }
    }
}

/// One fsync of the journal, its duration kept as the next polling budgets' estimate.
fn sync_timed(shared: &SyncShared) -> std::io::Result<()> {
    let sync_from = Instant::now();
    let delay = shared.delay_next_micros.swap(0, Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_micros(delay));
    }
    let outcome = shared.file.sync_data();
    let took = u64::try_from(sync_from.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.last_sync_micros.store(took, Ordering::Relaxed);
    outcome
}

fn sync_loop(shared: &SyncShared) {
    // How long the thread waited for the last request after the fsync before it.
    let mut last_idle = SYNC_HAND_OFF_POLL;
    loop {
        let idle_from = Instant::now();
        poll_for(&shared.requested, poll_budget(last_idle));
        let mut state = lock(&shared.state);
        while !state.requested && !state.stop {
            if std::mem::take(&mut state.forewarned) {
                drop(state);
                poll_for(&shared.requested, SYNC_HAND_OFF_POLL);
                state = lock(&shared.state);
                continue;
            }
            state.syncer_parked = true;
            state = shared
                .wake_syncer
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.syncer_parked = false;
        }
        if !state.requested {
            return;
        }
        state.requested = false;
        shared.requested.store(false, Ordering::Release);
        drop(state);
        last_idle = idle_from.elapsed();
        let outcome = sync_timed(shared);
        let mut state = lock(&shared.state);
        state.outcome = Some(outcome);
        shared.finished.store(true, Ordering::Release);
        let parked = state.leader_parked;
        drop(state);
        if parked {
            shared.wake_leader.notify_one();
        }
    }
}

impl Drop for JournalSyncer {
    fn drop(&mut self) {
        if let Some(thread) = self.stop_detached()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.shared.path.display(), "the journal sync thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new ledger in `dir` with an empty table `T`, and the ledgers holding it.
    fn ledger_with_table(dir: &Path) -> (crate::Ledgers, Arc<Ledger>) {
        let ledgers =
            crate::Ledgers::open_dir(dir, Arc::new(crate::SystemClock), crate::Limits::default())
                .unwrap();
        let ledger = ledgers.create_ledger("test", false).unwrap();
        ledger.execute("CREATE TABLE T", &[]).unwrap();
        (ledgers, ledger)
    }

    #[test]
    fn a_leader_answers_after_its_own_group_and_hands_the_waiting_ones_to_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (_ledgers, ledger) = ledger_with_table(dir.path());
        let insert = |n: usize| {
            let mut transaction = ledger.begin().unwrap();
            transaction
                .execute(&format!("INSERT INTO T VALUE {{'n': {n}}}"), &[])
                .unwrap();
            transaction
        };
        // This thread's transaction first, with nobody leading: this thread leads.
        let (sender, own) = std::sync::mpsc::sync_channel(1);
        let deliver: CommitDelivery = Box::new(move |outcome| {
            let _ = sender.send(outcome);
        });
        assert!(ledger.submit_to_group(insert(0), deliver));
        // Two groups' worth of others queue behind it; each notes the thread that answered it.
        let (sender, answered) = std::sync::mpsc::channel();
        let others = 2 * GROUP_TRANSACTIONS_MAX;
        for n in 1..=others {
            let sender = sender.clone();
            let deliver: CommitDelivery = Box::new(move |outcome| {
                let _ = sender.send((std::thread::current().id(), outcome.is_ok()));
            });
            assert!(!ledger.submit_to_group(insert(n), deliver));
        }
        assert!(ledger.lead_until_delivered(&own).is_ok());
        let answers: Vec<_> = (0..others)
            .map(|_| answered.recv_timeout(Duration::from_secs(60)).unwrap())
            .collect();
        assert!(answers.iter().all(|(_, committed)| *committed));
        // This thread led the first group only (its own transaction and the first others).
        let here = std::thread::current().id();
        let led_here = answers.iter().filter(|(thread, _)| *thread == here).count();
        assert_eq!(led_here, GROUP_TRANSACTIONS_MAX - 1);
        assert_eq!(
            ledger.execute("SELECT * FROM T", &[]).unwrap().len(),
            others + 1
        );
    }

    #[test]
    fn checkpoints_report_how_long_they_held_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let (_ledgers, ledger) = ledger_with_table(dir.path());
        ledger.take_checkpoint_stats();
        ledger.execute("INSERT INTO T VALUE {'n': 1}", &[]).unwrap();
        ledger.checkpoint().unwrap();
        let stats = ledger.take_checkpoint_stats();
        // The background thread may have made one of its own meanwhile: each is counted.
        assert!(stats.count >= 1);
        assert!(stats.max > Duration::ZERO && stats.max <= stats.total);
    }

    #[test]
    fn polling_is_for_short_waits_only() {
        assert_eq!(
            poll_budget(Duration::from_micros(120)),
            Duration::from_micros(240)
        );
        assert_eq!(poll_budget(SYNC_HAND_OFF_POLL / 2), SYNC_HAND_OFF_POLL);
        assert_eq!(
            poll_budget(SYNC_HAND_OFF_POLL / 2 + Duration::from_micros(1)),
            Duration::ZERO
        );
        assert_eq!(poll_budget(Duration::from_secs(3600)), Duration::ZERO);
    }

    #[test]
    fn the_leader_polls_for_what_the_fsync_should_still_take() {
        let micros = Duration::from_micros;
        // The fsync should be done by now: a short poll for a late finish.
        assert_eq!(
            leader_poll_budget(micros(150), micros(155)),
            LEADER_POLL_SLACK
        );
        // A slow disk, but most of it already spent applying the block.
        assert_eq!(
            leader_poll_budget(micros(335), micros(155)),
            micros(360) + LEADER_POLL_SLACK
        );
        assert_eq!(
            leader_poll_budget(micros(240), micros(0)),
            SYNC_HAND_OFF_POLL
        );
        // Long waits park at once.
        assert_eq!(
            leader_poll_budget(SYNC_HAND_OFF_POLL / 2 + micros(1), micros(0)),
            Duration::ZERO
        );
        assert_eq!(
            leader_poll_budget(micros(5_000), micros(155)),
            Duration::ZERO
        );
    }

    /// A leader whose fsync the sync thread has not taken runs it itself: with no sync thread at
    /// all, every start is still answered (waiting for the thread would hang here).
    #[test]
    fn the_leader_runs_an_fsync_the_sync_thread_has_not_taken() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("journal");
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let file = File::create(&path).unwrap();
            let syncer = JournalSyncer {
                shared: SyncShared::new(file.try_clone().unwrap(), &path),
                thread: None,
            };
            for _ in 0..3 {
                std::io::Write::write_all(&mut &file, b"frame").unwrap();
                let started = syncer.start();
                syncer.wait(started).unwrap();
            }
            assert!(!syncer.shared.requested.load(Ordering::Acquire));
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the leader waited for a sync thread that never came");
    }

    /// Every start is answered, whether the other side polls or parks: requests come back to
    /// back, after gaps that fit the polling budget, and after gaps that do not. A lost wake-up
    /// hangs the rounds, so they run on a thread of their own with a deadline.
    #[test]
    fn every_sync_request_is_answered_whether_the_sides_poll_or_park() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("journal");
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let file = File::create(&path).unwrap();
            let syncer =
                JournalSyncer::start_thread("test", file.try_clone().unwrap(), &path).unwrap();
            let gaps_micros = [0u64, 0, 50, 0, 300, 20, 2_000, 0, 0, 700, 100, 5_000, 0];
            for round in 0..120 {
                let gap = gaps_micros[round % gaps_micros.len()];
                // Some rounds forewarn the thread, sometimes long before their request.
                if round % 3 == 0 {
                    syncer.forewarn();
                }
                std::thread::sleep(Duration::from_micros(gap));
                std::io::Write::write_all(&mut &file, b"frame").unwrap();
                let started = syncer.start();
                // The leader's own work while the disk syncs, sometimes longer than the fsync.
                let work = gaps_micros[(round * 7) % gaps_micros.len()];
                std::thread::sleep(Duration::from_micros(work));
                syncer.wait(started).unwrap();
            }
            // A forewarning with no request after it, then dropping: the thread stops whether
            // it polls or parks.
            syncer.forewarn();
            drop(syncer);
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("a sync request was never answered");
    }
}
