//! TLS for the listeners: the server certificate and key (PEM files with their chain, or a
//! self-signed pair generated into the data directory), a certificate resolver whose pair is
//! swapped atomically when the files are reloaded (SIGHUP), so connections already open keep
//! theirs and new handshakes get the new one, and the rustls configuration with ALPN for
//! HTTP/2 and HTTP/1.1. The ring provider is the only one compiled in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// The first byte of a TLS connection (a handshake record). A listener serving both TLS and
/// plain HTTP looks at each connection's first byte: this one means TLS, any other plain HTTP
/// (a request line starts with a method's letter).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The protocols offered by ALPN, preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// Where `--tls-self-signed` keeps its pair, under the data directory: generated once, reused
/// at every later start so clients that pinned it keep trusting it.
pub const SELF_SIGNED_DIR: &str = "tls";
const SELF_SIGNED_CERT_FILE: &str = "self-signed-cert.pem";
const SELF_SIGNED_KEY_FILE: &str = "self-signed-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("parsing {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("the certificate and key do not make a usable pair: {0}")]
    Pair(String),
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
}

/// Where the certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM certificates: the server's first, then its chain.
    pub cert: PathBuf,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its key, checking that they belong together.
pub fn load_pair(files: &CertificateFiles) -> Result<CertifiedKey, TlsError> {
    let cert_bytes = std::fs::read(&files.cert).map_err(|source| TlsError::Io {
        path: files.cert.clone(),
        source,
    })?;
    let key_bytes = std::fs::read(&files.key).map_err(|source| TlsError::Io {
        path: files.key.clone(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            path: files.cert.clone(),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|error| TlsError::Pem {
        path: files.key.clone(),
        reason: error.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &ring_provider())
        .map_err(|error| TlsError::Pair(error.to_string()))
}

/// The SHA-256 fingerprint of a DER certificate, as browsers and `openssl x509 -fingerprint`
/// print it: upper-case hex pairs joined by colons.
pub fn fingerprint_sha256(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    let mut text = String::with_capacity(digest.len() * 3);
    for (index, byte) in digest.iter().enumerate() {
        if index > 0 {
            text.push(':');
        }
        let _ = write!(text, "{byte:02X}");
    }
    text
}

/// The self-signed pair of `data_dir`, generated for `names` (host names and IP addresses)
/// when it does not exist yet. The key file is written before the certificate and both are
/// renamed into place, so a crash leaves either the whole pair or none usable.
pub fn self_signed(data_dir: &Path, names: &[String]) -> Result<CertificateFiles, TlsError> {
    let directory = data_dir.join(SELF_SIGNED_DIR);
    let files = CertificateFiles {
        cert: directory.join(SELF_SIGNED_CERT_FILE),
        key: directory.join(SELF_SIGNED_KEY_FILE),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    std::fs::create_dir_all(&directory).map_err(io(&directory))?;
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|error| TlsError::Generate(error.to_string()))?;
    for (path, text) in [
        (&files.key, generated.signing_key.serialize_pem()),
        (&files.cert, generated.cert.pem()),
    ] {
        let partial = path.with_extension("pem.partial");
        std::fs::write(&partial, text).map_err(io(&partial))?;
        std::fs::rename(&partial, path).map_err(io(path))?;
    }
    Ok(files)
}

/// The server's certificate, swapped whole by [`ReloadingCert::reload`]: each handshake takes
/// the pair current when it starts.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertificateFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    pub fn load(files: CertificateFiles) -> Result<ReloadingCert, TlsError> {
        let pair = load_pair(&files)?;
        Ok(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(pair)),
        })
    }

    /// Reads the files again; on an error the current pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = Arc::new(load_pair(&self.files)?);
        match self.current.write() {
            Ok(mut current) => *current = pair,
            Err(poisoned) => *poisoned.into_inner() = pair,
        }
        Ok(())
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The fingerprint of the server's own certificate (the chain's first).
    pub fn fingerprint_sha256(&self) -> String {
        let pair = self.current();
        pair.cert
            .first()
            .map(|cert| fingerprint_sha256(cert.as_ref()))
            .unwrap_or_default()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS settings of a listener.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: Arc<ReloadingCert>,
    pub config: Arc<rustls::ServerConfig>,
    /// Refuse plain HTTP instead of serving it beside TLS on the same port.
    pub only: bool,
}

impl Tls {
    pub fn new(cert: Arc<ReloadingCert>, only: bool) -> Result<Tls, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Pair(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            cert,
            config: Arc::new(config),
            only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_generated_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let first = std::fs::read(&files.cert).unwrap();
        let again = self_signed(dir.path(), &["localhost".into()]).unwrap();
        assert_eq!(files, again);
        assert_eq!(
            std::fs::read(&again.cert).unwrap(),
            first,
            "kept, not regenerated"
        );
        let cert = ReloadingCert::load(files).unwrap();
        let fingerprint = cert.fingerprint_sha256();
        assert_eq!(fingerprint.len(), 32 * 3 - 1);
        assert!(
            fingerprint
                .chars()
                .all(|c| c == ':' || c.is_ascii_hexdigit())
        );
    }

    #[test]
    fn reload_swaps_the_pair_and_keeps_the_old_one_on_an_error() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let first = self_signed(one.path(), &["localhost".into()]).unwrap();
        let second = self_signed(two.path(), &["localhost".into()]).unwrap();
        let live = tempfile::tempdir().unwrap();
        let files = CertificateFiles {
            cert: live.path().join("cert.pem"),
            key: live.path().join("key.pem"),
        };
        std::fs::copy(&first.cert, &files.cert).unwrap();
        std::fs::copy(&first.key, &files.key).unwrap();
        let cert = ReloadingCert::load(files.clone()).unwrap();
        let before = cert.fingerprint_sha256();

        std::fs::copy(&second.cert, &files.cert).unwrap();
        std::fs::copy(&second.key, &files.key).unwrap();
        cert.reload().unwrap();
        let after = cert.fingerprint_sha256();
        assert_ne!(before, after);

        // A certificate with another pair's key is refused; the current pair stays.
        std::fs::copy(&first.cert, &files.cert).unwrap();
        assert!(matches!(cert.reload(), Err(TlsError::Pair(_))));
        std::fs::write(&files.cert, "not pem").unwrap();
        assert!(matches!(cert.reload(), Err(TlsError::NoCertificate { .. })));
        assert_eq!(cert.fingerprint_sha256(), after);
    }
}
