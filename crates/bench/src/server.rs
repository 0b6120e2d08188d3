//! Starting a real `sluice up` on ephemeral ports in a temporary data directory, reading its peak
//! memory, and stopping it with SIGTERM as an operator would.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long `sluice up` may take to print its endpoints.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to commit and exit before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// What `sluice up` prints before the search API address (then `http://` or `https://`).
const SEARCH_API_PREFIX: &str = "search API (Elasticsearch): ";
/// What `sluice up` prints before the dashboard's address, between the other two.
const DASHBOARD_PREFIX: &str = "dashboard: ";
/// What `sluice up` prints before the AWS APIs address, on the line after the search API's.
const AWS_API_PREFIX: &str = "AWS APIs: ";

/// `host:port` of a printed `http://host:port` or `https://host:port`.
fn address_of(url: &str) -> String {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url)
        .to_owned()
}

pub struct Server {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    /// `host:port` of the search API.
    pub search_address: String,
    /// `host:port` of the AWS APIs (Kinesis, Firehose, …).
    pub aws_address: String,
    /// `host:port` of the dashboard (the web UI).
    pub ui_address: String,
    log_path: PathBuf,
}

impl Server {
    /// Starts `sluice up`; its log goes to `log_path`.
    pub fn start(sluice: &Path, data_dir: &Path, log_path: &Path) -> anyhow::Result<Server> {
        Server::start_with(sluice, data_dir, log_path, &[])
    }

    /// Starts `sluice up` with `extra` arguments (`--security`, the TLS flags).
    pub fn start_with(
        sluice: &Path,
        data_dir: &Path,
        log_path: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let log = fs::File::create(log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(sluice)
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--es-port", "0", "--aws-port", "0", "--ui-port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", sluice.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        // Read the endpoints on a thread so that a server that never prints them cannot hang us.
        let (sender, receiver) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut search_address = None;
            let mut ui_address = None;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = sender.send(None);
                        return;
                    }
                    Ok(_) => {
                        let line = line.trim();
                        if let Some(address) = line.strip_prefix(SEARCH_API_PREFIX) {
                            search_address = Some(address_of(address));
                        } else if let Some(address) = line.strip_prefix(DASHBOARD_PREFIX) {
                            ui_address = Some(address_of(address));
                        } else if let Some(address) = line.strip_prefix(AWS_API_PREFIX) {
                            let addresses = search_address
                                .take()
                                .zip(ui_address.take())
                                .map(|(search, ui)| (search, address_of(address), ui));
                            let _ = sender.send(addresses.map(|a| (a, reader)));
                            return;
                        }
                    }
                }
            }
        });
        match receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(((search_address, aws_address, ui_address), stdout))) => Ok(Server {
                child,
                stdout: Some(stdout),
                search_address,
                aws_address,
                ui_address,
                log_path: log_path.to_path_buf(),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "sluice did not print its search, dashboard and AWS API addresses; its log:\n{}",
                    log_tail(log_path)
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far, from `VmHWM` in `/proc/PID/status`.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        peak_rss_bytes_of(&format!("/proc/{}/status", self.pid()))
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds_of(&format!("/proc/{}/stat", self.pid()))
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// Sends SIGTERM and waits for a clean exit; returns how long the shutdown took.
    pub fn stop(mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        // Drain stdout so that the server's last lines never meet a closed pipe.
        if let Some(mut stdout) = self.stdout.take() {
            thread::spawn(move || {
                let mut rest = String::new();
                let _ = stdout.read_to_string(&mut rest);
            });
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "sluice exited with {status}; its log:\n{}",
                        log_tail(&self.log_path)
                    );
                }
                return Ok(started.elapsed());
            }
            if started.elapsed() > SHUTDOWN_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("sluice did not stop within {SHUTDOWN_TIMEOUT:?} of SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached on an error path: never leave a server running behind us.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `VmHWM` of a `/proc/*/status` file, in bytes.
pub fn peak_rss_bytes_of(status_path: &str) -> anyhow::Result<u64> {
    let status =
        fs::read_to_string(status_path).with_context(|| format!("reading {status_path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM line")?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("bad VmHWM value")?;
    Ok(kib * 1024)
}

/// Clock ticks per second of `/proc/*/stat` times; 100 on every Linux this runs on
/// (`getconf CLK_TCK`), read without libc because the workspace forbids `unsafe`.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of a process (all its threads) from a `/proc/*/stat` file.
pub fn cpu_seconds_of(stat_path: &str) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')').context("bad stat line")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |n: usize| -> anyhow::Result<f64> {
        Ok(fields.get(n).context("short stat line")?.parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / CLOCK_TICKS_PER_SECOND)
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The `sluice` binary a benchmark starts: `given`, or the one next to this binary
/// (`target/release/sluice` for `target/release/sluice-bench`).
pub fn sluice_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("finding this binary")?
            .with_file_name("sluice"),
    })
}

/// [`sluice_path`], refused with the command that builds it when it is not there.
pub fn sluice_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let sluice = sluice_path(given)?;
    anyhow::ensure!(
        sluice.is_file(),
        "no sluice binary at {} (build it with cargo build --release -p sluice)",
        sluice.display()
    );
    Ok(sluice)
}

/// Most a server may use of one core, averaged over [`SETTLE_WINDOW`], to count as settled.
const SETTLE_CPU_FRACTION: f64 = 0.05;
/// How long each look at the servers' CPU time lasts.
const SETTLE_WINDOW: Duration = Duration::from_millis(500);
/// Longest wait for the servers to settle; a server still busy after it is measured anyway.
const SETTLE_TIME_MAX: Duration = Duration::from_secs(120);

/// Waits until no server uses more than [`SETTLE_CPU_FRACTION`] of a core: background work
/// (a refresh, the merges a reopened index starts, the last of a delivery stream's indexing)
/// ends before a measurement's clock starts.
pub fn settle(servers: &[&Server]) -> anyhow::Result<()> {
    let cpu = || -> anyhow::Result<Vec<f64>> {
        servers.iter().map(|server| server.cpu_seconds()).collect()
    };
    let deadline = Instant::now() + SETTLE_TIME_MAX;
    let mut before = cpu()?;
    loop {
        thread::sleep(SETTLE_WINDOW);
        let after = cpu()?;
        let busiest = after
            .iter()
            .zip(&before)
            .map(|(after, before)| after - before)
            .fold(0.0, f64::max);
        if busiest < SETTLE_CPU_FRACTION * SETTLE_WINDOW.as_secs_f64() || Instant::now() > deadline
        {
            return Ok(());
        }
        before = after;
    }
}
