//! A minimal HTTP/1.1 keep-alive client over `std::net::TcpStream`: enough to send requests to
//! Sluice's search API and read its responses (fixed length or chunked), without pulling an HTTP
//! stack into the benchmark.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};

/// Longest response header section accepted; Sluice sends a few hundred bytes.
const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Longest response body accepted: a bulk response of 100 000 items is about 15 MB.
const BODY_BYTES_MAX: usize = 256 * 1024 * 1024;
/// A request that takes longer than this is reported as a failure rather than hanging the run.
const IO_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection.
pub struct Connection {
    host: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Request headers are assembled here and sent with the body in one `write_all` when small.
    head: Vec<u8>,
}

impl Connection {
    pub fn open(host: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let reader = BufReader::with_capacity(256 * 1024, stream.try_clone()?);
        Ok(Connection {
            host: host.to_string(),
            writer: stream,
            reader,
            head: Vec::with_capacity(256),
        })
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<Response> {
        self.request_with_headers(method, path, &[], content_type, body)
    }

    /// A request with extra headers, e.g. `X-Amz-Target` for the AWS JSON protocols.
    pub fn request_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<Response> {
        self.head.clear();
        write!(
            self.head,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        for (name, value) in headers {
            write!(self.head, "{name}: {value}\r\n")?;
        }
        self.head.extend_from_slice(b"\r\n");
        self.writer.write_all(&self.head)?;
        self.writer.write_all(body)?;
        self.read_response()
            .with_context(|| format!("reading the response to {method} {path}"))
    }

    pub fn json(&mut self, method: &str, path: &str, body: &str) -> anyhow::Result<Response> {
        self.request(method, path, "application/json", body.as_bytes())
    }

    fn read_line(&mut self, line: &mut String, header_bytes: &mut usize) -> anyhow::Result<()> {
        line.clear();
        let n = self.reader.read_line(line)?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        *header_bytes += n;
        if *header_bytes > HEADER_BYTES_MAX {
            bail!("response headers longer than {HEADER_BYTES_MAX} bytes");
        }
        Ok(())
    }

    fn read_response(&mut self) -> anyhow::Result<Response> {
        let mut line = String::new();
        let mut header_bytes = 0;
        self.read_line(&mut line, &mut header_bytes)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut content_length = None;
        let mut chunked = false;
        loop {
            self.read_line(&mut line, &mut header_bytes)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                bail!("bad header line {header:?}");
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
        let body = if chunked {
            self.read_chunked()?
        } else {
            let length = content_length.context("response without a length")?;
            if length > BODY_BYTES_MAX {
                bail!("response body of {length} bytes is over {BODY_BYTES_MAX}");
            }
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body)?;
            body
        };
        Ok(Response { status, body })
    }

    fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        let mut header_bytes = 0;
        loop {
            self.read_line(&mut line, &mut header_bytes)?;
            let size_text = line.trim_end().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    self.read_line(&mut line, &mut header_bytes)?;
                    if line.trim_end().is_empty() {
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > BODY_BYTES_MAX {
                bail!("chunked response body over {BODY_BYTES_MAX} bytes");
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..])?;
            let mut crlf = [0; 2];
            self.reader.read_exact(&mut crlf)?;
            header_bytes = 0;
        }
    }
}
