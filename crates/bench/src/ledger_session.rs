//! The ledger's network path for `sluice-bench ledger`: single-document INSERT transactions
//! sent through QLDBSession (AWS JSON 1.0 over HTTP/1.1 keep-alive) to a real `sluice up`, as a
//! QLDB driver sends them: StartTransaction, ExecuteStatement with the document as an IonBinary
//! parameter, CommitTransaction with the commit digest computed on the client. One session and
//! one connection per client.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use ion_rs::Element;
use serde_json::{Value, json};
use sluice_ledger::hash::{self, Hash};

use crate::http::Connection;
use crate::ledger::{InsertResult, Latency};

/// A statement and its parameter, prepared before the clock starts, as a driver holds them.
pub struct PreparedInsert {
    holder: Value,
    statement_hash: Hash,
}

impl PreparedInsert {
    pub fn new(statement: &str, document: &Element) -> anyhow::Result<PreparedInsert> {
        let bytes = sluice_ledger::model::encode_binary(document)?;
        Ok(PreparedInsert {
            holder: json!({"IonBinary": base64::engine::general_purpose::STANDARD.encode(bytes)}),
            statement_hash: hash::dot_hashes(
                &hash::ion_hash(&Element::string(statement))?,
                &hash::ion_hash(document)?,
            ),
        })
    }
}

/// One client: a keep-alive connection and its QLDB session.
pub(crate) struct SessionClient {
    connection: Connection,
    token: String,
}

impl SessionClient {
    pub(crate) fn start(aws_address: &str, ledger: &str) -> anyhow::Result<SessionClient> {
        let mut connection = Connection::open(aws_address)?;
        let started = send(
            &mut connection,
            &json!({"StartSession": {"LedgerName": ledger}}),
        )?;
        let token = started
            .pointer("/StartSession/SessionToken")
            .and_then(Value::as_str)
            .context("StartSession returned no token")?
            .to_owned();
        Ok(SessionClient { connection, token })
    }

    fn command(&mut self, name: &str, body: Value) -> anyhow::Result<Value> {
        let mut command = json!({"SessionToken": self.token});
        command[name] = body;
        send(&mut self.connection, &command)
    }

    /// One transaction of one statement; returns once the commit is acknowledged, with the
    /// time each of its three commands took from sending to the answer read.
    pub(crate) fn run(
        &mut self,
        statement: &str,
        insert: &PreparedInsert,
    ) -> anyhow::Result<CommandTimes> {
        let sent = Instant::now();
        let started = self.command("StartTransaction", json!({}))?;
        let start_done = Instant::now();
        let transaction_id = started
            .pointer("/StartTransaction/TransactionId")
            .and_then(Value::as_str)
            .context("StartTransaction returned no id")?
            .to_owned();
        self.command(
            "ExecuteStatement",
            json!({"TransactionId": transaction_id, "Statement": statement,
                   "Parameters": [insert.holder]}),
        )?;
        let execute_done = Instant::now();
        let digest = hash::dot_hashes(
            &hash::ion_hash(&Element::string(transaction_id.as_str()))?,
            &insert.statement_hash,
        );
        let digest = base64::engine::general_purpose::STANDARD.encode(digest);
        let commit_sent = Instant::now();
        let committed = self.command(
            "CommitTransaction",
            json!({"TransactionId": transaction_id, "CommitDigest": digest}),
        )?;
        ensure!(
            committed
                .pointer("/CommitTransaction/CommitDigest")
                .and_then(Value::as_str)
                == Some(digest.as_str()),
            "the server's commit digest differs from the client's"
        );
        Ok(CommandTimes {
            start_ms: ms(start_done - sent),
            execute_ms: ms(execute_done - start_done),
            commit_ms: ms(commit_sent.elapsed()),
        })
    }

    /// One round trip that does no ledger work: AbortTransaction with no transaction open, the
    /// cheapest command (HTTP, the AWS JSON dispatch, the session lookup, the answer).
    fn bare_round_trip(&mut self) -> anyhow::Result<()> {
        self.command("AbortTransaction", json!({}))?;
        Ok(())
    }
}

pub(crate) fn ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// How long each command of one transaction took, client-side, in milliseconds; for the
/// embedded engine, its calls `begin`, `execute` and `commit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommandTimes {
    pub(crate) start_ms: f64,
    pub(crate) execute_ms: f64,
    pub(crate) commit_ms: f64,
}

/// Median time of each command of a run's transactions, client-side.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CommandMedians {
    pub(crate) start_ms: f64,
    pub(crate) execute_ms: f64,
    pub(crate) commit_ms: f64,
}

impl CommandMedians {
    pub(crate) fn of(times: &[CommandTimes]) -> CommandMedians {
        let median =
            |pick: fn(&CommandTimes) -> f64| Latency::of(times.iter().map(pick).collect()).p50_ms;
        CommandMedians {
            start_ms: median(|t| t.start_ms),
            execute_ms: median(|t| t.execute_ms),
            commit_ms: median(|t| t.commit_ms),
        }
    }
}

/// `count` bare round trips ([`SessionClient::bare_round_trip`]) from one client, back to back:
/// the HTTP path's own cost, which a transaction pays three times.
pub fn bare_round_trips(aws_address: &str, ledger: &str, count: usize) -> anyhow::Result<Latency> {
    let mut session = SessionClient::start(aws_address, ledger)?;
    let mut latencies_ms = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        session.bare_round_trip()?;
        latencies_ms.push(ms(sent.elapsed()));
    }
    Ok(Latency::of(latencies_ms))
}

/// A transaction for each of `inserts`, each followed at once by a bare round trip, which is
/// timed: a round trip that finds the node's threads parked after waiting for the disk, as a
/// transaction's commands find them.
pub fn round_trips_after_commits(
    aws_address: &str,
    ledger: &str,
    statement: &str,
    inserts: &[PreparedInsert],
) -> anyhow::Result<Latency> {
    let mut session = SessionClient::start(aws_address, ledger)?;
    let mut latencies_ms = Vec::with_capacity(inserts.len());
    for insert in inserts {
        session.run(statement, insert)?;
        let sent = Instant::now();
        session.bare_round_trip()?;
        latencies_ms.push(ms(sent.elapsed()));
    }
    Ok(Latency::of(latencies_ms))
}

fn send(connection: &mut Connection, command: &Value) -> anyhow::Result<Value> {
    let response = connection.request_with_headers(
        "POST",
        "/",
        &[("X-Amz-Target", "QLDBSession.SendCommand")],
        "application/x-amz-json-1.0",
        &serde_json::to_vec(command)?,
    )?;
    if response.status != 200 {
        bail!(
            "QLDBSession answered {}: {}",
            response.status,
            response.text()
        );
    }
    Ok(serde_json::from_slice(&response.body)?)
}

/// Creates a ledger through the QLDB control plane, and its table through a session.
pub fn create_ledger(aws_address: &str, ledger: &str, table: &str) -> anyhow::Result<()> {
    let mut connection = Connection::open(aws_address)?;
    let body = json!({"Name": ledger, "PermissionsMode": "STANDARD", "DeletionProtection": false});
    let response = connection.json("POST", "/ledgers", &body.to_string())?;
    ensure!(
        response.status == 200,
        "CreateLedger answered {}: {}",
        response.status,
        response.text()
    );
    let mut client = SessionClient::start(aws_address, ledger)?;
    let statement = format!("CREATE TABLE {table}");
    let started = client.command("StartTransaction", json!({}))?;
    let transaction_id = started
        .pointer("/StartTransaction/TransactionId")
        .and_then(Value::as_str)
        .context("StartTransaction returned no id")?
        .to_owned();
    client.command(
        "ExecuteStatement",
        json!({"TransactionId": transaction_id, "Statement": statement}),
    )?;
    let digest = hash::dot_hashes(
        &hash::ion_hash(&Element::string(transaction_id.as_str()))?,
        &hash::ion_hash(&Element::string(statement.as_str()))?,
    );
    client.command(
        "CommitTransaction",
        json!({"TransactionId": transaction_id,
               "CommitDigest": base64::engine::general_purpose::STANDARD.encode(digest)}),
    )?;
    Ok(())
}

/// Sends `inserts` as single-statement transactions from `clients` sessions at once (each its
/// own share, in order), timing each transaction from StartTransaction to the commit's answer,
/// and each of its commands.
pub fn run_clients(
    aws_address: &str,
    ledger: &str,
    statement: &str,
    inserts: &[PreparedInsert],
    clients: usize,
) -> anyhow::Result<(InsertResult, CommandMedians)> {
    let clients = clients.max(1);
    let per_client = inserts.len().div_ceil(clients);
    let sessions = (0..clients)
        .map(|_| SessionClient::start(aws_address, ledger))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let barrier = Arc::new(Barrier::new(clients + 1));
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .into_iter()
            .zip(inserts.chunks(per_client.max(1)))
            .map(|(mut session, share)| {
                let barrier = barrier.clone();
                scope.spawn(move || -> anyhow::Result<Vec<(f64, CommandTimes)>> {
                    barrier.wait();
                    let mut latencies_ms = Vec::with_capacity(share.len());
                    for insert in share {
                        let sent = Instant::now();
                        let times = session.run(statement, insert)?;
                        latencies_ms.push((ms(sent.elapsed()), times));
                    }
                    Ok(latencies_ms)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let outcomes: Vec<_> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect();
        (started.elapsed().as_secs_f64(), outcomes)
    });
    let (seconds, outcomes) = outcomes;
    let mut latencies_ms = Vec::with_capacity(inserts.len());
    let mut command_times = Vec::with_capacity(inserts.len());
    for outcome in outcomes {
        for (latency_ms, times) in outcome? {
            latencies_ms.push(latency_ms);
            command_times.push(times);
        }
    }
    Ok((
        InsertResult {
            n_transactions: latencies_ms.len() as u64,
            seconds,
            latency: Latency::of(latencies_ms),
        },
        CommandMedians::of(&command_times),
    ))
}
