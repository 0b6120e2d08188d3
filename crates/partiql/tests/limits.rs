//! Nesting limits: input nested up to `NESTING_DEPTH_MAX` parses on an ordinary 2 MiB test
//! thread, and deeper input is an error with a position, never a stack overflow.

use sluice_partiql::{NESTING_DEPTH_MAX, parse, parse_expr};

/// Builds `open` repeated `depth` times, then `middle`, then `close` repeated `depth` times.
fn nested(open: &str, middle: &str, close: &str, depth: usize) -> String {
    format!("{}{middle}{}", open.repeat(depth), close.repeat(depth))
}

/// Each shape of nesting the grammar allows, as (open, innermost, close).
const SHAPES: &[(&str, &str, &str)] = &[
    ("(", "1", ")"),
    ("[", "1", "]"),
    ("<<", "1", ">>"),
    ("{'a': ", "1", "}"),
    ("NOT ", "a", ""),
    ("- ", "a", ""),
    ("a[", "0", "]"),
    ("f(", "x", ")"),
    ("CAST(", "x", " AS INT)"),
    ("(SELECT VALUE ", "x", " FROM t)"),
    ("CASE WHEN ", "x", " THEN 1 END"),
    ("1 + (", "x", ")"),
    ("x IN (", "1", ")"),
];

/// Half the depth limit: every shape costs at most two levels per repetition (a subquery counts
/// one level for the query and one for its projection).
fn half_limit() -> usize {
    usize::try_from(NESTING_DEPTH_MAX).unwrap_or(256) / 2 - 1
}

#[test]
fn realistic_nesting_parses() {
    for (open, middle, close) in SHAPES {
        let text = nested(open, middle, close, 48);
        if let Err(error) = parse_expr(&text) {
            panic!("{open}...{close} nested 48 deep: {error}");
        }
    }
}

#[test]
fn deepest_accepted_nesting_parses_when_optimized() {
    // Unoptimized builds use several times more stack per level, so the stack budget may stop
    // them first; that is still the "nested too deeply" error and never a crash.
    let depth = half_limit();
    for (open, middle, close) in SHAPES {
        match parse_expr(&nested(open, middle, close, depth)) {
            Ok(_) => {}
            Err(error) if cfg!(debug_assertions) && error.message.contains("nested too deeply") => {
            }
            Err(error) => panic!("{open}...{close} nested {depth} deep: {error}"),
        }
    }
}

#[test]
fn deeper_nesting_is_an_error_not_a_stack_overflow() {
    for (open, middle, close) in SHAPES {
        for depth in [
            usize::try_from(NESTING_DEPTH_MAX).unwrap_or(256) + 1,
            100_000,
        ] {
            let text = nested(open, middle, close, depth);
            let error = parse_expr(&text).expect_err("too deep");
            assert!(
                error.message.contains("nested too deeply"),
                "{open}...{close} nested {depth} deep: {error}"
            );
            assert_eq!(error.line, 1);
            assert!(error.column > 1);
        }
    }
    let statement = format!("SELECT * FROM t WHERE {}", nested("(", "1", ")", 100_000));
    assert!(parse(&statement).is_err());
}

#[test]
fn long_chains_are_bounded_like_nesting() {
    // Operator chains and joins build left-leaning trees, which nest as deeply as parentheses.
    for separator in [" + ", " AND ", " || ", " = ", " IS NULL OR "] {
        let chain = vec!["a"; 100_000].join(separator);
        let error = parse_expr(&chain).expect_err("too long");
        assert!(
            error.message.contains("nested too deeply"),
            "{separator}: {error}"
        );
        let short = vec!["a"; 200].join(separator);
        assert!(parse_expr(&short).is_ok(), "{separator}");
    }
    let sources = vec!["t"; 100_000].join(", ");
    let error = parse(&format!("SELECT * FROM {sources}")).expect_err("too many sources");
    assert!(error.message.contains("nested too deeply"), "{error}");
    let sources = vec!["t"; 200].join(" JOIN ");
    assert!(parse(&format!("SELECT * FROM {sources}")).is_ok());
}
