//! The `sluice` binary: command-line entry point. `sluice up` runs the whole system.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_api::Server;
use sluice_api::aws::AwsApi;
use sluice_api::aws::firehose::{FirehoseService, MetricsService, create_request_config};
use sluice_api::es::EsApi;
use sluice_functions::{FunctionDefinition, FunctionKind, FunctionRegistry};
use sluice_log::{Clock, SystemClock};
use sluice_node::{FunctionsTransformer, Node, NodeOptions};

/// Environment variable that shifts Sluice's wall clock by a signed number of milliseconds, for
/// tests and demos of time-based behaviour (index rotation, backup key times): arrival times,
/// rotation, buffering and retries all read the shifted clock.
const CLOCK_OFFSET_ENV: &str = "SLUICE_CLOCK_OFFSET_MS";

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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Up(args) => up(args),
    }
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
        // Tests and scripts read these lines to find the endpoints.
        println!("sluice {} is up", env!("CARGO_PKG_VERSION"));
        println!("data directory: {}", args.data_dir.display());
        println!("search API (Elasticsearch): http://{es_address}");
        println!("AWS APIs: http://{aws_address}");
        use std::io::Write;
        let _ = std::io::stdout().flush();

        wait_for_signal().await?;
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
    AwsApi::new()
        .with_json_service(Arc::new(FirehoseService::new(node.clone())))
        .with_rest_service(Arc::new(MetricsService::new(node.clone())))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => {},
        _ = interrupt.recv() => {},
    }
    Ok(())
}
