//! Hostile expressions never panic the evaluator: random trees of literals, operators and
//! functions evaluate to a value or to an error, nothing else.

mod common;

use common::*;
use proptest::prelude::*;

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("`-170141183460469231731687303715884105728`".to_owned()),
        Just("`1d400`".to_owned()),
        Just("1.50".to_owned()),
        Just("1e308".to_owned()),
        Just("0".to_owned()),
        Just("'text'".to_owned()),
        Just("NULL".to_owned()),
        Just("MISSING".to_owned()),
        Just("TRUE".to_owned()),
        Just("`{{AQI=}}`".to_owned()),
        Just("`9999-12-31T23:59:59-23:59`".to_owned()),
        Just("`0001-01-01T00:00:00+23:59`".to_owned()),
        Just("[1, 'a', [2]]".to_owned()),
        Just("{'a': 1, 'b': {'c': 2}}".to_owned()),
        Just("<< 1, 2 >>".to_owned()),
        Just("t.a".to_owned()),
        Just("t.b.c".to_owned()),
        Just("t.list[1000]".to_owned()),
        Just("t.list[*]".to_owned()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "%", "||", "=", "<>", "<", ">=", "AND", "OR"
                ]),
                inner.clone()
            )
                .prop_map(|(left, op, right)| format!("({left} {op} {right})")),
            inner.clone().prop_map(|value| format!("(NOT {value})")),
            inner.clone().prop_map(|value| format!("(- {value})")),
            (inner.clone(), inner.clone()).prop_map(|(value, list)| format!("({value} IN {list})")),
            (inner.clone(), inner.clone())
                .prop_map(|(value, pattern)| format!("({value} LIKE {pattern})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(value, low, high)| format!("({value} BETWEEN {low} AND {high})")),
            inner.clone().prop_map(|value| format!("({value} IS NULL)")),
            (
                prop::sample::select(vec![
                    "upper",
                    "lower",
                    "size",
                    "char_length",
                    "abs",
                    "exists",
                    "to_string",
                    "to_timestamp"
                ]),
                inner.clone()
            )
                .prop_map(|(function, value)| format!("{function}({value})")),
            (inner.clone(), inner.clone())
                .prop_map(|(value, start)| format!("substring({value}, {start}, 3)")),
            (
                prop::sample::select(vec!["year", "month", "day", "second"]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(part, amount, value)| format!("date_add({part}, {amount}, {value})")),
            (
                prop::sample::select(vec!["year", "day", "timezone_hour"]),
                inner.clone()
            )
                .prop_map(|(part, value)| format!("extract({part} FROM {value})")),
            (
                inner.clone(),
                prop::sample::select(vec![
                    "int",
                    "decimal",
                    "float",
                    "string",
                    "bool",
                    "timestamp"
                ])
            )
                .prop_map(|(value, target)| format!("cast({value} AS {target})")),
            (inner.clone(), inner.clone())
                .prop_map(|(first, second)| format!("coalesce({first}, {second})")),
            (inner.clone(), inner).prop_map(|(condition, value)| format!(
                "CASE WHEN {condition} THEN {value} ELSE 1 END"
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn evaluating_any_expression_returns_a_value_or_an_error(expression in expression()) {
        thread_local! {
            static LEDGER: (Fixture, std::sync::Arc<sluice_ledger::Ledger>) = {
                let fixture = Fixture::new();
                let ledger = fixture.ledger("fuzz");
                run(&ledger, "CREATE TABLE T");
                run(&ledger, "INSERT INTO T VALUE {'a': 1, 'b': {'c': 2}, 'list': [1, 2]}");
                (fixture, ledger)
            };
        }
        LEDGER.with(|(_, ledger)| {
            let _ = ledger.execute(&format!("SELECT VALUE {expression} FROM T AS t"), &[]);
            let _ = ledger.execute(&format!("SELECT * FROM T AS t WHERE {expression} ORDER BY {expression}"), &[]);
            let _ = ledger.execute(&format!("SELECT COUNT(*), SUM(t.a), MAX({expression}) FROM T AS t"), &[]);
        });
    }
}
