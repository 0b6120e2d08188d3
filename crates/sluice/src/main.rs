//! The `sluice` binary: command-line entry point. `sluice up` runs the whole system.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_api::Server;
use sluice_api::aws::AwsApi;
use sluice_api::aws::kinesis::KinesisService;
use sluice_api::es::EsApi;
use sluice_node::Node;

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
    runtime.block_on(async move {
        let data_dir = args.data_dir.clone();
        let node = tokio::task::spawn_blocking(move || Node::open(&data_dir))
            .await
            .context("opening the data directory")?
            .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
        let node = Arc::new(node);
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
            Err(node) => node.indices().close_all(),
        })
        .await
        .context("shutting down")?;
        println!("sluice stopped");
        Ok(())
    })
}

/// The AWS-compatible services served on `--aws-port`.
fn aws_api(node: &Arc<Node>) -> AwsApi {
    AwsApi::new().with_json_service(Arc::new(KinesisService::new(Arc::clone(node.log()))))
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
