//! AWS Signature Version 4: reading a signature from the `Authorization` header or from a
//! presigned URL's query (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
//! `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`), rebuilding the canonical request
//! the client signed, and checking its signature with the access key's secret (HMAC-SHA256 and
//! SHA-256 from ring, through the primitives `sluice_cluster::sigv4` shares with Sluice's own
//! signed requests). The payload is covered as the client declared it in
//! `x-amz-content-sha256`: a hash, checked against the body; `UNSIGNED-PAYLOAD`; or
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, an `aws-chunked` body whose every chunk carries a
//! signature chained from the request's, decoded here into the payload the handlers read.
//! Each failure is one of AWS's error kinds, so each port answers in its clients' shape.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::fmt::Write as _;

use ring::hmac;
use sluice_cluster::sigv4::{self as shared, hex, hmac_sha256, sha256_hex};

/// The only algorithm AWS clients sign with.
pub use sluice_cluster::sigv4::ALGORITHM;
/// How far `x-amz-date` may be from the server's clock, either way, as AWS allows.
pub const CLOCK_SKEW_MAX_S: i64 = 15 * 60;
/// The payload hash a client sends when it does not sign the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The payload hash of a chunked body signed chunk by chunk (`aws-chunked`).
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// The algorithm line of a chunk's string to sign.
const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
/// Longest validity of a presigned URL (`X-Amz-Expires`), a week, as AWS allows.
pub const PRESIGNED_EXPIRES_MAX_S: i64 = 7 * 24 * 3600;
/// Longest line heading a chunk (`<hex size>;chunk-signature=<64 hex>`): a longer one is
/// malformed and refused before it is read further.
const CHUNK_HEADER_BYTES_MAX: usize = 256;

/// Why a signature is refused, as AWS names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// A part of the signature is missing or malformed (`IncompleteSignatureException`, 400).
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not known (`UnrecognizedClientException`, 400).
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    /// The signature does not match (`InvalidSignatureException`, 400).
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
    /// `x-amz-date` is more than [`CLOCK_SKEW_MAX_S`] from now (`InvalidSignatureException`).
    #[error("Signature expired: {signed} is now earlier than {earliest} ({now} - 15 min.)")]
    Expired {
        signed: String,
        earliest: String,
        now: String,
    },
    #[error("Signature not yet current: {signed} is still later than {latest} ({now} + 15 min.)")]
    NotYetCurrent {
        signed: String,
        latest: String,
        now: String,
    },
    /// A presigned URL past `X-Amz-Date` + `X-Amz-Expires` (`AccessDeniedException`).
    #[error("Request has expired: it was valid until {until}, it is now {now}")]
    PresignedExpired { until: String, now: String },
    /// `x-amz-content-sha256` is not the body's hash (`InvalidSignatureException`).
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentMismatch,
    /// A chunk of an `aws-chunked` body is malformed or its signature does not chain
    /// (`InvalidSignatureException`).
    #[error("the aws-chunked body is invalid: {0}")]
    BadChunk(String),
}

impl SigV4Error {
    /// The AWS error type (`__type`) clients expect.
    pub fn aws_type(&self) -> &'static str {
        match self {
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownAccessKey => "UnrecognizedClientException",
            SigV4Error::Mismatch
            | SigV4Error::Expired { .. }
            | SigV4Error::NotYetCurrent { .. }
            | SigV4Error::ContentMismatch
            | SigV4Error::BadChunk(_) => "InvalidSignatureException",
            SigV4Error::PresignedExpired { .. } => "AccessDeniedException",
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`
/// header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub access_key_id: String,
    /// `yyyymmdd` of the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, in the order signed.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

fn incomplete(what: &str) -> SigV4Error {
    SigV4Error::Incomplete(what.to_owned())
}

/// Reads the header form of a signature.
pub fn parse_authorization(value: &str) -> Result<SignatureHeader, SigV4Error> {
    let (algorithm, rest) = value.trim().split_once(' ').ok_or_else(|| {
        incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    if algorithm != ALGORITHM {
        return Err(incomplete(&format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let missing = |name: &str| {
        incomplete(&format!(
            "Authorization header requires '{name}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(incomplete(&format!(
            "Credential should be scoped to a valid region, service and date: {credential}"
        )));
    };
    if *terminator != "aws4_request"
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || access_key_id.is_empty()
    {
        return Err(incomplete(&format!(
            "Credential should be scoped correctly: {credential}"
        )));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete("Signature must be 64 hexadecimal characters"));
    }
    Ok(SignatureHeader {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed_headers
            .split(';')
            .map(|name| name.to_ascii_lowercase())
            .collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Percent-encodes as SigV4 says: everything but RFC 3986's unreserved characters (and `/`
/// when `keep_slash`).
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                index += 3;
            }
            None => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical query string: every parameter but `skip` (the presigned form's signature),
/// decoded, encoded again SigV4's way, sorted.
fn canonical_query(raw_query: &str, skip: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode_lossy(key), false),
                uri_encode(&percent_decode_lossy(value), false),
            )
        })
        .filter(|(key, _)| Some(key.as_str()) != skip)
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header's values as SigV4 canonicalizes them: trimmed, inner runs of spaces collapsed,
/// several values joined with commas.
fn canonical_header_value<'a>(values: impl Iterator<Item = &'a [u8]>) -> String {
    values
        .map(|value| {
            String::from_utf8_lossy(value)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What the signature covers, from the request as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as sent, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a hyper::HeaderMap,
    pub body: &'a [u8],
}

/// The canonical request: `skip` is the query parameter left out (the presigned form's
/// signature), `payload_hash` what the client declared for the body.
pub fn canonical_request(
    request: &SignedRequest<'_>,
    header: &SignatureHeader,
    skip: Option<&str>,
    payload_hash: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in &header.signed_headers {
        let value = canonical_header_value(
            request
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|value| value.as_bytes()),
        );
        let _ = writeln!(canonical_headers, "{name}:{value}");
    }
    // Services other than S3 encode the path once more: `%20` is signed as `%2520`.
    let path = if request.raw_path.is_empty() {
        "/"
    } else {
        request.raw_path
    };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        uri_encode(path, true),
        canonical_query(request.raw_query, skip),
        canonical_headers,
        header.signed_headers.join(";"),
        payload_hash
    )
}

/// The scope a signature header names.
fn scope_of(header: &SignatureHeader) -> shared::Scope<'_> {
    shared::Scope {
        date: &header.date,
        region: &header.region,
        service: &header.service,
    }
}

/// The signing key of `secret` for the header's date and scope.
fn signing_key(secret: &str, header: &SignatureHeader) -> hmac::Tag {
    shared::signing_key(secret, &scope_of(header))
}

fn scope(header: &SignatureHeader) -> String {
    shared::credential_scope(&scope_of(header))
}

/// The signature of `canonical` under `secret`, for the request's date and scope.
pub fn signature(
    secret: &str,
    amz_date: &str,
    header: &SignatureHeader,
    canonical: &str,
) -> String {
    shared::signature(
        &signing_key(secret, header),
        amz_date,
        &scope(header),
        canonical,
    )
}

/// Seconds since the epoch of an `x-amz-date` (`yyyymmddThhmmssZ`).
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, format)
        .ok()
        .map(|date| date.assume_utc().unix_timestamp())
}

/// The wall clock in seconds since the epoch, which signatures are checked against (the
/// signers' clock: never the node's shifted test clock).
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn format_amz_date(seconds: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|date| date.format(format).ok())
        .unwrap_or_default()
}

/// A signature as the request carries it, before it is checked.
struct Presented {
    header: SignatureHeader,
    amz_date: String,
    /// `X-Amz-Expires` of the presigned form; `None` for the header form.
    expires_s: Option<i64>,
}

/// The query parameters of a presigned URL, decoded.
fn query_params(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode_lossy(key), percent_decode_lossy(value))
        })
        .collect()
}

/// Whether a request carries a presigned URL's signature.
pub fn is_presigned(raw_query: &str) -> bool {
    query_params(raw_query)
        .iter()
        .any(|(key, _)| key == "X-Amz-Algorithm")
}

fn presented(request: &SignedRequest<'_>) -> Result<Presented, SigV4Error> {
    if let Some(authorization) = request.headers.get("authorization") {
        let authorization = authorization
            .to_str()
            .map_err(|_| incomplete("The Authorization header is not ASCII"))?;
        let header = parse_authorization(authorization)?;
        let amz_date = request
            .headers
            .get("x-amz-date")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
            })?;
        return Ok(Presented {
            header,
            amz_date: amz_date.to_owned(),
            expires_s: None,
        });
    }
    let params = query_params(request.raw_query);
    if !params.iter().any(|(key, _)| key == "X-Amz-Algorithm") {
        return Err(incomplete("Missing Authentication Token"));
    }
    let param = |name: &str| {
        let mut found = params.iter().filter(|(key, _)| key == name);
        match (found.next(), found.next()) {
            (Some((_, value)), None) => Ok(value.as_str()),
            (Some(_), Some(_)) => Err(incomplete(&format!(
                "AWS query-string parameters must include '{name}' once"
            ))),
            (None, _) => Err(incomplete(&format!(
                "AWS query-string parameters must include '{name}'. Re-examine the query-string parameters."
            ))),
        }
    };
    let algorithm = param("X-Amz-Algorithm")?;
    let credential = param("X-Amz-Credential")?;
    let amz_date = param("X-Amz-Date")?;
    let expires = param("X-Amz-Expires")?;
    let signed_headers = param("X-Amz-SignedHeaders")?;
    let signature = param("X-Amz-Signature")?;
    // The same checks as the header form's, from one rebuilt header.
    let header = parse_authorization(&format!(
        "{algorithm} Credential={credential}, SignedHeaders={signed_headers}, Signature={signature}"
    ))?;
    let expires_s: i64 = expires
        .parse()
        .ok()
        .filter(|seconds| (1..=PRESIGNED_EXPIRES_MAX_S).contains(seconds))
        .ok_or_else(|| {
            incomplete(&format!(
                "X-Amz-Expires must be a number of seconds from 1 to {PRESIGNED_EXPIRES_MAX_S} (a week), not '{expires}'"
            ))
        })?;
    Ok(Presented {
        header,
        amz_date: amz_date.to_owned(),
        expires_s: Some(expires_s),
    })
}

/// What a checked signature yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// The payload of an `aws-chunked` body, which the handlers read instead of the body.
    pub decoded_body: Option<Vec<u8>>,
}

/// Checks the signature of a request (header or presigned form) at `now_s`; `secret_of`
/// finds an access key's secret.
pub fn verify(
    request: &SignedRequest<'_>,
    now_s: i64,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, SigV4Error> {
    let Presented {
        header,
        amz_date,
        expires_s,
    } = presented(request)?;
    let amz_date = amz_date.as_str();
    let signed_s = parse_amz_date(amz_date).ok_or_else(|| {
        incomplete(&format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ))
    })?;
    if signed_s > now_s + CLOCK_SKEW_MAX_S {
        return Err(SigV4Error::NotYetCurrent {
            signed: amz_date.to_owned(),
            latest: format_amz_date(now_s + CLOCK_SKEW_MAX_S),
            now: format_amz_date(now_s),
        });
    }
    match expires_s {
        // A presigned URL is good from its date for as long as it says.
        Some(expires_s) if signed_s.saturating_add(expires_s) < now_s => {
            return Err(SigV4Error::PresignedExpired {
                until: format_amz_date(signed_s.saturating_add(expires_s)),
                now: format_amz_date(now_s),
            });
        }
        Some(_) => {}
        None if signed_s < now_s - CLOCK_SKEW_MAX_S => {
            return Err(SigV4Error::Expired {
                signed: amz_date.to_owned(),
                earliest: format_amz_date(now_s - CLOCK_SKEW_MAX_S),
                now: format_amz_date(now_s),
            });
        }
        None => {}
    }
    let declared = request
        .headers
        .get("x-amz-content-sha256")
        .map(|value| value.to_str().map(str::to_owned));
    let payload_hash = match declared {
        None => sha256_hex(request.body),
        Some(Err(_)) => return Err(SigV4Error::ContentMismatch),
        Some(Ok(declared)) if declared == UNSIGNED_PAYLOAD || declared == STREAMING_PAYLOAD => {
            declared
        }
        Some(Ok(declared)) => {
            let computed = sha256_hex(request.body);
            if !declared.eq_ignore_ascii_case(&computed) {
                return Err(SigV4Error::ContentMismatch);
            }
            declared
        }
    };
    let secret = secret_of(&header.access_key_id).ok_or(SigV4Error::UnknownAccessKey)?;
    let skip = expires_s.map(|_| "X-Amz-Signature");
    let expected = signature(
        &secret,
        amz_date,
        &header,
        &canonical_request(request, &header, skip, &payload_hash),
    );
    if !equal_in_constant_time(expected.as_bytes(), header.signature.as_bytes()) {
        return Err(SigV4Error::Mismatch);
    }
    let decoded_body = if payload_hash == STREAMING_PAYLOAD {
        let key = signing_key(&secret, &header);
        let decoded = decode_chunks(request.body, &key, amz_date, &scope(&header), &expected)?;
        let declared_length = request
            .headers
            .get("x-amz-decoded-content-length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared_length.is_some_and(|length| length != decoded.len()) {
            return Err(SigV4Error::BadChunk(format!(
                "x-amz-decoded-content-length does not match the {} bytes decoded",
                decoded.len()
            )));
        }
        Some(decoded)
    } else {
        None
    };
    Ok(Verified {
        access_key_id: header.access_key_id,
        decoded_body,
    })
}

/// Decodes an `aws-chunked` body (`<hex size>;chunk-signature=<sig>\r\n<data>\r\n`…, ending
/// with a chunk of size 0), checking that each chunk's signature chains from the previous one,
/// starting from the request's own (the seed).
pub fn decode_chunks(
    body: &[u8],
    signing_key: &hmac::Tag,
    amz_date: &str,
    scope: &str,
    seed_signature: &str,
) -> Result<Vec<u8>, SigV4Error> {
    let bad = |what: &str| SigV4Error::BadChunk(what.to_owned());
    let empty_hash = sha256_hex(b"");
    let mut previous = seed_signature.to_owned();
    let mut decoded = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let line_end = rest
            .iter()
            .take(CHUNK_HEADER_BYTES_MAX)
            .position(|&byte| byte == b'\n')
            .ok_or_else(|| bad("a chunk header is missing or too long"))?;
        let (line, after) = rest.split_at(line_end);
        let line = line
            .strip_suffix(b"\r")
            .and_then(|line| std::str::from_utf8(line).ok())
            .ok_or_else(|| bad("a chunk header does not end with CRLF"))?;
        let after = after.get(1..).unwrap_or_default();
        let (size, signature) = line
            .split_once(";chunk-signature=")
            .ok_or_else(|| bad("a chunk header has no chunk-signature"))?;
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("a chunk size is not hex"))?;
        let data = after
            .get(..size)
            .ok_or_else(|| bad("a chunk is shorter than its size"))?;
        let string_to_sign = format!(
            "{CHUNK_ALGORITHM}\n{amz_date}\n{scope}\n{previous}\n{empty_hash}\n{}",
            sha256_hex(data)
        );
        let expected = hex(hmac_sha256(signing_key.as_ref(), string_to_sign.as_bytes()).as_ref());
        if !equal_in_constant_time(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(bad("a chunk's signature does not match"));
        }
        decoded.extend_from_slice(data);
        rest = after
            .get(size..)
            .and_then(|tail| tail.strip_prefix(b"\r\n"))
            .ok_or_else(|| bad("a chunk's data does not end with CRLF"))?;
        if size == 0 {
            return if rest.is_empty() {
                Ok(decoded)
            } else {
                Err(bad("bytes follow the final chunk"))
            };
        }
        previous = expected;
    }
}

/// Compares without stopping at the first difference, so the time taken leaks nothing of the
/// expected signature.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;
    use proptest::prelude::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn secret_of(id: &str) -> Option<String> {
        (id == "AKIDEXAMPLE").then(|| SECRET.to_owned())
    }

    // Both vectors were signed by botocore's `SigV4Auth` (boto3's signer).
    fn kinesis_list_streams() -> HeaderMap {
        headers(&[
            ("x-amz-target", "Kinesis_20131202.ListStreams"),
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "127.0.0.1:4566"),
            ("x-amz-date", "20261202T020332Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=29fb3f1e0bf22cd95fd94299eae9ba087f3a382022ba4c2ff7b8cb67e195c74f",
            ),
        ])
    }

    fn now() -> i64 {
        parse_amz_date("20261202T020332Z").unwrap()
    }

    fn verified(request: &SignedRequest<'_>, now_s: i64) -> Result<String, SigV4Error> {
        verify(request, now_s, secret_of).map(|verified| verified.access_key_id)
    }

    // Signed by botocore's `SigV4QueryAuth` (expires=300) at 20261202T020332Z.
    const PRESIGNED_LEDGERS: &str = "max_results=5&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261202%2Fus-east-1%2Fqldb%2Faws4_request&X-Amz-Date=20261202T020332Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=9647f9e654aed02a0eb059012db78e61000ef8bf8deeb6ea554960de2c50d4be";
    const PRESIGNED_KINESIS: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261202%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20261202T020332Z&X-Amz-Expires=300&X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-target&X-Amz-Signature=bf6e2f6526aee6a3ec5921f9bc9be61f45b66727792c4beceeabf1287e091c48";

    #[test]
    fn botocore_presigned_urls_verify_until_they_expire() {
        let host = headers(&[("host", "127.0.0.1:4566")]);
        let ledgers = SignedRequest {
            method: "GET",
            raw_path: "/ledgers",
            raw_query: PRESIGNED_LEDGERS,
            headers: &host,
            body: b"",
        };
        assert!(is_presigned(PRESIGNED_LEDGERS));
        assert_eq!(verified(&ledgers, now()), Ok("AKIDEXAMPLE".into()));
        assert_eq!(verified(&ledgers, now() + 300), Ok("AKIDEXAMPLE".into()));
        let error = verified(&ledgers, now() + 301).unwrap_err();
        assert_eq!(error.aws_type(), "AccessDeniedException");
        assert!(matches!(
            verified(&ledgers, now() - 20 * 60),
            Err(SigV4Error::NotYetCurrent { .. })
        ));
        // Another parameter, another path, or a body the URL did not sign: no longer valid.
        let changed = format!("{PRESIGNED_LEDGERS}&next_token=x");
        for request in [
            SignedRequest {
                raw_query: &changed,
                ..ledgers
            },
            SignedRequest {
                raw_path: "/ledgers/x",
                ..ledgers
            },
            SignedRequest {
                body: b"{}",
                ..ledgers
            },
        ] {
            assert_eq!(verified(&request, now()), Err(SigV4Error::Mismatch));
        }

        let kinesis_headers = headers(&[
            ("host", "127.0.0.1:4566"),
            ("x-amz-target", "Kinesis_20131202.ListStreams"),
            ("content-type", "application/x-amz-json-1.1"),
        ]);
        let kinesis = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: PRESIGNED_KINESIS,
            headers: &kinesis_headers,
            body: b"",
        };
        assert_eq!(verified(&kinesis, now()), Ok("AKIDEXAMPLE".into()));

        for (query, kind) in [
            (
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                "IncompleteSignatureException",
            ),
            (
                &PRESIGNED_LEDGERS.replace("X-Amz-Expires=300", "X-Amz-Expires=604801"),
                "IncompleteSignatureException",
            ),
            (
                &PRESIGNED_LEDGERS.replace("AKIDEXAMPLE", "AKIDUNKNOWN"),
                "UnrecognizedClientException",
            ),
        ] {
            let request = SignedRequest {
                raw_query: query,
                ..ledgers
            };
            assert_eq!(
                verified(&request, now()).unwrap_err().aws_type(),
                kind,
                "{query}"
            );
        }
    }

    #[test]
    fn a_declared_payload_hash_must_be_the_body_s_unless_unsigned() {
        // Signed over `x-amz-content-sha256` = UNSIGNED-PAYLOAD: any body goes.
        let key = "AKIDEXAMPLE";
        let sign = |declared: &str, body: &[u8]| {
            let mut map = headers(&[
                ("host", "127.0.0.1:4566"),
                ("x-amz-date", "20261202T020332Z"),
                ("x-amz-content-sha256", declared),
            ]);
            let header = SignatureHeader {
                access_key_id: key.into(),
                date: "20261202".into(),
                region: "us-east-1".into(),
                service: "qldb".into(),
                signed_headers: vec![
                    "host".into(),
                    "x-amz-content-sha256".into(),
                    "x-amz-date".into(),
                ],
                signature: String::new(),
            };
            let request = SignedRequest {
                method: "POST",
                raw_path: "/ledgers",
                raw_query: "",
                headers: &map,
                body,
            };
            let signature = signature(
                SECRET,
                "20261202T020332Z",
                &header,
                &canonical_request(&request, &header, None, declared),
            );
            map.insert(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={key}/20261202/us-east-1/qldb/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
                )
                .parse()
                .unwrap(),
            );
            map
        };
        let check = |map: &HeaderMap, body: &[u8]| {
            verified(
                &SignedRequest {
                    method: "POST",
                    raw_path: "/ledgers",
                    raw_query: "",
                    headers: map,
                    body,
                },
                now(),
            )
        };
        let unsigned = sign(UNSIGNED_PAYLOAD, b"{}");
        assert!(check(&unsigned, b"{\"any\":1}").is_ok());
        let hashed = sign(&sha256_hex(b"{}"), b"{}");
        assert!(check(&hashed, b"{}").is_ok());
        assert_eq!(check(&hashed, b"{ }"), Err(SigV4Error::ContentMismatch));
        assert_eq!(
            SigV4Error::ContentMismatch.aws_type(),
            "InvalidSignatureException"
        );
    }

    /// AWS's published example of a chunked upload (S3 PUT of 66,560 bytes of `a` in chunks
    /// of 64 KiB), from the seed signature on.
    #[test]
    fn the_published_aws_chunked_example_decodes() {
        const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let header = SignatureHeader {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            date: "20130524".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
            signed_headers: Vec::new(),
            signature: String::new(),
        };
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let signatures = [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ];
        let payload = vec![b'a'; 66_560];
        let mut body = Vec::new();
        for (chunk, signature) in payload
            .chunks(65_536)
            .chain(std::iter::once(&[][..]))
            .zip(signatures)
        {
            body.extend_from_slice(
                format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
            );
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
        let key = signing_key(EXAMPLE_SECRET, &header);
        let scope = scope(&header);
        let decode = |body: &[u8]| decode_chunks(body, &key, "20130524T000000Z", &scope, seed);
        assert_eq!(decode(&body), Ok(payload));
        // A changed byte, a cut body, trailing bytes: refused.
        let mut tampered = body.clone();
        tampered[100] = b'b';
        assert!(matches!(decode(&tampered), Err(SigV4Error::BadChunk(_))));
        assert!(matches!(
            decode(&body[..body.len() - 2]),
            Err(SigV4Error::BadChunk(_))
        ));
        let mut longer = body.clone();
        longer.extend_from_slice(b"x");
        assert!(matches!(decode(&longer), Err(SigV4Error::BadChunk(_))));
    }

    #[test]
    fn botocore_signatures_verify() {
        let headers = kinesis_list_streams();
        let request = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: b"{}",
        };
        assert_eq!(verified(&request, now()), Ok("AKIDEXAMPLE".into()));

        let headers = headers_qldb();
        let request = SignedRequest {
            method: "GET",
            raw_path: "/ledgers/my-ledger%20x",
            raw_query: "b=2&a=1&c=x%2Fy",
            headers: &headers,
            body: b"",
        };
        assert_eq!(verified(&request, now()), Ok("AKIDEXAMPLE".into()));
    }

    fn headers_qldb() -> HeaderMap {
        headers(&[
            ("host", "127.0.0.1:4566"),
            ("x-amz-date", "20261202T020332Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/qldb/aws4_request, SignedHeaders=host;x-amz-date, Signature=9034db52ed6a199909c38caec99ed5d632b5bc23ce3a2f7c41e170e85090f3e2",
            ),
        ])
    }

    #[test]
    fn a_wrong_secret_a_tampered_body_an_unknown_key_and_a_stale_date_are_refused() {
        let headers = kinesis_list_streams();
        let request = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: b"{}",
        };
        let wrong = |_: &str| Some("not the secret".to_owned());
        assert_eq!(
            verify(&request, now(), wrong).map(|verified| verified.access_key_id),
            Err(SigV4Error::Mismatch)
        );
        let tampered = SignedRequest {
            body: b"{\"Limit\":1}",
            ..request
        };
        assert_eq!(verified(&tampered, now()), Err(SigV4Error::Mismatch));
        assert_eq!(
            verify(&request, now(), |_| None).map(|verified| verified.access_key_id),
            Err(SigV4Error::UnknownAccessKey)
        );
        let error = verify(&request, now() + 20 * 60, secret_of).unwrap_err();
        assert_eq!(error.aws_type(), "InvalidSignatureException");
        assert_eq!(
            error.to_string(),
            "Signature expired: 20261202T020332Z is now earlier than 20261202T020832Z (20261202T022332Z - 15 min.)"
        );
        assert!(matches!(
            verified(&request, now() - 20 * 60),
            Err(SigV4Error::NotYetCurrent { .. })
        ));
        // Within the window either way, it verifies.
        assert!(verify(&request, now() + 14 * 60, secret_of).is_ok());
    }

    #[test]
    fn incomplete_signatures() {
        for value in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA1 Credential=a/20261202/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/2026/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=a/20261202/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=zz",
        ] {
            let error = parse_authorization(value).unwrap_err();
            assert_eq!(error.aws_type(), "IncompleteSignatureException", "{value}");
        }
    }

    proptest! {
        #[test]
        fn any_authorization_and_date_are_refused_without_a_panic(
            authorization in "\\PC{0,300}",
            date in "[0-9TZ]{0,20}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = authorization.parse() {
                headers.insert("authorization", value);
            }
            if let Ok(value) = date.parse() {
                headers.insert("x-amz-date", value);
            }
            let request = SignedRequest {
                method: "POST",
                raw_path: "/",
                raw_query: "",
                headers: &headers,
                body: &body,
            };
            prop_assert!(verify(&request, now(), secret_of).is_err());
        }

        #[test]
        fn any_presigned_query_is_refused_without_a_panic(
            fields in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("X-Amz-Algorithm"), Just("X-Amz-Credential"), Just("X-Amz-Date"),
                        Just("X-Amz-Expires"), Just("X-Amz-SignedHeaders"), Just("X-Amz-Signature"),
                        Just("x"),
                    ],
                    "[%0-9A-Za-z/;=&_.~-]{0,80}",
                ),
                0..8,
            ),
            base in prop_oneof![Just(PRESIGNED_LEDGERS), Just("")],
        ) {
            let mut query = base.to_owned();
            for (name, value) in &fields {
                query.push('&');
                query.push_str(name);
                query.push('=');
                query.push_str(value);
            }
            let host = headers(&[("host", "127.0.0.1:4566")]);
            let request = SignedRequest {
                method: "GET",
                raw_path: "/ledgers",
                raw_query: &query,
                headers: &host,
                body: b"",
            };
            // Anything added to a valid URL breaks it; anything else is incomplete at best.
            prop_assert!(fields.is_empty() || verify(&request, now(), secret_of).is_err());
        }

        #[test]
        fn any_chunked_body_is_refused_without_a_panic(
            body in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'0'), Just(b'a'), any::<u8>()],
                0..300,
            ),
            prefix in "[0-9a-f]{0,4}(;chunk-signature=[0-9a-f]{0,64})?\r\n",
        ) {
            let header = SignatureHeader {
                access_key_id: "AKIDEXAMPLE".into(),
                date: "20261202".into(),
                region: "us-east-1".into(),
                service: "kinesis".into(),
                signed_headers: Vec::new(),
                signature: String::new(),
            };
            let mut whole = prefix.into_bytes();
            whole.extend_from_slice(&body);
            let key = signing_key(SECRET, &header);
            prop_assert!(decode_chunks(&whole, &key, "20261202T020332Z", &scope(&header), "00").is_err());
        }
    }
}
