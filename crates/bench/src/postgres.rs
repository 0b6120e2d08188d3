//! A throwaway PostgreSQL 15 server (Debian's package) in a temporary directory, for the
//! benchmarks that compare Sluice with PostgreSQL: `initdb`, `pg_ctl start` on a unix socket only,
//! `psql` for statements, scripts and `COPY`, `pgbench` runs with their latencies, and
//! `pg_ctl stop` when dropped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};

use crate::ledger::{InsertResult, Latency};

/// Where the PostgreSQL server binaries are looked for, in order.
const POSTGRES_BIN_DIRS: &[&str] = &["/usr/local/bin", "/usr/lib/postgresql/15/bin"];

pub(crate) fn postgres_bin(name: &str) -> anyhow::Result<PathBuf> {
    POSTGRES_BIN_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!("no {name} in {POSTGRES_BIN_DIRS:?} (apt-get install -y postgresql-15)")
        })
}

/// Runs a command, as `nobody` when `as_nobody`, and fails with its output when it fails.
pub(crate) fn run_command(
    program: &Path,
    args: &[&str],
    as_nobody: bool,
) -> anyhow::Result<String> {
    let mut command = if as_nobody {
        let mut command = Command::new("runuser");
        command.args(["-u", "nobody", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{} {args:?} failed ({}): {stdout}{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// A PostgreSQL server in a temporary directory, stopped when dropped.
pub(crate) struct Postgres {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    pub(crate) socket_dir: PathBuf,
    /// The server's `-o` options, kept for `restart`.
    options: String,
    log_path: PathBuf,
}

impl Postgres {
    /// Creates a cluster under `root` and starts it on a unix socket there, with `settings`
    /// (`-c name=value …`) after the common ones.
    pub(crate) fn start(root: &Path, settings: &str) -> anyhow::Result<Postgres> {
        let initdb = postgres_bin("initdb")?;
        let pg_ctl = postgres_bin("pg_ctl")?;
        fs::create_dir_all(root)?;
        // initdb and postgres refuse to run as root: the directory belongs to nobody.
        run_command(Path::new("chown"), &["nobody", &path_str(root)?], false)?;
        let data_dir = root.join("data");
        let socket_dir = root.to_path_buf();
        run_command(
            &initdb,
            &[
                "-D",
                &path_str(&data_dir)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            true,
        )?;
        let options = format!(
            "-c listen_addresses='' -k {} {settings}",
            path_str(&socket_dir)?
        );
        let postgres = Postgres {
            pg_ctl,
            data_dir,
            socket_dir,
            options,
            log_path: root.join("postgres.log"),
        };
        postgres.pg_ctl_start()?;
        Ok(postgres)
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        run_command(
            &self.pg_ctl,
            &[
                "-D",
                &path_str(&self.data_dir)?,
                "-o",
                &self.options,
                "-l",
                &path_str(&self.log_path)?,
                "-w",
                "start",
            ],
            true,
        )?;
        Ok(())
    }

    /// Stops and starts the server, which empties its shared buffers (the operating system's page
    /// cache is the caller's business).
    pub(crate) fn restart(&self) -> anyhow::Result<()> {
        run_command(
            &self.pg_ctl,
            &["-D", &path_str(&self.data_dir)?, "-m", "fast", "-w", "stop"],
            true,
        )?;
        self.pg_ctl_start()
    }

    /// The arguments of `psql` that connect to this server, fail on the first error and print
    /// bare values.
    fn psql_args(&self) -> anyhow::Result<Vec<String>> {
        Ok([
            "-h",
            &path_str(&self.socket_dir)?,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-q",
            "-t",
            "-A",
        ]
        .map(str::to_owned)
        .to_vec())
    }

    /// Runs `script` (statements and psql meta-commands) through `psql`'s standard input in one
    /// session and returns what it printed.
    pub(crate) fn psql_script(&self, script: &[u8]) -> anyhow::Result<String> {
        let mut child = Command::new("psql")
            .args(self.psql_args()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running psql (Debian package postgresql-client-15)")?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        // Written on a thread: psql's output could fill its pipe before it has read the script.
        let script = script.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&script));
        let output = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the psql writer panicked"))?
            .context("writing to psql")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "psql failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    pub(crate) fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let mut args = self.psql_args()?;
        args.extend(["-c".to_owned(), sql.to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_command(Path::new("psql"), &args, false)?;
        Ok(output.trim().to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(data_dir) = path_str(&self.data_dir) {
            let _ = run_command(
                &self.pg_ctl,
                &["-D", &data_dir, "-m", "fast", "-w", "stop"],
                true,
            );
        }
    }
}

pub(crate) fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// `pgbench -c clients` running about `transactions` transactions of `script` in all (each
/// client its share), with per-transaction latencies from pgbench's log (named after `name`).
pub(crate) fn pgbench(
    postgres: &Postgres,
    root: &Path,
    script: &Path,
    name: &str,
    clients: usize,
    transactions: u64,
) -> anyhow::Result<InsertResult> {
    let per_client = transactions.div_ceil(clients as u64).max(1);
    let log_prefix = root.join(format!("pgbench_{name}_c{clients}"));
    let threads = clients
        .min(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let output = Command::new("pgbench")
        .args(["-h", &path_str(&postgres.socket_dir)?, "-U", "postgres"])
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &threads.to_string(),
            "-t",
            &per_client.to_string(),
            "-f",
            &path_str(script)?,
        ])
        .arg("--log")
        .arg(format!("--log-prefix={}", path_str(&log_prefix)?))
        .arg("postgres")
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("running pgbench (Debian package postgresql-client-15)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "pgbench failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let tps = stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench's output: {stdout}"))?;
    // The per-transaction log: `client_id transaction_no latency_us script_no epoch epoch_us`.
    let prefix_name = format!("pgbench_{name}_c{clients}.");
    let mut latencies_ms = Vec::with_capacity(transactions as usize);
    for entry in fs::read_dir(root)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(&prefix_name));
        if !is_log {
            continue;
        }
        for line in fs::read_to_string(&path)?.lines() {
            let latency_us: f64 = line
                .split_whitespace()
                .nth(2)
                .and_then(|field| field.parse().ok())
                .with_context(|| format!("bad pgbench log line: {line}"))?;
            latencies_ms.push(latency_us / 1000.0);
        }
    }
    let n_transactions = per_client * clients as u64;
    ensure!(
        latencies_ms.len() as u64 == n_transactions,
        "pgbench logged {} transactions, expected {n_transactions}",
        latencies_ms.len()
    );
    Ok(InsertResult {
        n_transactions,
        seconds: n_transactions as f64 / tps,
        latency: Latency::of(latencies_ms),
    })
}
