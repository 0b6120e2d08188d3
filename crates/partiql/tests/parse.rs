//! Snapshot tests of the parser: every statement form, expression form and error kind of the
//! QLDB PartiQL dialect, rendered as S-expressions (or `error line:column: message`) through
//! `check`. Regenerate with `UPDATE_EXPECT=1 cargo test -p sluice-partiql` and review the diff.

mod check;

use check::{check, check_expr};

#[test]
fn ddl() {
    check(
        "CREATE TABLE VehicleRegistration",
        r#"
        (create_table VehicleRegistration)
        "#,
    );
    check(
        "create table \"Vehicle\" WITH (aws_tags = `{environment: \"development\", owner: 'x'}`);",
        r#"
        (create_table "Vehicle"
          (with (aws_tags `{environment: "development", owner: 'x'}`)))
        "#,
    );
    check(
        "DROP TABLE Person",
        r#"
        (drop_table Person)
        "#,
    );
    check(
        "UNDROP TABLE \"5PLf9SXwndd63lPaSIa0O6\"",
        r#"
        (undrop_table "5PLf9SXwndd63lPaSIa0O6")
        "#,
    );
    check(
        "CREATE INDEX ON VehicleRegistration (VIN)",
        r#"
        (create_index VehicleRegistration VIN)
        "#,
    );
    check(
        "CREATE INDEX ON Person (Address.\"Zip\")",
        r#"
        (create_index Person (path Address ."Zip"))
        "#,
    );
    check(
        "DROP INDEX \"4tPW3fUhaVhDinRgKRLhGU\" ON VehicleRegistration WITH (purge = true)",
        r#"
        (drop_index "4tPW3fUhaVhDinRgKRLhGU" VehicleRegistration (with (purge true)))
        "#,
    );
    check(
        "DROP INDEX \"id\" ON T",
        r#"
        (drop_index "id" T)
        "#,
    );
}

#[test]
fn insert() {
    check(
        "INSERT INTO Person VALUE {'FirstName': 'Raul', 'LastName': 'Lewis', 'DOB': `1963-08-19T`, 'Address': '1719 University Street, Seattle, WA, 98109'}",
        r#"
        (insert Person
          (value
            (struct
              ('FirstName' 'Raul')
              ('LastName' 'Lewis')
              ('DOB' `1963-08-19T`)
              ('Address' '1719 University Street, Seattle, WA, 98109'))))
        "#,
    );
    check(
        "INSERT INTO Person << {'FirstName' : 'Brent'}, {\"FirstName\": 'Lisa', Age: 40} >>",
        r#"
        (insert Person
          (collection
            (bag
              (struct ('FirstName' 'Brent'))
              (struct ('FirstName' 'Lisa') ('Age' 40)))))
        "#,
    );
    check(
        "INSERT INTO Person ?",
        r#"
        (insert Person (collection ?0))
        "#,
    );
    check(
        "INSERT INTO Person VALUE ?",
        r#"
        (insert Person (value ?0))
        "#,
    );
    check(
        "INSERT INTO T VALUE {'a': [1, 2.50, 3e2, -4], 'b': {'c': null, 'd': missing, 'e': true}, 'f': <<>>, 'g': []}",
        r#"
        (insert T
          (value
            (struct
              ('a' (list 1 2.50 3e2 -4))
              ('b' (struct ('c' null) ('d' missing) ('e' true)))
              ('f' (bag))
              ('g' (list)))))
        "#,
    );
}

#[test]
fn update() {
    check(
        "UPDATE Person AS p SET p.LicenseNumber = 'HOLLOW', p.Address.City = ? WHERE p.GovId = ?",
        r#"
        (update Person
          (as p)
          (set (path p .LicenseNumber) 'HOLLOW')
          (set (path p .Address .City) ?0)
          (where (= (path p .GovId) ?1)))
        "#,
    );
    check(
        "UPDATE Person p BY pid SET p.Name = 'x' WHERE pid = 'KmA3XPKKFqYCP2zhR3Lcv4'",
        r#"
        (update Person
          (as p)
          (by pid)
          (set (path p .Name) 'x')
          (where (= pid 'KmA3XPKKFqYCP2zhR3Lcv4')))
        "#,
    );
    check(
        "UPDATE VehicleRegistration AS r REMOVE r.Owners.SecondaryOwners[0] WHERE r.VIN = '1N4AL11D75C109151'",
        r#"
        (update VehicleRegistration
          (as r)
          (remove (path r .Owners .SecondaryOwners [0]))
          (where (= (path r .VIN) '1N4AL11D75C109151')))
        "#,
    );
    check(
        "UPDATE Person SET Name = 'y'",
        r#"
        (update Person (set Name 'y'))
        "#,
    );
    check(
        "UPDATE T AS t INSERT INTO t.Owners VALUE {'PersonId': ?} AT 0 WHERE t.VIN = 'a'",
        r#"
        (update T
          (as t)
          (insert_into (path t .Owners) (struct ('PersonId' ?0)) (at 0))
          (where (= (path t .VIN) 'a')))
        "#,
    );
    check(
        "UPDATE T SET a = 1 REMOVE b SET c = 3",
        r#"
        (update T (set a 1) (remove b) (set c 3))
        "#,
    );
    check(
        "FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151' INSERT INTO r VALUE 'Blue' AT 'Color'",
        r#"
        (from_update VehicleRegistration
          (as r)
          (insert_into r 'Blue' (at 'Color'))
          (where (= (path r .VIN) '1N4AL11D75C109151')))
        "#,
    );
    check(
        "FROM Person AS p BY pid WHERE pid = ? SET p.Address = {'City': 'Seattle'}",
        r#"
        (from_update Person
          (as p)
          (by pid)
          (set (path p .Address) (struct ('City' 'Seattle')))
          (where (= pid ?0)))
        "#,
    );
    check(
        "FROM T AS t REMOVE t.x WHERE t.id = 1",
        r#"
        (from_update T (as t) (remove (path t .x)) (where (= (path t .id) 1)))
        "#,
    );
    check(
        "FROM T t, x",
        r#"
        error 1:9: unexpected token `,`, expected `SET`, `REMOVE` or `INSERT INTO`
        "#,
    );
}

#[test]
fn delete() {
    check(
        "DELETE FROM VehicleRegistration AS r WHERE r.VIN = '1HVBBAANXWH544237'",
        r#"
        (delete VehicleRegistration
          (as r)
          (where (= (path r .VIN) '1HVBBAANXWH544237')))
        "#,
    );
    check(
        "DELETE FROM Person BY pid WHERE pid = ?",
        r#"
        (delete Person (by pid) (where (= pid ?0)))
        "#,
    );
    check(
        "DELETE FROM T",
        r#"
        (delete T)
        "#,
    );
}

#[test]
fn select_basics() {
    check(
        "SELECT * FROM Vehicle",
        r#"
        (select (project *) (from (scan Vehicle)))
        "#,
    );
    check(
        "SELECT VALUE r.VIN FROM VehicleRegistration AS r",
        r#"
        (select (project_value (path r .VIN)) (from (scan VehicleRegistration (as r))))
        "#,
    );
    check(
        "SELECT DISTINCT r.Color FROM Vehicle r",
        r#"
        (select distinct (project (item (path r .Color))) (from (scan Vehicle (as r))))
        "#,
    );
    check(
        "SELECT r.VIN, r.Owners.PrimaryOwner.PersonId AS owner, r['Make'], r.Owners.SecondaryOwners[0], r.Owners.SecondaryOwners[*].PersonId, r.* FROM VehicleRegistration AS r",
        r#"
        (select
          (project
            (item (path r .VIN))
            (item (path r .Owners .PrimaryOwner .PersonId) (as owner))
            (item (path r ['Make']))
            (item (path r .Owners .SecondaryOwners [0]))
            (item (path r .Owners .SecondaryOwners [*] .PersonId))
            (all_fields r))
          (from (scan VehicleRegistration (as r))))
        "#,
    );
    check(
        "select v.Make mk, 1 + 2 from Vehicle as v where v.\"Year\" > 2010",
        r#"
        (select
          (project (item (path v .Make) (as mk)) (item (+ 1 2)))
          (from (scan Vehicle (as v)))
          (where (> (path v ."Year") 2010)))
        "#,
    );
    check(
        "SELECT 1",
        r#"
        (select (project (item 1)))
        "#,
    );
    check(
        "SELECT a FROM T WHERE a = 1;",
        r#"
        (select (project (item a)) (from (scan T)) (where (= a 1)))
        "#,
    );
}

#[test]
fn comments_and_case_insensitive_keywords() {
    check(
        "sElEcT /* block\n comment */ a -- line comment\nFrOm T wHeRe a iS nOt NuLl",
        r#"
        (select (project (item a)) (from (scan T)) (where (is_not_null a)))
        "#,
    );
}

#[test]
fn select_sources() {
    check(
        "SELECT * FROM Vehicle AS v, VehicleRegistration AS r WHERE v.VIN = r.VIN",
        r#"
        (select
          (project *)
          (from (cross_join (scan Vehicle (as v)) (scan VehicleRegistration (as r))))
          (where (= (path v .VIN) (path r .VIN))))
        "#,
    );
    check(
        "SELECT p.FirstName, r.VIN FROM Person AS p INNER JOIN VehicleRegistration AS r ON p.GovId = r.Owners.PrimaryOwner.PersonId",
        r#"
        (select
          (project (item (path p .FirstName)) (item (path r .VIN)))
          (from
            (inner_join
              (scan Person (as p))
              (scan VehicleRegistration (as r))
              (on (= (path p .GovId) (path r .Owners .PrimaryOwner .PersonId))))))
        "#,
    );
    check(
        "SELECT * FROM a JOIN b ON a.x = b.x CROSS JOIN c LEFT OUTER JOIN d ON c.y = d.y",
        r#"
        (select
          (project *)
          (from
            (left_join
              (cross_join
                (inner_join (scan a) (scan b) (on (= (path a .x) (path b .x))))
                (scan c))
              (scan d)
              (on (= (path c .y) (path d .y))))))
        "#,
    );
    check(
        "SELECT o.PersonId FROM VehicleRegistration AS r, r.Owners.SecondaryOwners AS o AT idx",
        r#"
        (select
          (project (item (path o .PersonId)))
          (from
            (cross_join
              (scan VehicleRegistration (as r))
              (scan (path r .Owners .SecondaryOwners) (as o) (at idx)))))
        "#,
    );
    check(
        "SELECT * FROM \"quoted table\" AS q",
        r#"
        (select (project *) (from (scan "quoted table" (as q))))
        "#,
    );
    check(
        "SELECT * FROM Person AS p BY pid WHERE pid = 'abc'",
        r#"
        (select (project *) (from (scan Person (as p) (by pid))) (where (= pid 'abc')))
        "#,
    );
    check(
        "SELECT h.data, h.metadata.version FROM history(VehicleRegistration) AS h",
        r#"
        (select
          (project (item (path h .data)) (item (path h .metadata .version)))
          (from (scan (call history VehicleRegistration) (as h))))
        "#,
    );
    check(
        "SELECT * FROM history(VehicleRegistration, `2019-06-05T00:00:00Z`) AS h WHERE h.metadata.id = ?",
        r#"
        (select
          (project *)
          (from (scan (call history VehicleRegistration `2019-06-05T00:00:00Z`) (as h)))
          (where (= (path h .metadata .id) ?0)))
        "#,
    );
    check(
        "SELECT * FROM history(Vehicle, `2019-06-05T00:00:00Z`, `2019-06-05T23:59:59Z`) AS h",
        r#"
        (select
          (project *)
          (from
            (scan
              (call history Vehicle `2019-06-05T00:00:00Z` `2019-06-05T23:59:59Z`)
              (as h))))
        "#,
    );
    check(
        "SELECT * FROM _ql_committed_VehicleRegistration AS r WHERE r.data.VIN = ?",
        r#"
        (select
          (project *)
          (from (scan _ql_committed_VehicleRegistration (as r)))
          (where (= (path r .data .VIN) ?0)))
        "#,
    );
    check(
        "SELECT * FROM information_schema.user_tables WHERE status = 'ACTIVE'",
        r#"
        (select
          (project *)
          (from (scan (path information_schema .user_tables)))
          (where (= status 'ACTIVE')))
        "#,
    );
    check(
        "SELECT x FROM (SELECT VALUE v FROM T AS v) AS x",
        r#"
        (select
          (project (item x))
          (from
            (scan (subquery (select (project_value v) (from (scan T (as v))))) (as x))))
        "#,
    );
    check(
        "SELECT v FROM <<1, 2>> AS v",
        r#"
        (select (project (item v)) (from (scan (bag 1 2) (as v))))
        "#,
    );
}

#[test]
fn select_clauses() {
    check(
        "SELECT * FROM T ORDER BY a DESC, b ASC, c LIMIT 10 OFFSET ?",
        r#"
        (select
          (project *)
          (from (scan T))
          (order_by (desc a) (asc b) (asc c))
          (limit 10)
          (offset ?0))
        "#,
    );
    check(
        "SELECT COUNT(*) FROM Vehicle",
        r#"
        (select (project (item (count_star))) (from (scan Vehicle)))
        "#,
    );
    check(
        "SELECT COUNT(v.VIN) AS n, SUM(v.Price), AVG(v.Price), MIN(v.Year), MAX(v.Year) FROM Vehicle v",
        r#"
        (select
          (project
            (item (call count (path v .VIN)) (as n))
            (item (call sum (path v .Price)))
            (item (call avg (path v .Price)))
            (item (call min (path v .Year)))
            (item (call max (path v .Year))))
          (from (scan Vehicle (as v))))
        "#,
    );
    check(
        "SELECT * FROM T WHERE EXISTS(SELECT * FROM U WHERE U.a = T.a)",
        r#"
        (select
          (project *)
          (from (scan T))
          (where
            (call exists
              (subquery
                (select (project *) (from (scan U)) (where (= (path U .a) (path T .a))))))))
        "#,
    );
    check(
        "SELECT * FROM T WHERE a IN (SELECT VALUE b FROM U)",
        r#"
        (select
          (project *)
          (from (scan T))
          (where (in a (subquery (select (project_value b) (from (scan U)))))))
        "#,
    );
}

#[test]
fn expr_literals() {
    check_expr(
        "'it''s'",
        r#"
        'it''s'
        "#,
    );
    check_expr(
        "42",
        r#"
        42
        "#,
    );
    check_expr(
        "-9223372036854775808",
        r#"
        -9223372036854775808
        "#,
    );
    check_expr(
        "9223372036854775807",
        r#"
        9223372036854775807
        "#,
    );
    check_expr(
        "1.50",
        r#"
        1.50
        "#,
    );
    check_expr(
        "-0.5",
        r#"
        -0.5
        "#,
    );
    check_expr(
        ".5",
        r#"
        0.5
        "#,
    );
    check_expr(
        "1e3",
        r#"
        1e3
        "#,
    );
    check_expr(
        "2.5E-1",
        r#"
        2.5e-1
        "#,
    );
    check_expr(
        "-1e-2",
        r#"
        -1e-2
        "#,
    );
    check_expr(
        "true",
        r#"
        true
        "#,
    );
    check_expr(
        "FALSE",
        r#"
        false
        "#,
    );
    check_expr(
        "null",
        r#"
        null
        "#,
    );
    check_expr(
        "MISSING",
        r#"
        missing
        "#,
    );
    check_expr(
        "`{a: \"x`y\", b: '''long`s'''}`",
        r#"
        `{a: "x`y", b: '''long`s'''}`
        "#,
    );
    check_expr(
        "`1.0d3`",
        r#"
        `1.0d3`
        "#,
    );
    check_expr(
        "{'a': 1, \"b\": 2, c: 3, 'd': {}}",
        r#"
        (struct ('a' 1) ('b' 2) ('c' 3) ('d' (struct)))
        "#,
    );
    check_expr(
        "[1, [2], <<3>>]",
        r#"
        (list 1 (list 2) (bag 3))
        "#,
    );
    check_expr(
        "<<>>",
        r#"
        (bag)
        "#,
    );
    check_expr(
        "? + ?",
        r#"
        (+ ?0 ?1)
        "#,
    );
}

#[test]
fn expr_operators() {
    check_expr(
        "a = 1 AND b <> 2 OR c != 3",
        r#"
        (or (and (= a 1) (<> b 2)) (<> c 3))
        "#,
    );
    check_expr(
        "NOT a = b",
        r#"
        (not (= a b))
        "#,
    );
    check_expr(
        "NOT a AND b",
        r#"
        (and (not a) b)
        "#,
    );
    check_expr(
        "a < b",
        r#"
        (< a b)
        "#,
    );
    check_expr(
        "a <= b",
        r#"
        (<= a b)
        "#,
    );
    check_expr(
        "a > b",
        r#"
        (> a b)
        "#,
    );
    check_expr(
        "a >= b",
        r#"
        (>= a b)
        "#,
    );
    check_expr(
        "1 + 2 * 3 - 4 / 5 % 6",
        r#"
        (- (+ 1 (* 2 3)) (% (/ 4 5) 6))
        "#,
    );
    check_expr(
        "-a * -(b)",
        r#"
        (* (neg a) (neg b))
        "#,
    );
    check_expr(
        "+a",
        r#"
        (pos a)
        "#,
    );
    check_expr(
        "'a' || 'b' || c",
        r#"
        (|| (|| 'a' 'b') c)
        "#,
    );
    check_expr(
        "(1 + 2) * 3",
        r#"
        (* (+ 1 2) 3)
        "#,
    );
    check_expr(
        "a - -1",
        r#"
        (- a -1)
        "#,
    );
    check_expr(
        "a IN (1, 2, 3)",
        r#"
        (in a (list 1 2 3))
        "#,
    );
    check_expr(
        "a IN (1)",
        r#"
        (in a (list 1))
        "#,
    );
    check_expr(
        "a NOT IN ?",
        r#"
        (not_in a ?0)
        "#,
    );
    check_expr(
        "a IN [1, 2]",
        r#"
        (in a (list 1 2))
        "#,
    );
    check_expr(
        "x BETWEEN 1 AND 10 AND y",
        r#"
        (and (between x 1 10) y)
        "#,
    );
    check_expr(
        "x NOT BETWEEN a + 1 AND b",
        r#"
        (not_between x (+ a 1) b)
        "#,
    );
    check_expr(
        "name LIKE 'A%'",
        r#"
        (like name 'A%')
        "#,
    );
    check_expr(
        "name NOT LIKE 'a!%' ESCAPE '!'",
        r#"
        (not_like name 'a!%' (escape '!'))
        "#,
    );
    check_expr(
        "a IS NULL",
        r#"
        (is_null a)
        "#,
    );
    check_expr(
        "a IS NOT NULL",
        r#"
        (is_not_null a)
        "#,
    );
    check_expr(
        "a IS MISSING",
        r#"
        (is_missing a)
        "#,
    );
    check_expr(
        "a.b IS NOT MISSING",
        r#"
        (is_not_missing (path a .b))
        "#,
    );
    check_expr(
        "a = 1 OR b = 2 AND c = 3",
        r#"
        (or (= a 1) (and (= b 2) (= c 3)))
        "#,
    );
    check_expr(
        "a || b = c",
        r#"
        (= (|| a b) c)
        "#,
    );
    check_expr(
        "(a, b)",
        r#"
        (list a b)
        "#,
    );
}

#[test]
fn expr_functions() {
    check_expr(
        "UPPER(name)",
        r#"
        (call upper name)
        "#,
    );
    check_expr(
        "lower(name)",
        r#"
        (call lower name)
        "#,
    );
    check_expr(
        "CHAR_LENGTH(s)",
        r#"
        (call char_length s)
        "#,
    );
    check_expr(
        "SUBSTRING(s, 1, 3)",
        r#"
        (call substring s 1 3)
        "#,
    );
    check_expr(
        "SUBSTRING(s FROM 2 FOR 3)",
        r#"
        (call substring s 2 3)
        "#,
    );
    check_expr(
        "SUBSTRING(s FROM 2)",
        r#"
        (call substring s 2)
        "#,
    );
    check_expr(
        "TRIM(s)",
        r#"
        (trim both s)
        "#,
    );
    check_expr(
        "TRIM(LEADING FROM s)",
        r#"
        (trim leading s)
        "#,
    );
    check_expr(
        "TRIM(TRAILING 'x' FROM s)",
        r#"
        (trim trailing (chars 'x') s)
        "#,
    );
    check_expr(
        "TRIM(' ' FROM s)",
        r#"
        (trim both (chars ' ') s)
        "#,
    );
    check_expr(
        "EXISTS(a.b)",
        r#"
        (call exists (path a .b))
        "#,
    );
    check_expr(
        "SIZE(r.Owners)",
        r#"
        (call size (path r .Owners))
        "#,
    );
    check_expr(
        "CAST(a AS INT)",
        r#"
        (cast a (type int))
        "#,
    );
    check_expr(
        "CAST(a AS DECIMAL(5, 2))",
        r#"
        (cast a (type decimal 5 2))
        "#,
    );
    check_expr(
        "CAST(a AS character varying)",
        r#"
        (cast a (type character varying))
        "#,
    );
    check_expr(
        "COALESCE(a, b, 1)",
        r#"
        (call coalesce a b 1)
        "#,
    );
    check_expr(
        "NULLIF(a, '')",
        r#"
        (call nullif a '')
        "#,
    );
    check_expr(
        "DATE_ADD(year, 5, `2010-01-01T`)",
        r#"
        (call date_add year 5 `2010-01-01T`)
        "#,
    );
    check_expr(
        "DATE_DIFF(day, a, b)",
        r#"
        (call date_diff day a b)
        "#,
    );
    check_expr(
        "EXTRACT(YEAR FROM `2010-01-01T`)",
        r#"
        (call extract YEAR `2010-01-01T`)
        "#,
    );
    check_expr(
        "UTCNOW()",
        r#"
        (call utcnow)
        "#,
    );
    check_expr(
        "TO_STRING(t, 'y')",
        r#"
        (call to_string t 'y')
        "#,
    );
    check_expr(
        "COUNT(*)",
        r#"
        (count_star)
        "#,
    );
    check_expr(
        "count(x)",
        r#"
        (call count x)
        "#,
    );
    check_expr(
        "CASE WHEN a = 1 THEN 'one' WHEN a = 2 THEN 'two' ELSE 'many' END",
        r#"
        (case (when (= a 1) 'one') (when (= a 2) 'two') (else 'many'))
        "#,
    );
    check_expr(
        "CASE a WHEN 1 THEN 'x' END",
        r#"
        (case a (when 1 'x'))
        "#,
    );
}

#[test]
fn expr_paths() {
    check_expr(
        "a.b.c",
        r#"
        (path a .b .c)
        "#,
    );
    check_expr(
        "a['b']",
        r#"
        (path a ['b'])
        "#,
    );
    check_expr(
        "a[0]",
        r#"
        (path a [0])
        "#,
    );
    check_expr(
        "a[*]",
        r#"
        (path a [*])
        "#,
    );
    check_expr(
        "a.*",
        r#"
        (path a .*)
        "#,
    );
    check_expr(
        "a[*].b[0].\"C\"",
        r#"
        (path a [*] .b [0] ."C")
        "#,
    );
    check_expr(
        "a.select.from",
        r#"
        (path a .select .from)
        "#,
    );
    check_expr(
        "a[b.c + 1]",
        r#"
        (path a [(+ (path b .c) 1)])
        "#,
    );
    check_expr(
        "(SELECT VALUE x FROM y)[0]",
        r#"
        (path (subquery (select (project_value x) (from (scan y)))) [0])
        "#,
    );
    check_expr(
        "f(x).y",
        r#"
        (path (call f x) .y)
        "#,
    );
}

#[test]
fn errors() {
    check(
        "SELEC * FROM T",
        r#"
        error 1:1: unexpected token `SELEC`, expected a statement (SELECT, INSERT, UPDATE, DELETE, FROM, CREATE, DROP or UNDROP)
        "#,
    );
    check(
        "",
        r#"
        error 1:1: unexpected end of input, expected a statement (SELECT, INSERT, UPDATE, DELETE, FROM, CREATE, DROP or UNDROP)
        "#,
    );
    check(
        "SELECT * FROM",
        r#"
        error 1:14: unexpected end of input, expected an expression
        "#,
    );
    check(
        "SELECT * FROM T WHERE",
        r#"
        error 1:22: unexpected end of input, expected an expression
        "#,
    );
    check(
        "SELECT * FROM T extra tokens",
        r#"
        error 1:23: unexpected token `tokens`, expected the end of the statement
        "#,
    );
    check(
        "SELECT a,\n  FROM T",
        r#"
        error 2:3: unexpected token `FROM`, expected an expression
        "#,
    );
    check(
        "SELECT * FROM T WHERE a = 'unterminated",
        r#"
        error 1:27: unterminated string literal
        "#,
    );
    check(
        "SELECT \"unterminated FROM T",
        r#"
        error 1:8: unterminated quoted identifier
        "#,
    );
    check(
        "INSERT INTO T VALUE `{a: 1}",
        r#"
        error 1:21: unterminated Ion literal
        "#,
    );
    check(
        "SELECT 1e FROM T",
        r#"
        error 1:8: invalid number literal `1e`: the exponent has no digits
        "#,
    );
    check(
        "SELECT 1e+ FROM T",
        r#"
        error 1:8: invalid number literal `1e+`: the exponent has no digits
        "#,
    );
    check(
        "SELECT 123abc FROM T",
        r#"
        error 1:8: invalid number literal `123abc`
        "#,
    );
    check(
        "SELECT 1.2.3 FROM T",
        r#"
        error 1:8: invalid number literal `1.2.3`
        "#,
    );
    check(
        "SELECT 99999999999999999999 FROM T",
        r#"
        error 1:8: integer literal `99999999999999999999` is out of range for a 64-bit integer
        "#,
    );
    check(
        "SELECT 1e999 FROM T",
        r#"
        error 1:8: float literal `1e999` is out of range
        "#,
    );
    check(
        "SELECT # FROM T",
        r#"
        error 1:8: unexpected character `#`
        "#,
    );
    check(
        "SELECT * FROM T /* never closed",
        r#"
        error 1:17: unterminated block comment
        "#,
    );
    check(
        "SELECT * FROM T; SELECT 1",
        r#"
        error 1:18: unexpected token `SELECT`, expected the end of the statement
        "#,
    );
    check(
        "CREATE VIEW v",
        r#"
        error 1:8: unexpected token `VIEW`, expected `TABLE` or `INDEX`
        "#,
    );
    check(
        "DROP TABLE",
        r#"
        error 1:11: unexpected end of input, expected a table name
        "#,
    );
    check(
        "UPDATE T WHERE a = 1",
        r#"
        error 1:10: unexpected token `WHERE`, expected `SET`, `REMOVE` or `INSERT INTO`
        "#,
    );
    check(
        "UPDATE T SET 1 = 2",
        r#"
        error 1:14: expected a field name or a path
        "#,
    );
    check(
        "INSERT T VALUE 1",
        r#"
        error 1:8: unexpected token `T`, expected `INTO`
        "#,
    );
    check(
        "DELETE T",
        r#"
        error 1:8: unexpected token `T`, expected `FROM`
        "#,
    );
    check(
        "SELECT * FROM T WHERE a IS 1",
        r#"
        error 1:28: unexpected token `1`, expected `NULL` or `MISSING`
        "#,
    );
    check(
        "SELECT * FROM T WHERE a BETWEEN 1 OR 2",
        r#"
        error 1:35: unexpected token `OR`, expected `AND`
        "#,
    );
    check(
        "SELECT CAST(a AS) FROM T",
        r#"
        error 1:17: unexpected token `)`, expected a type name
        "#,
    );
    check(
        "SELECT CAST(a AS DECIMAL(x)) FROM T",
        r#"
        error 1:26: unexpected token `x`, expected a type parameter (a non-negative integer)
        "#,
    );
    check(
        "SELECT TRIM(LEADING s) FROM T",
        r#"
        error 1:22: unexpected token `)`, expected `FROM`
        "#,
    );
    check(
        "SELECT CASE END FROM T",
        r#"
        error 1:13: unexpected token `END`, expected an expression
        "#,
    );
    check(
        "SELECT * FROM T ORDER a",
        r#"
        error 1:23: unexpected token `a`, expected `BY`
        "#,
    );
    check(
        "SELECT a.? FROM T",
        r#"
        error 1:10: unexpected token `?`, expected a field name or `*` after `.`
        "#,
    );
    check(
        "SELECT {'a' 1} FROM T",
        r#"
        error 1:13: unexpected token `1`, expected `:`
        "#,
    );
    check(
        "SELECT * FROM T AS WHERE",
        r#"
        error 1:20: unexpected token `WHERE`, expected an alias after `AS`
        "#,
    );
    check(
        "SELECT * FROM a LEFT JOIN b",
        r#"
        error 1:28: unexpected end of input, expected `ON`
        "#,
    );
    check(
        "CREATE INDEX ON T (1)",
        r#"
        error 1:20: expected a field name or a path
        "#,
    );
    check(
        "SELECT * FROM T WHERE a IN ()",
        r#"
        error 1:29: unexpected token `)`, expected an expression
        "#,
    );
    check(
        "SELECT ()",
        r#"
        error 1:9: unexpected token `)`, expected an expression
        "#,
    );
    check(
        "SELECT * FROM T -- comment\nWHERE a = = 1",
        r#"
        error 2:11: unexpected token `=`, expected an expression
        "#,
    );
    check(
        "SELECT 'é' ||| 'x'",
        r#"
        error 1:14: unexpected character `|`
        "#,
    );
    check(
        "SELECT 'multi\nline é' = = 1",
        r#"
        error 2:11: unexpected token `=`, expected an expression
        "#,
    );
    check(
        "SELECT 'héllo' = = 1",
        r#"
        error 1:18: unexpected token `=`, expected an expression
        "#,
    );
    check(
        "SELECT @ FROM T",
        r#"
        error 1:10: unexpected token `FROM`, expected a name after `@`
        "#,
    );
    check(
        "SELECT ! FROM T",
        r#"
        error 1:8: unexpected character `!`
        "#,
    );
}

/// Statements in the style of the Amazon QLDB developer guide and its tutorial ledger; each must
/// parse and print back to the same tree.
const QLDB_GUIDE_STATEMENTS: &[&str] = &[
    "CREATE TABLE Vehicle WITH (aws_tags = `{'IsTest': 'true', 'FeatureX': 'false'}`)",
    "CREATE INDEX ON Person (GovId)",
    "CREATE INDEX ON VehicleRegistration (LicensePlateNumber)",
    "DROP INDEX \"4tPW3fUhaVhDinRgKRLhGU\" ON VehicleRegistration WITH (purge = true)",
    "UNDROP TABLE \"5PLf9SXwndd63lPaSIa0O6\"",
    "INSERT INTO Person << {'FirstName' : 'Raul', 'LastName' : 'Lewis', 'DOB' : `1963-08-19T`, \
     'GovId' : 'LEWISR261LL', 'GovIdType' : 'Driver License', 'Address' : '1719 University \
     Street, Seattle, WA, 98109'}, {'FirstName' : 'Brent', 'LastName' : 'Logan', 'DOB' : \
     `1967-07-03T`, 'GovId' : 'LOGANB486CG', 'GovIdType' : 'Passport', 'Address' : '43 Stockert \
     Hollow Road, Everett, WA, 98203'} >>",
    "INSERT INTO VehicleRegistration VALUE {'VIN' : '1N4AL11D75C109151', 'LicensePlateNumber' : \
     'LEWISR261LL', 'State' : 'WA', 'City' : 'Seattle', 'ValidFromDate' : `2017-08-21T`, \
     'ValidToDate' : `2020-05-11T`, 'PendingPenaltyTicketAmount' : 90.25, 'Owners' : { \
     'PrimaryOwner' : { 'PersonId': '294jJ3YUoH1IEEm8GSabOs' }, 'SecondaryOwners' : [] } }",
    "SELECT * FROM Person WHERE GovId = 'LEWISR261LL'",
    "SELECT * FROM Person WHERE GovId IN ('LEWISR261LL', 'LOGANB486CG')",
    "SELECT v.Make, v.Model, r.Owners FROM Vehicle AS v, VehicleRegistration AS r \
     WHERE v.VIN = r.VIN",
    "SELECT v.VIN FROM Vehicle AS v INNER JOIN VehicleRegistration AS r ON v.VIN = r.VIN",
    "SELECT r.VIN, o.PersonId FROM VehicleRegistration AS r, @r.Owners.SecondaryOwners AS o",
    "SELECT r_id, r.VIN FROM VehicleRegistration AS r BY r_id WHERE r.VIN = '1N4AL11D75C109151'",
    "SELECT * FROM _ql_committed_VehicleRegistration AS r WHERE r.data.VIN = '1N4AL11D75C109151'",
    "SELECT h.data.VIN, h.data.City, h.data.Owners FROM history(VehicleRegistration) AS h \
     WHERE h.metadata.id = 'ADR2LQq48hM3FbBo7LgJmr'",
    "SELECT * FROM history(Person, `2019-06-05T00:00:00Z`, `2019-06-05T23:59:59Z`) AS h \
     WHERE h.metadata.id = ?",
    "SELECT t.tableId, t.name FROM information_schema.user_tables AS t WHERE t.status = 'ACTIVE'",
    "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
    "SELECT COUNT(*) AS num_rows FROM VehicleRegistration",
    "SELECT FirstName, LastName FROM Person WHERE DOB BETWEEN `1960-01-01T` AND `1970-01-01T`",
    "SELECT * FROM Person WHERE LastName LIKE 'Le%' AND Address IS NOT MISSING",
    "SELECT SUBSTRING(FirstName, 1, 3) AS initials, UPPER(LastName) FROM Person",
    "SELECT DATE_DIFF(year, DOB, UTCNOW()) AS age FROM Person",
    "SELECT CAST(\"Year\" AS STRING) FROM Vehicle",
    "SELECT * FROM Vehicle AS v WHERE EXISTS(SELECT * FROM VehicleRegistration AS r \
     WHERE r.VIN = v.VIN)",
    "UPDATE VehicleRegistration AS r SET r.Owners.PrimaryOwner.PersonId = ? WHERE r.VIN = ?",
    "UPDATE Person AS p SET p.Address = '1719 University Street' WHERE p.GovId = 'LEWISR261LL'",
    "FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151' \
     INSERT INTO r.Owners.SecondaryOwners VALUE { 'PersonId' : '1nmeDdLo3AhGswBtyM1eYh' }",
    "FROM Person AS p WHERE p.GovId = '111-22-3333' REMOVE p.Address",
    "FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151' SET r.City = 'Bellevue'",
    "DELETE FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151'",
    "DROP TABLE VehicleRegistration;",
];

#[test]
fn qldb_guide_statements_parse_and_print_back() {
    for text in QLDB_GUIDE_STATEMENTS {
        let statement = match sluice_partiql::parse(text) {
            Ok(statement) => statement,
            Err(error) => panic!("{text}: {error}"),
        };
        let printed = statement.to_sql();
        assert_eq!(
            sluice_partiql::parse(&printed).ok(),
            Some(statement),
            "{text}\n{printed}"
        );
    }
}

#[test]
fn parameters_are_numbered_in_order_of_appearance() {
    check(
        "FROM T AS t WHERE t.a = ? AND t.b IN ? SET t.c = ?, t.d = [?, ?]",
        r#"
        (from_update T
          (as t)
          (set (path t .c) ?2)
          (set (path t .d) (list ?3 ?4))
          (where (and (= (path t .a) ?0) (in (path t .b) ?1))))
        "#,
    );
    let statement = sluice_partiql::parse("SELECT ? FROM T WHERE a = ? LIMIT ?").expect("parses");
    assert_eq!(statement.parameter_count(), 3);
    assert_eq!(
        sluice_partiql::parse("SELECT 1")
            .expect("parses")
            .parameter_count(),
        0
    );
}
