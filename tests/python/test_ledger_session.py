"""QLDBSession compatibility: the real pyqldb driver (and boto3's raw `qldb-session` client for
exact wire shapes) against the real `sluice` binary."""

import base64
import datetime
import threading
from decimal import Decimal

import boto3
import pytest
from amazon.ion.simple_types import IonPyDecimal, IonPyTimestamp
from amazon.ion.simpleion import dumps, loads
from botocore.exceptions import ClientError
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

LEDGER = "vehicles"


def aws_kwargs(sluice):
    return dict(endpoint_url=sluice.aws_url, region_name="us-east-1",
                aws_access_key_id="sluice", aws_secret_access_key="sluice")


@pytest.fixture
def ledger(sluice):
    boto3.client("qldb", **aws_kwargs(sluice)).create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    driver = QldbDriver(LEDGER, **aws_kwargs(sluice))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Vehicle"))
    yield driver
    driver.close()


def test_pyqldb_inserts_with_parameters_and_selects_keep_ion_types(ledger):
    document = {
        "VIN": "1N4AL11D75C109151",
        "Year": 2011,
        "Price": Decimal("19999.50"),
        "Registered": datetime.datetime(2020, 7, 5, 18, 22, 14, tzinfo=datetime.timezone.utc),
        "Tags": ["blue", "sedan"],
    }
    inserted = ledger.execute_lambda(lambda txn: list(txn.execute_statement("INSERT INTO Vehicle ?", document)))
    assert len(inserted) == 1 and "documentId" in inserted[0]

    rows = ledger.execute_lambda(lambda txn: list(
        txn.execute_statement("SELECT * FROM Vehicle WHERE VIN = ?", "1N4AL11D75C109151")))
    assert len(rows) == 1
    row = rows[0]
    assert row["Year"] == 2011
    assert isinstance(row["Price"], IonPyDecimal) and row["Price"] == Decimal("19999.50")
    assert isinstance(row["Registered"], IonPyTimestamp)
    assert row["Registered"] == document["Registered"]
    assert list(row["Tags"]) == ["blue", "sedan"]

    count = ledger.execute_lambda(lambda txn: list(txn.execute_statement(
        "SELECT COUNT(*) AS n FROM Vehicle WHERE Year > ?", 2000)))
    assert count[0]["n"] == 1


def test_results_beyond_one_page_are_fetched_page_by_page(ledger, sluice):
    # QLDB writes at most 40 documents per transaction.
    for batch in range(12):
        ledger.execute_lambda(lambda txn, batch=batch: [
            txn.execute_statement("INSERT INTO Vehicle ?", {"n": batch * 40 + i}) for i in range(40)])
    rows = ledger.execute_lambda(lambda txn: [row["n"] for row in txn.execute_statement("SELECT n FROM Vehicle")])
    assert sorted(rows) == list(range(480))

    session = boto3.client("qldb-session", **aws_kwargs(sluice))
    token = session.send_command(StartSession={"LedgerName": LEDGER})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    first = session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "SELECT * FROM Vehicle"})["ExecuteStatement"]["FirstPage"]
    assert len(first["Values"]) == 200
    seen = len(first["Values"])
    page = first
    while "NextPageToken" in page:
        page = session.send_command(SessionToken=token, FetchPage={
            "TransactionId": txn, "NextPageToken": page["NextPageToken"]})["FetchPage"]["Page"]
        assert len(page["Values"]) <= 200
        seen += len(page["Values"])
    assert seen == 480
    session.send_command(SessionToken=token, AbortTransaction={})
    session.send_command(SessionToken=token, EndSession={})


def test_errors_have_the_shapes_qldb_drivers_expect(ledger, sluice):
    session = boto3.client("qldb-session", **aws_kwargs(sluice))
    token = session.send_command(StartSession={"LedgerName": LEDGER})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]

    with pytest.raises(ClientError) as error:
        session.send_command(SessionToken=token, ExecuteStatement={
            "TransactionId": txn, "Statement": "SELECT * FROM Vehicle\nWHERE WHERE"})
    assert error.value.response["Error"]["Code"] == "BadRequestException"
    assert "line 2, column" in error.value.response["Error"]["Message"]

    # Parameters may also come as Ion text.
    result = session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "INSERT INTO Vehicle ?",
        "Parameters": [{"IonText": '{VIN: "T1", Year: 1999}'}]})
    assert len(result["ExecuteStatement"]["FirstPage"]["Values"]) == 1

    with pytest.raises(ClientError) as error:
        session.send_command(SessionToken=token, ExecuteStatement={
            "TransactionId": txn, "Statement": "INSERT INTO Vehicle ?",
            "Parameters": [{"IonText": '{VIN: "%s"}' % ("x" * 200_000)}]})
    assert error.value.response["Error"]["Code"] == "LimitExceededException"

    # QLDB documents are at most 128 KB; then a wrong commit digest is refused.
    with pytest.raises(ClientError) as error:
        session.send_command(SessionToken=token, CommitTransaction={
            "TransactionId": txn, "CommitDigest": b"\x00" * 32})
    assert error.value.response["Error"]["Code"] == "BadRequestException"
    assert "digest" in error.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as error:
        session.send_command(SessionToken="no-such-session", StartTransaction={})
    assert error.value.response["Error"]["Code"] == "InvalidSessionException"

    with pytest.raises(ClientError) as error:
        session.send_command(StartSession={"LedgerName": "missing"})
    assert error.value.response["Error"]["Code"] == "BadRequestException"

    session.send_command(SessionToken=token, EndSession={})
    with pytest.raises(ClientError) as error:
        session.send_command(SessionToken=token, StartTransaction={})
    assert error.value.response["Error"]["Code"] == "InvalidSessionException"


def test_commit_digest_is_verified_and_returned(ledger, sluice):
    import ionhash  # noqa: F401  (adds ion_hash to Ion values)
    from pyqldb.util.qldb_hash import QldbHash

    session = boto3.client("qldb-session", **aws_kwargs(sluice))
    token = session.send_command(StartSession={"LedgerName": LEDGER})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    statement = "INSERT INTO Vehicle ?"
    parameter = loads('{VIN: "D1", Year: 2001}')
    session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": statement, "Parameters": [{"IonBinary": dumps(parameter)}]})
    digest = QldbHash.to_qldb_hash(txn).dot(
        QldbHash.to_qldb_hash(statement).dot(QldbHash.to_qldb_hash(parameter))).get_qldb_hash()
    committed = session.send_command(SessionToken=token, CommitTransaction={
        "TransactionId": txn, "CommitDigest": digest})["CommitTransaction"]
    assert committed["CommitDigest"] == digest
    assert committed["TransactionId"] == txn


def test_a_conflicting_commit_gets_occ_conflict_exception(ledger, sluice):
    ledger.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Vehicle ?", {"VIN": "C1", "Miles": 0}))
    session = boto3.client("qldb-session", **aws_kwargs(sluice))
    token = session.send_command(StartSession={"LedgerName": LEDGER})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    statement = "UPDATE Vehicle SET Miles = 5 WHERE VIN = 'C1'"
    session.send_command(SessionToken=token, ExecuteStatement={"TransactionId": txn, "Statement": statement})

    # Another driver changes the same document and commits first.
    ledger.execute_lambda(lambda t: t.execute_statement("UPDATE Vehicle SET Miles = 7 WHERE VIN = 'C1'"))

    import ionhash  # noqa: F401
    from pyqldb.util.qldb_hash import QldbHash
    digest = QldbHash.to_qldb_hash(txn).dot(QldbHash.to_qldb_hash(statement)).get_qldb_hash()
    with pytest.raises(ClientError) as error:
        session.send_command(SessionToken=token, CommitTransaction={"TransactionId": txn, "CommitDigest": digest})
    assert error.value.response["Error"]["Code"] == "OccConflictException"
    rows = ledger.execute_lambda(lambda t: list(t.execute_statement("SELECT Miles FROM Vehicle WHERE VIN = 'C1'")))
    assert rows[0]["Miles"] == 7
    # The session survives a conflict: a new transaction works.
    session.send_command(SessionToken=token, StartTransaction={})


def test_two_drivers_incrementing_one_counter_lose_no_update(ledger, sluice):
    ledger.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Vehicle ?", {"VIN": "COUNTER", "n": 0}))
    increments_per_driver = 15
    errors = []

    def increment(txn):
        row = list(txn.execute_statement("SELECT n FROM Vehicle WHERE VIN = 'COUNTER'"))[0]
        txn.execute_statement("UPDATE Vehicle SET n = ? WHERE VIN = 'COUNTER'", row["n"] + 1)

    def worker():
        driver = QldbDriver(LEDGER, retry_config=RetryConfig(retry_limit=50), **aws_kwargs(sluice))
        try:
            for _ in range(increments_per_driver):
                driver.execute_lambda(increment)
        except Exception as exception:  # noqa: BLE001 - reported below
            errors.append(exception)
        finally:
            driver.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    rows = ledger.execute_lambda(lambda txn: list(txn.execute_statement("SELECT n FROM Vehicle WHERE VIN = 'COUNTER'")))
    assert rows[0]["n"] == 2 * increments_per_driver


def test_ion_binary_values_round_trip_exactly(ledger, sluice):
    session = boto3.client("qldb-session", **aws_kwargs(sluice))
    token = session.send_command(StartSession={"LedgerName": LEDGER})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    value = loads('{VIN: "B1", blob: {{AAEC}}, when: 2020-01-01T00:00:00.000Z, price: 1.50, sym: abc}')
    session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "INSERT INTO Vehicle ?", "Parameters": [{"IonBinary": dumps(value)}]})
    page = session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "SELECT * FROM Vehicle WHERE VIN = 'B1'"})["ExecuteStatement"]["FirstPage"]
    import ionhash  # noqa: F401  (Ion hash equality is exact: types, precision, annotations)
    returned = loads(page["Values"][0]["IonBinary"])
    assert returned.ion_hash("SHA256") == value.ion_hash("SHA256")
    assert str(returned["price"]) == "1.50"
    assert base64.b64encode(bytes(loads(page["Values"][0]["IonBinary"])["blob"])) == b"AAEC"


def test_a_long_statement_of_one_session_does_not_hold_up_the_others(ledger, sluice):
    # 700 documents: the cross join below reads 490 000 pairs, seconds of work for the engine.
    for first in range(0, 700, 35):
        batch = [{"VIN": f"L{n}", "n": n} for n in range(first, first + 35)]
        ledger.execute_lambda(lambda txn, batch=batch: txn.execute_statement("INSERT INTO Vehicle ?", batch))
    long_done = threading.Event()
    long_started = threading.Event()
    outcome = {}

    def long_statement():
        session = boto3.client("qldb-session", **aws_kwargs(sluice))
        token = session.send_command(StartSession={"LedgerName": LEDGER})["StartSession"]["SessionToken"]
        txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
        long_started.set()
        try:
            answer = session.send_command(SessionToken=token, ExecuteStatement={
                "TransactionId": txn,
                "Statement": "SELECT COUNT(*) AS pairs FROM Vehicle AS a, Vehicle AS b WHERE a.n + b.n >= 0"})
            outcome["pairs"] = loads(answer["ExecuteStatement"]["FirstPage"]["Values"][0]["IonBinary"])["pairs"]
        except Exception as exception:  # noqa: BLE001 - reported below
            outcome["error"] = exception
        finally:
            long_done.set()

    thread = threading.Thread(target=long_statement)
    thread.start()
    assert long_started.wait(60)
    # While that statement runs, another session commits transactions of its own, each of which
    # the server runs while the long one holds its thread.
    for n in range(20):
        ledger.execute_lambda(lambda txn, n=n: txn.execute_statement("INSERT INTO Vehicle ?", {"VIN": f"S{n}"}))
    assert not long_done.is_set(), "the short transactions waited for the long statement"
    thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["pairs"] == 700 * 700
