"""Ledger → search, built in, against the real binary: pyqldb writes bicycle licences and the
search API answers for them with the ledger's versions, real numbers and dates, without any
consumer; `sluice ledger check-index` proves convergence, names differences, and still finds
none after the server is killed with kill -9 while it indexes."""

import subprocess
import time

from elasticsearch import Elasticsearch
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import BINARY, aws_client, kill_9_while_writing

# Generous bound for the indexer to make a commit searchable; a healthy run takes well under a
# second.
SEARCHABLE_BOUND_S = 60


def driver(server, ledger, **kwargs):
    return QldbDriver(ledger, endpoint_url=server.aws_url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


def check_index(server, *args):
    return subprocess.run(
        [str(BINARY), "ledger", "check-index", *args, "--endpoint", server.aws_url, "--es-endpoint", server.es_url],
        capture_output=True, text=True, timeout=SEARCHABLE_BOUND_S * 2)


def wait_until(what, done):
    deadline = time.monotonic() + SEARCHABLE_BOUND_S
    while not done():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.05)


def test_licences_are_searchable_with_ledger_versions_and_real_types(sluice):
    aws_client(sluice, "qldb").create_ledger(Name="Licences", PermissionsMode="STANDARD", DeletionProtection=False)
    qldb = driver(sluice, "Licences")
    qldb.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE BicycleLicence"))
    for name, licence, postcode, points in [("Ana", "L-1", "EC1A", 0), ("Bo", "L-2", "EC1A", 3), ("Cy", "L-3", "N1", 6)]:
        qldb.execute_lambda(lambda txn, row=(name, licence, postcode, points): txn.execute_statement(
            "INSERT INTO BicycleLicence ?",
            {"Name": row[0], "LicenceId": row[1], "Postcode": row[2], "PenaltyPoints": row[3]}))
    qldb.execute_lambda(lambda txn: txn.execute_statement(
        "UPDATE BicycleLicence SET PenaltyPoints = 4 WHERE LicenceId = 'L-2'"))
    qldb.execute_lambda(lambda txn: txn.execute_statement("DELETE FROM BicycleLicence WHERE LicenceId = 'L-3'"))
    versions = {str(row["id"]): int(row["version"]) for row in qldb.execute_lambda(lambda txn: list(
        txn.execute_statement("SELECT metadata.id AS id, metadata.version AS version FROM _ql_committed_BicycleLicence")))}

    checked = check_index(sluice, "Licences")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "index licences-bicyclelicence matches table BicycleLicence" in checked.stdout

    es = Elasticsearch(sluice.es_url)
    es.indices.refresh(index="licences-bicyclelicence")
    hits = es.search(index="licences-bicyclelicence", query={"term": {"Postcode.keyword": "EC1A"}},
                     version=True)["hits"]["hits"]
    assert {hit["_id"]: hit["_version"] for hit in hits} == versions
    points = es.search(index="licences-bicyclelicence", query={"range": {"PenaltyPoints": {"gte": 3}}},
                       version=True)["hits"]["hits"]
    assert [(hit["_source"]["LicenceId"], hit["_source"]["PenaltyPoints"], hit["_version"]) for hit in points] == [
        ("L-2", 4, 1)]
    assert es.count(index="licences-bicyclelicence")["count"] == 2, "the deleted licence is gone"
    mapping = es.indices.get_mapping(index="licences-bicyclelicence")["licences-bicyclelicence"]["mappings"]
    assert mapping["properties"]["PenaltyPoints"]["type"] == "long"

    # check-index names what differs.
    es.index(index="licences-bicyclelicence", id="stray", document={"Name": "nobody"}, refresh=True)
    ana = next(hit for hit in hits if hit["_source"]["LicenceId"] == "L-1")
    es.index(index="licences-bicyclelicence", id=ana["_id"], document={"Name": "Ana", "PenaltyPoints": 9},
             version=7, version_type="external")
    checked = check_index(sluice, "Licences", "BicycleLicence")
    assert checked.returncode == 1
    assert "licences-bicyclelicence/stray: in the index, not in the table" in checked.stdout
    assert f"licences-bicyclelicence/{ana['_id']}: version 7 in the index, 0 in the ledger" in checked.stdout
    assert f"licences-bicyclelicence/{ana['_id']}: content differs" in checked.stdout


def test_after_kill_9_while_indexing_check_index_finds_no_difference(sluice_factory, tmp_path):
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir)
    aws_client(server, "qldb").create_ledger(Name="chaos", PermissionsMode="STANDARD", DeletionProtection=False)
    setup = driver(server, "chaos")
    setup.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Events"))
    setup.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Counters"))
    setup.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Counters ?", {"name": "c", "n": 0}))
    setup.close()

    qldb = driver(server, "chaos", retry_config=RetryConfig(retry_limit=0))

    def write_round(n):
        qldb.execute_lambda(lambda txn: [
            txn.execute_statement("INSERT INTO Events ?", {"n": n, "amount": 1.25}),
            txn.execute_statement("UPDATE Counters SET n = ? WHERE name = 'c'", n)])
        if n % 10 == 9:
            qldb.execute_lambda(lambda txn: txn.execute_statement("DELETE FROM Events WHERE n = ?", n - 5))

    kill_9_while_writing(server, write_round, 41, SEARCHABLE_BOUND_S)

    server = sluice_factory(data_dir)
    qldb = driver(server, "chaos")
    qldb.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Events ?", {"n": -1, "amount": 2.5}))
    checked = check_index(server, "chaos")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "index chaos-events matches table Events" in checked.stdout
    assert "index chaos-counters matches table Counters" in checked.stdout
