//! A minimal HTTP/1.1 keep-alive client over `std::net::TcpStream`: enough to send requests to
//! Sluice's search API and read its responses (fixed length or chunked), without pulling an HTTP
//! stack into the benchmark. Optionally over TLS (rustls) with every request signed with SigV4,
//! as clients of a node started with `--security` send them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use sluice_cluster::sigv4::Credentials;

use anyhow::{Context, bail};

/// Longest response header section accepted; Sluice sends a few hundred bytes.
const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Longest response body accepted: a bulk response of 100 000 items is about 15 MB.
const BODY_BYTES_MAX: usize = 256 * 1024 * 1024;
/// A request that takes longer than this is reported as a failure rather than hanging the run.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// Bodies up to this size go out in the same write as the request's head.
const INLINE_BODY_BYTES_MAX: usize = 64 * 1024;

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

/// The bytes of a connection: plain TCP, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buf),
            Transport::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.write(buf),
            Transport::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.flush(),
            Transport::Tls(stream) => stream.flush(),
        }
    }
}

/// How a secured node is reached: TLS trusting `tls`'s roots, requests signed with SigV4 by
/// `credentials` for `service` (`es` on the search port; on the AWS port the service of each
/// request's `X-Amz-Target`).
#[derive(Clone)]
pub struct Secured {
    pub tls: Arc<rustls::ClientConfig>,
    pub credentials: Credentials,
}

impl Secured {
    /// Trusts the certificate of a `--tls-self-signed` node (`DATA_DIR/tls/self-signed-cert.pem`).
    pub fn trusting(cert_pem: &std::path::Path, credentials: Credentials) -> anyhow::Result<Self> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem)
            .with_context(|| format!("reading {}", cert_pem.display()))?
        {
            roots.add(cert?)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Secured {
            tls: Arc::new(tls),
            credentials,
        })
    }
}

/// One keep-alive connection.
pub struct Connection {
    host: String,
    stream: BufReader<Transport>,
    /// Request headers are assembled here and sent with the body in one `write_all` when small.
    head: Vec<u8>,
    /// Signs every request when the node is secured.
    credentials: Option<Credentials>,
}

impl Connection {
    pub fn open(host: &str) -> anyhow::Result<Connection> {
        Connection::open_with(host, None)
    }

    /// A connection over TLS with signed requests when `secured`, else plain.
    pub fn open_with(host: &str, secured: Option<&Secured>) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let transport = match secured {
            None => Transport::Plain(stream),
            Some(secured) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                let connection = rustls::ClientConnection::new(secured.tls.clone(), name)?;
                Transport::Tls(Box::new(rustls::StreamOwned::new(connection, stream)))
            }
        };
        Ok(Connection {
            host: host.to_string(),
            stream: BufReader::with_capacity(256 * 1024, transport),
            head: Vec::with_capacity(256),
            credentials: secured.map(|secured| secured.credentials.clone()),
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
        match &self.credentials {
            None => {
                for (name, value) in headers {
                    write!(self.head, "{name}: {value}\r\n")?;
                }
            }
            Some(credentials) => {
                // The caller's stand-in signature headers give way to a real signature.
                let kept: Vec<(&str, &str)> = headers
                    .iter()
                    .filter(|(name, _)| {
                        !name.eq_ignore_ascii_case("authorization")
                            && !name.eq_ignore_ascii_case("x-amz-date")
                    })
                    .copied()
                    .collect();
                let target = kept
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
                    .map(|(_, value)| *value);
                let service = match target {
                    None => "es",
                    Some(target) if target.starts_with("Firehose") => "firehose",
                    Some(target) if target.starts_with("DynamoDB") => "dynamodb",
                    Some(_) => "kinesis",
                };
                let mut signed: Vec<(String, &str)> =
                    vec![("content-type".to_owned(), content_type)];
                signed.extend(
                    kept.iter()
                        .map(|(name, value)| (name.to_ascii_lowercase(), *value)),
                );
                let extra: Vec<(&str, &str)> = signed
                    .iter()
                    .map(|(name, value)| (name.as_str(), *value))
                    .collect();
                let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
                let signature = sluice_cluster::sigv4::sign(
                    method,
                    &self.host,
                    path_only,
                    query,
                    &extra,
                    body,
                    ("us-east-1", service),
                    credentials,
                    time::OffsetDateTime::now_utc(),
                );
                for (name, value) in kept.iter().copied().chain(
                    signature
                        .iter()
                        .map(|(name, value)| (*name, value.as_str())),
                ) {
                    write!(self.head, "{name}: {value}\r\n")?;
                }
            }
        }
        self.head.extend_from_slice(b"\r\n");
        let writer = self.stream.get_mut();
        // One write, as real clients send a small request (Python's http.client joins the
        // head and a bytes body; hyper writes both with one writev): two segments would have
        // the server wake for the head and again for the body.
        if body.len() <= INLINE_BODY_BYTES_MAX {
            self.head.extend_from_slice(body);
            writer.write_all(&self.head)?;
        } else {
            writer.write_all(&self.head)?;
            writer.write_all(body)?;
        }
        writer.flush()?;
        self.read_response()
            .with_context(|| format!("reading the response to {method} {path}"))
    }

    pub fn json(&mut self, method: &str, path: &str, body: &str) -> anyhow::Result<Response> {
        self.request(method, path, "application/json", body.as_bytes())
    }

    fn read_line(&mut self, line: &mut String, header_bytes: &mut usize) -> anyhow::Result<()> {
        line.clear();
        let n = self.stream.read_line(line)?;
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
            self.stream.read_exact(&mut body)?;
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
            self.stream.read_exact(&mut body[start..])?;
            let mut crlf = [0; 2];
            self.stream.read_exact(&mut crlf)?;
            header_bytes = 0;
        }
    }
}
