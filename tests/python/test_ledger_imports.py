"""Restores and imports read only from the data directory's s3 store and the `--import-dir`
directories, never follow symbolic links, never quote a file back, and a SIGTERM during a long
import stops the real server within 10 s, leaving a data directory that opens cleanly. Driven
with boto3 and pyqldb, and plain HTTP for Sluice's restore/import extensions (boto3 has no
operation for them)."""

import datetime
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from pyqldb.driver.qldb_driver import QldbDriver

LEDGER = "vehicles"
# How long a SIGTERM may take to stop the server, whatever runs (the bound).
STOP_BOUND_S = 10
# Blocks of the generated export: reading them takes tens of seconds in a debug build, far past
# STOP_BOUND_S, so the stop can only be quick if the import is cancelled.
LONG_IMPORT_BLOCKS = 1_000_000


def aws_kwargs(sluice):
    return dict(endpoint_url=sluice.aws_url, region_name="us-east-1",
                aws_access_key_id="sluice", aws_secret_access_key="sluice")


def extension(sluice, ledger, operation, body):
    """POST /ledgers/{ledger}/{restore|import}: (status, decoded JSON answer)."""
    request = urllib.request.Request(f"{sluice.aws_url}/ledgers/{ledger}/{operation}",
                                     json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def filled_ledger(sluice):
    qldb = boto3.client("qldb", **aws_kwargs(sluice))
    qldb.create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    driver = QldbDriver(LEDGER, **aws_kwargs(sluice))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Vehicle"))
    for n in range(3):
        driver.execute_lambda(lambda txn, n=n: txn.execute_statement(
            "INSERT INTO Vehicle ?", {"VIN": f"VIN-{n}", "Year": 2010 + n}))
    driver.close()
    return qldb


def test_restore_from_the_s3_store_end_to_end(sluice):
    qldb = filled_ledger(sluice)
    now = datetime.datetime.now(datetime.timezone.utc)
    export = qldb.export_journal_to_s3(
        Name=LEDGER,
        InclusiveStartTime=now - datetime.timedelta(days=1),
        ExclusiveEndTime=now + datetime.timedelta(days=1),
        S3ExportConfiguration={"Bucket": "backups", "Prefix": "nightly",
                               "EncryptionConfiguration": {"ObjectEncryptionType": "NO_ENCRYPTION"}},
        RoleArn="arn:aws:iam::000000000000:role/export", OutputFormat="ION_TEXT")
    prefix = f"nightly/{LEDGER}/{export['ExportId']}"

    status, answer = extension(sluice, "copy", "restore",
                               {"S3ExportConfiguration": {"Bucket": "backups", "Prefix": prefix}})
    assert status == 200, answer
    assert answer["Name"] == "copy" and answer["State"] == "ACTIVE"
    assert qldb.get_digest(Name="copy")["Digest"] == qldb.get_digest(Name=LEDGER)["Digest"]
    driver = QldbDriver("copy", **aws_kwargs(sluice))
    rows = driver.execute_lambda(lambda txn: list(txn.execute_statement(
        "SELECT VIN FROM Vehicle WHERE Year > ?", 2010)))
    assert sorted(row["VIN"] for row in rows) == ["VIN-1", "VIN-2"]
    driver.close()

    # The same export named by its directory in the store, as ExportJournalToS3 answered it.
    directory = sluice.data_dir.resolve() / "s3" / "backups" / prefix
    status, answer = extension(sluice, "copy2", "restore", {"ExportDirectory": str(directory)})
    assert status == 200, answer

    # A prefix that leaves the store is refused before anything is read.
    status, answer = extension(sluice, "copy3", "restore",
                               {"S3ExportConfiguration": {"Bucket": "backups", "Prefix": "../../ledgers"}})
    assert status == 400 and answer["__type"] == "InvalidParameterException", answer
    status, answer = extension(sluice, "copy3", "restore",
                               {"S3ExportConfiguration": {"Bucket": "backups", "Prefix": "nothing/here"}})
    assert status == 404 and answer["__type"] == "ResourceNotFoundException", answer


def test_paths_outside_the_allowed_roots_get_one_answer_whether_they_exist_or_not(sluice):
    outside = ["/etc", "/nonexistent", "/proc/1", "/root", str(sluice.data_dir.resolve() / "ledgers"),
               str(sluice.data_dir.resolve()), "/"]
    answers = []
    for path in outside:
        status, answer = extension(sluice, "stolen", "import", {"ExportDirectory": path})
        assert status == 403 and answer["__type"] == "AccessDeniedException", (path, answer)
        answers.append(answer["message"].replace(json.dumps(path), "PATH"))
    assert len(set(answers)) == 1, answers
    # `..` is refused by its look alone, even when it starts inside the store.
    escape = str(sluice.data_dir.resolve() / "s3" / ".." / "ledgers")
    status, answer = extension(sluice, "stolen", "restore", {"ExportDirectory": escape})
    assert status == 400 and "`..`" in answer["message"], answer
    # Without --import-dir a relative path has nowhere to be read.
    status, answer = extension(sluice, "stolen", "import", {"ExportDirectory": "exports/x"})
    assert status == 403 and answer["__type"] == "AccessDeniedException", answer
    qldb = boto3.client("qldb", **aws_kwargs(sluice))
    assert qldb.list_ledgers()["Ledgers"] == []


@pytest.fixture
def with_imports(sluice_factory, tmp_path):
    imports = tmp_path / "imports"
    imports.mkdir()
    server = sluice_factory(extra_args=["--import-dir", str(imports)])
    return server, imports


def test_symbolic_links_and_loops_are_refused_and_the_walk_ends(with_imports, tmp_path):
    server, imports = with_imports
    loop = imports / "loop"
    loop.mkdir()
    os.symlink(".", loop / "a")
    os.symlink(loop, loop / "b")
    status, answer = extension(server, "looped", "import", {"ExportDirectory": "loop"})
    assert status == 400, answer
    assert answer["message"] == "bad request: a in the export is a symbolic link; imports do not follow symbolic links"

    # A link from inside the import dir to a directory outside it is not followed either.
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "data.ion").write_text("{blockAddress: {strandId: \"x\", sequenceNo: 0}}\n")
    os.symlink(secret, imports / "escape")
    status, answer = extension(server, "escaped", "import", {"ExportDirectory": "escape"})
    assert status == 400 and "symbolic link" in answer["message"], answer
    status, answer = extension(server, "escaped", "import", {"ExportDirectory": str(imports / "escape")})
    assert status == 400 and "symbolic link" in answer["message"], answer
    # The server is still answering, and nothing was created.
    assert boto3.client("qldb", **aws_kwargs(server)).list_ledgers()["Ledgers"] == []


def test_errors_name_the_file_and_never_quote_it(with_imports):
    server, imports = with_imports
    leak = imports / "leak"
    leak.mkdir()
    for contents in ["root:x:0:0:SECRET-PASSWORD-LINE:/root:/bin/bash\n",
                     "SECRET {{{ not ion at all\n",
                     # Valid Ion, but not a block: the value must not come back either.
                     "secret_hostname_value\n"]:
        (leak / "passwd.ion").write_text(contents)
        status, answer = extension(server, "leaky", "import", {"ExportDirectory": "leak"})
        assert status == 400 and answer["message"].startswith("bad request: passwd.ion"), answer
        assert "secret" not in answer["message"].lower(), answer
    # Inside the import dir, a missing export is simply not found.
    status, answer = extension(server, "leaky", "import", {"ExportDirectory": "missing"})
    assert status == 404 and answer["__type"] == "ResourceNotFoundException", answer


def write_long_export(directory):
    """An export whose reading alone takes far longer than STOP_BOUND_S; its blocks never
    verify, which does not matter: the import is stopped long before it gets there."""
    directory.mkdir()
    line = '{blockAddress:{strandId:"JdxjkR9bSYZ5gQHNOkQYBP",sequenceNo:%d},a:[1,2,3,4,5,6,7,8]}\n'
    with open(directory / "blocks.ion", "w") as out:
        for first in range(0, LONG_IMPORT_BLOCKS, 10_000):
            out.write("".join(line % n for n in range(first, first + 10_000)))


def test_sigterm_during_a_long_import_stops_the_server_within_10_s(sluice_factory, tmp_path):
    imports = tmp_path / "imports"
    imports.mkdir()
    write_long_export(imports / "long")
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir=data_dir, extra_args=["--import-dir", str(imports)])

    outcome = {}

    def run_import():
        try:
            outcome["answer"] = extension(server, "long", "import", {"ExportDirectory": "long"})
        except (urllib.error.URLError, ConnectionError) as error:
            outcome["error"] = error

    client = threading.Thread(target=run_import)
    client.start()
    deadline = time.monotonic() + 60
    while not any("import started" in line for line in server.output):
        assert time.monotonic() < deadline, "the import did not start:\n" + "".join(server.output)
        assert client.is_alive(), outcome
        time.sleep(0.05)

    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(STOP_BOUND_S)
    except Exception:
        server.kill()
        raise AssertionError("sluice did not stop within %d s of SIGTERM:\n%s"
                             % (STOP_BOUND_S, "".join(server.output)))
    stopped_after_s = time.monotonic() - started
    assert stopped_after_s < STOP_BOUND_S
    assert server.process.returncode == 0, "".join(server.output)
    client.join(30)
    # The client was told the import was cancelled and nothing was created.
    status, answer = outcome["answer"]
    assert status == 503 and answer["__type"] == "ServiceUnavailableException", answer
    assert "no ledger was created" in answer["message"], answer

    # The data directory opens cleanly, without the ledger or any half of it.
    assert not [path.name for path in (data_dir / "ledgers").iterdir()
                if path.name.startswith("long")]
    restarted = sluice_factory(data_dir=data_dir)
    assert boto3.client("qldb", **aws_kwargs(restarted)).list_ledgers()["Ledgers"] == []
