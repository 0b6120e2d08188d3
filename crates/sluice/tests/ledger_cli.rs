//! The ledger CLI against the real binary: `sluice up` on ephemeral ports in a temporary data
//! directory, then `sluice sql` and `sluice ledger create|digest|verify|export|restore` as a user
//! runs them.

mod util;

use std::path::Path;
use std::process::Command;

use util::{SLUICE, Server};

#[test]
fn sql_digest_verify_export_restore_round_trip() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data_dir.path());

    server.cli_ok(&["ledger", "create", "cars"]);
    assert_eq!(server.cli_ok(&["ledger", "list"]), "cars\n");
    server.cli_ok(&["sql", "--ledger", "cars", "CREATE TABLE Car"]);
    server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "INSERT INTO Car ?",
        r#"{VIN: "1N4AL11D75C109151", Year: 2011, Price: 19999.50, Registered: 2020-07-05T18:22:14.019Z, Photo: {{AAEC}}}"#,
    ]);
    server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "INSERT INTO Car ?",
        r#"{VIN: "KM8SRDHF6EU074761", Year: 2015}"#,
    ]);
    server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "UPDATE Car SET Year = ? WHERE VIN = ?",
        "2016",
        r#""KM8SRDHF6EU074761""#,
    ]);

    // Ion output keeps every Ion type exactly: decimal precision, timestamp precision, blobs.
    let ion = server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "--format",
        "ion",
        "SELECT * FROM Car WHERE VIN = ?",
        r#""1N4AL11D75C109151""#,
    ]);
    assert_eq!(
        ion_rs::Element::read_all(ion.as_bytes()).expect("ion output"),
        ion_rs::Element::read_all(
            r#"{VIN: "1N4AL11D75C109151", Year: 2011, Price: 19999.50, Registered: 2020-07-05T18:22:14.019Z, Photo: {{AAEC}}}"#
        )
        .expect("expected ion")
    );
    let json = server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "--format",
        "json",
        "SELECT VIN, Year FROM Car WHERE Year > 2012",
    ]);
    assert_eq!(json, "{\"VIN\":\"KM8SRDHF6EU074761\",\"Year\":2016}\n");
    let table = server.cli_ok(&[
        "sql",
        "--ledger",
        "cars",
        "SELECT VIN FROM Car WHERE Year = 2016",
    ]);
    assert_eq!(
        table,
        "VIN\n-----------------\nKM8SRDHF6EU074761\n(1 row)\n"
    );

    // Errors come back in QLDB's shape and fail the command.
    let failed = server.cli(&["sql", "--ledger", "cars", "SELECT * FROM Car WHERE"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("BadRequestException") && stderr.contains("line 1"),
        "{stderr}"
    );

    let digest = server.cli_ok(&["ledger", "digest", "cars"]);
    assert!(
        digest.starts_with("digest: ") && digest.contains("tip: {strandId:"),
        "{digest}"
    );
    let verified = server.cli_ok(&["ledger", "verify", "cars"]);
    assert!(
        verified.starts_with("verified 4 blocks of ledger cars"),
        "{verified}"
    );

    let exported = server.cli(&[
        "ledger", "export", "cars", "--bucket", "backups", "--prefix", "nightly",
    ]);
    assert!(exported.status.success());
    let export_dir = String::from_utf8(exported.stdout).expect("utf-8 output");
    let export_dir = export_dir.trim();
    let canonical_data_dir = std::fs::canonicalize(data_dir.path()).expect("canonical data dir");
    assert!(
        Path::new(export_dir).starts_with(canonical_data_dir.join("s3/backups/nightly/cars")),
        "{export_dir}"
    );
    // The hint on stderr names the same export by bucket and prefix, and it restores too.
    let hint = String::from_utf8_lossy(&exported.stderr).into_owned();
    let export_id = Path::new(export_dir)
        .file_name()
        .and_then(|name| name.to_str())
        .expect("export id");
    let prefix = format!("nightly/cars/{export_id}");
    assert!(
        hint.contains(&format!("--bucket backups --prefix {prefix}")),
        "{hint}"
    );
    server.cli_ok(&[
        "ledger", "restore", "cars-s3", "--bucket", "backups", "--prefix", &prefix,
    ]);
    assert_eq!(server.cli_ok(&["ledger", "digest", "cars-s3"]), digest);
    // The directory `export` printed restores in one step.
    server.cli_ok(&["ledger", "restore", "cars-copy", "--from", export_dir]);
    assert_eq!(
        server.cli_ok(&["ledger", "digest", "cars-copy"]),
        digest,
        "byte for byte"
    );
    server.cli_ok(&["ledger", "verify", "cars-copy"]);
    assert_eq!(
        server.cli_ok(&[
            "sql",
            "--ledger",
            "cars-copy",
            "--format",
            "ion",
            "SELECT VIN FROM Car WHERE Year = 2016"
        ]),
        "{VIN: \"KM8SRDHF6EU074761\"}\n"
    );
    // The restored ledger keeps going after the restored tip.
    server.cli_ok(&[
        "sql",
        "--ledger",
        "cars-copy",
        "INSERT INTO Car ?",
        "{VIN: \"NEW\"}",
    ]);
    assert!(
        server
            .cli_ok(&["ledger", "verify", "cars-copy"])
            .starts_with("verified 5 blocks")
    );

    let restore_again = server.cli(&["ledger", "restore", "cars-copy", "--from", export_dir]);
    assert!(!restore_again.status.success());
    assert!(
        String::from_utf8_lossy(&restore_again.stderr).contains("ResourceAlreadyExistsException")
    );
    let unreachable = Command::new(SLUICE)
        .args(["ledger", "list", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .expect("run sluice");
    assert!(!unreachable.status.success());
}

#[test]
fn import_reads_an_export_directory_and_keeps_its_digest() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ledger/tests/fixtures/format-v1");
    let expected = std::fs::read_to_string(fixture.join("digest.txt")).expect("digest.txt");
    let mut expected = expected.lines();
    let (digest, tip, export) = (
        expected.next().expect("digest line"),
        expected.next().expect("tip line"),
        expected.next().expect("export line"),
    );
    let data_dir = tempfile::tempdir().expect("tempdir");
    // The fixture's `export/` directory is the import directory; `--from` is relative to it.
    let import_dir = fixture.join("export");
    let server = Server::start_with(
        data_dir.path(),
        &["--import-dir", import_dir.to_str().expect("utf-8 path")],
    );
    let relative = Path::new(export)
        .strip_prefix("export")
        .expect("the export lies in export/");
    server.cli_ok(&[
        "ledger",
        "import",
        "imported",
        "--from",
        relative.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        server.cli_ok(&["ledger", "digest", "imported"]),
        format!("digest: {digest}\ntip: {tip}\n")
    );
    assert!(
        server
            .cli_ok(&["ledger", "verify", "imported"])
            .starts_with("verified 5 blocks")
    );
    // The absolute path inside the import directory works as well.
    let absolute = std::fs::canonicalize(fixture.join(export)).expect("the fixture's export");
    server.cli_ok(&[
        "ledger",
        "import",
        "imported-again",
        "--from",
        absolute.to_str().expect("utf-8 path"),
    ]);
    // Outside the allowed directories, an existing and a missing path get the same answer.
    let refusal = |path: &str| {
        let output = server.cli(&["ledger", "import", "other", "--from", path]);
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).replace(path, "PATH")
    };
    let missing = refusal("/nonexistent/export");
    assert!(
        missing.contains("AccessDeniedException (HTTP 403)"),
        "{missing}"
    );
    assert_eq!(refusal("/etc"), missing);
    assert_eq!(
        refusal(data_dir.path().join("ledgers").to_str().expect("utf-8")),
        missing
    );
}
