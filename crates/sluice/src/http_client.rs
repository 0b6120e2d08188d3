//! A small HTTP/1.1 client over `std::net::TcpStream`, enough for the CLI to talk to a Sluice
//! server's AWS port (plain HTTP, loopback by default): one request per connection, JSON bodies,
//! `Content-Length` or chunked responses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long the CLI waits for the server to connect, read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest response body the CLI accepts.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// `http://host:port` with an optional trailing slash, split into the authority.
#[derive(Debug, Clone)]
pub struct Endpoint {
    authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("endpoint {url:?} must start with http://");
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            bail!("endpoint {url:?} must be http://host:port");
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Endpoint { authority })
    }
}

/// A response: status code and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole response.
pub fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    let stream = TcpStream::connect(&endpoint.authority)
        .with_context(|| format!("connecting to {}", endpoint.authority))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        endpoint.authority,
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = &stream;
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()?;

    let mut reader = BufReader::new(&stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("invalid HTTP status line {status_line:?}"))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the connection closed inside the response headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse().context("invalid Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)?
    } else if let Some(length) = content_length {
        if length > RESPONSE_BYTES_MAX {
            bail!("response body of {length} bytes is larger than {RESPONSE_BYTES_MAX}");
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader
            .take(RESPONSE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut body)?;
        if body.len() > RESPONSE_BYTES_MAX {
            bail!("response body is larger than {RESPONSE_BYTES_MAX} bytes");
        }
        body
    };
    Ok(HttpResponse { status, body })
}

fn read_chunked(reader: &mut impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("invalid chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > RESPONSE_BYTES_MAX {
            bail!("response body is larger than {RESPONSE_BYTES_MAX} bytes");
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_plain_http_authorities() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:4566/").unwrap().authority,
            "127.0.0.1:4566"
        );
        assert_eq!(
            Endpoint::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(Endpoint::parse("https://x:1").is_err());
        assert!(Endpoint::parse("http://x:1/path").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let mut input = &b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..];
        assert_eq!(read_chunked(&mut input).unwrap(), b"hello world");
    }
}
