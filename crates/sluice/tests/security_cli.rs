//! `sluice security user|access-key …` against the real binary, offline on a temporary data
//! directory: what it prints, what it keeps (hashes, never passwords) and its errors.

mod util;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use util::SLUICE;

fn security(data_dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(SLUICE)
        .arg("security")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice security runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    let output = child.wait_with_output().expect("sluice security ends");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn users_and_access_keys_are_managed_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path();

    let (ok, out, err) = security(
        data_dir,
        &[
            "user",
            "add",
            "reader",
            "--role",
            "readall",
            "--password-stdin",
        ],
        "reader-password\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "user reader (readall)\n");
    let (ok, out, _) = security(data_dir, &["user", "add", "admin"], "");
    assert!(ok);
    let generated = out
        .strip_prefix("user admin (all_access) password: ")
        .expect("a generated password is printed")
        .trim();
    assert_eq!(generated.len(), 32);

    let (ok, _, err) = security(data_dir, &["user", "add", "admin"], "");
    assert!(!ok);
    assert!(err.contains("user [admin] already exists"), "{err}");
    // A role not defined yet is accepted (roles are defined through the running node's API),
    // with a warning; a malformed role name is refused.
    let (ok, _, err) = security(data_dir, &["user", "add", "x", "--role", "root"], "");
    assert!(ok, "{err}");
    assert!(err.contains("role [root] is not defined"), "{err}");
    assert!(security(data_dir, &["user", "remove", "x"], "").0);
    let (ok, _, err) = security(data_dir, &["user", "add", "y", "--role", "_x"], "");
    assert!(!ok);
    assert!(err.contains("invalid name [_x]"), "{err}");

    let (_, out, _) = security(data_dir, &["user", "list"], "");
    assert_eq!(out, "admin\tall_access\nreader\treadall\n");

    let (ok, out, _) = security(data_dir, &["access-key", "create"], "");
    assert!(ok);
    let id = out
        .lines()
        .find_map(|line| line.strip_prefix("access key id: "))
        .expect("an id is printed")
        .to_owned();
    let secret = out
        .lines()
        .find_map(|line| line.strip_prefix("secret access key: "))
        .expect("a secret is printed")
        .to_owned();
    let (_, out, _) = security(data_dir, &["access-key", "list"], "");
    assert_eq!(out, format!("{id}\tall_access\n"));

    // The store keeps hashes: neither password appears in it. (It keeps the secret access key:
    // SigV4 needs it to check signatures.)
    let stored = std::fs::read_to_string(data_dir.join("security/identities.json")).expect("store");
    assert!(!stored.contains("reader-password") && !stored.contains(generated));
    assert!(stored.contains("$argon2id$") && stored.contains(&secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("security/identities.json"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the store is the owner's alone: {mode:o}");
    }

    assert!(security(data_dir, &["access-key", "delete", &id], "").0);
    assert!(security(data_dir, &["user", "remove", "admin"], "").0);
    let (ok, _, err) = security(data_dir, &["user", "remove", "admin"], "");
    assert!(!ok);
    assert!(err.contains("user [admin] not found"), "{err}");
    assert_eq!(
        security(data_dir, &["user", "list"], "").1,
        "reader\treadall\n"
    );
    assert_eq!(security(data_dir, &["access-key", "list"], "").1, "");
}
