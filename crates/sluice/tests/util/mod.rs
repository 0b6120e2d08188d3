//! Helpers for tests that drive the real binary: `sluice up` on ephemeral ports, its log kept.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A running `sluice up`, killed when dropped. Its stderr (the log) is collected in `log`.
pub struct Server {
    pub child: Child,
    pub es_url: String,
    pub aws_url: String,
    /// Every line `sluice up` printed on stdout before its endpoints, the endpoints included.
    pub banner: Vec<String>,
    pub log: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts `sluice up --es-port 0 --aws-port 0` with `args`, in `current_dir`.
    pub fn start(current_dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(SLUICE)
            .args(["up", "--es-port", "0", "--aws-port", "0"])
            .args(args)
            .current_dir(current_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice up");
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
        let mut banner = Vec::new();
        let (mut es_url, mut aws_url) = (None, None);
        while es_url.is_none() || aws_url.is_none() {
            let Some(line) = lines.next() else {
                panic!(
                    "sluice up ended before printing its endpoints: {}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                );
            };
            let line = line.expect("read stdout");
            if let Some(url) = line.strip_prefix("search API (Elasticsearch): ") {
                es_url = Some(url.trim().to_owned());
            }
            if let Some(url) = line.strip_prefix("AWS APIs: ") {
                aws_url = Some(url.trim().to_owned());
            }
            banner.push(line);
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            es_url: es_url.unwrap_or_default(),
            aws_url: aws_url.unwrap_or_default(),
            banner,
            log,
        }
    }

    /// Runs a CLI command against this server's AWS port.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(SLUICE)
            .args(args)
            .args(["--endpoint", &self.aws_url])
            .output()
            .expect("run sluice")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "sluice {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Sends SIGTERM and waits for the process to stop, so its log is complete.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        self.child.wait().expect("wait for sluice up")
    }

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

/// One HTTP/1.1 request with a JSON body; returns the status code and the body.
pub fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let authority = url.strip_prefix("http://").expect("http url");
    let mut stream = TcpStream::connect(authority).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
