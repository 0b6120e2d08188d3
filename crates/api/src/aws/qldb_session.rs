//! QLDBSession (AWS JSON 1.0, `X-Amz-Target: QLDBSession.SendCommand`): the data plane the QLDB
//! drivers (pyqldb, the Java and Go drivers) speak. One `SendCommand` carries exactly one of
//! StartSession, StartTransaction, ExecuteStatement, FetchPage, CommitTransaction,
//! AbortTransaction, EndSession.
//!
//! Sessions expire as QLDB's do: [`SESSION_LIFETIME_MS`] after they started whatever they do,
//! and after [`SESSION_IDLE_TIMEOUT_MS`] without a command; each holds at most one open
//! [`Transaction`], which the engine expires after its own timeout (30 s by default). Results
//! are cut into pages of at most [`PAGE_VALUES_MAX`] values and [`PAGE_BYTES_MAX`] bytes; the
//! rest waits, bounded, for FetchPage. Commands that only touch memory (the session's own, and
//! an INSERT of its parameters) run on the async worker; a CommitTransaction waits for its
//! ledger's group commit without holding a thread, and leaves the async workers only to lead a
//! group ([`CommitJob::run`]); every other engine call leaves them (`block_in_place`, or
//! `spawn_blocking` on a current-thread runtime).
//!
//! QLDB limits *active* sessions per ledger, not sessions: a session is active while it runs a
//! transaction and for [`ACTIVE_AFTER_TRANSACTION_MS`] after one ended, and StartTransaction on
//! a ledger with [`ACTIVE_SESSIONS_PER_LEDGER_MAX`] active sessions fails with
//! LimitExceededException, as in QLDB. StartSession itself is not limited by that quota, so
//! sessions opened and never used keep no one out: they expire after a minute, count for no
//! ledger, and when the map holds [`SESSIONS_MAX`] sessions the least recently used one that
//! never ran a transaction (then any one not in a transaction) is discarded for the new one;
//! its next command gets InvalidSessionException, which drivers answer with a new session.
//!
//! Other limits and what happens at them: more than [`OPEN_TRANSACTIONS_MAX`] open transactions
//! → CapacityExceededException (503, retried by drivers); more than [`COMMANDS_IN_FLIGHT_MAX`]
//! commands being processed → RateExceededException; engine limits (document size, documents
//! per transaction) → LimitExceededException.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use base64::Engine as _;
use ion_rs::Element;
use serde_json::{Value, json};
use sluice_ledger::{Clock, CommitSubmitted, Ledger, LedgerError, Ledgers, Transaction};
use time::OffsetDateTime;

use super::{AwsError, BoxFuture, Format, JsonService, LeadTurn, Operation, REGION};
use crate::roles::Grants;
use sluice_delivery::LOCAL_ACCOUNT_ID;

/// The `X-Amz-Target` prefix of QLDBSession.
pub const TARGET_PREFIX: &str = "QLDBSession";

/// The one operation: SendCommand, whose ExecuteStatement carries Ion parameters.
pub const OPERATIONS: &[Operation] = &[Operation {
    name: "SendCommand",
    formats: &[Format::Json, Format::IonParameters],
}];

/// A session is discarded this long after it started, whatever it is doing (QLDB: "a total
/// lifetime of 13–17 minutes, regardless of whether it's actively running a transaction"). Its
/// next command gets InvalidSessionException "Session … has expired"; drivers start a new one.
pub const SESSION_LIFETIME_MS: i64 = 15 * 60 * 1000;
/// A session without a command for this long is discarded (QLDB: "a session can be idle for up
/// to 60 seconds" when not in an active transaction; transactions expire after 30 s, so a
/// session this quiet is never in a live one). Its next command gets InvalidSessionException.
pub const SESSION_IDLE_TIMEOUT_MS: i64 = 60 * 1000;
/// Most active sessions per ledger (QLDB's fixed quota of concurrent active sessions per
/// ledger). At the limit, sessions no longer active are swept; if none is, StartTransaction
/// fails with LimitExceededException, as in QLDB.
pub const ACTIVE_SESSIONS_PER_LEDGER_MAX: usize = 3_000;
/// How long a session stays active after its transaction ended (QLDB counts "a session that
/// recently finished a transaction where the service anticipates it will start another
/// immediately"). A session that only sends no-op commands does not stay active.
pub const ACTIVE_AFTER_TRANSACTION_MS: i64 = 10 * 1000;
/// Most sessions kept at once, across ledgers: a memory bound, not QLDB's quota. At the limit
/// StartSession sweeps expired sessions, then discards the least recently used session that
/// never ran a transaction, else the least recently used one not in a transaction. It is larger
/// than [`OPEN_TRANSACTIONS_MAX`] + [`COMMANDS_IN_FLIGHT_MAX`], so one can always be discarded.
pub const SESSIONS_MAX: usize = 10_000;
/// StartSession sweeps expired sessions at most this often (and whenever the map is full), so
/// abandoned transactions give back their snapshots without a scan per new session.
pub const SESSION_SWEEP_INTERVAL_MS: i64 = 1_000;
/// Most commands being processed at once; beyond, RateExceededException tells the driver to back
/// off (it retries), so a burst cannot queue unbounded work on the blocking pool.
pub const COMMANDS_IN_FLIGHT_MAX: usize = 256;
/// Most values in one page (QLDB: 200 documents).
pub const PAGE_VALUES_MAX: usize = 200;
/// Most bytes of Ion binary in one page (QLDB: 4 MB). A page holds at least one value.
pub const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most results of one transaction still waiting for FetchPage; beyond, ExecuteStatement fails
/// with LimitExceededException until the driver reads or abandons (aborts) them.
pub const PENDING_RESULTS_PER_TRANSACTION_MAX: usize = 64;
/// Most transactions open at once across sessions: each pins a snapshot of its ledger file, so
/// pages freed by later commits cannot be reused while it lives. Beyond, StartTransaction fails
/// with CapacityExceededException (HTTP 503, which drivers retry with backoff).
pub const OPEN_TRANSACTIONS_MAX: usize = 1_024;
/// Most statement parameters (QLDB's own limit).
pub const PARAMETERS_MAX: usize = 1_000;
/// Longest statement text in bytes (QLDB: 100 KB, the whole command must stay under 128 KB).
pub const STATEMENT_BYTES_MAX: usize = 100 * 1024;

/// A place in a bounded count (the open transactions, a ledger's active sessions), given back
/// when dropped: a transaction's at commit, abort, expiry, end or sweep of its session alike; a
/// session's when it ends, expires, or is found no longer active by a sweep.
struct CountedSlot(Arc<AtomicUsize>);

impl CountedSlot {
    /// A place when fewer than `max` are taken.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<CountedSlot> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                (taken < max).then_some(taken + 1)
            })
            .ok()
            .map(|_| CountedSlot(count.clone()))
    }
}

impl Drop for CountedSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An open transaction of a session.
struct OpenTransaction {
    transaction: Transaction,
    _slot: CountedSlot,
    /// Results not yet read, by page token: Ion binary of each value.
    pending_results: HashMap<String, VecDeque<Vec<u8>>>,
}

/// The commands `other_command` answers, which take precedence over a CommitTransaction sent
/// in the same SendCommand (as before a commit had a path of its own).
const COMMANDS_BEFORE_COMMIT: [&str; 5] = [
    "EndSession",
    "StartTransaction",
    "AbortTransaction",
    "ExecuteStatement",
    "FetchPage",
];

/// What a command of a session leaves to do once the session's lock is released.
enum Step {
    /// The command's answer.
    Answer(Value),
    /// A commit: its transaction, taken out of the session, waits for its group.
    Commit(Box<CommitJob>),
}

impl Step {
    /// The answer, committing on this thread (which waits for the group) if it is a commit.
    fn run_blocking(self) -> Result<Value, AwsError> {
        match self {
            Step::Answer(answer) => Ok(answer),
            Step::Commit(job) => {
                let outcome = job.transaction.commit_with_digest(&job.client_digest);
                commit_answer(outcome, &job.transaction_id, job.started)
            }
        }
    }
}

/// A CommitTransaction whose transaction left its session.
struct CommitJob {
    transaction: Transaction,
    client_digest: Vec<u8>,
    transaction_id: String,
    /// The transaction's place among the open ones, kept until it is decided.
    _slot: CountedSlot,
    started: Instant,
}

impl CommitJob {
    /// Commits without holding a thread while the group commits: the transaction joins its
    /// ledger's queue and this task awaits its outcome. If nobody leads the queue, this call
    /// leads one group, its own, on this worker's thread (`block_in_place`: the group waits for
    /// the disk), and a blocking-pool thread commits the transactions that queued meanwhile, so
    /// this call answers without waiting for them ([`LeadTurn::lead_one_group`]).
    async fn run(self: Box<Self>) -> Result<Value, AwsError> {
        let CommitJob {
            transaction,
            client_digest,
            transaction_id,
            _slot,
            started,
        } = *self;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let deliver: sluice_ledger::CommitDelivery = Box::new(move |outcome| {
            // A caller that went away (its client disconnected) no longer wants it.
            let _ = sender.send(outcome);
        });
        if let CommitSubmitted::Lead(ledger) =
            transaction.submit_commit_with_digest(&client_digest, deliver)
        {
            LeadTurn::new(ledger, Ledger::lead_commits).lead_one_group();
        }
        let outcome = receiver.await.unwrap_or_else(|_| {
            Err(LedgerError::Internal(
                "a committing transaction lost its outcome".to_owned(),
            ))
        });
        commit_answer(outcome, &transaction_id, started)
    }
}

/// CommitTransaction's answer for a commit's outcome.
fn commit_answer(
    outcome: Result<sluice_ledger::CommitResult, LedgerError>,
    transaction_id: &str,
    started: Instant,
) -> Result<Value, AwsError> {
    let commit = outcome.map_err(|error| session_error(error, Some(transaction_id)))?;
    Ok(json!({"CommitTransaction": {
        "TransactionId": commit.transaction_id,
        "CommitDigest": base64::engine::general_purpose::STANDARD.encode(commit.commit_digest),
        "TimingInformation": timing(started),
        "ConsumedIOs": {"ReadIOs": 0, "WriteIOs": usize::from(commit.block_address.is_some())},
    }}))
}

struct Session {
    ledger: Arc<Ledger>,
    ledger_name: String,
    started: OffsetDateTime,
    last_used: OffsetDateTime,
    transaction: Option<OpenTransaction>,
    /// When its last transaction was committed or aborted.
    transaction_ended: Option<OffsetDateTime>,
    /// Held while the session counts among its ledger's active sessions.
    active: Option<CountedSlot>,
    /// Whether it ever started a transaction: sessions that never did are discarded first.
    ran_transaction: bool,
}

/// Why a session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Lifetime,
    Idle,
}

impl Session {
    fn expiry(&self, now: OffsetDateTime) -> Option<Expiry> {
        if (now - self.started).whole_milliseconds() > i128::from(SESSION_LIFETIME_MS) {
            Some(Expiry::Lifetime)
        } else if (now - self.last_used).whole_milliseconds() > i128::from(SESSION_IDLE_TIMEOUT_MS)
        {
            Some(Expiry::Idle)
        } else {
            None
        }
    }

    fn in_live_transaction(&self) -> bool {
        self.transaction
            .as_ref()
            .is_some_and(|open| open.transaction.check_not_expired().is_ok())
    }

    /// Active as QLDB counts it: running a transaction, or just finished one.
    fn is_active(&self, now: OffsetDateTime) -> bool {
        self.in_live_transaction()
            || self.transaction_ended.is_some_and(|ended| {
                (now - ended).whole_milliseconds() <= i128::from(ACTIVE_AFTER_TRANSACTION_MS)
            })
    }

    /// Ends the open transaction, which keeps the session active a little longer.
    fn end_transaction(&mut self, now: OffsetDateTime) -> Option<OpenTransaction> {
        let open = self.transaction.take();
        if open.is_some() {
            self.transaction_ended = Some(now);
        }
        open
    }
}

/// Open sessions by token.
type SessionMap = HashMap<String, Arc<Mutex<Session>>>;

/// The QLDBSession service over the node's ledgers.
pub struct QldbSessionService {
    ledgers: Arc<Ledgers>,
    clock: Arc<dyn Clock>,
    sessions: Mutex<SessionMap>,
    /// When StartSession last swept the map.
    last_sweep: Mutex<Option<OffsetDateTime>>,
    /// Active sessions by ledger name.
    active_sessions: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    in_flight: Arc<tokio::sync::Semaphore>,
    open_transactions: Arc<AtomicUsize>,
}

impl QldbSessionService {
    pub fn new(ledgers: Arc<Ledgers>, clock: Arc<dyn Clock>) -> QldbSessionService {
        QldbSessionService {
            ledgers,
            clock,
            sessions: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
            active_sessions: Mutex::new(HashMap::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(COMMANDS_IN_FLIGHT_MAX)),
            open_transactions: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Number of sessions in the map (expired ones included until swept).
    pub fn session_count(&self) -> usize {
        self.sessions_map().len()
    }

    /// Number of sessions counted active on `ledger` (ones no longer active included until
    /// swept).
    pub fn active_session_count(&self, ledger: &str) -> usize {
        self.active_counter(ledger).load(Ordering::SeqCst)
    }
}

fn bad_request(message: impl Into<String>) -> AwsError {
    AwsError::client("BadRequestException", message)
}

fn invalid_session(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidSessionException", message)
}

/// The one place where engine errors become QLDBSession errors.
fn session_error(error: LedgerError, transaction_id: Option<&str>) -> AwsError {
    match error {
        LedgerError::Syntax {
            message,
            line,
            column,
        } => bad_request(format!(
            "Parser Error: at line {line}, column {column}: {message}"
        )),
        LedgerError::BadRequest(message)
        | LedgerError::NotFound(message)
        | LedgerError::AlreadyExists(message)
        | LedgerError::PreconditionFailed(message) => bad_request(message),
        LedgerError::LimitExceeded(message) => AwsError::client("LimitExceededException", message),
        LedgerError::OccConflict(message) => AwsError::client("OccConflictException", message),
        // pyqldb recognises an expired transaction by this message and retries in a new one.
        LedgerError::TransactionExpired(_) => invalid_session(format!(
            "Transaction {} has expired",
            transaction_id.unwrap_or("")
        )),
        // Sessions neither read exports nor run long operations: these cannot reach here.
        other @ (LedgerError::VerificationFailed(_)
        | LedgerError::AccessDenied(_)
        | LedgerError::Cancelled(_)
        | LedgerError::Storage(_)
        | LedgerError::Io(_)
        | LedgerError::Internal(_)) => AwsError::internal(other.to_string()),
    }
}

/// One statement parameter, text or binary, nested at most
/// [`ION_DEPTH_MAX`](sluice_ledger::ion_read::ION_DEPTH_MAX) levels: deeper is a BadRequest, as
/// QLDB answers a parameter it cannot read, and never reaches ion-rs's recursive reader.
fn read_parameter(bytes: &[u8]) -> Result<Element, AwsError> {
    sluice_ledger::ion_read::read_one(bytes, sluice_ledger::ion_read::ION_DEPTH_MAX)
        .map_err(|error| bad_request(format!("invalid parameter: {error}")))
}

/// The bytes of a `ValueHolder` (`{IonBinary: base64}` or `{IonText: "..."}`) as one Ion value.
fn value_from_holder(holder: &Value) -> Result<Element, AwsError> {
    if let Some(binary) = holder.get("IonBinary") {
        let text = binary
            .as_str()
            .ok_or_else(|| bad_request("IonBinary must be a base64 string"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|error| bad_request(format!("IonBinary is not base64: {error}")))?;
        return read_parameter(&bytes);
    }
    if let Some(text) = holder.get("IonText") {
        let text = text
            .as_str()
            .ok_or_else(|| bad_request("IonText must be a string"))?;
        return read_parameter(text.as_bytes());
    }
    Err(bad_request("a ValueHolder needs IonBinary or IonText"))
}

/// Parameters of at most this many bytes (as sent, base64 or Ion text) let an INSERT of them
/// run on the async worker ([`inserts_its_parameters`]): decoding and hashing them takes tens of
/// microseconds, like parsing any request's JSON.
const INLINE_PARAMETER_BYTES_MAX: usize = 16 * 1024;

/// Whether an ExecuteStatement request is an INSERT of its parameters (`INSERT INTO T ?`,
/// `INSERT INTO T VALUE ?`) with at most [`INLINE_PARAMETER_BYTES_MAX`] of them. Such a
/// statement reads nothing from the ledger's files and waits for nothing: it checks the
/// documents and stages them in the transaction's memory (at most a transaction's document
/// limit). Every other statement may read any number of documents, so it leaves the worker.
/// A request that is malformed is not one: the blocking path answers its error.
fn inserts_its_parameters(request: &Value) -> bool {
    use sluice_partiql::ast::{Expr, InsertSource, Statement};
    let Some(statement) = request.get("Statement").and_then(Value::as_str) else {
        return false;
    };
    let parameter_bytes = match request.get("Parameters") {
        None | Some(Value::Null) => 0,
        Some(Value::Array(holders)) => holders
            .iter()
            .map(
                |holder| match (holder.get("IonBinary"), holder.get("IonText")) {
                    (Some(Value::String(text)), None) | (None, Some(Value::String(text))) => {
                        text.len()
                    }
                    _ => usize::MAX,
                },
            )
            .fold(0, usize::saturating_add),
        Some(_) => usize::MAX,
    };
    if statement.len() > STATEMENT_BYTES_MAX || parameter_bytes > INLINE_PARAMETER_BYTES_MAX {
        return false;
    }
    matches!(
        sluice_partiql::parse(statement),
        Ok(Statement::Insert(insert))
            if matches!(insert.source, InsertSource::Value(Expr::Param(_)) | InsertSource::Collection(Expr::Param(_)))
    )
}

/// Refuses a statement whose PartiQL actions `grants` do not allow on its tables, as QLDB's
/// STANDARD permissions mode does (a ledger in ALLOW_ALL mode skips this): `qldb:PartiQLSelect` on
/// `arn:aws:qldb:…:ledger/LEDGER/table/TABLE` (tables named as written; a table's id for
/// `UNDROP TABLE`), `…/information_schema/user_tables` for the catalog. A statement that does
/// not parse is left to the ledger to refuse.
fn check_statement(grants: &Grants, ledger: &str, statement: &str) -> Result<(), AwsError> {
    let Ok(parsed) = sluice_partiql::parse(statement) else {
        return Ok(());
    };
    for access in parsed.table_accesses() {
        let action = format!("qldb:{}", access.action.name());
        let resource = if access.table == sluice_partiql::INFORMATION_SCHEMA {
            format!(
                "arn:aws:qldb:{REGION}:{LOCAL_ACCOUNT_ID}:ledger/{ledger}/{}",
                access.table
            )
        } else {
            format!(
                "arn:aws:qldb:{REGION}:{LOCAL_ACCOUNT_ID}:ledger/{ledger}/table/{}",
                access.table
            )
        };
        if !grants.aws_allows(&action, std::slice::from_ref(&resource)) {
            return Err(AwsError::client(
                "AccessDeniedException",
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {resource}",
                    grants.user
                ),
            ));
        }
    }
    Ok(())
}

fn text_field<'a>(body: &'a Value, name: &str) -> Result<&'a str, AwsError> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{name} is required")))
}

/// Cuts the front of `values` into one page; returns the page's values.
fn take_page(values: &mut VecDeque<Vec<u8>>) -> Vec<Value> {
    let mut page = Vec::new();
    let mut page_bytes = 0usize;
    while let Some(next) = values.front() {
        let full = page.len() >= PAGE_VALUES_MAX
            || (!page.is_empty() && page_bytes + next.len() > PAGE_BYTES_MAX);
        if full {
            break;
        }
        page_bytes += next.len();
        if let Some(bytes) = values.pop_front() {
            page.push(
                json!({"IonBinary": base64::engine::general_purpose::STANDARD.encode(bytes)}),
            );
        }
    }
    page
}

fn timing(started: Instant) -> Value {
    json!({"ProcessingTimeMilliseconds": started.elapsed().as_millis() as u64})
}

impl QldbSessionService {
    /// The session map. Its lock is never held across code that can panic midway through a
    /// change, so a poisoned lock (a panic elsewhere while holding it) still guards a whole map,
    /// and one panicking request must not lock every later one out of QLDB.
    fn sessions_map(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn active_counter(&self, ledger: &str) -> Arc<AtomicUsize> {
        let mut counters = self
            .active_sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counters.entry(ledger.to_owned()).or_default().clone()
    }

    /// Removes expired sessions, drops transactions past their timeout from the others (giving
    /// back their snapshot and slot), and takes the active slot from sessions no longer active.
    fn sweep(&self, sessions: &mut SessionMap) {
        let now = self.clock.now();
        sessions.retain(|_, session| match session.try_lock() {
            Ok(mut session) => {
                if session.expiry(now).is_some() {
                    return false;
                }
                if session.transaction.is_some() && !session.in_live_transaction() {
                    session.transaction = None;
                }
                if session.active.is_some() && !session.is_active(now) {
                    session.active = None;
                }
                true
            }
            // Busy means in use right now: not expired.
            Err(std::sync::TryLockError::WouldBlock) => true,
            Err(std::sync::TryLockError::Poisoned(_)) => false,
        });
    }

    /// Makes room for one more session in a full map: discards the least recently used session
    /// that never ran a transaction, else the least recently used one not in a live
    /// transaction. `false` when every session is busy or in a transaction.
    fn discard_one(&self, sessions: &mut SessionMap) -> bool {
        let mut candidate: Option<(bool, OffsetDateTime, String)> = None;
        for (token, session) in sessions.iter() {
            let Ok(session) = session.try_lock() else {
                continue;
            };
            if session.in_live_transaction() {
                continue;
            }
            let key = (session.ran_transaction, session.last_used);
            if candidate
                .as_ref()
                .is_none_or(|(ran, used, _)| key < (*ran, *used))
            {
                candidate = Some((key.0, key.1, token.clone()));
            }
        }
        match candidate {
            Some((_, _, token)) => sessions.remove(&token).is_some(),
            None => false,
        }
    }

    /// Sweeps when the map is full or the last sweep is older than the sweep interval.
    fn sweep_if_due(&self, sessions: &mut SessionMap) {
        let now = self.clock.now();
        let mut last_sweep = self
            .last_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = sessions.len() >= SESSIONS_MAX
            || last_sweep.is_none_or(|last| {
                (now - last).whole_milliseconds() >= i128::from(SESSION_SWEEP_INTERVAL_MS)
            });
        if due {
            *last_sweep = Some(now);
            drop(last_sweep);
            self.sweep(sessions);
        }
    }

    /// A place among the session's ledger's active sessions; sweeps once when the ledger is at
    /// its limit.
    fn take_active_slot(&self, ledger_name: &str) -> Result<CountedSlot, AwsError> {
        let counter = self.active_counter(ledger_name);
        if let Some(slot) = CountedSlot::take(&counter, ACTIVE_SESSIONS_PER_LEDGER_MAX) {
            return Ok(slot);
        }
        self.sweep(&mut self.sessions_map());
        CountedSlot::take(&counter, ACTIVE_SESSIONS_PER_LEDGER_MAX).ok_or_else(|| {
            AwsError::client(
                "LimitExceededException",
                format!(
                    "the ledger {ledger_name} has {ACTIVE_SESSIONS_PER_LEDGER_MAX} active sessions, its limit; retry when some have finished"
                ),
            )
        })
    }

    /// Blocking: runs one command with security off.
    #[cfg(test)]
    fn send_command(&self, body: &Value) -> Result<Value, AwsError> {
        self.send_command_as(body, None)
    }

    /// Blocking: runs one command for a caller with `grants` (`None`: security is off), whose
    /// statements need the PartiQL actions of QLDB's STANDARD permissions mode on their tables.
    fn send_command_as(&self, body: &Value, grants: Option<&Grants>) -> Result<Value, AwsError> {
        let started = Instant::now();
        if let Some(request) = body.get("StartSession") {
            let ledger_name = text_field(request, "LedgerName")?;
            let ledger = self
                .ledgers
                .ledger(ledger_name)
                .map_err(|error| match error {
                    LedgerError::NotFound(_) => {
                        bad_request(format!("the ledger {ledger_name} does not exist"))
                    }
                    other => session_error(other, None),
                })?;
            let token = sluice_ledger::model::new_id();
            let mut sessions = self.sessions_map();
            self.sweep_if_due(&mut sessions);
            if sessions.len() >= SESSIONS_MAX && !self.discard_one(&mut sessions) {
                return Err(AwsError::client(
                    "LimitExceededException",
                    format!("at most {SESSIONS_MAX} sessions can be open at once"),
                ));
            }
            let now = self.clock.now();
            sessions.insert(
                token.clone(),
                Arc::new(Mutex::new(Session {
                    ledger,
                    ledger_name: ledger_name.to_owned(),
                    started: now,
                    last_used: now,
                    transaction: None,
                    transaction_ended: None,
                    active: None,
                    ran_transaction: false,
                })),
            );
            return Ok(json!({"StartSession": {
                "SessionToken": token, "TimingInformation": timing(started)}}));
        }
        let (token, session) = self.session_of(body)?;
        let Ok(session) = session.lock() else {
            // A command panicked while holding it: the session's state is unknown, so it goes,
            // as QLDB drops a session after an internal error.
            self.sessions_map().remove(token);
            return Err(invalid_session("No such session"));
        };
        self.session_command(body, grants, token, session, started)?
            .run_blocking()
    }

    /// Runs a command that only touches memory (StartTransaction, FetchPage, AbortTransaction,
    /// EndSession, and an ExecuteStatement that [`inserts_its_parameters`]) as an ordinary step
    /// of the async task, if its session is not busy with another command: leaving the async
    /// workers (`block_in_place` hands the worker's other tasks to another thread, and on two
    /// cores the threads it wakes take them from the caller) costs more than the command. A
    /// CommitTransaction's part here only takes its transaction out of the session: the commit
    /// comes back as [`Step::Commit`], for [`CommitJob::run`]. `None` when the command must
    /// leave the async workers.
    fn send_quick_command(
        &self,
        body: &Value,
        grants: Option<&Grants>,
    ) -> Option<Result<Step, AwsError>> {
        let quick = match body.get("ExecuteStatement") {
            Some(request) => inserts_its_parameters(request),
            None => [
                "StartTransaction",
                "FetchPage",
                "AbortTransaction",
                "EndSession",
                "CommitTransaction",
            ]
            .iter()
            .any(|name| body.get(name).is_some()),
        } && body.get("StartSession").is_none();
        if !quick {
            return None;
        }
        let started = Instant::now();
        let (token, session) = match self.session_of(body) {
            Ok(found) => found,
            Err(error) => return Some(Err(error)),
        };
        // Busy or poisoned: the blocking path waits for it or drops it.
        let session = session.try_lock().ok()?;
        Some(self.session_command(body, grants, token, session, started))
    }

    /// The command's session token and its session.
    fn session_of<'a>(&self, body: &'a Value) -> Result<(&'a str, Arc<Mutex<Session>>), AwsError> {
        let token = body
            .get("SessionToken")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request("SessionToken is required"))?;
        let session = self
            .sessions_map()
            .get(token)
            .cloned()
            .ok_or_else(|| invalid_session("No such session"))?;
        Ok((token, session))
    }

    /// Runs one command of the session `token`, whose lock the caller holds; a commit is
    /// handed back to run ([`Step::Commit`]) once the session is released.
    fn session_command(
        &self,
        body: &Value,
        grants: Option<&Grants>,
        token: &str,
        mut session: std::sync::MutexGuard<'_, Session>,
        started: Instant,
    ) -> Result<Step, AwsError> {
        let now = self.clock.now();
        if let Some(expiry) = session.expiry(now) {
            drop(session);
            self.sessions_map().remove(token);
            return Err(invalid_session(match expiry {
                Expiry::Lifetime => format!("Session {token} has expired"),
                Expiry::Idle => format!("Exceeded the session idle time limit: Session {token}"),
            }));
        }
        session.last_used = now;
        if let Some(request) = body.get("CommitTransaction")
            && COMMANDS_BEFORE_COMMIT
                .iter()
                .all(|name| body.get(name).is_none())
        {
            let transaction_id = text_field(request, "TransactionId")?;
            let digest_text = text_field(request, "CommitDigest")?;
            let client_digest = base64::engine::general_purpose::STANDARD
                .decode(digest_text)
                .map_err(|error| bad_request(format!("CommitDigest is not base64: {error}")))?;
            open_transaction(&mut session, transaction_id)?;
            // Commit or fail, the transaction is over either way (QLDB: an OCC conflict ends it).
            let open = session
                .end_transaction(now)
                .ok_or_else(|| AwsError::internal("the open transaction vanished"))?;
            return Ok(Step::Commit(Box::new(CommitJob {
                transaction: open.transaction,
                client_digest,
                transaction_id: transaction_id.to_owned(),
                _slot: open._slot,
                started,
            })));
        }
        self.other_command(body, grants, token, session, now, started)
            .map(Step::Answer)
    }

    /// Every command but CommitTransaction, the session's lock held and its clock updated.
    fn other_command(
        &self,
        body: &Value,
        grants: Option<&Grants>,
        token: &str,
        mut session: std::sync::MutexGuard<'_, Session>,
        now: OffsetDateTime,
        started: Instant,
    ) -> Result<Value, AwsError> {
        if body.get("EndSession").is_some() {
            session.transaction = None;
            drop(session);
            self.sessions_map().remove(token);
            return Ok(json!({"EndSession": {"TimingInformation": timing(started)}}));
        }
        if body.get("StartTransaction").is_some() {
            if let Some(open) = &session.transaction {
                // A driver starts a new transaction only after the last one ended; one still
                // open here was abandoned, and QLDB refuses rather than guessing.
                if open.transaction.check_not_expired().is_ok() {
                    return Err(bad_request(format!(
                        "transaction {} is still open in this session",
                        open.transaction.id()
                    )));
                }
            }
            // An expired transaction still open here is dropped first, giving back its slot.
            session.transaction = None;
            let active = match session.active.take() {
                Some(active) => active,
                None => self.take_active_slot(&session.ledger_name)?,
            };
            let slot = match CountedSlot::take(&self.open_transactions, OPEN_TRANSACTIONS_MAX) {
                Some(slot) => Some(slot),
                None => {
                    // Abandoned transactions past their timeout give their slots back on a sweep.
                    self.sweep(&mut self.sessions_map());
                    CountedSlot::take(&self.open_transactions, OPEN_TRANSACTIONS_MAX)
                }
            };
            let Some(slot) = slot else {
                return Err(AwsError::new(
                    hyper::StatusCode::SERVICE_UNAVAILABLE,
                    "CapacityExceededException",
                    format!("{OPEN_TRANSACTIONS_MAX} transactions are open; retry later"),
                ));
            };
            let transaction = session
                .ledger
                .begin()
                .map_err(|error| session_error(error, None))?;
            let transaction_id = transaction.id().to_owned();
            session.transaction = Some(OpenTransaction {
                transaction,
                _slot: slot,
                pending_results: HashMap::new(),
            });
            session.active = Some(active);
            session.ran_transaction = true;
            return Ok(json!({"StartTransaction": {
                "TransactionId": transaction_id, "TimingInformation": timing(started)}}));
        }
        if body.get("AbortTransaction").is_some() {
            if let Some(open) = session.end_transaction(now) {
                open.transaction.abort();
            }
            return Ok(json!({"AbortTransaction": {"TimingInformation": timing(started)}}));
        }
        if let Some(request) = body.get("ExecuteStatement") {
            let transaction_id = text_field(request, "TransactionId")?;
            let statement = text_field(request, "Statement")?;
            if statement.len() > STATEMENT_BYTES_MAX {
                return Err(bad_request(format!(
                    "a statement has at most {STATEMENT_BYTES_MAX} bytes"
                )));
            }
            let parameters = match request.get("Parameters") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(holders)) if holders.len() <= PARAMETERS_MAX => holders
                    .iter()
                    .map(value_from_holder)
                    .collect::<Result<Vec<_>, _>>()?,
                Some(Value::Array(_)) => {
                    return Err(bad_request(format!(
                        "a statement has at most {PARAMETERS_MAX} parameters"
                    )));
                }
                Some(_) => return Err(bad_request("Parameters must be a list of ValueHolders")),
            };
            // ALLOW_ALL: sending commands to the ledger (checked with the request) is enough.
            if let Some(grants) = grants
                && session.ledger.permissions_mode() == sluice_ledger::PermissionsMode::Standard
            {
                check_statement(grants, &session.ledger_name, statement)?;
            }
            let open = open_transaction(&mut session, transaction_id)?;
            if open.pending_results.len() >= PENDING_RESULTS_PER_TRANSACTION_MAX {
                return Err(AwsError::client(
                    "LimitExceededException",
                    format!(
                        "a transaction keeps at most {PENDING_RESULTS_PER_TRANSACTION_MAX} unread results"
                    ),
                ));
            }
            let values = match open.transaction.execute(statement, &parameters) {
                Ok(values) => values,
                Err(error) => {
                    let expired = matches!(error, LedgerError::TransactionExpired(_));
                    let error = session_error(error, Some(transaction_id));
                    if expired {
                        session.transaction = None;
                    }
                    return Err(error);
                }
            };
            let mut encoded = VecDeque::with_capacity(values.len());
            for value in &values {
                encoded.push_back(
                    sluice_ledger::model::encode_binary(value)
                        .map_err(|error| session_error(error, Some(transaction_id)))?,
                );
            }
            let page_values = take_page(&mut encoded);
            let read_ios = page_values.len();
            let mut page = json!({"Values": page_values});
            if !encoded.is_empty() {
                let page_token = sluice_ledger::model::new_id();
                page["NextPageToken"] = json!(page_token);
                open.pending_results.insert(page_token, encoded);
            }
            return Ok(json!({"ExecuteStatement": {
                "FirstPage": page,
                "TimingInformation": timing(started),
                "ConsumedIOs": {"ReadIOs": read_ios, "WriteIOs": 0},
            }}));
        }
        if let Some(request) = body.get("FetchPage") {
            let transaction_id = text_field(request, "TransactionId")?;
            let page_token = text_field(request, "NextPageToken")?;
            let open = open_transaction(&mut session, transaction_id)?;
            if let Err(error) = open.transaction.check_not_expired() {
                session.transaction = None;
                return Err(session_error(error, Some(transaction_id)));
            }
            let mut remaining = open
                .pending_results
                .remove(page_token)
                .ok_or_else(|| bad_request("no pending result for this page token"))?;
            let page_values = take_page(&mut remaining);
            let read_ios = page_values.len();
            let mut page = json!({"Values": page_values});
            if !remaining.is_empty() {
                let next_token = sluice_ledger::model::new_id();
                page["NextPageToken"] = json!(next_token);
                open.pending_results.insert(next_token, remaining);
            }
            return Ok(json!({"FetchPage": {
                "Page": page,
                "TimingInformation": timing(started),
                "ConsumedIOs": {"ReadIOs": read_ios, "WriteIOs": 0},
            }}));
        }
        Err(bad_request(
            "SendCommand needs one of StartSession, StartTransaction, ExecuteStatement, FetchPage, CommitTransaction, AbortTransaction, EndSession",
        ))
    }
}

/// The session's open transaction if its id is `transaction_id`.
fn open_transaction<'a>(
    session: &'a mut Session,
    transaction_id: &str,
) -> Result<&'a mut OpenTransaction, AwsError> {
    match session.transaction.as_mut() {
        Some(open) if open.transaction.id() == transaction_id => Ok(open),
        Some(_) | None => Err(invalid_session(format!(
            "Transaction {transaction_id} has expired"
        ))),
    }
}

impl JsonService for Arc<QldbSessionService> {
    fn target_prefix(&self) -> &'static str {
        TARGET_PREFIX
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    fn call<'a>(
        &'a self,
        operation: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        self.call_as(operation, body, None)
    }

    fn call_as<'a>(
        &'a self,
        operation: &'a str,
        body: Value,
        grants: Option<Arc<Grants>>,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            if operation != "SendCommand" {
                return Err(AwsError::client(
                    "UnknownOperationException",
                    format!("QLDBSession has no operation {operation}"),
                ));
            }
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                return Err(AwsError::client(
                    "RateExceededException",
                    format!("more than {COMMANDS_IN_FLIGHT_MAX} commands in flight; retry later"),
                ));
            };
            if let Some(step) = self.send_quick_command(&body, grants.as_deref()) {
                let answer = match step? {
                    Step::Answer(answer) => Ok(answer),
                    Step::Commit(job) => job.run().await,
                };
                drop(permit);
                return answer;
            }
            // The engine's calls read the ledger's files and wait for the journal's fsync, so
            // they leave the async workers: on this thread, with the worker's other tasks handed
            // to another thread (`block_in_place`). Even a call alone in flight must: tokio polls
            // the sockets only from a worker that parks, so a statement run on the worker as it
            // is would leave every other connection unread until it ended. A `spawn_blocking`
            // hand-off would put two thread wake-ups on the answer's path, 40-50 µs per command
            // on a 2-core machine.
            if tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
            {
                return tokio::task::block_in_place(|| {
                    let _permit = permit;
                    self.send_command_as(&body, grants.as_deref())
                });
            }
            let service = self.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                service.send_command_as(&body, grants.as_deref())
            })
            .await
            .unwrap_or_else(|error| Err(AwsError::internal(format!("command failed: {error}"))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn pages_hold_at_most_200_values_and_4_mb() {
        let mut values: VecDeque<Vec<u8>> = (0..450).map(|_| vec![0u8; 10]).collect();
        assert_eq!(take_page(&mut values).len(), 200);
        assert_eq!(take_page(&mut values).len(), 200);
        assert_eq!(take_page(&mut values).len(), 50);
        assert!(values.is_empty());

        let mut big: VecDeque<Vec<u8>> = (0..5).map(|_| vec![0u8; 3 * 1024 * 1024]).collect();
        assert_eq!(take_page(&mut big).len(), 1, "two would pass 4 MB");
        let mut huge: VecDeque<Vec<u8>> = VecDeque::from(vec![vec![0u8; PAGE_BYTES_MAX + 1]]);
        assert_eq!(
            take_page(&mut huge).len(),
            1,
            "a page holds at least one value"
        );
    }

    #[test]
    fn syntax_errors_say_line_and_column_and_expiry_says_expired() {
        let error = session_error(
            LedgerError::Syntax {
                message: "unexpected token".into(),
                line: 2,
                column: 7,
            },
            None,
        );
        assert_eq!(error.kind, "BadRequestException");
        assert!(
            error.message.contains("line 2, column 7"),
            "{}",
            error.message
        );
        let error = session_error(LedgerError::TransactionExpired("x".into()), Some("abc"));
        assert_eq!(error.kind, "InvalidSessionException");
        assert_eq!(error.message, "Transaction abc has expired");
        assert_eq!(
            session_error(LedgerError::OccConflict("x".into()), None).kind,
            "OccConflictException"
        );
        assert_eq!(
            session_error(LedgerError::Storage("x".into()), None).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn value_holders_accept_binary_and_text() {
        let binary = sluice_ledger::model::encode_binary(&Element::int(7)).unwrap();
        let holder = json!({"IonBinary": base64::engine::general_purpose::STANDARD.encode(binary)});
        assert_eq!(value_from_holder(&holder).unwrap(), Element::int(7));
        assert_eq!(
            value_from_holder(&json!({"IonText": "{a: 1}"})).unwrap(),
            Element::read_one("{a:1}").unwrap()
        );
        assert!(value_from_holder(&json!({"IonText": "{a: "})).is_err());
        // Ten times the depth limit, text and binary: refused before ion-rs recurses.
        let depth = 10 * sluice_ledger::ion_read::ION_DEPTH_MAX;
        let deep_text = format!("{}1{}", "{a:".repeat(depth), "}".repeat(depth));
        // Nested lists in Ion binary, from the inside out: `BE <VarUInt length> <list>`.
        let mut deep_list = vec![0x21, 0x01];
        for _ in 0..depth {
            let length = deep_list.len();
            let mut header = vec![0xBE];
            if length >= 128 * 128 {
                header.push(((length >> 14) & 0x7F) as u8);
            }
            if length >= 128 {
                header.push(((length >> 7) & 0x7F) as u8);
            }
            header.push((length & 0x7F) as u8 | 0x80);
            header.extend(deep_list);
            deep_list = header;
        }
        let mut deep_binary = vec![0xE0, 0x01, 0x00, 0xEA];
        deep_binary.extend(deep_list);
        assert_eq!(
            sluice_ledger::ion_read::nesting_depth(&deep_binary, usize::MAX),
            Ok(depth)
        );
        for holder in [
            json!({"IonText": deep_text}),
            json!({"IonBinary": base64::engine::general_purpose::STANDARD.encode(&deep_binary)}),
        ] {
            let error = value_from_holder(&holder).unwrap_err();
            assert_eq!(error.kind, "BadRequestException");
        }
        let error = value_from_holder(&json!({"IonText": "[".repeat(depth)})).unwrap_err();
        assert!(
            error.message.contains("nested deeper than 2000 levels"),
            "{}",
            error.message
        );
        assert!(value_from_holder(&json!({"IonBinary": "%%%"})).is_err());
        assert!(value_from_holder(&json!({})).is_err());
    }

    /// A temporary directory removed when dropped (the api crate keeps its dev-dependencies few).
    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn service_with_clock() -> (TempDir, Arc<sluice_ledger::ManualClock>, QldbSessionService) {
        let directory = TempDir(
            std::env::temp_dir().join(format!("sluice-session-{}", sluice_ledger::model::new_id())),
        );
        let clock = Arc::new(sluice_ledger::ManualClock::new(OffsetDateTime::now_utc()));
        let ledgers = Arc::new(
            Ledgers::open_dir(
                &directory.0,
                clock.clone(),
                sluice_ledger::Limits::default(),
            )
            .unwrap(),
        );
        ledgers.create_ledger("expiry", false).unwrap();
        let service = QldbSessionService::new(ledgers, clock.clone());
        (directory, clock, service)
    }

    fn start_session(service: &QldbSessionService) -> String {
        let started = service
            .send_command(&json!({"StartSession": {"LedgerName": "expiry"}}))
            .unwrap();
        started["StartSession"]["SessionToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `send_quick_command`'s answer, for commands that commit nothing.
    fn quick(service: &QldbSessionService, body: &Value) -> Option<Result<Value, AwsError>> {
        service
            .send_quick_command(body, None)
            .map(|step| match step? {
                Step::Answer(answer) => Ok(answer),
                Step::Commit(_) => panic!("{body} committed"),
            })
    }

    #[test]
    fn only_memory_commands_of_a_free_session_run_on_the_callers_thread() {
        let (_directory, _clock, service) = service_with_clock();
        let token = start_session(&service);
        let start = json!({"SessionToken": token, "StartTransaction": {}});
        // Busy with another command: left to the path off the async workers, which waits for it.
        let session = service.sessions_map().get(&token).cloned().unwrap();
        let busy = session.lock().unwrap();
        assert!(quick(&service, &start).is_none());
        drop(busy);
        let started = quick(&service, &start).unwrap().unwrap();
        let transaction_id = started["StartTransaction"]["TransactionId"]
            .as_str()
            .unwrap();
        // Commands that may wait on storage never run there, alone or beside a quick one.
        for slow in [
            json!({"SessionToken": token, "ExecuteStatement":
                {"TransactionId": transaction_id, "Statement": "SELECT * FROM T"}}),
            json!({"SessionToken": token, "ExecuteStatement":
                {"TransactionId": transaction_id, "Statement": "SELECT * FROM T"},
                "CommitTransaction": {"TransactionId": transaction_id, "CommitDigest": "AAAA"}}),
            json!({"StartSession": {"LedgerName": "expiry"}, "EndSession": {}}),
        ] {
            assert!(quick(&service, &slow).is_none(), "{slow}");
        }
        // A commit only leaves its session there: the commit itself comes back to be awaited.
        let commit = json!({"SessionToken": token, "CommitTransaction":
            {"TransactionId": transaction_id, "CommitDigest": "AAAA"}});
        assert!(matches!(
            service.send_quick_command(&commit, None),
            Some(Ok(Step::Commit(_)))
        ));
        quick(&service, &start).unwrap().unwrap();
        let aborted = quick(
            &service,
            &json!({"SessionToken": token, "AbortTransaction": {}}),
        )
        .unwrap()
        .unwrap();
        assert!(aborted.get("AbortTransaction").is_some());
        let unknown = json!({"SessionToken": "nope", "EndSession": {}});
        let error = quick(&service, &unknown).unwrap().unwrap_err();
        assert_eq!(error.kind, "InvalidSessionException");
    }

    /// The commit digest a driver sends for a transaction of statements without parameters.
    fn driver_digest(transaction_id: &str, statements: &[&str]) -> String {
        use sluice_ledger::hash::{dot_hashes, ion_hash};
        let mut digest = ion_hash(&Element::string(transaction_id)).unwrap();
        for statement in statements {
            digest = dot_hashes(&digest, &ion_hash(&Element::string(*statement)).unwrap());
        }
        base64::engine::general_purpose::STANDARD.encode(digest)
    }

    /// Commits through the async path: many sessions' commits wait for their groups without
    /// threads, each gets its own outcome, a wrong digest is refused on that path as on the
    /// blocking one, and a commit whose session is busy is left to the blocking path.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_of_many_sessions_are_answered_from_their_groups() {
        let (_directory, _clock, service) = service_with_clock();
        let service = Arc::new(service);
        let token = start_session(&service);
        let transaction_id = start_transaction(&service, &token).unwrap();
        service
            .send_command(&json!({"SessionToken": token, "ExecuteStatement": {
                "TransactionId": transaction_id, "Statement": "CREATE TABLE T"}}))
            .unwrap();
        let commit = json!({"SessionToken": token, "CommitTransaction": {
            "TransactionId": transaction_id,
            "CommitDigest": driver_digest(&transaction_id, &["CREATE TABLE T"])}});
        // Busy with another command: left to the blocking path.
        let session = service.sessions_map().get(&token).cloned().unwrap();
        let busy = session.lock().unwrap();
        assert!(service.send_quick_command(&commit, None).is_none());
        drop(busy);
        service.call("SendCommand", commit).await.unwrap();

        let mut clients = Vec::new();
        for n in 0..24 {
            let service = service.clone();
            clients.push(tokio::spawn(async move {
                let token = start_session(&service);
                let started = service
                    .call(
                        "SendCommand",
                        json!({"SessionToken": token, "StartTransaction": {}}),
                    )
                    .await?;
                let transaction_id = started["StartTransaction"]["TransactionId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let statement = format!("INSERT INTO T VALUE {{'n': {n}}}");
                service
                    .call(
                        "SendCommand",
                        json!({"SessionToken": token, "ExecuteStatement": {
                            "TransactionId": transaction_id, "Statement": statement}}),
                    )
                    .await?;
                // Every third client sends a digest of other statements: refused, alone.
                let digest = if n % 3 == 0 {
                    driver_digest(&transaction_id, &["INSERT INTO T VALUE {'n': -1}"])
                } else {
                    driver_digest(&transaction_id, &[&statement])
                };
                service
                    .call(
                        "SendCommand",
                        json!({"SessionToken": token, "CommitTransaction": {
                            "TransactionId": transaction_id, "CommitDigest": digest}}),
                    )
                    .await
            }));
        }
        let mut committed = 0;
        for (n, client) in clients.into_iter().enumerate() {
            match client.await.unwrap() {
                Ok(answer) => {
                    assert!(n % 3 != 0, "client {n}'s wrong digest was accepted");
                    assert_eq!(answer["CommitTransaction"]["ConsumedIOs"]["WriteIOs"], 1);
                    committed += 1;
                }
                Err(error) => {
                    assert!(n % 3 == 0, "client {n}: {error:?}");
                    assert_eq!(error.kind, "BadRequestException", "{error:?}");
                }
            }
        }
        assert_eq!(committed, 16);
        let ledger = service.ledgers.ledger("expiry").unwrap();
        let mut count = ledger.begin().unwrap();
        assert_eq!(
            count.execute("SELECT VALUE COUNT(*) FROM T", &[]).unwrap(),
            vec![Element::from(16i64)]
        );
    }

    /// A commit that leads its group and waits for the disk does not hold up the async worker:
    /// with one worker, another session starts a transaction and runs a statement while the
    /// commit waits two seconds for its fsync.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_commit_waiting_for_the_disk_leaves_the_worker_to_other_sessions() {
        let (_directory, _clock, service) = service_with_clock();
        let service = Arc::new(service);
        let ledger = service.ledgers.ledger("expiry").unwrap();
        let started = service.clone();
        let send = move |body: Value| {
            let service = service.clone();
            async move { service.call("SendCommand", body).await }
        };
        let token = start_session(&started);
        let transaction_id = start_transaction(&started, &token).unwrap();
        send(json!({"SessionToken": token, "ExecuteStatement": {
            "TransactionId": transaction_id, "Statement": "CREATE TABLE T"}}))
        .await
        .unwrap();
        send(json!({"SessionToken": token, "CommitTransaction": {
            "TransactionId": transaction_id,
            "CommitDigest": driver_digest(&transaction_id, &["CREATE TABLE T"])}}))
        .await
        .unwrap();

        let statement = "INSERT INTO T VALUE {'n': 1}";
        let transaction_id = start_transaction(&started, &token).unwrap();
        send(json!({"SessionToken": token, "ExecuteStatement": {
            "TransactionId": transaction_id, "Statement": statement}}))
        .await
        .unwrap();
        ledger.delay_next_journal_sync(std::time::Duration::from_secs(2));
        let slow = tokio::spawn(send(json!({"SessionToken": token, "CommitTransaction": {
            "TransactionId": transaction_id,
            "CommitDigest": driver_digest(&transaction_id, &[statement])}})));
        let other = tokio::spawn({
            let send = send.clone();
            async move {
                let started = send(json!({"StartSession": {"LedgerName": "expiry"}})).await?;
                let token = started["StartSession"]["SessionToken"].clone();
                let started = send(json!({"SessionToken": token, "StartTransaction": {}})).await?;
                let transaction_id = started["StartTransaction"]["TransactionId"].clone();
                send(json!({"SessionToken": token, "ExecuteStatement": {
                    "TransactionId": transaction_id, "Statement": "INSERT INTO T VALUE {'n': 2}"}}))
                .await
            }
        });
        let other = tokio::time::timeout(std::time::Duration::from_secs(1), other)
            .await
            .expect("another session is served while the commit waits for the disk");
        other.unwrap().unwrap();
        assert!(!slow.is_finished(), "the commit still waits for its fsync");
        let committed = slow.await.unwrap().unwrap();
        assert_eq!(committed["CommitTransaction"]["ConsumedIOs"]["WriteIOs"], 1);
    }

    fn start_transaction(service: &QldbSessionService, token: &str) -> Result<String, AwsError> {
        let started =
            service.send_command(&json!({"SessionToken": token, "StartTransaction": {}}))?;
        Ok(started["StartTransaction"]["TransactionId"]
            .as_str()
            .unwrap()
            .to_owned())
    }

    #[test]
    fn transactions_expire_after_30_seconds_and_the_session_survives() {
        let (_directory, clock, service) = service_with_clock();
        let token = start_session(&service);
        let transaction_id = start_transaction(&service, &token).unwrap();
        clock.advance_ms(31_000);
        let error = service
            .send_command(&json!({"SessionToken": token, "ExecuteStatement": {
                "TransactionId": transaction_id, "Statement": "CREATE TABLE T"}}))
            .unwrap_err();
        assert_eq!(error.kind, "InvalidSessionException");
        assert_eq!(
            error.message,
            format!("Transaction {transaction_id} has expired")
        );
        start_transaction(&service, &token).unwrap();
    }

    #[test]
    fn sessions_expire_after_a_minute_idle_and_after_fifteen_minutes_in_all() {
        let (_directory, clock, service) = service_with_clock();
        let idle = start_session(&service);
        clock.advance_ms(SESSION_IDLE_TIMEOUT_MS - 1_000);
        service
            .send_command(&json!({"SessionToken": idle, "AbortTransaction": {}}))
            .unwrap();
        clock.advance_ms(SESSION_IDLE_TIMEOUT_MS + 1);
        let error = start_transaction(&service, &idle).unwrap_err();
        assert_eq!(error.kind, "InvalidSessionException");
        assert_eq!(
            error.message,
            format!("Exceeded the session idle time limit: Session {idle}")
        );
        assert_eq!(
            service.session_count(),
            0,
            "an expired session leaves the map"
        );

        // A session in steady use still ends at its lifetime, as QLDB's do.
        let busy = start_session(&service);
        let mut elapsed_ms = 0;
        while elapsed_ms <= SESSION_LIFETIME_MS - 30_000 {
            let transaction_id = start_transaction(&service, &busy).unwrap();
            service
                .send_command(&json!({"SessionToken": busy, "AbortTransaction": {}}))
                .unwrap();
            assert!(!transaction_id.is_empty());
            clock.advance_ms(30_000);
            elapsed_ms += 30_000;
        }
        clock.advance_ms(1);
        let error = start_transaction(&service, &busy).unwrap_err();
        assert_eq!(
            (error.kind, error.message),
            (
                "InvalidSessionException",
                format!("Session {busy} has expired")
            )
        );
        let error = start_transaction(&service, &busy).unwrap_err();
        assert_eq!(error.message, "No such session");
    }

    #[test]
    fn sessions_opened_and_never_used_cannot_keep_a_client_out() {
        let (_directory, clock, service) = service_with_clock();
        let user = start_session(&service);
        start_transaction(&service, &user).unwrap();
        service
            .send_command(&json!({"SessionToken": user, "AbortTransaction": {}}))
            .unwrap();
        clock.advance_ms(1);
        // One client fills the whole map with sessions it never uses.
        let hoarded: Vec<String> = (1..SESSIONS_MAX)
            .map(|_| {
                clock.advance_ms(1);
                start_session(&service)
            })
            .collect();
        assert_eq!(service.session_count(), SESSIONS_MAX);
        assert_eq!(service.active_session_count("expiry"), 1);

        // Another client still gets a session and a transaction at once: the least recently
        // used session that never ran a transaction made room, not the one in use.
        let newcomer = start_session(&service);
        start_transaction(&service, &newcomer).unwrap();
        assert_eq!(service.session_count(), SESSIONS_MAX);
        let error = start_transaction(&service, &hoarded[0]).unwrap_err();
        assert_eq!(
            (error.kind, error.message.as_str()),
            ("InvalidSessionException", "No such session")
        );
        start_transaction(&service, &user).unwrap();
        start_transaction(&service, &hoarded[1]).unwrap();

        // And the hoard is gone a minute later.
        clock.advance_ms(SESSION_IDLE_TIMEOUT_MS + 1);
        start_session(&service);
        assert_eq!(service.session_count(), 1);
    }

    #[test]
    fn active_sessions_are_limited_per_ledger_and_stop_counting_once_finished() {
        let (_directory, clock, service) = service_with_clock();
        service.ledgers.create_ledger("other", false).unwrap();
        // Each session runs and ends one transaction: active, as QLDB counts "a session that
        // recently finished a transaction".
        let tokens: Vec<String> = (0..ACTIVE_SESSIONS_PER_LEDGER_MAX)
            .map(|_| {
                let token = start_session(&service);
                start_transaction(&service, &token).unwrap();
                service
                    .send_command(&json!({"SessionToken": token, "AbortTransaction": {}}))
                    .unwrap();
                token
            })
            .collect();
        assert_eq!(
            service.active_session_count("expiry"),
            ACTIVE_SESSIONS_PER_LEDGER_MAX
        );
        let late = start_session(&service);
        let error = start_transaction(&service, &late).unwrap_err();
        assert_eq!(
            (error.kind, error.status.as_u16()),
            ("LimitExceededException", 400)
        );
        // The limit is per ledger.
        let elsewhere = service
            .send_command(&json!({"StartSession": {"LedgerName": "other"}}))
            .unwrap()["StartSession"]["SessionToken"]
            .as_str()
            .unwrap()
            .to_owned();
        start_transaction(&service, &elsewhere).unwrap();
        // A session that already counts may start its next transaction.
        start_transaction(&service, &tokens[0]).unwrap();

        // Commands that start no transaction do not keep a session active.
        clock.advance_ms(ACTIVE_AFTER_TRANSACTION_MS + 1);
        for token in &tokens[1..] {
            service
                .send_command(&json!({"SessionToken": token, "AbortTransaction": {}}))
                .unwrap();
        }
        start_transaction(&service, &late).unwrap();
        assert_eq!(service.active_session_count("expiry"), 2);
    }

    #[test]
    fn only_an_insert_of_small_parameters_runs_on_the_async_worker() {
        let request = |statement: &str, parameters: Value| json!({"TransactionId": "t", "Statement": statement, "Parameters": parameters});
        let document = json!([{"IonText": "{VIN: \"A\"}"}]);
        assert!(inserts_its_parameters(&request(
            "INSERT INTO Vehicle ?",
            document.clone()
        )));
        assert!(inserts_its_parameters(&request(
            "insert into Vehicle value ?",
            document.clone()
        )));
        // Statements that read documents, however short, leave the worker.
        for statement in [
            "SELECT * FROM Vehicle",
            "UPDATE Vehicle SET n = ?",
            "DELETE FROM Vehicle WHERE VIN = ?",
            "INSERT INTO Vehicle VALUE {'n': (SELECT COUNT(*) FROM Vehicle)}",
            "INSERT INTO Vehicle <<",
        ] {
            assert!(
                !inserts_its_parameters(&request(statement, document.clone())),
                "{statement}"
            );
        }
        let large = json!([{"IonText": "x".repeat(INLINE_PARAMETER_BYTES_MAX + 1)}]);
        assert!(!inserts_its_parameters(&request(
            "INSERT INTO Vehicle ?",
            large
        )));
        assert!(!inserts_its_parameters(&request(
            "INSERT INTO Vehicle ?",
            json!([{"IonText": 1}])
        )));
        assert!(!inserts_its_parameters(&json!({"Statement": 7})));
    }

    #[test]
    fn open_transactions_are_bounded_and_their_slots_come_back() {
        let (_directory, _clock, service) = service_with_clock();
        let tokens: Vec<String> = (0..=OPEN_TRANSACTIONS_MAX)
            .map(|_| start_session(&service))
            .collect();
        for token in tokens.iter().take(OPEN_TRANSACTIONS_MAX) {
            service
                .send_command(&json!({"SessionToken": token, "StartTransaction": {}}))
                .unwrap();
        }
        let last = tokens.last().unwrap();
        let error = service
            .send_command(&json!({"SessionToken": last, "StartTransaction": {}}))
            .unwrap_err();
        assert_eq!(
            (error.kind, error.status.as_u16()),
            ("CapacityExceededException", 503)
        );
        service
            .send_command(&json!({"SessionToken": tokens[0], "AbortTransaction": {}}))
            .unwrap();
        service
            .send_command(&json!({"SessionToken": tokens[1], "EndSession": {}}))
            .unwrap();
        service
            .send_command(&json!({"SessionToken": last, "StartTransaction": {}}))
            .unwrap();
        assert_eq!(
            service.open_transactions.load(Ordering::SeqCst),
            OPEN_TRANSACTIONS_MAX - 1
        );
    }

    #[test]
    fn malformed_commands_are_bad_requests_not_panics() {
        let (_directory, _clock, service) = service_with_clock();
        let token = start_session(&service);
        for body in [
            json!({}),
            json!({"StartSession": {}}),
            json!({"StartSession": {"LedgerName": 5}}),
            json!({"SessionToken": token}),
            json!({"SessionToken": token, "ExecuteStatement": {"TransactionId": "x"}}),
            json!({"SessionToken": token, "ExecuteStatement": {"TransactionId": "x", "Statement": "SELECT 1 FROM T", "Parameters": 3}}),
            json!({"SessionToken": token, "FetchPage": {"TransactionId": "x", "NextPageToken": "y"}}),
            json!({"SessionToken": token, "CommitTransaction": {"TransactionId": "x", "CommitDigest": "%%"}}),
        ] {
            let error = service.send_command(&body).unwrap_err();
            assert!(
                matches!(
                    error.kind,
                    "BadRequestException" | "InvalidSessionException"
                ),
                "{body}: {error:?}"
            );
        }
    }
}
