//! The `sluice` binary: command-line entry point. `sluice up` runs the whole system; `sluice sql`
//! and `sluice ledger …` are clients of a running server's AWS port.

mod http_client;
mod ledger_cli;

/// mimalloc instead of the system allocator: indexing allocates and frees many small values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_api::Server;
use sluice_api::aws::AwsApi;
use sluice_api::aws::firehose::{FirehoseService, MetricsService, create_request_config};
use sluice_api::aws::kinesis::KinesisService;
use sluice_api::aws::qldb::QldbService;
use sluice_api::aws::qldb_session::QldbSessionService;
use sluice_api::es::EsApi;
use sluice_functions::{FunctionDefinition, FunctionKind, FunctionRegistry};
use sluice_log::{Clock, SystemClock};
use sluice_node::{FunctionsTransformer, Node, NodeOptions};

/// Environment variable that shifts Sluice's wall clock by a signed number of milliseconds, for
/// tests and demos of time-based behaviour (index rotation, backup key times): arrival times,
/// rotation, buffering and retries all read the shifted clock.
const CLOCK_OFFSET_ENV: &str = "SLUICE_CLOCK_OFFSET_MS";

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
    /// Manage ledgers: create, list, delete, digest, verify, export, restore, import.
    Ledger(LedgerArgs),
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
    /// Create a ledger from a journal export of Sluice (a directory the server can read).
    Restore {
        name: String,
        #[arg(long)]
        from: PathBuf,
    },
    /// Create a ledger from an Amazon QLDB S3 journal export downloaded into a directory.
    Import {
        name: String,
        #[arg(long)]
        from: PathBuf,
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
    /// Address the servers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port of the Elasticsearch-compatible search API (0 picks a free port).
    #[arg(long, default_value_t = 9200)]
    es_port: u16,
    /// Port of the AWS-compatible APIs (Kinesis, Firehose, QLDB; 0 picks a free port).
    #[arg(long, default_value_t = 4566)]
    aws_port: u16,
    /// A Lambda function run with the Runtime API kind: `NAME=COMMAND`, the command split on
    /// whitespace (for example `transform=python3 -m awslambdaric handler.handler`). Repeatable.
    #[arg(long = "function", value_name = "NAME=COMMAND")]
    functions: Vec<String>,
    /// A JSON file declaring `functions` (function definitions) and `delivery_streams`
    /// (CreateDeliveryStream request bodies), applied at start; existing streams are kept.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The `--config` file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    functions: Vec<FunctionDefinition>,
    #[serde(default)]
    delivery_streams: Vec<serde_json::Value>,
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
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
        .map(|(position, text)| {
            sluice_ledger::ion_read::read_one(
                text.as_bytes(),
                sluice_ledger::ion_read::ION_DEPTH_MAX,
            )
            .with_context(|| format!("parameter {} is not accepted", position + 1))
        })
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
        LedgerCommand::Restore { name, from } => ledger_cli::load(&client, &name, &from, "restore"),
        LedgerCommand::Import { name, from } => ledger_cli::load(&client, &name, &from, "import"),
    }
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
        .context("starting the async runtime")?;
    let config = read_config(&args)?;
    let clock = clock_from_env()?;
    runtime.block_on(async move {
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
        let es_server = Server::bind(SocketAddr::new(args.bind, args.es_port))
            .await
            .with_context(|| format!("binding the search API to {}:{}", args.bind, args.es_port))?;
        let es_address = es_server.local_addr()?;
        let aws_server = Server::bind(SocketAddr::new(args.bind, args.aws_port))
            .await
            .with_context(|| format!("binding the AWS APIs to {}:{}", args.bind, args.aws_port))?;
        let aws_address = aws_server.local_addr()?;
        let es = es_server.serve(Arc::new(EsApi::new(node.clone())));
        let aws = aws_server.serve(Arc::new(aws_api(&node)));
        let stop_signals = install_stop_signals()?;
        // Tests and scripts read these lines to find the endpoints.
        println!("sluice {} is up", env!("CARGO_PKG_VERSION"));
        println!("data directory: {}", args.data_dir.display());
        println!("search API (Elasticsearch): http://{es_address}");
        println!("AWS APIs: http://{aws_address}");
        use std::io::Write;
        let _ = std::io::stdout().flush();

        wait_for_signal(stop_signals).await?;
        tracing::info!("shutting down");
        es.shutdown().await;
        aws.shutdown().await;
        tokio::task::spawn_blocking(move || match Arc::try_unwrap(node) {
            Ok(node) => node.shutdown(),
            Err(node) => {
                node.delivery().shutdown();
                node.indices().close_all();
            }
        })
        .await
        .context("shutting down")?;
        registry.shutdown().await;
        println!("sluice stopped");
        Ok(())
    })
}

/// The AWS-compatible services served on `--aws-port`.
fn aws_api(node: &Arc<Node>) -> AwsApi {
    let qldb_session = Arc::new(QldbSessionService::new(
        node.ledgers().clone(),
        Arc::new(sluice_ledger::SystemClock),
    ));
    let qldb = Arc::new(QldbService::new(node.ledgers().clone(), node.s3_dir()));
    AwsApi::new()
        .with_json_service(Arc::new(KinesisService::new(Arc::clone(node.log()))))
        .with_json_service(Arc::new(FirehoseService::new(node.clone())))
        .with_json_service(Arc::new(qldb_session))
        .with_rest_service(Arc::new(qldb))
        .with_rest_service(Arc::new(MetricsService::new(node.clone())))
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

async fn wait_for_signal(mut signals: StopSignals) -> anyhow::Result<()> {
    tokio::select! {
        _ = signals.terminate.recv() => {},
        _ = signals.interrupt.recv() => {},
    }
    Ok(())
}
