//! The PartiQL evaluator, clause by clause, through the public `execute` API.

mod common;

use std::sync::Arc;

use common::*;
use sluice_ledger::{Ledger, LedgerError};

fn vehicles() -> (Fixture, Arc<Ledger>) {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("dmv");
    run(&ledger, "CREATE TABLE Vehicle");
    run(&ledger, "CREATE TABLE Person");
    run(
        &ledger,
        "INSERT INTO Vehicle << \
           {'VIN': 'V1', 'Make': 'Tesla', 'Year': 2020, 'Price': 50000.50, 'Owners': [{'PersonId': 'P1'}, {'PersonId': 'P2'}]}, \
           {'VIN': 'V2', 'Make': 'Ford', 'Year': 2018, 'Price': 20000, 'Owners': [{'PersonId': 'P2'}]}, \
           {'VIN': 'V3', 'Make': 'Toyota', 'Year': 2015, 'Price': 15000.25, 'Color': null} >>",
    );
    run(
        &ledger,
        "INSERT INTO Person << {'PersonId': 'P1', 'Name': 'Ann'}, {'PersonId': 'P2', 'Name': 'Bob'} >>",
    );
    (fixture, ledger)
}

#[test]
fn select_with_paths_and_aliases() {
    let (_fixture, ledger) = vehicles();
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT v.VIN, v.Owners[0].PersonId AS first FROM Vehicle AS v WHERE v.Year > 2016",
        ),
        "{VIN: \"V1\", first: \"P1\"} {VIN: \"V2\", first: \"P2\"}",
    );
    assert_bag_eq(
        &run(&ledger, "SELECT VALUE VIN FROM Vehicle WHERE Make = 'Ford'"),
        "\"V2\"",
    );
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT Vehicle.Make FROM Vehicle WHERE Vehicle.VIN = 'V3'",
        ),
        "{Make: \"Toyota\"}",
    );
}

#[test]
fn select_by_binds_the_document_id() {
    let (_fixture, ledger) = vehicles();
    let ids = run(
        &ledger,
        "SELECT VALUE id FROM Vehicle AS v BY id WHERE v.VIN = 'V1'",
    );
    assert_eq!(ids.len(), 1);
    let id = ids[0].as_text().unwrap().to_owned();
    let by_metadata = run(
        &ledger,
        &format!(
            "SELECT VALUE c.data.VIN FROM _ql_committed_Vehicle AS c WHERE c.metadata.id = '{id}'"
        ),
    );
    assert_bag_eq(&by_metadata, "\"V1\"");
}

#[test]
fn comparison_and_logic_operators() {
    let (_fixture, ledger) = vehicles();
    let vins = |condition: &str| {
        run(
            &ledger,
            &format!("SELECT VALUE VIN FROM Vehicle WHERE {condition}"),
        )
    };
    assert_bag_eq(&vins("Year <> 2020"), "\"V2\" \"V3\"");
    assert_bag_eq(&vins("Year <= 2018 AND NOT Make = 'Ford'"), "\"V3\"");
    assert_bag_eq(&vins("Year >= 2020 OR Make = 'Ford'"), "\"V1\" \"V2\"");
    assert_bag_eq(&vins("Year < 2016"), "\"V3\"");
    assert_bag_eq(&vins("Year BETWEEN 2016 AND 2020"), "\"V1\" \"V2\"");
    assert_bag_eq(&vins("Year NOT BETWEEN 2016 AND 2020"), "\"V3\"");
    assert_bag_eq(&vins("Make IN ('Ford', 'Toyota')"), "\"V2\" \"V3\"");
    assert_bag_eq(&vins("Make NOT IN ['Ford', 'Toyota']"), "\"V1\"");
    assert_bag_eq(&vins("Make LIKE 'T%'"), "\"V1\" \"V3\"");
    assert_bag_eq(&vins("Make NOT LIKE 'T_sla'"), "\"V2\" \"V3\"");
    assert_bag_eq(&vins("Color IS NULL"), "\"V1\" \"V2\" \"V3\"");
    assert_bag_eq(&vins("Color IS MISSING"), "\"V1\" \"V2\"");
    assert_bag_eq(&vins("Color IS NOT MISSING"), "\"V3\"");
    assert_bag_eq(&vins("Price > 20000"), "\"V1\"");
    assert_bag_eq(&vins("Price = 20000.00"), "\"V2\"");
}

#[test]
fn arithmetic_and_functions() {
    let (_fixture, ledger) = vehicles();
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE Year + 1 FROM Vehicle WHERE VIN = 'V2'",
        ),
        "2019",
    );
    assert_bag_eq(&run(&ledger, "SELECT VALUE 7 % 3 * 2 - 1"), "1");
    assert_bag_eq(&run(&ledger, "SELECT VALUE 0.1 + 0.2"), "0.3");
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE UPPER(Make) || '!' FROM Vehicle WHERE VIN = 'V2'",
        ),
        "\"FORD!\"",
    );
    assert!(matches!(
        ledger.execute("SELECT VALUE 1 / 0", &[]),
        Err(LedgerError::BadRequest(_))
    ));
}

#[test]
fn aggregates() {
    let (_fixture, ledger) = vehicles();
    assert_bag_eq(&run(&ledger, "SELECT COUNT(*) AS n FROM Vehicle"), "{n: 3}");
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT SUM(Year) AS s, MIN(Year) AS lo, MAX(Make) AS hi FROM Vehicle",
        ),
        "{s: 6053, lo: 2015, hi: \"Toyota\"}",
    );
    assert_bag_eq(
        &run(&ledger, "SELECT VALUE SUM(Price) FROM Vehicle"),
        "85000.75",
    );
    let average = run(
        &ledger,
        "SELECT VALUE AVG(Year) FROM Vehicle WHERE Year > 2016",
    );
    assert_bag_eq(&average, "2019.");
    assert_bag_eq(&run(&ledger, "SELECT VALUE COUNT(Color) FROM Vehicle"), "0");
}

#[test]
fn joins_and_nested_collections() {
    let (_fixture, ledger) = vehicles();
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT v.VIN, p.Name FROM Vehicle AS v, v.Owners AS o, Person AS p \
             WHERE o.PersonId = p.PersonId",
        ),
        "{VIN: \"V1\", Name: \"Ann\"} {VIN: \"V1\", Name: \"Bob\"} {VIN: \"V2\", Name: \"Bob\"}",
    );
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT v.VIN FROM Vehicle AS v INNER JOIN Person AS p ON v.Owners[0].PersonId = p.PersonId \
             WHERE p.Name = 'Ann'",
        ),
        "{VIN: \"V1\"}",
    );
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE i FROM Vehicle AS v, v.Owners AS o AT i WHERE v.VIN = 'V1'",
        ),
        "0 1",
    );
}

#[test]
fn order_by_limit_offset_distinct() {
    let (_fixture, ledger) = vehicles();
    let ordered = run(&ledger, "SELECT VALUE VIN FROM Vehicle ORDER BY Year DESC");
    assert_eq!(ordered, ion_all("\"V1\" \"V2\" \"V3\""));
    let page = run(
        &ledger,
        "SELECT VALUE VIN FROM Vehicle ORDER BY Year LIMIT 1 OFFSET 1",
    );
    assert_eq!(page, ion_all("\"V2\""));
    let owners = run(
        &ledger,
        "SELECT DISTINCT VALUE o.PersonId FROM Vehicle AS v, v.Owners AS o",
    );
    assert_bag_eq(&owners, "\"P1\" \"P2\"");
}

#[test]
fn parameters_and_ion_literals() {
    let (_fixture, ledger) = vehicles();
    let found = ledger
        .execute(
            "SELECT VALUE VIN FROM Vehicle WHERE Year = ? AND Make = ?",
            &[ion("2018"), ion("\"Ford\"")],
        )
        .unwrap();
    assert_bag_eq(&found, "\"V2\"");
    assert_bag_eq(
        &run(&ledger, "SELECT VALUE VIN FROM Vehicle WHERE Year = `2015`"),
        "\"V3\"",
    );
    let inserted = ledger
        .execute(
            "INSERT INTO Person ?",
            &[ion("[{PersonId: \"P3\"}, {PersonId: \"P4\"}]")],
        )
        .unwrap();
    assert_eq!(inserted.len(), 2);
    ledger
        .execute(
            "INSERT INTO Person VALUE ?",
            &[ion("{PersonId: \"P5\", Born: 1990-01-01T}")],
        )
        .unwrap();
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE Born FROM Person WHERE PersonId = 'P5'",
        ),
        "1990-01-01T",
    );
    assert!(matches!(
        ledger.execute("SELECT * FROM Vehicle WHERE VIN = ?", &[]),
        Err(LedgerError::BadRequest(_))
    ));
}

#[test]
fn dml_returns_document_ids() {
    let (_fixture, ledger) = vehicles();
    let updated = run(
        &ledger,
        "UPDATE Vehicle SET Color = 'Red' WHERE Year > 2016",
    );
    assert_eq!(updated.len(), 2);
    for result in &updated {
        assert_eq!(
            result
                .as_struct()
                .unwrap()
                .get("documentId")
                .unwrap()
                .as_text()
                .unwrap()
                .len(),
            22
        );
    }
    let deleted = run(&ledger, "DELETE FROM Vehicle AS v WHERE v.VIN = 'V3'");
    assert_eq!(deleted.len(), 1);
    assert!(run(&ledger, "DELETE FROM Vehicle WHERE VIN = 'nope'").is_empty());
}

#[test]
fn update_set_remove_and_insert_into() {
    let (_fixture, ledger) = vehicles();
    run(
        &ledger,
        "UPDATE Vehicle AS v SET v.Color = 'Blue', v.Specs = {'doors': 4} WHERE v.VIN = 'V2'",
    );
    run(
        &ledger,
        "UPDATE Vehicle SET Specs.doors = 2 WHERE VIN = 'V2'",
    );
    run(&ledger, "UPDATE Vehicle REMOVE Price WHERE VIN = 'V2'");
    run(
        &ledger,
        "UPDATE Vehicle INSERT INTO Owners VALUE {'PersonId': 'P9'} WHERE VIN = 'V2'",
    );
    run(
        &ledger,
        "UPDATE Vehicle INSERT INTO Owners VALUE {'PersonId': 'P0'} AT 0 WHERE VIN = 'V2'",
    );
    run(
        &ledger,
        "FROM Vehicle AS v WHERE v.VIN = 'V2' SET v.Year = 2019",
    );
    run(
        &ledger,
        "FROM Vehicle AS v WHERE v.VIN = 'V2' REMOVE v.Owners[1]",
    );
    run(
        &ledger,
        "FROM Vehicle AS v WHERE v.VIN = 'V2' INSERT INTO v VALUE 'x' AT 'Extra'",
    );
    assert_bag_eq(
        &run(&ledger, "SELECT * FROM Vehicle WHERE VIN = 'V2'"),
        "{VIN: \"V2\", Make: \"Ford\", Year: 2019, \
          Owners: [{PersonId: \"P0\"}, {PersonId: \"P9\"}], Color: \"Blue\", Specs: {doors: 2}, Extra: \"x\"}",
    );
}

#[test]
fn history_with_time_bounds() {
    let fixture = Fixture::new();
    let ledger = fixture.ledger("l");
    run(&ledger, "CREATE TABLE T");
    run(&ledger, "INSERT INTO T VALUE {'n': 0}"); // 03:04:05.678
    fixture.clock.advance_ms(60_000);
    run(&ledger, "UPDATE T SET n = 1"); // 03:05:05.678
    fixture.clock.advance_ms(60_000);
    run(&ledger, "UPDATE T SET n = 2"); // 03:06:05.678
    let in_range = |start: &str, end: &str| {
        run(
            &ledger,
            &format!("SELECT VALUE h.data.n FROM history(T, `{start}`, `{end}`) AS h"),
        )
    };
    assert_bag_eq(
        &in_range("2024-01-02T03:04:10Z", "2024-01-02T03:04:20Z"),
        "0",
    );
    assert_bag_eq(
        &in_range("2024-01-02T03:04:10Z", "2024-01-02T03:05:10Z"),
        "0 1",
    );
    assert_bag_eq(
        &in_range("2024-01-02T03:05:05.678Z", "2024-01-02T03:05:05.678Z"),
        "1",
    );
    assert_bag_eq(
        &in_range("2024-01-02T03:07:00Z", "2024-01-02T03:08:00Z"),
        "2",
    );
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE h.data.n FROM history(T, `2024-01-02T03:05:30Z`) AS h",
        ),
        "1 2",
    );
    assert_eq!(run(&ledger, "SELECT * FROM history(T)").len(), 3);
}

#[test]
fn information_schema_lists_tables() {
    let (_fixture, ledger) = vehicles();
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
        ),
        "\"Vehicle\" \"Person\"",
    );
}

#[test]
fn subqueries_and_exists() {
    let (_fixture, ledger) = vehicles();
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE p.Name FROM Person AS p WHERE p.PersonId IN (SELECT VALUE o.PersonId FROM Vehicle AS v, v.Owners AS o WHERE v.VIN = 'V2')",
        ),
        "\"Bob\"",
    );
    assert_bag_eq(
        &run(
            &ledger,
            "SELECT VALUE v.VIN FROM Vehicle AS v WHERE EXISTS(SELECT * FROM v.Owners AS o WHERE o.PersonId = 'P1')",
        ),
        "\"V1\"",
    );
}

#[test]
fn date_functions_and_txid() {
    let (_fixture, ledger) = vehicles();
    let value = |sql: &str| run(&ledger, sql);
    assert_bag_eq(
        &value("SELECT VALUE EXTRACT(YEAR FROM `2024-02-29T10:20:30Z`)"),
        "2024",
    );
    assert_bag_eq(
        &value("SELECT VALUE EXTRACT(minute FROM `2024-02-29T10:20:30Z`)"),
        "20",
    );
    assert_bag_eq(
        &value("SELECT VALUE DATE_ADD(year, 1, `2024-02-29T10:20:30.000Z`)"),
        "2025-02-28T10:20:30.000Z",
    );
    assert_bag_eq(
        &value("SELECT VALUE DATE_ADD(day, -1, `2024-03-01T00:00:00.000Z`)"),
        "2024-02-29T00:00:00.000Z",
    );
    assert_bag_eq(
        &value("SELECT VALUE DATE_DIFF(month, `2024-01-15T00:00Z`, `2024-04-01T00:00Z`)"),
        "3",
    );
    assert_bag_eq(
        &value("SELECT VALUE DATE_DIFF(hour, `2024-01-01T00:00Z`, `2024-01-02T01:30Z`)"),
        "25",
    );
    assert_bag_eq(
        &value("SELECT VALUE TO_TIMESTAMP('2007-02-23T12:14:33.079Z')"),
        "2007-02-23T12:14:33.079Z",
    );
    let mut transaction = ledger.begin().unwrap();
    let id = transaction.execute("SELECT VALUE TXID()", &[]).unwrap();
    assert_eq!(id[0].as_text(), Some(transaction.id()));
}
