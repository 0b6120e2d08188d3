//! The interpreter: update scripts over `ctx`, Painless's numeric rules, runtime errors, and a
//! property test of arithmetic against a reference model of Java's.

use serde_json::{Value as Json, json};
use sluice_script::{Map, Script, Value};

/// Runs `source` over a `ctx` with `_source` and `params`; returns the new `ctx` and the result.
fn run(source: &str, document: Json, params: Json) -> Result<(Json, Json), String> {
    let script = Script::compile(source).map_err(|e| e.to_string())?;
    let mut variables = Map::new();
    variables.insert(
        "ctx".into(),
        Value::from_json(&json!({"_source": document, "op": "index"})),
    );
    variables.insert("params".into(), Value::from_json(&params));
    let result = script
        .execute(&mut variables)
        .map_err(|e| format!("{}: {}", e.cause_type, e.cause_reason))?;
    let ctx = variables
        .get("ctx")
        .map(Value::to_json)
        .unwrap_or(Json::Null);
    Ok((ctx, result.to_json()))
}

fn source_after(source: &str, document: Json, params: Json) -> Json {
    run(source, document, params).unwrap().0["_source"].clone()
}

fn eval(source: &str) -> Json {
    run(source, json!({}), json!({})).unwrap().1
}

fn error(source: &str) -> String {
    run(source, json!({"s": "x", "n": null, "l": [1]}), json!({})).unwrap_err()
}

#[test]
fn updates_change_the_source_in_place() {
    assert_eq!(
        source_after(
            "ctx._source.f = params.x",
            json!({"f": 1}),
            json!({"x": "y"})
        ),
        json!({"f": "y"})
    );
    assert_eq!(
        source_after(
            "ctx._source.counter += params.count; ctx._source.views++; ctx._source.left -= 2",
            json!({"counter": 4, "views": 9, "left": 1.5}),
            json!({"count": 3}),
        ),
        json!({"counter": 7, "views": 10, "left": -0.5})
    );
    assert_eq!(
        source_after(
            "ctx._source.a.b.c = 'deep'; ctx._source.a['d'] = [1]; ctx._source.a.d.add(2)",
            json!({"a": {"b": {}}}),
            json!({}),
        ),
        json!({"a": {"b": {"c": "deep"}, "d": [1, 2]}})
    );
    assert_eq!(
        source_after(
            "if (ctx._source.containsKey('old')) { ctx._source.remove('old') } ctx._source.k = ctx._source.containsKey('old')",
            json!({"old": 1, "keep": 2}),
            json!({}),
        ),
        json!({"keep": 2, "k": false})
    );
    assert_eq!(
        source_after(
            "if (!ctx._source.tags.contains(params.tag)) { ctx._source.tags.add(params.tag) }",
            json!({"tags": ["a"]}),
            json!({"tag": "b"}),
        ),
        json!({"tags": ["a", "b"]})
    );
    let (ctx, _) = run(
        "if (ctx._source.n > params.max) { ctx.op = 'delete' } else { ctx.op = 'noop' }",
        json!({"n": 10}),
        json!({"max": 5}),
    )
    .unwrap();
    assert_eq!(ctx["op"], json!("delete"));
}

#[test]
fn numbers_follow_java() {
    assert_eq!(eval("7 / 2"), json!(3));
    assert_eq!(eval("-7 / 2"), json!(-3));
    assert_eq!(eval("-7 % 3"), json!(-1));
    assert_eq!(eval("7 / 2.0"), json!(3.5));
    assert_eq!(eval("2147483647 + 1"), json!(-2147483648));
    assert_eq!(eval("2147483647L + 1"), json!(2147483648i64));
    assert_eq!(eval("1 == 1.0"), json!(true));
    assert_eq!(eval("1 === 1L"), json!(false));
    assert_eq!(eval("'a' + 1 + 2"), json!("a12"));
    assert_eq!(eval("1 + 2 + 'a'"), json!("3a"));
    assert_eq!(eval("'x' + 1.0 + null + true"), json!("x1.0nulltrue"));
    assert_eq!(eval("Math.max(3, 7L)"), json!(7));
    assert_eq!(eval("Math.min(2.5, 1)"), json!(1.0));
    assert_eq!(eval("Math.abs(-4)"), json!(4));
    assert_eq!(eval("Math.round(2.5)"), json!(3));
    assert_eq!(eval("1.0 / 0"), Json::Null, "infinity has no JSON form");
    assert_eq!(
        eval("def x = 5; x *= 2; return x > 9 ? 'big' : 'small'"),
        json!("big")
    );
    assert_eq!(eval("long l = 3; l += 1; return l"), json!(4));
    assert_eq!(eval("null ?: 'default'"), json!("default"));
    assert_eq!(eval("def m = ['a': 1]; m?.b?.c"), Json::Null);
    assert_eq!(eval("'Hello'.toLowerCase().substring(1, 3)"), json!("el"));
    assert_eq!(eval("[1, 2, 3][-1]"), json!(3));
}

#[test]
fn doc_values_read_like_painless() {
    let script = Script::compile("doc['price'].value * params.f + doc['missing'].size()").unwrap();
    let mut variables = Map::new();
    let mut doc = Map::new();
    doc.insert("price".into(), Value::DocValues(vec![Value::Double(2.5)]));
    doc.insert("missing".into(), Value::DocValues(Vec::new()));
    variables.insert("doc".into(), Value::Map(doc));
    variables.insert("params".into(), Value::from_json(&json!({"f": 2})));
    assert_eq!(script.execute(&mut variables).unwrap(), Value::Double(5.0));
    let empty = Script::compile("doc['missing'].value").unwrap();
    let error = empty.execute(&mut variables).unwrap_err();
    assert_eq!(error.cause_type, "illegal_state_exception");
    assert!(error.cause_reason.contains("doesn't have a value"));
}

#[test]
fn runtime_errors_name_the_java_exception() {
    assert_eq!(error("1 / 0"), "arithmetic_exception: / by zero");
    assert!(error("ctx._source.missing.x = 1").starts_with("null_pointer_exception"));
    assert!(error("ctx._source.n + 1").starts_with("null_pointer_exception"));
    assert!(error("ctx._source.s - 1").starts_with("class_cast_exception"));
    assert!(error("if (ctx._source.s) {}").starts_with("class_cast_exception"));
    assert!(error("ctx._source.l[3]").starts_with("index_out_of_bounds_exception"));
    assert!(error("nope + 1").contains("variable [nope] is not defined"));
    assert!(
        error("ctx._source.l.frobnicate()")
            .contains("dynamic method [java.util.ArrayList, frobnicate/0] not found")
    );
    assert!(error("int i = 1L").starts_with("class_cast_exception"));
}

#[test]
fn runaway_work_is_stopped() {
    // Without loops, work grows by doubling a value: the budget stops it.
    let source = format!(
        "def l = [1, 2, 3, 4, 5, 6, 7, 8]; {}",
        "l.addAll(l); ".repeat(40)
    );
    let message = run(&source, json!({}), json!({})).unwrap_err();
    assert!(
        message.starts_with("circuit_breaking_exception"),
        "{message}"
    );
    let strings = format!("def s = 'abcdefgh'; {}", "s = s + s; ".repeat(40));
    let message = run(&strings, json!({}), json!({})).unwrap_err();
    assert!(
        message.starts_with("circuit_breaking_exception"),
        "{message}"
    );
}

#[test]
fn runtime_errors_carry_the_stack_and_position() {
    let script = Script::compile("ctx._source.a = 1;\nctx._source.b = 10 / params.zero").unwrap();
    let mut variables = Map::new();
    variables.insert("ctx".into(), Value::from_json(&json!({"_source": {}})));
    variables.insert("params".into(), Value::from_json(&json!({"zero": 0})));
    let error = script.execute(&mut variables).unwrap_err();
    assert_eq!(error.reason(), "runtime error");
    assert_eq!(error.offset, 35);
    assert_eq!(error.script_stack.len(), 2);
    assert!(error.script_stack[1].ends_with("^---- HERE"));
}

mod arithmetic {
    use proptest::prelude::*;
    use sluice_script::{Map, Script, Value};

    /// A number of one of Java's three types.
    #[derive(Debug, Clone, Copy)]
    enum Number {
        Int(i32),
        Long(i64),
        Double(f64),
    }

    fn number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i32>().prop_map(Number::Int),
            (-3i32..4).prop_map(Number::Int),
            any::<i64>().prop_map(Number::Long),
            (-1e6f64..1e6).prop_map(Number::Double),
        ]
    }

    /// Java's arithmetic, computed in wider integers and truncated, as the JLS defines it.
    fn reference(op: char, a: Number, b: Number) -> Option<Value> {
        use Number::*;
        let wide = |n: Number| match n {
            Int(i) => i128::from(i),
            Long(i) => i128::from(i),
            Double(_) => 0,
        };
        let real = |n: Number| match n {
            Int(i) => f64::from(i),
            Long(i) => i as f64,
            Double(d) => d,
        };
        let integral = |x: i128, y: i128| -> Option<i128> {
            Some(match op {
                '+' => x + y,
                '-' => x - y,
                '*' => x * y,
                '/' if y == 0 => return None,
                '/' => x / y,
                '%' if y == 0 => return None,
                _ => x % y,
            })
        };
        match (a, b) {
            (Double(_), _) | (_, Double(_)) => {
                let (x, y) = (real(a), real(b));
                Some(Value::Double(match op {
                    '+' => x + y,
                    '-' => x - y,
                    '*' => x * y,
                    '/' => x / y,
                    _ => x % y,
                }))
            }
            (Int(_), Int(_)) => integral(wide(a), wide(b)).map(|r| Value::Int(r as i32)),
            _ => integral(wide(a), wide(b)).map(|r| Value::Long(r as i64)),
        }
    }

    fn to_value(n: Number) -> Value {
        match n {
            Number::Int(i) => Value::Int(i),
            Number::Long(i) => Value::Long(i),
            Number::Double(d) => Value::Double(d),
        }
    }

    proptest! {
        #[test]
        fn binary_arithmetic_matches_java(
            a in number(),
            b in number(),
            op in prop::sample::select(vec!['+', '-', '*', '/', '%']),
        ) {
            let script = Script::compile(&format!("params.a {op} params.b")).unwrap();
            let mut variables = Map::new();
            let mut params = Map::new();
            params.insert("a".into(), to_value(a));
            params.insert("b".into(), to_value(b));
            variables.insert("params".into(), Value::Map(params));
            let actual = script.execute(&mut variables);
            match reference(op, a, b) {
                None => {
                    let error = actual.unwrap_err();
                    prop_assert_eq!(error.cause_type, "arithmetic_exception");
                }
                Some(Value::Double(expected)) => match actual.unwrap() {
                    Value::Double(d) => prop_assert!(
                        d.to_bits() == expected.to_bits() || (d.is_nan() && expected.is_nan())
                    ),
                    other => prop_assert!(false, "expected a double, got {other:?}"),
                },
                Some(expected) => prop_assert_eq!(actual.unwrap(), expected),
            }
        }

        #[test]
        fn compound_assignment_matches_binary_operators(
            a in number(),
            b in number(),
            op in prop::sample::select(vec!['+', '-', '*']),
        ) {
            let binary = Script::compile(&format!("params.a {op} params.b")).unwrap();
            let compound = Script::compile(&format!("params.a {op}= params.b; params.a")).unwrap();
            let variables = || {
                let mut params = Map::new();
                params.insert("a".into(), to_value(a));
                params.insert("b".into(), to_value(b));
                let mut variables = Map::new();
                variables.insert("params".into(), Value::Map(params));
                variables
            };
            let expected = binary.execute(&mut variables()).unwrap();
            let actual = compound.execute(&mut variables()).unwrap();
            prop_assert_eq!(format!("{actual:?}"), format!("{expected:?}"));
        }
    }
}

#[test]
fn doc_fields_name_what_a_script_reads() {
    let script = sluice_script::Script::compile(
        "def p = doc['price'].value; if (doc.size.size() > 0) { p * params.f } else { doc['price'].value }",
    )
    .unwrap();
    assert_eq!(
        script.doc_fields(),
        Some(vec!["price".to_string(), "size".to_string()])
    );
    let computed = sluice_script::Script::compile("doc[params.field].value").unwrap();
    assert_eq!(computed.doc_fields(), None);
}
