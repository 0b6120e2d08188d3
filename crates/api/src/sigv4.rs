//! AWS Signature Version 4, header form: reading the `Authorization` header, rebuilding the
//! canonical request the client signed, and checking its signature with the access key's
//! secret (HMAC-SHA256 and SHA-256 from ring). Each failure is one of AWS's error kinds, so the
//! AWS port can answer in its clients' shape. Not yet wired into the AWS port; the presigned
//! query form and chunked payload signing are still to come.

use std::fmt::Write as _;

use ring::{digest, hmac};

/// The only algorithm AWS clients sign with.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `x-amz-date` may be from the server's clock, either way, as AWS allows.
pub const CLOCK_SKEW_MAX_S: i64 = 15 * 60;
/// The payload hash a client sends when it does not sign the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

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
}

impl SigV4Error {
    /// The AWS error type (`__type`) clients expect.
    pub fn aws_type(&self) -> &'static str {
        match self {
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownAccessKey => "UnrecognizedClientException",
            SigV4Error::Mismatch
            | SigV4Error::Expired { .. }
            | SigV4Error::NotYetCurrent { .. } => "InvalidSignatureException",
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

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// The canonical request of the header form.
pub fn canonical_request(request: &SignedRequest<'_>, header: &SignatureHeader) -> String {
    let payload_hash = request
        .headers
        .get("x-amz-content-sha256")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| sha256_hex(request.body));
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
        canonical_query(request.raw_query, None),
        canonical_headers,
        header.signed_headers.join(";"),
        payload_hash
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The signature of `canonical` under `secret`, for the request's date and scope.
pub fn signature(
    secret: &str,
    amz_date: &str,
    header: &SignatureHeader,
    canonical: &str,
) -> String {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        header.date, header.region, header.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), header.date.as_bytes());
    for part in [
        header.region.as_str(),
        header.service.as_str(),
        "aws4_request",
    ] {
        key = hmac_sha256(key.as_ref(), part.as_bytes());
    }
    hex(hmac_sha256(key.as_ref(), string_to_sign.as_bytes()).as_ref())
}

/// Seconds since the epoch of an `x-amz-date` (`yyyymmddThhmmssZ`).
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, format)
        .ok()
        .map(|date| date.assume_utc().unix_timestamp())
}

fn format_amz_date(seconds: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|date| date.format(format).ok())
        .unwrap_or_default()
}

/// Checks a header-form signature at `now_s`; `secret_of` finds an access key's secret. Returns
/// the access key id.
pub fn verify(
    request: &SignedRequest<'_>,
    now_s: i64,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<String, SigV4Error> {
    let authorization = request
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| incomplete("Missing Authentication Token"))?;
    let header = parse_authorization(authorization)?;
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        })?;
    let signed_s = parse_amz_date(amz_date).ok_or_else(|| {
        incomplete(&format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ))
    })?;
    if signed_s < now_s - CLOCK_SKEW_MAX_S {
        return Err(SigV4Error::Expired {
            signed: amz_date.to_owned(),
            earliest: format_amz_date(now_s - CLOCK_SKEW_MAX_S),
            now: format_amz_date(now_s),
        });
    }
    if signed_s > now_s + CLOCK_SKEW_MAX_S {
        return Err(SigV4Error::NotYetCurrent {
            signed: amz_date.to_owned(),
            latest: format_amz_date(now_s + CLOCK_SKEW_MAX_S),
            now: format_amz_date(now_s),
        });
    }
    let secret = secret_of(&header.access_key_id).ok_or(SigV4Error::UnknownAccessKey)?;
    let expected = signature(
        &secret,
        amz_date,
        &header,
        &canonical_request(request, &header),
    );
    if equal_in_constant_time(expected.as_bytes(), header.signature.as_bytes()) {
        Ok(header.access_key_id)
    } else {
        Err(SigV4Error::Mismatch)
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
        assert_eq!(verify(&request, now(), secret_of), Ok("AKIDEXAMPLE".into()));

        let headers = headers_qldb();
        let request = SignedRequest {
            method: "GET",
            raw_path: "/ledgers/my-ledger%20x",
            raw_query: "b=2&a=1&c=x%2Fy",
            headers: &headers,
            body: b"",
        };
        assert_eq!(verify(&request, now(), secret_of), Ok("AKIDEXAMPLE".into()));
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
        assert_eq!(verify(&request, now(), wrong), Err(SigV4Error::Mismatch));
        let tampered = SignedRequest {
            body: b"{\"Limit\":1}",
            ..request
        };
        assert_eq!(
            verify(&tampered, now(), secret_of),
            Err(SigV4Error::Mismatch)
        );
        assert_eq!(
            verify(&request, now(), |_| None),
            Err(SigV4Error::UnknownAccessKey)
        );
        let error = verify(&request, now() + 20 * 60, secret_of).unwrap_err();
        assert_eq!(error.aws_type(), "InvalidSignatureException");
        assert_eq!(
            error.to_string(),
            "Signature expired: 20261202T020332Z is now earlier than 20261202T020832Z (20261202T022332Z - 15 min.)"
        );
        assert!(matches!(
            verify(&request, now() - 20 * 60, secret_of),
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
    }
}
