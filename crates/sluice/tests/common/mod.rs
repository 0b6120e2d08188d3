//! Shared helpers of the binary's integration tests: `sluice up` on ephemeral ports in a
//! temporary data directory, the CLI against it, and a minimal HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// How long a test waits for one answer before it fails rather than hangs. Generous: debug
/// builds on a shared machine.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `sluice up`, killed when dropped.
pub struct Server {
    child: Child,
    pub data_dir: PathBuf,
    /// `host:port` of the search API.
    pub es: String,
    /// `host:port` of the AWS APIs.
    pub aws: String,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(SLUICE)
            .args(["up", "--es-port", "0", "--aws-port", "0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut es, mut aws) = (None, None);
        while es.is_none() || aws.is_none() {
            let line = lines
                .next()
                .expect("sluice up ended before printing its endpoints")
                .expect("read stdout");
            if let Some(url) = line.strip_prefix("search API (Elasticsearch): http://") {
                es = Some(url.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("AWS APIs: http://") {
                aws = Some(url.trim().to_owned());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            data_dir: data_dir.to_path_buf(),
            es: es.unwrap_or_default(),
            aws: aws.unwrap_or_default(),
        }
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(SLUICE)
            .args(args)
            .args(["--endpoint", &format!("http://{}", self.aws)])
            .output()
            .expect("run sluice")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "sluice {:?} failed: {}",
            args.iter()
                .map(|arg| arg.chars().take(80).collect::<String>())
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Panics unless both APIs still answer and the process is alive.
    pub fn assert_alive(&mut self, after: &str) {
        assert!(
            self.child.try_wait().expect("wait").is_none(),
            "the server died after {after}"
        );
        let root = request(&self.es, "GET", "/", &[], b"");
        assert_eq!(root.status, 200, "search API after {after}");
        let ledgers = request(&self.aws, "GET", "/ledgers", &[], b"");
        assert_eq!(ledgers.status, 200, "AWS APIs after {after}");
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
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
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

/// `depth` JSON objects nested as `{"a":{"a":…1…}}`.
pub fn deep_json(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// `depth` Ion structs nested as `{a:{a:…1…}}`.
pub fn deep_ion_text(depth: usize) -> String {
    format!("{}1{}", "{a:".repeat(depth), "}".repeat(depth))
}

/// Ion binary of `depth` nested lists around the int 1, built from the inside out.
pub fn deep_ion_binary(depth: usize) -> Vec<u8> {
    let mut value = vec![0x21, 0x01];
    for _ in 0..depth {
        let mut groups = Vec::new();
        let mut length = value.len();
        loop {
            groups.push((length & 0x7F) as u8);
            length >>= 7;
            if length == 0 {
                break;
            }
        }
        groups.reverse();
        if let Some(last) = groups.last_mut() {
            *last |= 0x80;
        }
        let mut wrapped = vec![0xBE];
        wrapped.extend(groups);
        wrapped.extend_from_slice(&value);
        value = wrapped;
    }
    let mut stream = vec![0xE0, 0x01, 0x00, 0xEA];
    stream.extend(value);
    stream
}
