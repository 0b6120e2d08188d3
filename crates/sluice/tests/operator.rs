//! What an operator meets running the real binary: `--bind` with a host name, a plain log when
//! stderr is not a terminal, a data directory only its owner can read, absolute paths in what
//! the CLI prints, one clear line for each CLI mistake or unreachable server, and a process that
//! runs without transparent huge pages.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::{JSON, SLUICE, Server};

/// Every file and directory under `root`, the root included.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    let mut index = 0;
    while let Some(path) = found.get(index).cloned() {
        index += 1;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                found.push(entry.expect("dir entry").path());
            }
        }
    }
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_host_name_binds_a_plain_log_a_private_data_dir_and_absolute_paths() {
    let work = tempfile::tempdir().expect("tempdir");
    // A relative data directory, as `--data-dir ./data` from the operator's directory.
    let mut server = Server::start_in(
        work.path(),
        &["--bind", "localhost", "--data-dir", "./data"],
    );
    let data_dir = std::fs::canonicalize(work.path().join("data")).expect("data dir");

    // `localhost` resolves; the first IPv4 address is the one listened on, and said so.
    assert!(
        server.es_url.starts_with("http://127.0.0.1:"),
        "{}",
        server.es_url
    );
    assert_eq!(server.data_dir, data_dir, "the data directory it names");
    assert_eq!(server.es("GET", "/", &[], b"").status, 200);

    // Write something into every engine: an index, a stream, a ledger and its export.
    let created = server.es(
        "PUT",
        "/licence/_doc/1?refresh=true",
        JSON,
        br#"{"name": "Ada"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    server.cli_ok(&["ledger", "create", "cars"]);
    server.cli_ok(&["sql", "--ledger", "cars", "CREATE TABLE Car"]);
    server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "INSERT INTO Car ?",
        r#"{VIN: "1N4AL11D75C109151"}"#,
    ]);
    let export_dir = server.cli_ok(&["ledger", "export", "cars", "--bucket", "backups"]);
    let export_dir = Path::new(export_dir.trim());
    assert!(export_dir.is_absolute(), "{}", export_dir.display());
    assert!(
        export_dir.starts_with(data_dir.join("s3/backups/cars")),
        "{}",
        export_dir.display()
    );
    assert!(export_dir.is_dir());

    let status = server.stop();
    assert!(status.success(), "{status}");

    // Only the owner can read anything: directories 0700, files 0600.
    let paths = walk(&data_dir);
    assert!(paths.len() > 10, "{paths:?}");
    for path in &paths {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(path),
            expected,
            "{} has mode {:o}",
            path.display(),
            mode(path)
        );
    }

    // stderr was a pipe: the log is plain text, and it told which address `localhost` gave.
    let log = server.log_text();
    assert!(!log.contains('\u{1b}'), "ANSI codes in the log: {log:?}");
    assert!(
        log.contains("--bind localhost resolves to ") && log.contains("listening on 127.0.0.1"),
        "{log}"
    );
}

#[test]
fn an_existing_data_dir_open_to_others_is_made_private() {
    let work = tempfile::tempdir().expect("tempdir");
    let data_dir = work.path().join("data");
    std::fs::create_dir(&data_dir).expect("mkdir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut server = Server::start(&data_dir);
    assert_eq!(mode(&data_dir), 0o700);
    server.stop();
    assert!(
        server
            .log_text()
            .contains("the data directory was open to other users (mode 755)")
    );
}

/// mimalloc would back its arenas with transparent huge pages, which cost the indexer its time
/// zeroing 2 MiB at every first touch (BENCHMARKS.md); the server turns them off for itself.
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data_dir.path());
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("the server's /proc status");
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .expect("Linux 5.0 and later report THP_enabled");
    assert_eq!(thp.trim(), "0", "{status}");
}

#[test]
fn cli_mistakes_and_a_missing_server_get_one_clear_line() {
    let output = Command::new(SLUICE)
        .args([
            "sql",
            "--ledger",
            "cars",
            "INSERT INTO Car ?",
            "{Name: Ada Lovelace}",
        ])
        .output()
        .expect("run sluice sql");
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: parameter 1 is not one Ion value: found unrecognized syntax at character 12 (\"Lovelace}\"); strings must be in double quotes: {Name: \"Ada\"}\n"
    );

    let work = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_in(work.path(), &["--data-dir", "./data"]);
    let endpoint = server.aws_url.clone();
    server.stop();
    let output = Command::new(SLUICE)
        .args(["ledger", "list", "--endpoint", &endpoint])
        .output()
        .expect("run sluice ledger list");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("error: no server answers at {endpoint} (")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
