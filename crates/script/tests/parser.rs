//! Snapshot tests of the parser: every accepted construct renders as an S-expression, every
//! refused one shows its reason and where it points.

use std::panic::Location;

use sluice_script::Script;

#[track_caller]
fn check(source: &str, expected: &str) {
    let actual = match Script::compile(source) {
        Ok(script) => script.render(),
        Err(error) => format!(
            "error at {}: {}\n{}",
            error.offset,
            error.cause_reason,
            error.script_stack.join("\n")
        ),
    };
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    let actual = actual.join("\n");
    sluice_snapshot::compare(&actual, expected, Location::caller());
}

#[test]
fn assignments_and_updates() {
    check(
        "ctx._source.f = params.x",
        r#"
        (= (. (. ctx _source) f) (. params x))
        "#,
    );
    check(
        "ctx._source.counter += params.count; ctx._source.n++; --ctx._source['m']",
        r#"
        (+= (. (. ctx _source) counter) (. params count))
        (x++ (. (. ctx _source) n))
        (--x ([] (. ctx _source) "m"))
        "#,
    );
    check(
        "ctx._source.a.b.c -= 1.5; ctx._source.x *= 2L; ctx._source.y /= 3; ctx._source.z %= 4",
        r#"
        (-= (. (. (. (. ctx _source) a) b) c) 1.5)
        (*= (. (. ctx _source) x) 2L)
        (/= (. (. ctx _source) y) 3)
        (%= (. (. ctx _source) z) 4)
        "#,
    );
}

#[test]
fn control_flow_and_declarations() {
    check(
        "if (ctx._source.tags.contains(params.tag)) { ctx.op = 'none' } else { ctx._source.tags.add(params.tag) }",
        r#"
        (if (.contains (. (. ctx _source) tags) (. params tag)) (block (= (. ctx op) "none")) (block (.add (. (. ctx _source) tags) (. params tag))))
        "#,
    );
    check(
        "def x = 1; int y = x + 2 * 3; if (x > 0 && !(y <= 2) || x == null) return x; else return -y;",
        r#"
        (declare def x 1)
        (declare int y (+ x (* 2 3)))
        (if (|| (&& (> x 0) (! (<= y 2))) (== x null)) (block (return x)) (block (return (neg y))))
        "#,
    );
    check(
        "String s = 'a' + \"b\"; double d; return s != null ? s : d",
        r#"
        (declare String s (+ "a" "b"))
        (declare double d)
        (return (? (!= s null) s d))
        "#,
    );
}

#[test]
fn accessors_literals_and_math() {
    check(
        "doc['price'].value * params.factor + Math.max(doc['a'].size(), Math.abs(-3))",
        r#"
        (+ (* (. ([] doc "price") value) (. params factor)) (Math.max (.size ([] doc "a")) (Math.abs -3)))
        "#,
    );
    check(
        "ctx._source.remove('f'); ctx._source.containsKey('g'); ctx._source.l = [1, 'two', 3.0]; ctx._source.m = ['k': [:], 'j': []]",
        r#"
        (.remove (. ctx _source) "f")
        (.containsKey (. ctx _source) "g")
        (= (. (. ctx _source) l) (list 1 "two" 3.0))
        (= (. (. ctx _source) m) (map "k":(map) "j":(list)))
        "#,
    );
    check(
        "params.a?.b ?: ctx._source?.size() === 1 // comment\n/* block */",
        r#"
        (?: (?. (. params a) b) (=== (?.size (. ctx _source)) 1))
        "#,
    );
    check(
        "-2147483648 + 9223372036854775807L",
        r#"
        (+ -2147483648 9223372036854775807L)
        "#,
    );
}

#[test]
fn constructs_outside_the_subset_are_named() {
    check(
        "for (def t : params.tags) { ctx._source.tags.add(t) }",
        r#"
        error at 0: loops ([for]) are not supported by Sluice's script subset
        for (def t : params.tags) {  ...
        ^---- HERE
        "#,
    );
    check(
        "while (true) {}",
        r#"
        error at 0: loops ([while]) are not supported by Sluice's script subset
        while (true) {}
        ^---- HERE
        "#,
    );
    check(
        "ctx._source.l = new ArrayList()",
        r#"
        error at 16: object creation ([new]) is not supported by Sluice's script subset
        ctx._source.l = new ArrayList()
                        ^---- HERE
        "#,
    );
    check(
        "ctx._source.tags.removeIf(t -> t == 'x')",
        r#"
        error at 28: lambdas ([->]) are not supported by Sluice's script subset
        ... ._source.tags.removeIf(t -> t == 'x')
                                     ^---- HERE
        "#,
    );
    check(
        "ctx._source.x = (int) params.y",
        r#"
        error at 16: casts ([(int)]) are not supported by Sluice's script subset
        ctx._source.x = (int) params.y
                        ^---- HERE
        "#,
    );
    check(
        "ctx._source.x = params.y & 1",
        r#"
        error at 25: bitwise operators ([&]) are not supported by Sluice's script subset
        ctx._source.x = params.y & 1
                                 ^---- HERE
        "#,
    );
    check(
        "if (ctx._source.s =~ /a+/) {}",
        r#"
        error at 18: regular expressions ([=~]) are not supported by Sluice's script subset
        if (ctx._source.s =~ /a+/) {}
                          ^---- HERE
        "#,
    );
    check(
        "ctx._source.t = Instant.now()",
        r#"
        error at 16: the class [Instant] is not supported by Sluice's script subset
        ctx._source.t = Instant.now()
                        ^---- HERE
        "#,
    );
    check(
        "Math.random()",
        r#"
        error at 5: [Math.random] is not supported by Sluice's script subset
        Math.random()
             ^---- HERE
        "#,
    );
    check(
        "int[] a = null",
        r#"
        error at 0: arrays are not supported by Sluice's script subset
        int[] a = null
        ^---- HERE
        "#,
    );
    check(
        "try { x } catch (Exception e) {}",
        r#"
        error at 0: exceptions ([try]) are not supported by Sluice's script subset
        try { x } catch (Exception e ...
        ^---- HERE
        "#,
    );
}

#[test]
fn malformed_scripts_point_at_the_problem() {
    check(
        "ctx._source.f = ",
        r#"
        error at 16: unexpected end of script, expected an expression
        ctx._source.f =
                        ^---- HERE
        "#,
    );
    check(
        "ctx._source.f = 'abc",
        r#"
        error at 16: unterminated string
        ctx._source.f = 'abc
                        ^---- HERE
        "#,
    );
    check(
        "1 = 2",
        r#"
        error at 2: the left side of an assignment must be a variable or a field
        1 = 2
          ^---- HERE
        "#,
    );
    check(
        "ctx._source.f = 2147483648",
        r#"
        error at 16: invalid int constant [2147483648]
        ctx._source.f = 2147483648
                        ^---- HERE
        "#,
    );
    check(
        "if (true) { x = 1",
        r#"
        error at 17: unexpected end of script, expected [}]
        if (true) { x = 1
                         ^---- HERE
        "#,
    );
    check(
        "a b",
        r#"
        error at 2: unexpected token [b], expected [;]
        a b
          ^---- HERE
        "#,
    );
}

#[test]
fn nesting_and_size_are_bounded() {
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    let error = Script::compile(&deep).unwrap_err();
    assert!(
        error.cause_reason.contains("nests deeper than [64] levels"),
        "{error}"
    );
    let blocks = format!("{}{}", "{".repeat(200), "}".repeat(200));
    assert!(Script::compile(&blocks).is_err());
    let long = "1;".repeat(40_000);
    let error = Script::compile(&long).unwrap_err();
    assert!(
        error
            .cause_reason
            .contains("max allowed inline script size"),
        "{error}"
    );
}

mod fuzz {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(source in "\\PC{0,120}") {
            if let Ok(script) = sluice_script::Script::compile(&source) {
                let mut variables = sluice_script::Map::new();
                let _ = script.execute(&mut variables);
            }
        }

        #[test]
        fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(vec![
            "ctx", "_source", ".", "x", "=", "+=", "++", "(", ")", "[", "]", "{", "}", "if", "else",
            "1", "2L", "1.5", "'s'", "+", "-", "*", "/", "%", "==", "<", "&&", "||", "!", "?", ":",
            ";", ",", "null", "def", "return", "?.", "?:", "params", "add", "remove", "size",
        ]), 0..60)) {
            let source = tokens.join(" ");
            if let Ok(script) = sluice_script::Script::compile(&source) {
                let mut variables = sluice_script::Map::new();
                variables.insert("ctx".into(), sluice_script::Value::from_json(&serde_json::json!({"_source": {"x": 1}})));
                variables.insert("params".into(), sluice_script::Value::Map(sluice_script::Map::new()));
                let _ = script.execute(&mut variables);
            }
        }
    }
}
