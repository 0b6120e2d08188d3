//! AWS Signature Version 4 (HMAC-SHA256 and SHA-256 from ring): the primitives every side of
//! Sluice shares (the signing key, the string to sign, the signature; `sluice-api` verifies
//! incoming requests with them), and signing of Sluice's own requests to Amazon OpenSearch
//! Service (`es`), OpenSearch Serverless (`aoss`) and Kinesis ([`sign`]). The body is always
//! hashed into `x-amz-content-sha256`, which `aoss` requires and `es` accepts. Credentials come
//! from the usual environment variables, read when a request is signed, so a rotated session
//! token in a restarted process is picked up without configuration.

use std::fmt::Write as _;

use ring::{digest, hmac};

use crate::ClusterError;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key, with its session token when it is temporary.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Credentials, ClusterError> {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        match (
            variable("AWS_ACCESS_KEY_ID"),
            variable("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: variable("AWS_SESSION_TOKEN"),
            }),
            _ => Err(ClusterError::Invalid(
                "SigV4 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                    .to_owned(),
            )),
        }
    }
}

/// What is signed of one request. `path` is as sent (already percent-encoded) and `query` is
/// the canonical query string (empty for the requests this crate sends).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Every header to sign but `authorization`: lowercase names; `host` and `x-amz-date`
    /// among them.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_sha256_hex: &'a str,
}

/// The scope's parts: `YYYYMMDD`, region, service.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The SHA-256 of `bytes` in lowercase hex, as SigV4 writes hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(scope: &Scope<'_>) -> String {
    format!(
        "{}/{}/{}/aws4_request",
        scope.date, scope.region, scope.service
    )
}

/// The signing key of `secret` for a scope: HMACs of the date, region, service and
/// `aws4_request` in turn, from `AWS4` + the secret.
pub fn signing_key(secret: &str, scope: &Scope<'_>) -> hmac::Tag {
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac_sha256(key.as_ref(), part.as_bytes());
    }
    key
}

/// The signature of a canonical request under `key`, at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn signature(
    key: &hmac::Tag,
    amz_date: &str,
    credential_scope: &str,
    canonical_request: &str,
) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    hex(hmac_sha256(key.as_ref(), string_to_sign.as_bytes()).as_ref())
}

/// The `Authorization` header's value for `request`, signed at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn authorization(
    request: &Request<'_>,
    scope: &Scope<'_>,
    amz_date: &str,
    credentials: &Credentials,
) -> String {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = format!("{}\n{}\n{}\n", request.method, request.path, request.query);
    for (name, value) in &headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    let _ = write!(
        canonical,
        "\n{signed_headers}\n{}",
        request.payload_sha256_hex
    );
    let credential_scope = credential_scope(scope);
    let signature = signature(
        &signing_key(&credentials.secret_access_key, scope),
        amz_date,
        &credential_scope,
        &canonical,
    );
    format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// `(YYYYMMDDTHHMMSSZ, YYYYMMDD)` of `time`.
pub fn amz_dates(time: time::OffsetDateTime) -> (String, String) {
    let time = time.to_offset(time::UtcOffset::UTC);
    let date = format!(
        "{:04}{:02}{:02}",
        time.year(),
        u8::from(time.month()),
        time.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        time.hour(),
        time.minute(),
        time.second()
    );
    (amz_date, date)
}

/// The region in an Amazon endpoint's host name, if it is one: `search-logs-abc.eu-west-1.es.amazonaws.com`
/// and `abc.eu-west-1.aoss.amazonaws.com` (the region before the service) or
/// `kinesis.eu-west-1.amazonaws.com` (the region after it).
pub fn region_of_host(host: &str) -> Option<&str> {
    let parts: Vec<&str> = host.split('.').collect();
    let looks_like_region =
        |label: &&str| label.contains('-') && label.bytes().any(|byte| byte.is_ascii_digit());
    match parts.as_slice() {
        [.., region, "es" | "aoss", "amazonaws", "com"] if looks_like_region(region) => {
            Some(region)
        }
        [.., _service, region, "amazonaws", "com"] if looks_like_region(region) => Some(region),
        _ => None,
    }
}

/// The headers that sign one request, to send with it: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` when the credentials are temporary, and `authorization`. `host` is
/// the `Host` header as sent (with the port when it is not the scheme's), `path` as sent
/// (percent-encoded), `query` canonical (empty for the requests Sluice sends), and `extra` the
/// other headers sent that the signature covers (`content-type`, `x-amz-target`).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    scope: (&str, &str),
    credentials: &Credentials,
    now: time::OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let (region, service) = scope;
    let (amz_date, date) = amz_dates(now);
    let payload = sha256_hex(body);
    let mut signed: Vec<(&str, &str)> = vec![
        ("host", host),
        ("x-amz-content-sha256", &payload),
        ("x-amz-date", &amz_date),
    ];
    if let Some(token) = &credentials.session_token {
        signed.push(("x-amz-security-token", token));
    }
    signed.extend_from_slice(extra);
    let authorization = authorization(
        &Request {
            method,
            path,
            query,
            headers: &signed,
            payload_sha256_hex: &payload,
        },
        &Scope {
            date: &date,
            region,
            service,
        },
        &amz_date,
        credentials,
    );
    let mut headers = vec![
        ("x-amz-content-sha256", payload.clone()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    headers.push(("authorization", authorization));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: None,
        }
    }

    /// `get-vanilla` of AWS's published Signature Version 4 test suite.
    #[test]
    fn the_published_get_vanilla_example_signs_as_aws_does() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            payload_sha256_hex: &sha256_hex(b""),
        };
        let scope = Scope {
            date: "20150830",
            region: "us-east-1",
            service: "service",
        };
        assert_eq!(
            authorization(&request, &scope, "20150830T123600Z", &example_credentials()),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn the_region_of_amazon_endpoints_is_read_from_the_host() {
        assert_eq!(
            region_of_host("search-logs-abc123.eu-west-1.es.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of_host("abc123.us-west-2.aoss.amazonaws.com"),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_host("kinesis.eu-central-1.amazonaws.com"),
            Some("eu-central-1")
        );
        assert_eq!(region_of_host("127.0.0.1"), None);
        assert_eq!(region_of_host("search.example.com"), None);
    }

    #[test]
    fn dates_are_utc_in_the_two_forms_sigv4_uses() {
        let time = time::macros::datetime!(2015-08-30 14:36:00 +02:00);
        assert_eq!(
            amz_dates(time),
            ("20150830T123600Z".to_owned(), "20150830".to_owned())
        );
    }
}
