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
    /// The URL as given, for messages.
    url: String,
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
        Ok(Endpoint {
            authority,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL as given, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The error for a server that accepted the connection and closed it without an answer:
    /// usually it stopped or crashed mid-request, which its log tells.
    fn closed_without_answering(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "the server at {} closed the connection without answering (did it stop? see its log)",
            self.url
        )
    }
}

/// Whether an I/O error means the peer went away (reset, broken pipe, end of input), as
/// opposed to a timeout or a local failure.
fn is_disconnect(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
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
    let stream = TcpStream::connect(&endpoint.authority).map_err(|error| {
        if error.kind() == std::io::ErrorKind::ConnectionRefused {
            anyhow::anyhow!(
                "no server answers at {} ({error}): is `sluice up` running, on that port?",
                endpoint.url
            )
        } else {
            anyhow::Error::new(error).context(format!("connecting to {}", endpoint.url))
        }
    })?;
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
    let disconnected = |error: std::io::Error| {
        if is_disconnect(&error) {
            endpoint.closed_without_answering()
        } else {
            anyhow::Error::new(error).context(format!("talking to the server at {}", endpoint.url))
        }
    };
    let mut writer = &stream;
    // A server that dies while the request is sent breaks the pipe; it may still have
    // answered (an early error), so the answer is read whatever the write did.
    let written = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body))
        .and_then(|()| writer.flush());

    let mut reader = BufReader::new(&stream);
    let mut status_line = String::new();
    let n_read = reader.read_line(&mut status_line).map_err(disconnected)?;
    if n_read == 0 {
        return Err(match written {
            Err(error) if !is_disconnect(&error) => disconnected(error),
            _ => endpoint.closed_without_answering(),
        });
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("invalid HTTP status line {status_line:?}"))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(disconnected)? == 0 {
            bail!(
                "the server at {} closed the connection inside its answer's headers (did it stop? see its log)",
                endpoint.url
            );
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

    /// A server that reads the request and closes the connection without a word, as one that
    /// crashed mid-request does.
    #[test]
    fn a_server_that_closes_without_answering_is_named_and_the_log_suggested() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = connection.read(&mut request);
        });
        let endpoint = Endpoint::parse(&url).unwrap();
        let error = request(&endpoint, "POST", "/", &[], b"{}").unwrap_err();
        server.join().unwrap();
        assert_eq!(
            format!("{error:#}"),
            format!(
                "the server at {url} closed the connection without answering (did it stop? see its log)"
            )
        );
    }

    #[test]
    fn no_server_at_the_endpoint_is_said_plainly() {
        // Bind then drop: the port is free and nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let error = request(&Endpoint::parse(&url).unwrap(), "GET", "/", &[], b"").unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.starts_with(&format!("no server answers at http://127.0.0.1:{port} (")),
            "{text}"
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let mut input = &b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..];
        assert_eq!(read_chunked(&mut input).unwrap(), b"hello world");
    }
}
