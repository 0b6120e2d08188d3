//! Encryption at rest, for the files Sluice writes itself.
//!
//! One **master key** (32 bytes, from a file or the environment, never stored by Sluice) wraps
//! the **data keys** of a data directory's keyring (`security/keyring.json`), each an
//! AES-256-GCM key with a number. Every file sealed under the keyring names the data key it was
//! sealed with and carries a random salt; its **file key** is derived from both with HKDF-SHA256
//! and a label naming the kind of file, so no two files share a key and a file of one kind never
//! opens as another. Rotation adds a data key that new files use; files sealed before keep
//! opening with the key they name. Changing the master key rewraps the data keys and touches no
//! other file.
//!
//! Two shapes are sealed: **frames** of append-only files (each `nonce · ciphertext · tag` under
//! the file's key, with the frame's clear fields as associated data), and whole **sealed files**
//! (`SLUICEEN`, a header, then one sealed body), for catalogs and objects that are written whole.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use serde::{Deserialize, Serialize};

/// The environment variable that may hold the master key (64 hex digits).
pub const MASTER_KEY_ENV: &str = "SLUICE_ENCRYPTION_KEY";

/// The keyring's file name, in the data directory's `security/` directory.
pub const KEYRING_FILE: &str = "keyring.json";

/// Version of the keyring file's layout.
pub const KEYRING_FORMAT_VERSION: u32 = 1;

/// Bytes of a key: AES-256.
pub const KEY_BYTES: usize = 32;

/// Bytes of a file's salt.
pub const SALT_BYTES: usize = 16;

/// Bytes of a GCM tag.
pub const TAG_BYTES: usize = 16;

/// What sealing adds to a frame: its nonce and its tag.
pub const FRAME_OVERHEAD_BYTES: usize = NONCE_LEN + TAG_BYTES;

/// First bytes of a sealed file.
pub const SEALED_FILE_MAGIC: [u8; 8] = *b"SLUICEEN";

/// Version of the sealed-file layout.
const SEALED_FILE_VERSION: u32 = 1;

/// Sealed file header: magic 8, version 4, data key id 4, salt 16.
pub const SEALED_FILE_HEADER_BYTES: usize = 8 + 4 + 4 + SALT_BYTES;

/// Most data keys a keyring holds (a rotation a day for 27 years).
const KEYS_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    MasterKey(String),
    #[error(
        "the encryption key does not open {0}: it is not the key this data directory was sealed with"
    )]
    WrongMasterKey(PathBuf),
    #[error("{path} names data key {key_id}, which the keyring does not hold")]
    UnknownKey { path: String, key_id: u32 },
    #[error("sealed data does not open (damaged, or not sealed by this keyring)")]
    Unopenable,
    #[error("{0}")]
    Keyring(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl SealError {
    fn io(what: impl Into<String>, source: std::io::Error) -> SealError {
        SealError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The key that wraps a keyring's data keys.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_BYTES]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// A key written as 64 hexadecimal digits (surrounding whitespace ignored), as
    /// `openssl rand -hex 32` or `sluice security generate-key` prints one.
    pub fn parse(text: &str) -> Result<MasterKey, SealError> {
        let text = text.trim();
        let wrong = || {
            SealError::MasterKey(format!(
                "an encryption key is 64 hexadecimal digits (32 bytes; `openssl rand -hex 32` makes one), got {} characters",
                text.chars().count()
            ))
        };
        if text.len() != KEY_BYTES * 2 {
            return Err(wrong());
        }
        let mut key = [0u8; KEY_BYTES];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let digits = std::str::from_utf8(pair).map_err(|_| wrong())?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| wrong())?;
        }
        Ok(MasterKey(key))
    }

    /// A key from a file: 64 hexadecimal digits, or exactly 32 raw bytes.
    pub fn from_file(path: &Path) -> Result<MasterKey, SealError> {
        let bytes = fs::read(path).map_err(|error| {
            SealError::io(format!("read the key file {}", path.display()), error)
        })?;
        if let Ok(raw) = <[u8; KEY_BYTES]>::try_from(bytes.as_slice()) {
            return Ok(MasterKey(raw));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            SealError::MasterKey(format!(
                "{} holds neither 64 hexadecimal digits nor 32 raw bytes",
                path.display()
            ))
        })?;
        MasterKey::parse(&text)
            .map_err(|error| SealError::MasterKey(format!("{}: {error}", path.display())))
    }

    /// The key in [`MASTER_KEY_ENV`], if it is set.
    pub fn from_env() -> Result<Option<MasterKey>, SealError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) => MasterKey::parse(&text)
                .map(Some)
                .map_err(|error| SealError::MasterKey(format!("{MASTER_KEY_ENV}: {error}"))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SealError::MasterKey(format!(
                "{MASTER_KEY_ENV} is not text"
            ))),
        }
    }

    /// A new random key.
    pub fn generate() -> Result<MasterKey, SealError> {
        Ok(MasterKey(random_bytes()?))
    }

    /// The key as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        aead_key(&self.0)
    }
}

fn aead_key(bytes: &[u8; KEY_BYTES]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Unopenable)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| {
        SealError::Keyring("the system's random number generator failed".to_owned())
    })?;
    Ok(bytes)
}

/// What a file of one kind uses its key for: the HKDF label that separates kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose(pub &'static str);

/// Objects of the local stand-in for S3 (`DATA_DIR/s3`): backups, S3 destinations, exports.
pub const LOCAL_OBJECT: Purpose = Purpose("sluice local object");

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format_version: u32,
    current: u32,
    keys: Vec<WrappedKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedKey {
    id: u32,
    created_ms: u64,
    /// The data key sealed under the master key: nonce, ciphertext and tag, in hex.
    wrapped: String,
}

struct KeyringState {
    current: u32,
    keys: BTreeMap<u32, DataKey>,
}

struct DataKey {
    bytes: [u8; KEY_BYTES],
    created_ms: u64,
}

/// A data directory's data keys, opened with its master key.
pub struct Keyring {
    path: PathBuf,
    master: Mutex<MasterKey>,
    state: RwLock<KeyringState>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("current", &self.current_key_id())
            .finish()
    }
}

impl Keyring {
    /// Where a data directory's keyring lives.
    pub fn path_in(security_dir: &Path) -> PathBuf {
        security_dir.join(KEYRING_FILE)
    }

    /// Whether the data directory (its `security/` directory) has a keyring, so that its files
    /// may be sealed.
    pub fn exists(security_dir: &Path) -> bool {
        Keyring::path_in(security_dir).exists()
    }

    /// Opens the keyring with `master`, creating it with a first data key when there is none.
    pub fn open_or_create(security_dir: &Path, master: MasterKey) -> Result<Keyring, SealError> {
        let path = Keyring::path_in(security_dir);
        if !path.exists() {
            fs::create_dir_all(security_dir).map_err(|error| {
                SealError::io(format!("create {}", security_dir.display()), error)
            })?;
            let state = KeyringState {
                current: 1,
                keys: BTreeMap::from([(
                    1,
                    DataKey {
                        bytes: random_bytes()?,
                        created_ms: now_ms(),
                    },
                )]),
            };
            write_keyring(&path, &master, &state)?;
        }
        let state = read_keyring(&path, &master)?;
        Ok(Keyring {
            path,
            master: Mutex::new(master),
            state: RwLock::new(state),
        })
    }

    /// Opens an existing keyring; an error when there is none.
    pub fn open(security_dir: &Path, master: MasterKey) -> Result<Keyring, SealError> {
        let path = Keyring::path_in(security_dir);
        if !path.exists() {
            return Err(SealError::Keyring(format!(
                "{} does not exist: this data directory was never started with an encryption key",
                path.display()
            )));
        }
        Keyring::open_or_create(security_dir, master)
    }

    /// Reads the keyring file again (after `sluice security rotate-key` changed it): new files
    /// are sealed with its current key from now on.
    pub fn reload(&self) -> Result<(), SealError> {
        let master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        let state = read_keyring(&self.path, &master)?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = state;
        Ok(())
    }

    /// Adds a data key and makes it the one new files use; with `new_master`, every data key is
    /// also wrapped under that key from now on. The file is replaced atomically.
    pub fn rotate(&self, new_master: Option<MasterKey>) -> Result<u32, SealError> {
        let mut master = self.master.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        // Start from the file, so two rotations never lose each other's keys.
        let on_disk = read_keyring(&self.path, &master)?;
        *state = on_disk;
        if state.keys.len() >= KEYS_MAX {
            return Err(SealError::Keyring(format!(
                "the keyring holds {KEYS_MAX} keys, the most it may"
            )));
        }
        let id = state.keys.keys().next_back().copied().unwrap_or(0) + 1;
        state.keys.insert(
            id,
            DataKey {
                bytes: random_bytes()?,
                created_ms: now_ms(),
            },
        );
        state.current = id;
        if let Some(new_master) = new_master {
            *master = new_master;
        }
        write_keyring(&self.path, &master, &state)?;
        Ok(id)
    }

    /// The number of the data key new files are sealed with.
    pub fn current_key_id(&self) -> u32 {
        self.state.read().unwrap_or_else(|p| p.into_inner()).current
    }

    /// Every data key's number and creation time (ms since the epoch), oldest first.
    pub fn keys(&self) -> Vec<(u32, u64)> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .iter()
            .map(|(id, key)| (*id, key.created_ms))
            .collect()
    }

    /// The key of a new file of kind `purpose`: the current data key and a fresh salt.
    pub fn new_file_key(&self, purpose: Purpose) -> Result<FileKey, SealError> {
        let salt = random_bytes()?;
        self.file_key(self.current_key_id(), salt, purpose)
    }

    /// The key of an existing file, from the data key and salt its header names.
    pub fn file_key(
        &self,
        key_id: u32,
        salt: [u8; SALT_BYTES],
        purpose: Purpose,
    ) -> Result<FileKey, SealError> {
        let prk = self.file_secret(key_id, salt)?;
        let info = [purpose.0.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| SealError::Unopenable)?;
        Ok(FileKey {
            key_id,
            salt,
            key: LessSafeKey::new(UnboundKey::from(okm)),
            nonces: Mutex::new(NonceSource::new()?),
        })
    }

    /// HKDF's pseudorandom key of a file: its data key extracted with its salt.
    fn file_secret(&self, key_id: u32, salt: [u8; SALT_BYTES]) -> Result<hkdf::Prk, SealError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let data_key = state
            .keys
            .get(&key_id)
            .ok_or_else(|| SealError::UnknownKey {
                path: "a sealed file".to_owned(),
                key_id,
            })?;
        Ok(hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&data_key.bytes))
    }

    /// The keyed hash of a file (its data key and salt) for `purpose`: equal inputs give equal
    /// tags and nothing else about them shows, for lookups of values that must not be stored
    /// in clear (a ledger's index entries).
    pub fn mac_key(
        &self,
        key_id: u32,
        salt: [u8; SALT_BYTES],
        purpose: Purpose,
    ) -> Result<MacKey, SealError> {
        let prk = self.file_secret(key_id, salt)?;
        let info = [purpose.0.as_bytes()];
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| SealError::Unopenable)?;
        Ok(MacKey(hmac::Key::from(okm)))
    }

    /// `plaintext` as a sealed file of kind `purpose`, under the current data key.
    pub fn seal_file(&self, purpose: Purpose, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.new_file_key(purpose)?;
        let mut out =
            Vec::with_capacity(SEALED_FILE_HEADER_BYTES + FRAME_OVERHEAD_BYTES + plaintext.len());
        out.extend_from_slice(&SEALED_FILE_MAGIC);
        out.extend_from_slice(&SEALED_FILE_VERSION.to_le_bytes());
        out.extend_from_slice(&key.key_id.to_le_bytes());
        out.extend_from_slice(&key.salt);
        let header = out.clone();
        key.seal_into(&header, plaintext, &mut out)?;
        Ok(out)
    }

    /// The contents of a sealed file of kind `purpose`; bytes that are not a sealed file are
    /// returned as they are (files written before the data directory had a keyring).
    pub fn open_file(&self, purpose: Purpose, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        if !is_sealed_file(bytes) {
            return Ok(bytes.to_vec());
        }
        open_sealed_file(Some(self), purpose, bytes)
    }
}

/// Whether `bytes` are a sealed file (they start with [`SEALED_FILE_MAGIC`]).
pub fn is_sealed_file(bytes: &[u8]) -> bool {
    bytes.starts_with(&SEALED_FILE_MAGIC)
}

/// The contents of a file that may be sealed: with no keyring, a sealed file is an error that
/// says a key is needed, and any other file is returned as it is.
pub fn open_maybe_sealed(
    keyring: Option<&Keyring>,
    purpose: Purpose,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    if !is_sealed_file(&bytes) {
        return Ok(bytes);
    }
    open_sealed_file(keyring, purpose, &bytes)
}

fn open_sealed_file(
    keyring: Option<&Keyring>,
    purpose: Purpose,
    bytes: &[u8],
) -> Result<Vec<u8>, SealError> {
    let Some(keyring) = keyring else {
        return Err(SealError::Keyring(
            "this file is encrypted and Sluice was started without the encryption key (--encryption-key-file or SLUICE_ENCRYPTION_KEY)".to_owned(),
        ));
    };
    let header = bytes
        .get(..SEALED_FILE_HEADER_BYTES)
        .ok_or(SealError::Unopenable)?;
    let field = |range: std::ops::Range<usize>| -> Result<[u8; 4], SealError> {
        header
            .get(range)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or(SealError::Unopenable)
    };
    let version = u32::from_le_bytes(field(8..12)?);
    if version != SEALED_FILE_VERSION {
        return Err(SealError::Keyring(format!(
            "a sealed file of version {version}, which this Sluice does not read"
        )));
    }
    let key_id = u32::from_le_bytes(field(12..16)?);
    let salt: [u8; SALT_BYTES] = header
        .get(16..16 + SALT_BYTES)
        .and_then(|b| b.try_into().ok())
        .ok_or(SealError::Unopenable)?;
    let key = keyring.file_key(key_id, salt, purpose)?;
    key.open(
        header,
        bytes.get(SEALED_FILE_HEADER_BYTES..).unwrap_or_default(),
    )
}

/// Nonces for one file key in one process: a random 8-byte prefix drawn when the key is made
/// and a 4-byte counter, a fresh prefix when the counter runs out. Two processes (a restart
/// appending to the same file) draw different prefixes but for a 2⁻⁶⁴ chance.
struct NonceSource {
    prefix: [u8; 8],
    counter: u32,
}

impl NonceSource {
    fn new() -> Result<NonceSource, SealError> {
        Ok(NonceSource {
            prefix: random_bytes()?,
            counter: 0,
        })
    }

    fn next(&mut self) -> Result<[u8; NONCE_LEN], SealError> {
        if self.counter == u32::MAX {
            *self = NonceSource::new()?;
        }
        self.counter += 1;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.prefix);
        nonce[8..].copy_from_slice(&self.counter.to_le_bytes());
        Ok(nonce)
    }
}

/// A keyed hash (HMAC-SHA256) derived like a file key.
pub struct MacKey(hmac::Key);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(…)")
    }
}

impl MacKey {
    /// The tag of `data`, as 64 lowercase hexadecimal digits.
    pub fn tag_hex(&self, data: &[u8]) -> String {
        hex(hmac::sign(&self.0, data).as_ref())
    }
}

/// The key of one sealed file.
pub struct FileKey {
    key_id: u32,
    salt: [u8; SALT_BYTES],
    key: LessSafeKey,
    nonces: Mutex<NonceSource>,
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl FileKey {
    /// The data key this file is sealed with, for its header.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The file's salt, for its header.
    pub fn salt(&self) -> [u8; SALT_BYTES] {
        self.salt
    }

    /// Appends `nonce · ciphertext · tag` of `plaintext` to `out`; `aad` is authenticated, not
    /// stored (the frame's clear fields).
    pub fn seal_into(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        let nonce = self
            .nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next()?;
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let body = out.get_mut(start..).unwrap_or_default();
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| SealError::Unopenable)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// The plaintext of `sealed` (`nonce · ciphertext · tag`), checked against `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut copy = sealed.to_vec();
        let plaintext = self.open_in_place(aad, &mut copy)?.len();
        copy.copy_within(NONCE_LEN..NONCE_LEN + plaintext, 0);
        copy.truncate(plaintext);
        Ok(copy)
    }

    /// [`FileKey::open`] in place: the plaintext is a part of `sealed`.
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a mut [u8], SealError> {
        if sealed.len() < FRAME_OVERHEAD_BYTES {
            return Err(SealError::Unopenable);
        }
        let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| SealError::Unopenable)?;
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| SealError::Unopenable)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

fn wrap_aad(id: u32) -> Vec<u8> {
    format!("sluice keyring data key {id}").into_bytes()
}

fn read_keyring(path: &Path, master: &MasterKey) -> Result<KeyringState, SealError> {
    let bytes =
        fs::read(path).map_err(|error| SealError::io(format!("read {}", path.display()), error))?;
    let broken = |why: String| SealError::Keyring(format!("{} is damaged: {why}", path.display()));
    let file: KeyringFile = serde_json::from_slice(&bytes).map_err(|e| broken(e.to_string()))?;
    if file.format_version != KEYRING_FORMAT_VERSION {
        return Err(SealError::Keyring(format!(
            "{} has format version {}; this Sluice reads version {KEYRING_FORMAT_VERSION}",
            path.display(),
            file.format_version
        )));
    }
    let master = master.aead()?;
    let mut keys = BTreeMap::new();
    for wrapped in &file.keys {
        let sealed =
            unhex(&wrapped.wrapped).ok_or_else(|| broken("a key is not hex".to_owned()))?;
        if sealed.len() != NONCE_LEN + KEY_BYTES + TAG_BYTES {
            return Err(broken(format!("key {} has the wrong length", wrapped.id)));
        }
        let mut sealed = sealed;
        let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| SealError::Unopenable)?;
        let opened = master
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(wrapped.id)),
                body,
            )
            .map_err(|_| SealError::WrongMasterKey(path.to_owned()))?;
        let bytes: [u8; KEY_BYTES] = (&*opened)
            .try_into()
            .map_err(|_| broken(format!("key {} has the wrong length", wrapped.id)))?;
        keys.insert(
            wrapped.id,
            DataKey {
                bytes,
                created_ms: wrapped.created_ms,
            },
        );
    }
    if !keys.contains_key(&file.current) {
        return Err(broken(format!(
            "its current key {} is not among its keys",
            file.current
        )));
    }
    Ok(KeyringState {
        current: file.current,
        keys,
    })
}

fn write_keyring(path: &Path, master: &MasterKey, state: &KeyringState) -> Result<(), SealError> {
    let master = master.aead()?;
    let mut keys = Vec::with_capacity(state.keys.len());
    for (id, key) in &state.keys {
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let mut body = key.bytes.to_vec();
        let tag = master
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(*id)),
                &mut body,
            )
            .map_err(|_| SealError::Unopenable)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&body);
        sealed.extend_from_slice(tag.as_ref());
        keys.push(WrappedKey {
            id: *id,
            created_ms: key.created_ms,
            wrapped: hex(&sealed),
        });
    }
    let file = KeyringFile {
        format_version: KEYRING_FORMAT_VERSION,
        current: state.current,
        keys,
    };
    let bytes = serde_json::to_vec_pretty(&file)
        .map_err(|error| SealError::Keyring(format!("encode the keyring: {error}")))?;
    write_atomically(path, &bytes)
}

/// Replaces `path` with `bytes`: a temporary file, fsync, rename, directory fsync.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    let directory = path.parent().unwrap_or_else(|| Path::new("."));
    let temporary = path.with_extension("tmp");
    let io = |what: &str, error| SealError::io(format!("{what} {}", temporary.display()), error);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(|e| io("create", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("fsync", e))?;
    fs::rename(&temporary, path)
        .map_err(|error| SealError::io(format!("rename to {}", path.display()), error))?;
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| SealError::io(format!("fsync {}", directory.display()), error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOG: Purpose = Purpose("test log");

    fn master(byte: u8) -> MasterKey {
        MasterKey([byte; KEY_BYTES])
    }

    #[test]
    fn master_keys_parse_from_hex_and_files() {
        let hex_key = "0f".repeat(32);
        assert_eq!(
            MasterKey::parse(&format!(" {hex_key}\n")).unwrap().0,
            [0x0f; 32]
        );
        assert!(MasterKey::parse("abc").is_err());
        assert!(MasterKey::parse(&"zz".repeat(32)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(MasterKey::from_file(&raw).unwrap().0, [7; 32]);
        let text = dir.path().join("text");
        fs::write(&text, format!("{hex_key}\n")).unwrap();
        assert_eq!(MasterKey::from_file(&text).unwrap().0, [0x0f; 32]);
        let generated = MasterKey::generate().unwrap();
        assert_eq!(
            MasterKey::parse(&generated.to_hex()).unwrap().0,
            generated.0
        );
    }

    #[test]
    fn a_keyring_reopens_with_its_master_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(dir.path(), master(1)).unwrap();
        let sealed = keyring.seal_file(LOG, b"hello").unwrap();
        assert!(is_sealed_file(&sealed));
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        let reopened = Keyring::open(dir.path(), master(1)).unwrap();
        assert_eq!(reopened.open_file(LOG, &sealed).unwrap(), b"hello");
        assert!(matches!(
            Keyring::open(dir.path(), master(2)),
            Err(SealError::WrongMasterKey(_))
        ));
        // Another kind of file does not open with this one's key.
        assert!(reopened.open_file(Purpose("other"), &sealed).is_err());
        // Plain bytes pass through; a sealed file needs a keyring.
        assert_eq!(reopened.open_file(LOG, b"{}").unwrap(), b"{}");
        assert!(open_maybe_sealed(None, LOG, sealed.clone()).is_err());
        assert!(Keyring::open(&dir.path().join("none"), master(1)).is_err());
    }

    #[test]
    fn rotation_adds_a_current_key_and_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(dir.path(), master(1)).unwrap();
        let old = keyring.seal_file(LOG, b"old").unwrap();
        // Another process (the CLI) rotates; this one reloads.
        let cli = Keyring::open(dir.path(), master(1)).unwrap();
        assert_eq!(cli.rotate(None).unwrap(), 2);
        keyring.reload().unwrap();
        assert_eq!(keyring.current_key_id(), 2);
        let new = keyring.seal_file(LOG, b"new").unwrap();
        assert_eq!(&new[12..16], &2u32.to_le_bytes());
        assert_eq!(keyring.open_file(LOG, &old).unwrap(), b"old");
        // A new master key rewraps the data keys; the old master no longer opens the keyring.
        assert_eq!(cli.rotate(Some(master(9))).unwrap(), 3);
        assert!(Keyring::open(dir.path(), master(1)).is_err());
        let rewrapped = Keyring::open(dir.path(), master(9)).unwrap();
        assert_eq!(rewrapped.keys().len(), 3);
        assert_eq!(rewrapped.open_file(LOG, &old).unwrap(), b"old");
        assert_eq!(rewrapped.open_file(LOG, &new).unwrap(), b"new");
    }

    #[test]
    fn mac_tags_are_deterministic_per_file_and_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(dir.path(), master(1)).unwrap();
        let a = keyring.mac_key(1, [1; SALT_BYTES], LOG).unwrap();
        let again = keyring.mac_key(1, [1; SALT_BYTES], LOG).unwrap();
        assert_eq!(a.tag_hex(b"VIN-1"), again.tag_hex(b"VIN-1"));
        assert_ne!(a.tag_hex(b"VIN-1"), a.tag_hex(b"VIN-2"));
        assert_eq!(a.tag_hex(b"x").len(), 64);
        let other_salt = keyring.mac_key(1, [2; SALT_BYTES], LOG).unwrap();
        assert_ne!(a.tag_hex(b"VIN-1"), other_salt.tag_hex(b"VIN-1"));
        let other_purpose = keyring
            .mac_key(1, [1; SALT_BYTES], Purpose("other"))
            .unwrap();
        assert_ne!(a.tag_hex(b"VIN-1"), other_purpose.tag_hex(b"VIN-1"));
        assert!(keyring.mac_key(9, [1; SALT_BYTES], LOG).is_err());
    }

    #[test]
    fn frames_open_only_with_their_associated_data_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(dir.path(), master(1)).unwrap();
        let key = keyring.new_file_key(LOG).unwrap();
        let mut out = Vec::new();
        key.seal_into(b"offset 1", b"record", &mut out).unwrap();
        assert_eq!(out.len(), 6 + FRAME_OVERHEAD_BYTES);
        assert_eq!(key.open(b"offset 1", &out).unwrap(), b"record");
        assert!(key.open(b"offset 2", &out).is_err());
        let same = keyring.file_key(key.key_id(), key.salt(), LOG).unwrap();
        assert_eq!(same.open(b"offset 1", &out).unwrap(), b"record");
        let other_salt = keyring.new_file_key(LOG).unwrap();
        assert!(other_salt.open(b"offset 1", &out).is_err());
        // Two seals of one plaintext differ (fresh nonces).
        let mut again = Vec::new();
        key.seal_into(b"offset 1", b"record", &mut again).unwrap();
        assert_ne!(out, again);
    }

    proptest! {
        #[test]
        fn any_changed_byte_is_refused(plaintext in proptest::collection::vec(any::<u8>(), 0..64), flip in any::<usize>(), bit in 0u8..8) {
            let dir = tempfile::tempdir().unwrap();
            let keyring = Keyring::open_or_create(dir.path(), master(3)).unwrap();
            let mut sealed = keyring.seal_file(LOG, &plaintext).unwrap();
            prop_assert_eq!(keyring.open_file(LOG, &sealed).unwrap(), plaintext.clone());
            let at = SEALED_FILE_MAGIC.len() + flip % (sealed.len() - SEALED_FILE_MAGIC.len());
            sealed[at] ^= 1 << bit;
            prop_assert!(keyring.open_file(LOG, &sealed).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let dir = tempfile::tempdir().unwrap();
            let keyring = Keyring::open_or_create(dir.path(), master(3)).unwrap();
            let mut prefixed = SEALED_FILE_MAGIC.to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = keyring.open_file(LOG, &prefixed);
            let key = keyring.new_file_key(LOG).unwrap();
            let _ = key.open(b"", &bytes);
        }
    }
}
