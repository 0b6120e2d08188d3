//! The one set of helpers every integration test of the binary uses (`mod util;`, as ripgrep's
//! `tests/util.rs`): `sluice up` on ephemeral ports with its log kept, the CLI against it, and a
//! minimal HTTP/1.1 client. How the server is started and how its endpoints are read from its
//! banner is written here once.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long a test waits for one answer before it fails rather than hangs. Generous: debug
/// builds on a shared machine.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The header of a JSON body, for [`request`] and its shorthands.
pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// A running `sluice up`, killed when dropped. Its stderr (the log) is kept for [`Server::log_text`]
/// and for the messages of failed assertions.
pub struct Server {
    child: Child,
    /// The data directory, as the server printed it (absolute).
    pub data_dir: PathBuf,
    /// `http://host:port` of the search API.
    pub es_url: String,
    /// `http://host:port` of the AWS APIs.
    pub aws_url: String,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// `sluice up` with its data in `data_dir`.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// `sluice up` with its data in `data_dir` and further arguments `args`.
    pub fn start_with(data_dir: &Path, args: &[&str]) -> Server {
        let mut all = vec![OsString::from("--data-dir"), data_dir.into()];
        all.extend(args.iter().map(OsString::from));
        Server::launch(None, all)
    }

    /// `sluice up` with exactly `args` (a `--data-dir` among them, or the default), run in
    /// `current_dir`, against which relative paths resolve.
    pub fn start_in(current_dir: &Path, args: &[&str]) -> Server {
        Server::launch(Some(current_dir), args.iter().map(OsString::from).collect())
    }

    fn launch(current_dir: Option<&Path>, args: Vec<OsString>) -> Server {
        let mut command = Command::new(SLUICE);
        command
            .args(["up", "--es-port", "0", "--aws-port", "0", "--ui-port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The server's own allocator settings, whatever the test runner's environment says.
            .env_remove("MIMALLOC_ALLOW_THP");
        if let Some(current_dir) = current_dir {
            command.current_dir(current_dir);
        }
        let mut child = command.spawn().expect("start sluice up");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut data_dir, mut es_url, mut aws_url) = (None, None, None);
        while es_url.is_none() || aws_url.is_none() {
            let Some(line) = lines.next() else {
                panic!(
                    "sluice up ended before printing its endpoints: {}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                );
            };
            let line = line.expect("read stdout");
            if let Some(path) = line.strip_prefix("data directory: ") {
                data_dir = Some(PathBuf::from(path));
            }
            if let Some(url) = line.strip_prefix("search API (Elasticsearch): ") {
                es_url = Some(url.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("AWS APIs: ") {
                aws_url = Some(url.trim().to_owned());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            data_dir: data_dir.expect("sluice up names its data directory before its endpoints"),
            es_url: es_url.unwrap_or_default(),
            aws_url: aws_url.unwrap_or_default(),
            log,
        }
    }

    /// Runs the CLI against this server's AWS port.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(SLUICE)
            .args(args)
            .args(["--endpoint", &self.aws_url])
            .output()
            .expect("run sluice")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "sluice {:?} failed: {}",
            // Deep values make long arguments: the start of each says which command it was.
            args.iter()
                .map(|arg| arg.chars().take(80).collect::<String>())
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// One request to the search API; see [`request`].
    pub fn es(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(&self.es_url, method, path, headers, body)
    }

    /// One request to the AWS APIs; see [`request`].
    pub fn aws(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(&self.aws_url, method, path, headers, body)
    }

    /// Panics unless both APIs still answer and the process is alive.
    pub fn assert_alive(&mut self, after: &str) {
        assert!(
            self.child.try_wait().expect("wait").is_none(),
            "the server died after {after}: {}",
            self.log_text()
        );
        let root = self.es("GET", "/", &[], b"");
        assert_eq!(root.status, 200, "search API after {after}");
        let ledgers = self.aws("GET", "/ledgers", &[], b"");
        assert_eq!(ledgers.status, 200, "AWS APIs after {after}");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to stop, so its log is complete.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        self.child.wait().expect("wait for sluice up")
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request to `url` (`http://host:port`) on its own connection (`Connection: close`), read
/// to the end.
pub fn request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let address = url.strip_prefix("http://").unwrap_or(url);
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .expect("read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    assert!(
        !answer.is_empty(),
        "{method} {path}: the connection closed without an answer (did the server die?)"
    );
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    Reply {
        status,
        body: answer[split + 4..].to_vec(),
    }
}
