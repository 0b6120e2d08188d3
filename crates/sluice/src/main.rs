//! The `sluice` binary: command-line entry point. `sluice up` runs the whole system; `sluice sql`
//! and `sluice ledger …` are clients of a running server's AWS port.

mod check_index;
mod host;
mod http_client;
mod ledger_cli;
mod security_cli;

/// mimalloc instead of the system allocator: indexing allocates and frees many small values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_api::Server;
use sluice_api::aws::AwsApi;
use sluice_api::aws::dynamodb::DynamoDbService;
use sluice_api::aws::dynamodb_streams::DynamoDbStreamsService;
use sluice_api::aws::firehose::{FirehoseService, MetricsService, create_request_config};
use sluice_api::aws::kinesis::KinesisService;
use sluice_api::aws::lambda::{LambdaOptions, LambdaService, load_created_functions};
use sluice_api::aws::qldb::QldbService;
use sluice_api::aws::qldb_session::QldbSessionService;
use sluice_api::cors::{AllowedOrigins, Cors};
use sluice_api::es::EsApi;
use sluice_api::http::{BodyBudget, ServerOptions};
use sluice_api::tls::{CertificateFiles, ReloadingCert, Tls};
use sluice_api::ui::{SavedObjects, UiApi, UiOptions};
use sluice_functions::{FunctionDefinition, FunctionKind, FunctionRegistry};
use sluice_log::{Clock, SystemClock};
use sluice_node::{FunctionsInvoker, FunctionsTransformer, Node, NodeOptions};

/// Environment variable that shifts Sluice's wall clock by a signed number of milliseconds, for
/// tests and demos of time-based behaviour (index rotation, backup key times): arrival times,
/// rotation, buffering and retries all read the shifted clock.
const CLOCK_OFFSET_ENV: &str = "SLUICE_CLOCK_OFFSET_MS";

// Shutdown is bounded: SIGTERM or SIGINT stops `sluice up` within the servers' grace period
// (`sluice_api::http::SHUTDOWN_GRACE`) plus the budgets below, whatever is running.

/// How long the node may take to stop its delivery workers and commit its indices once the
/// servers stopped. Past it the process exits without them: every acknowledged write is
/// already durable, and a delivery batch in flight is redelivered at the next start.
const NODE_STOP_BUDGET: Duration = Duration::from_secs(10);
/// How long stopping the function processes may take; past it they are left to their own
/// timeouts.
const FUNCTIONS_STOP_BUDGET: Duration = Duration::from_secs(3);
/// How long blocking tasks still running at the end (an engine call whose connection the grace
/// period cut) get before the runtime is dropped without them.
const BLOCKING_TASKS_GRACE: Duration = Duration::from_secs(1);
/// Exit status after a second SIGTERM or SIGINT during shutdown (128 + SIGTERM, as a shell
/// reports a process ended by it).
const EXIT_SECOND_SIGNAL: i32 = 143;

/// The stack of every thread that handles requests (tokio's workers and blocking threads) and of
/// the thread that runs a client command. Readers bound what comes in (Ion at
/// `sluice_ledger::ion_read::ION_DEPTH_MAX`, 2,000 levels; journal blocks 3 more; JSON at
/// `sluice_api::json::JSON_DEPTH_MAX`, 100), and a statement's result may nest a few hundred
/// levels deeper (`RESULT_DEPTH_MAX`). ion-rs reads, writes, hashes, clones and drops values by
/// recursion: measured, about 2 KiB of stack per level optimized and 5 KiB in debug builds, so
/// 2,500 levels need 5 MiB and 13 MiB; `tests/deep_stored.rs` passes with 16 MiB in a debug
/// build and fails with 8 MiB. 32 MiB leaves twice that; it is address space, touched only as
/// deep as a request goes.
const THREAD_STACK_BYTES: usize = 32 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "A verifiable ledger, durable streams, delivery streams and an Elasticsearch-compatible search engine in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run Sluice: open the data directory and serve every API until SIGINT or SIGTERM.
    Up(UpArgs),
    /// Run one PartiQL statement on a ledger, in its own transaction, through QLDBSession.
    Sql(SqlArgs),
    /// Manage ledgers: create, list, delete, digest, verify, export, restore, import, check-index,
    /// replicate.
    Ledger(LedgerArgs),
    /// Manage users and AWS access keys in a data directory's identity store (offline).
    Security(security_cli::SecurityArgs),
}

#[derive(clap::Args, Debug)]
struct SqlArgs {
    /// The server's AWS port.
    #[arg(long, default_value = ledger_cli::DEFAULT_ENDPOINT)]
    endpoint: String,
    /// The ledger.
    #[arg(long)]
    ledger: String,
    /// How to print the values: `ion` keeps every Ion type exactly.
    #[arg(long, value_enum, default_value_t = ledger_cli::OutputFormat::Table)]
    format: ledger_cli::OutputFormat,
    /// The PartiQL statement, with `?` for each parameter.
    statement: String,
    /// The parameters, each one Ion text value (`'{VIN: "1N4AL11D75C109151", Year: 2011}'`).
    parameters: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct LedgerArgs {
    /// The server's AWS port.
    #[arg(long, global = true, default_value = ledger_cli::DEFAULT_ENDPOINT)]
    endpoint: String,
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Create a ledger.
    Create {
        name: String,
        /// Refuse deletion until turned off (QLDB's default: on).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        deletion_protection: bool,
    },
    /// List the ledgers.
    List,
    /// Delete a ledger (its deletion protection must be off).
    Delete { name: String },
    /// Print the ledger's digest and its tip address.
    Digest { name: String },
    /// Fetch every block and check every hash, chain link and the digest here, on the client.
    Verify { name: String },
    /// Export the journal (ExportJournalToS3) into the server's `data_dir/s3/<bucket>/<prefix>`;
    /// prints the export's directory.
    Export {
        name: String,
        #[arg(long, default_value = "sluice-exports")]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        /// ION_BINARY, ION_TEXT or JSON (JSON cannot be restored, as in QLDB).
        #[arg(long, default_value = "ION_TEXT")]
        format: String,
    },
    /// Create a ledger from a journal export of Sluice: `--from DIR` (as `ledger export` printed
    /// it, or inside a directory the server was started with `--import-dir`), or
    /// `--bucket B --prefix P` in the server's `data_dir/s3`.
    Restore {
        name: String,
        #[command(flatten)]
        source: ledger_cli::ExportSource,
    },
    /// Compare every document of the ledger's tables (or of TABLE) with the built-in index's
    /// copy, once the indexer has caught up: versions, content and extra documents. Prints each
    /// difference and fails if there is one.
    CheckIndex {
        name: String,
        table: Option<String>,
        /// The search API.
        #[arg(long, default_value = check_index::DEFAULT_ES_ENDPOINT)]
        es_endpoint: String,
        /// The index, when the config renamed TABLE's (needs TABLE).
        #[arg(long, requires = "table")]
        index: Option<String>,
    },
    /// Create a ledger from an Amazon QLDB S3 journal export downloaded into a directory that the
    /// server was started with `--import-dir` (or copied into its `data_dir/s3`).
    Import {
        name: String,
        #[command(flatten)]
        source: ledger_cli::ExportSource,
    },
    /// Make TARGET a replica of SOURCE: SOURCE (on the server at --endpoint) gets a journal
    /// stream into the Kinesis stream `sluice-journal-SOURCE` (created when missing), and the
    /// server at --to-endpoint replays its blocks in order into TARGET (created when missing),
    /// each exactly once, across restarts of either server. The replica is kept in that
    /// server's data directory and resumes when it starts again.
    Replicate {
        /// The source ledger, on the server at --endpoint.
        source: String,
        /// The target ledger.
        #[arg(long = "to", value_name = "TARGET")]
        target: String,
        /// The AWS port of the server that holds TARGET and runs the replica; it must reach
        /// --endpoint when that is another server.
        #[arg(long, default_value = ledger_cli::DEFAULT_ENDPOINT)]
        to_endpoint: String,
        /// How long a block that arrived after a missing one waits for it before the gap is
        /// reported and the stream read again (default 120000, two minutes).
        #[arg(long, value_name = "MS")]
        settling_window_ms: Option<u64>,
    },
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Environment: SLUICE_CLOCK_OFFSET_MS=<signed ms> shifts Sluice's clock (arrival times, index rotation, buffering, retries), for tests and demos; SLUICE_LOG sets the log filter."
)]
struct UpArgs {
    /// Directory holding all data; created if missing.
    #[arg(long, default_value = "./sluice-data")]
    data_dir: PathBuf,
    /// Address the servers listen on: an IP address or a host name (`localhost`), of which the
    /// first IPv4 address is used, else the first address.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Port of the Elasticsearch-compatible search API (0 picks a free port).
    #[arg(long, default_value_t = 9200)]
    es_port: u16,
    /// Port of the AWS-compatible APIs (Kinesis, Firehose, QLDB, DynamoDB and its streams; 0 picks a free port).
    #[arg(long, default_value_t = 4566)]
    aws_port: u16,
    /// Port of the dashboard (web UI and its JSON API; 0 picks a free port).
    #[arg(long, default_value_t = 5601)]
    ui_port: u16,
    /// Another origin the dashboard is opened from (`http://sluice.example:5601`), which the
    /// search and AWS ports then answer CORS for; the dashboard's own address (and `localhost`
    /// when bound to a loopback or every address) is always allowed. Repeatable.
    #[arg(long = "ui-origin", value_name = "ORIGIN")]
    ui_origins: Vec<String>,
    /// A Lambda function run with the Runtime API kind: `NAME=COMMAND`, the command split on
    /// whitespace (for example `transform=python3 -m awslambdaric handler.handler`). Repeatable.
    #[arg(long = "function", value_name = "NAME=COMMAND")]
    functions: Vec<String>,
    /// A JSON file declaring `functions` (function definitions), `delivery_streams`
    /// (CreateDeliveryStream request bodies), `event_source_mappings`
    /// (CreateEventSourceMapping request bodies) and `saved_objects` (the dashboard's, as its
    /// export writes them), applied at start (existing streams, mappings of the same source and
    /// function, and saved objects are kept), and
    /// `ledger_indexing` (`{"enabled", "ledgers": {NAME: {"enabled", "tables": {TABLE:
    /// {"enabled", "index", "mapping"}}}}}`: the built-in indexing of ledgers into search, on by
    /// default), `ledger_replicas` (`[{"source", "target", "stream", "endpoint",
    /// "settling_window_ms"}]`: ledgers replayed into other ledgers, in-process or from a journal
    /// stream in a Kinesis stream of this node or of the Sluice at `endpoint`), `table_indexing` (`{"tables": {TABLE: {"index", "mapping"}}}`: the built-in
    /// indexing of tables' streams into search, only for the tables named), and `object_store`
    /// (`{"s3": {"endpoint_url", "region", "virtual_hosted_style", "access_key_id",
    /// "secret_access_key", "session_token", "multipart_threshold_bytes", "part_bytes"},
    /// "buckets": {BUCKET: {"server_side_encryption", "kms_key_id"}}}`: the buckets of backups,
    /// S3 destinations and journal exports that live in real S3; the rest stay in DATA_DIR/s3),
    /// and `search_clusters` (`[{"endpoint", "domain_arn", "auth": {"type": "basic",
    /// "username", "password"} | {"type": "api_key", "encoded"} | {"type": "api_key", "id",
    /// "api_key"} | {"type": "sigv4", "service": "es"|"aoss", "region"}, "ca_file",
    /// "index_templates": {NAME: BODY}, "request_timeout_seconds"}]`: the external
    /// Elasticsearch/OpenSearch clusters delivery streams name by ClusterEndpoint or DomainARN),
    /// and `kinesis_endpoints` (`[{"region", "account_id", "endpoint"}]`: the Kinesis APIs of
    /// stream ARNs outside this node, for delivery-stream sources, event-source mappings and
    /// journal streams; requests are signed with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The Python interpreter of functions created through the Lambda API with a `python3.x`
    /// runtime; it must have `awslambdaric` installed.
    #[arg(long, default_value = "python3")]
    lambda_python: String,
    /// The command that runs `nodejs*` functions created through the Lambda API, split on
    /// whitespace; the handler is added as its last argument (npm's `aws-lambda-ric`).
    #[arg(long, default_value = "aws-lambda-ric")]
    lambda_nodejs_ric: String,
    /// Most connections each port serves at once; further ones are answered 503 and closed.
    /// Lowered at start when the open-file limit cannot hold every port's connections.
    #[arg(long, default_value_t = sluice_api::http::CONNECTIONS_PER_LISTENER_MAX)]
    connections_max: usize,
    /// Bytes of request bodies buffered at once across all ports; a request whose body does
    /// not fit is refused (429, or the AWS API's throttling error) before its body is read. At
    /// least 104857600, the largest body.
    #[arg(long, default_value_t = sluice_api::http::REQUEST_BUFFER_BYTES_DEFAULT)]
    request_buffer_bytes: usize,
    /// A directory ledger restores and imports may read (besides the data directory's `s3/`
    /// store, which they always may). Repeatable; none by default.
    #[arg(long = "import-dir", value_name = "DIR")]
    import_dirs: Vec<PathBuf>,
    /// PEM file with the server's certificate followed by its chain: with --tls-key, every port
    /// serve TLS (HTTP/2 and HTTP/1.1 by ALPN). SIGHUP reloads the pair without dropping
    /// connections.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate for localhost, 127.0.0.1, ::1 and --bind,
    /// generated once into DATA_DIR/tls and reused; its SHA-256 fingerprint is printed at start.
    #[arg(long)]
    tls_self_signed: bool,
    /// Refuse plain HTTP (400, then the connection closes). Without it a TLS port serves plain
    /// HTTP too, told apart by each connection's first byte.
    #[arg(long)]
    tls_only: bool,
    /// Require credentials on both ports: HTTP basic auth of an internal user on the search
    /// API, SigV4 signatures of an access key on the AWS port (`sluice security` manages
    /// both). The first start creates the user `admin` with a random password, printed once.
    #[arg(long)]
    security: bool,
    /// Listen beyond loopback without TLS and --security. Without it, `sluice up` refuses to
    /// start on such an address (the config file's `"insecure": true` says the same).
    #[arg(long)]
    insecure: bool,
    /// The master key of encryption at rest: a file of 64 hexadecimal digits (`sluice security
    /// generate-key`) or 32 raw bytes; SLUICE_ENCRYPTION_KEY may hold the digits instead. With
    /// it, stream segments, translogs, ledger journals, the delivery catalog and the objects of
    /// DATA_DIR/s3 written from then on are encrypted (AES-256-GCM); a data directory once
    /// started with a key does not start without it.
    #[arg(long, value_name = "FILE")]
    encryption_key_file: Option<PathBuf>,
}

/// Open-file descriptors kept for the data directory's files (index and log segments, ledger
/// files) and for functions' processes when the connection cap is fitted to the open-file limit.
const DESCRIPTORS_RESERVED: u64 = 512;
/// The highest soft open-file limit asked for when raising it (Linux's default `nr_open`).
const DESCRIPTORS_WANTED: u64 = 1 << 20;

/// The `--config` file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    functions: Vec<FunctionDefinition>,
    #[serde(default)]
    delivery_streams: Vec<serde_json::Value>,
    #[serde(default)]
    event_source_mappings: Vec<serde_json::Value>,
    /// The dashboard's saved objects (`{type, id, attributes}`), added at start when missing.
    #[serde(default)]
    saved_objects: Vec<serde_json::Value>,
    /// The built-in indexing of ledgers into search (on for every table by default).
    #[serde(default)]
    ledger_indexing: sluice_node::LedgerIndexConfig,
    /// Ledgers replicated into other ledgers: `[{"source", "target", "stream", "endpoint",
    /// "settling_window_ms"}]`.
    #[serde(default)]
    ledger_replicas: Vec<sluice_node::ReplicaConfig>,
    /// The built-in indexing of tables into search (off unless a table is named).
    #[serde(default)]
    table_indexing: sluice_node::TableIndexConfig,
    /// Which buckets of backups, S3 destinations and journal exports live in real S3, and
    /// how to reach it (none by default: the local `s3/` directory).
    #[serde(default)]
    object_store: sluice_objects::ObjectStoreConfig,
    /// External Elasticsearch/OpenSearch clusters that delivery streams name by
    /// `ClusterEndpoint` or `DomainARN`: how to authenticate, which CA to trust, which index
    /// templates to put (none by default).
    #[serde(default)]
    search_clusters: Vec<sluice_cluster::ClusterConnection>,
    /// Kinesis APIs outside this node, by the region and account of their streams' ARNs
    /// (none by default: every stream ARN names a stream of this node).
    #[serde(default)]
    kinesis_endpoints: Vec<sluice_node::KinesisEndpoint>,
    /// `--insecure`: listen beyond loopback without TLS and authentication.
    #[serde(default)]
    insecure: bool,
    /// With `--security`, request and byte rates per user, API key and access key (none by
    /// default: unlimited).
    #[serde(default)]
    identity_rates: sluice_api::rates::RatesConfig,
}

/// The system clock shifted by `SLUICE_CLOCK_OFFSET_MS`.
#[derive(Debug)]
struct OffsetClock {
    offset_ms: i64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        let now = i128::from(SystemClock.now_ms()) + i128::from(self.offset_ms);
        u64::try_from(now.max(0)).unwrap_or(u64::MAX)
    }
}

fn clock_from_env() -> anyhow::Result<Arc<dyn Clock>> {
    match std::env::var(CLOCK_OFFSET_ENV) {
        Ok(text) => {
            let offset_ms: i64 = text
                .trim()
                .parse()
                .with_context(|| format!("{CLOCK_OFFSET_ENV}={text} is not a number of ms"))?;
            tracing::warn!(offset_ms, "the clock is shifted by {CLOCK_OFFSET_ENV}");
            Ok(Arc::new(OffsetClock { offset_ms }))
        }
        Err(_) => Ok(Arc::new(SystemClock)),
    }
}

fn read_config(args: &UpArgs) -> anyhow::Result<ConfigFile> {
    let mut config = match &args.config {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => ConfigFile::default(),
    };
    for function in &args.functions {
        let (name, command) = function
            .split_once('=')
            .with_context(|| format!("--function {function}: expected NAME=COMMAND"))?;
        config.functions.push(FunctionDefinition::new(
            name,
            FunctionKind::RuntimeApi,
            command.split_whitespace().map(str::to_owned).collect(),
        ));
    }
    Ok(config)
}

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` says otherwise.
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), so every first touch of
/// a 2 MiB range makes the kernel zero all of it, and indexing frees and refills large buffers
/// (tantivy's per-segment arenas and postings buffers) all the time: with huge pages, zeroing
/// them was 12 % of the server's CPU while bulk loading, and turning them off cut its CPU per
/// document by 10 % and its peak memory by 12 % (BENCHMARKS.md, "Bulk loading …, huge pages").
/// The flag is process-wide and takes effect for every later page fault, including in the arena
/// mimalloc reserved before `main`, and children (function runtimes) inherit it;
/// `MIMALLOC_ALLOW_THP=1` keeps mimalloc's default.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Best effort: an old kernel without the flag just keeps its huge pages.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    // Colours only for a person at a terminal: a log redirected to a file or read by another
    // program stays plain text. NO_COLOR turns them off anyway (https://no-color.org).
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Up(args) => up(args),
        Command::Sql(args) => with_large_stack(move || sql(args)),
        Command::Ledger(args) => with_large_stack(move || ledger(args)),
        Command::Security(args) => {
            host::restrict_new_file_modes();
            security_cli::run(args)
        }
    };
    // The error and its context on one line, without a backtrace even when RUST_BACKTRACE is
    // set: a server's answer is not a bug of the CLI.
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a client command on a thread with [`THREAD_STACK_BYTES`] of stack: it reads, prints and
/// hashes values as deep as the server's, whatever the main thread's stack (`ulimit -s`) is.
fn with_large_stack(
    command: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("sluice-client".to_owned())
        .stack_size(THREAD_STACK_BYTES)
        .spawn(command)
        .context("starting the client thread")?
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the client thread panicked")))
}

fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let client = ledger_cli::AwsClient::new(&args.endpoint)?;
    // Bounded like the server bounds them: a parameter too deep is refused here, not sent.
    let parameters = args
        .parameters
        .iter()
        .enumerate()
        .map(|(index, text)| ledger_cli::parse_parameter(index + 1, text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let values =
        ledger_cli::execute_statement(&client, &args.ledger, &args.statement, &parameters)?;
    print!("{}", ledger_cli::render(&values, args.format)?);
    Ok(())
}

fn ledger(args: LedgerArgs) -> anyhow::Result<()> {
    let client = ledger_cli::AwsClient::new(&args.endpoint)?;
    match args.command {
        LedgerCommand::Create {
            name,
            deletion_protection,
        } => ledger_cli::create(&client, &name, deletion_protection),
        LedgerCommand::List => ledger_cli::list(&client),
        LedgerCommand::Delete { name } => ledger_cli::delete(&client, &name),
        LedgerCommand::Digest { name } => ledger_cli::digest(&client, &name),
        LedgerCommand::Verify { name } => ledger_cli::verify(&client, &name),
        LedgerCommand::Export {
            name,
            bucket,
            prefix,
            format,
        } => ledger_cli::export(&client, &name, &bucket, &prefix, &format),
        LedgerCommand::Restore { name, source } => {
            ledger_cli::load(&client, &name, &source, "restore")
        }
        LedgerCommand::Import { name, source } => {
            ledger_cli::load(&client, &name, &source, "import")
        }
        LedgerCommand::Replicate {
            source,
            target,
            to_endpoint,
            settling_window_ms,
        } => ledger_cli::replicate(
            &client,
            &ledger_cli::AwsClient::new(&to_endpoint)?,
            &source,
            &target,
            settling_window_ms,
        ),
        LedgerCommand::CheckIndex {
            name,
            table,
            es_endpoint,
            index,
        } => check_index::check_index(&check_index::CheckIndex {
            aws: &client,
            aws_endpoint: &args.endpoint,
            es_endpoint: &es_endpoint,
            ledger: &name,
            table: table.as_deref(),
            index: index.as_deref(),
        }),
    }
}

/// Raises the soft open-file limit to the hard one, as servers holding many sockets do, and
/// returns the soft limit in effect (`None`: unlimited).
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = limit
        .maximum
        .unwrap_or(DESCRIPTORS_WANTED)
        .min(DESCRIPTORS_WANTED);
    if limit.current.is_some_and(|current| current < wanted) {
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "the open-file limit could not be raised");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The listeners `sluice up` serves: search, AWS and the dashboard.
const LISTENERS: u64 = 3;

/// The connection cap of each port, lowered so that all ports' connections leave
/// [`DESCRIPTORS_RESERVED`] descriptors of the open-file limit to the data files.
fn connections_max_within(requested: usize, open_files_limit: Option<u64>) -> usize {
    let Some(limit) = open_files_limit else {
        return requested;
    };
    let fitting = usize::try_from(limit.saturating_sub(DESCRIPTORS_RESERVED) / LISTENERS)
        .unwrap_or(usize::MAX)
        .max(1);
    if fitting < requested {
        tracing::warn!(
            open_files_limit = limit,
            requested,
            connections_max = fitting,
            "the open-file limit is low: each port serves fewer connections (raise `ulimit -n`)"
        );
    }
    requested.min(fitting)
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    // Before anything is created: the data directory's files are the owner's alone.
    host::restrict_new_file_modes();
    let bind = host::resolve_bind(&args.bind)?;
    anyhow::ensure!(
        args.connections_max >= 1,
        "--connections-max must be at least 1"
    );
    anyhow::ensure!(
        args.request_buffer_bytes >= sluice_api::http::BODY_BYTES_MAX,
        "--request-buffer-bytes must be at least {}, the largest request body",
        sluice_api::http::BODY_BYTES_MAX
    );
    let connections_max = connections_max_within(args.connections_max, raise_open_files_limit());
    for directory in &args.import_dirs {
        let metadata = std::fs::metadata(directory)
            .with_context(|| format!("--import-dir {}", directory.display()))?;
        anyhow::ensure!(
            metadata.is_dir(),
            "--import-dir {} is not a directory",
            directory.display()
        );
    }
    let config = read_config(&args)?;
    if let Some(refusal) = host::exposure_refusal(
        bind,
        args.tls_cert.is_some() || args.tls_self_signed,
        args.security,
        args.insecure || config.insecure,
    ) {
        anyhow::bail!(refusal);
    }
    let tls = tls_from_args(&args)?;
    let clock = clock_from_env()?;
    let authenticator = if args.security {
        Some(security_cli::authenticator_for_up(
            &args.data_dir,
            config.identity_rates.clone(),
            clock.clone(),
        )?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(async move {
        let registry = FunctionRegistry::new();
        for function in config.functions {
            let name = function.name.clone();
            registry
                .register(function)
                .with_context(|| format!("registering function {name}"))?;
        }
        let options = NodeOptions {
            clock,
            transformer: Arc::new(FunctionsTransformer::new(
                registry.clone(),
                tokio::runtime::Handle::current(),
            )),
            invoker: Arc::new(FunctionsInvoker::new(
                registry.clone(),
                tokio::runtime::Handle::current(),
            )),
            import_dirs: args.import_dirs.clone(),
            ledger_index: config.ledger_indexing,
            ledger_replicas: config.ledger_replicas,
            table_index: config.table_indexing,
            object_store: config.object_store,
            search_clusters: config.search_clusters,
            kinesis_endpoints: config.kinesis_endpoints,
            index_authorizer: authenticator
                .clone()
                .map(|authenticator| authenticator as Arc<dyn sluice_node::IndexAuthorizer>),
            encryption_key: security_cli::encryption_key(args.encryption_key_file.as_deref())?,
        };
        let data_dir = args.data_dir.clone();
        let node = tokio::task::spawn_blocking(move || Node::open_with(&data_dir, options))
            .await
            .context("opening the data directory")?
            .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
        let node = Arc::new(node);
        for request in config.delivery_streams {
            let stream_config = create_request_config(&request)
                .map_err(|error| anyhow::anyhow!("{}: {}", error.kind, error.message))
                .context("a delivery stream of the config file")?;
            let name = stream_config.name.clone();
            if node.delivery().config(&name).is_ok() {
                continue;
            }
            let delivery = node.delivery().clone();
            tokio::task::spawn_blocking(move || delivery.create(stream_config))
                .await
                .context("creating a delivery stream")?
                .with_context(|| format!("creating delivery stream {name} of the config file"))?;
        }
        let created_functions = load_created_functions(&node, &registry)
            .map_err(|error| anyhow::anyhow!(error))
            .context("registering the functions created through the Lambda API")?;
        let lambda = Arc::new(LambdaService::new(
            node.clone(),
            registry.clone(),
            LambdaOptions {
                python: args.lambda_python.clone(),
                nodejs_ric: args
                    .lambda_nodejs_ric
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            },
            created_functions,
        ));
        let resumed = lambda.resume_events();
        if resumed > 0 {
            tracing::info!(
                resumed,
                "running the Event invocations left by the previous run"
            );
        }
        for request in &config.event_source_mappings {
            let lambda = lambda.clone();
            let request = request.clone();
            tokio::task::spawn_blocking(move || lambda.ensure_mapping(&request))
                .await
                .context("creating an event source mapping")?
                .map_err(|error| anyhow::anyhow!("{}: {}", error.kind, error.message))
                .context("an event source mapping of the config file")?;
        }
        let es_server = Server::bind(SocketAddr::new(bind, args.es_port))
            .await
            .with_context(|| format!("binding the search API to {bind}:{}", args.es_port))?;
        let es_address = es_server.local_addr()?;
        let aws_server = Server::bind(SocketAddr::new(bind, args.aws_port))
            .await
            .with_context(|| format!("binding the AWS APIs to {bind}:{}", args.aws_port))?;
        let aws_address = aws_server.local_addr()?;
        let ui_server = Server::bind(SocketAddr::new(bind, args.ui_port))
            .await
            .with_context(|| format!("binding the dashboard to {bind}:{}", args.ui_port))?;
        let ui_address = ui_server.local_addr()?;
        let origins = dashboard_origins(
            if tls.is_some() { "https" } else { "http" },
            ui_address,
            &args.ui_origins,
        )?;
        let saved_objects_dir = node.data_dir().join("ui");
        let declared = config.saved_objects;
        let saved_objects = tokio::task::spawn_blocking(move || {
            let saved_objects = SavedObjects::open(&saved_objects_dir)?;
            saved_objects.declare(&declared)?;
            Ok::<_, sluice_api::ui::SavedObjectsError>(saved_objects)
        })
        .await
        .context("opening the dashboard's saved objects")??;
        let ui_options = UiOptions {
            search_port: es_address.port(),
            aws_port: aws_address.port(),
            default_host: url_host(ui_address.ip()),
            tls: tls.is_some(),
        };
        let server_options = ServerOptions {
            connections_max,
            tls: tls.clone(),
            ..ServerOptions::new(BodyBudget::new(args.request_buffer_bytes))
        };
        let mut es_api = EsApi::new(node.clone());
        let mut aws = aws_api(&node, lambda, authenticator.clone());
        if let Some(authenticator) = &authenticator {
            es_api = es_api.with_authenticator(authenticator.clone());
            aws = aws.with_authenticator(authenticator.clone());
        }
        let es = es_server.serve(
            Arc::new(Cors::new(es_api, origins.clone())),
            server_options.clone(),
        );
        let aws = aws_server.serve(Arc::new(Cors::new(aws, origins)), server_options.clone());
        let mut ui_api = UiApi::new(ui_options, Arc::new(saved_objects));
        if let Some(authenticator) = &authenticator {
            ui_api = ui_api.with_authenticator(authenticator.clone());
        }
        let ui = ui_server.serve(Arc::new(ui_api), server_options);
        let stop_signals = install_stop_signals()?;
        if tls.is_some() || node.keyring().is_some() {
            reload_on_hangup(
                tls.as_ref().map(|tls| tls.cert.clone()),
                node.keyring().cloned(),
            )?;
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Tests and scripts read these lines to find the endpoints.
        println!("sluice {} is up", env!("CARGO_PKG_VERSION"));
        println!("data directory: {}", node.data_dir().display());
        if let Some(tls) = &tls {
            println!(
                "TLS certificate SHA-256 fingerprint: {}",
                tls.cert.fingerprint_sha256()
            );
        }
        println!("search API (Elasticsearch): {scheme}://{es_address}");
        // Before the AWS line, which scripts wait for last: whoever reads that has this one too.
        println!("dashboard: {scheme}://{ui_address}");
        println!("AWS APIs: {scheme}://{aws_address}");
        use std::io::Write;
        let _ = std::io::stdout().flush();

        let mut stop_signals = stop_signals;
        wait_for_signal(&mut stop_signals).await;
        tracing::info!("shutting down");
        // Exports, restores and imports stop now rather than after the grace period: they could
        // not finish within it anyway, and this way their clients get a clear answer (nothing
        // was created) before the connections close.
        node.cancel_long_operations();
        tokio::spawn(async move {
            wait_for_signal(&mut stop_signals).await;
            eprintln!("a second stop signal: exiting at once");
            std::process::exit(EXIT_SECOND_SIGNAL);
        });
        // Requests in flight get the grace period (`SHUTDOWN_GRACE`), on every port at once.
        tokio::join!(es.shutdown(), aws.shutdown(), ui.shutdown());
        let node_stopped = tokio::time::timeout(
            NODE_STOP_BUDGET,
            tokio::task::spawn_blocking(move || match Arc::try_unwrap(node) {
                Ok(node) => node.shutdown(),
                Err(node) => {
                    node.mappings().shutdown();
                    node.journal_streams().shutdown();
                    node.ledger_indexer().shutdown();
                    node.replicas().shutdown();
                    node.table_indexer().shutdown();
                    node.delivery().shutdown();
                    node.indices().close_all();
                }
            }),
        )
        .await;
        if node_stopped.is_err() {
            tracing::warn!(
                budget_s = NODE_STOP_BUDGET.as_secs(),
                "background workers or index commits did not stop in time; exiting without them \
                 (acknowledged writes are durable, the rest is redone at the next start)"
            );
        }
        if tokio::time::timeout(FUNCTIONS_STOP_BUDGET, registry.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("function processes did not stop in time");
        }
        println!("sluice stopped");
        Ok(())
    });
    // Dropping the runtime would wait for every blocking task, however long it runs: an engine
    // call whose connection the grace period cut, or a worker stuck above, gets this long.
    runtime.shutdown_timeout(BLOCKING_TASKS_GRACE);
    outcome
}

/// The TLS settings of `--tls-cert`/`--tls-key` or `--tls-self-signed`; `None` for plain HTTP.
fn tls_from_args(args: &UpArgs) -> anyhow::Result<Option<Tls>> {
    let files = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => CertificateFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ if args.tls_self_signed => {
            let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
                .into_iter()
                .map(str::to_owned)
                .collect();
            let bind_unspecified = args
                .bind
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_unspecified());
            if !bind_unspecified && !names.contains(&args.bind) {
                names.push(args.bind.clone());
            }
            sluice_api::tls::self_signed(&args.data_dir, &names)
                .context("preparing the self-signed certificate")?
        }
        _ => {
            anyhow::ensure!(
                !args.tls_only,
                "--tls-only needs a certificate: give --tls-cert and --tls-key, or --tls-self-signed"
            );
            return Ok(None);
        }
    };
    let cert = ReloadingCert::load(files).context("loading the TLS certificate")?;
    Ok(Some(Tls::new(Arc::new(cert), args.tls_only)?))
}

/// Reloads the certificate files and the keyring of encryption at rest at every SIGHUP; a pair
/// that fails to load leaves the current one serving, a keyring that fails the current keys.
fn reload_on_hangup(
    cert: Option<Arc<ReloadingCert>>,
    keyring: Option<Arc<sluice_seal::Keyring>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if let Some(cert) = &cert {
                match cert.reload() {
                    Ok(()) => tracing::info!(
                        fingerprint_sha256 = cert.fingerprint_sha256(),
                        "reloaded the TLS certificate"
                    ),
                    Err(error) => tracing::warn!(
                        %error,
                        "reloading the TLS certificate failed; the current one stays in use"
                    ),
                }
            }
            if let Some(keyring) = &keyring {
                match keyring.reload() {
                    Ok(()) => tracing::info!(
                        data_key = keyring.current_key_id(),
                        "reloaded the encryption keyring; new files use its current data key"
                    ),
                    Err(error) => tracing::warn!(
                        %error,
                        "reloading the encryption keyring failed; the current keys stay in use"
                    ),
                }
            }
        }
    });
    Ok(())
}

/// An IP address as the host part of a URL (IPv6 in brackets).
fn url_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The origins a browser shows for the dashboard (`scheme` is https under TLS): its address, `localhost` and the loopback
/// addresses when it listens on loopback or every address, and `--ui-origin`s.
fn dashboard_origins(
    scheme: &str,
    ui_address: SocketAddr,
    extra: &[String],
) -> anyhow::Result<AllowedOrigins> {
    let port = ui_address.port();
    let mut origins = vec![format!("{scheme}://{}:{port}", url_host(ui_address.ip()))];
    if ui_address.ip().is_loopback() || ui_address.ip().is_unspecified() {
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            origins.push(format!("{scheme}://{host}:{port}"));
        }
    }
    for origin in extra {
        let (scheme, rest) = origin
            .split_once("://")
            .with_context(|| format!("--ui-origin {origin}: expected SCHEME://HOST[:PORT]"))?;
        anyhow::ensure!(
            (scheme == "http" || scheme == "https")
                && !rest.is_empty()
                && !rest
                    .trim_end_matches('/')
                    .contains(['/', '?', '#', '*', ' ']),
            "--ui-origin {origin}: expected SCHEME://HOST[:PORT], without a path or wildcard"
        );
        origins.push(origin.clone());
    }
    Ok(AllowedOrigins::new(origins))
}

/// The AWS-compatible services served on `--aws-port`.
fn aws_api(
    node: &Arc<Node>,
    lambda: Arc<LambdaService>,
    authenticator: Option<Arc<sluice_api::security::Authenticator>>,
) -> AwsApi {
    let mut metrics = MetricsService::new(node.clone());
    if let Some(authenticator) = authenticator {
        metrics = metrics.with_audit(authenticator);
    }
    let qldb_session = Arc::new(QldbSessionService::new(
        node.ledgers().clone(),
        Arc::new(sluice_ledger::SystemClock),
    ));
    let qldb = Arc::new(
        QldbService::new(
            node.ledgers().clone(),
            node.journal_streams().clone(),
            node.import_roots().clone(),
            node.long_operations().clone(),
        )
        .with_object_stores(node.objects().clone(), node.s3_staging_dir())
        .with_replicas(node.replicas().clone()),
    );
    AwsApi::new()
        .with_json_service(Arc::new(KinesisService::new(Arc::clone(node.log()))))
        .with_json_service(Arc::new(FirehoseService::new(node.clone())))
        .with_json_service(Arc::new(DynamoDbService::new(Arc::clone(node.tables()))))
        .with_json_service(Arc::new(DynamoDbStreamsService::new(Arc::clone(
            node.tables(),
        ))))
        .with_json_service(Arc::new(qldb_session))
        .with_rest_service(Arc::new(qldb))
        .with_rest_service(lambda)
        .with_rest_service(Arc::new(metrics))
}

/// SIGTERM and SIGINT, caught from the moment this is created.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

/// Installs the handlers. Done before the endpoints are announced: a SIGTERM sent as soon as a
/// test or script reads them must stop the server cleanly, not kill it.
fn install_stop_signals() -> anyhow::Result<StopSignals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(StopSignals {
        terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
    })
}

async fn wait_for_signal(signals: &mut StopSignals) {
    tokio::select! {
        _ = signals.terminate.recv() => {},
        _ = signals.interrupt.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_descriptors_to_the_data_files() {
        assert_eq!(connections_max_within(1024, None), 1024);
        assert_eq!(connections_max_within(1024, Some(1 << 20)), 1024);
        // The ports share what the reserve leaves.
        assert_eq!(connections_max_within(1024, Some(1024)), 170);
        assert_eq!(connections_max_within(1024, Some(100)), 1);
    }

    #[test]
    fn the_dashboards_origins_are_its_address_and_loopback_names() {
        let origins = dashboard_origins("http", "127.0.0.1:5601".parse().unwrap(), &[]).unwrap();
        assert_eq!(
            origins.as_slice(),
            [
                "http://127.0.0.1:5601",
                "http://[::1]:5601",
                "http://localhost:5601"
            ]
        );
        let origins = dashboard_origins(
            "http",
            "10.1.2.3:80".parse().unwrap(),
            &["https://sluice.example".to_owned()],
        )
        .unwrap();
        assert_eq!(
            origins.as_slice(),
            ["http://10.1.2.3:80", "https://sluice.example"]
        );
        for bad in ["*", "sluice.example", "http://a/b", "ftp://a", "http://*"] {
            assert!(
                dashboard_origins("http", "127.0.0.1:1".parse().unwrap(), &[bad.to_owned()])
                    .is_err(),
                "{bad}"
            );
        }
    }
}
