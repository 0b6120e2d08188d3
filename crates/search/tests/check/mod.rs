//! The one snapshot helper of the query parser tests: `check(input, expected)` parses a query
//! string and compares the rendered tree (or error) with `expected`.
//!
//! `expected` must be a raw string `r#"..."#`, the first one after the `check(` call. Run the tests
//! with `UPDATE_EXPECT=1` to rewrite every mismatching snapshot in place, the way rust-analyzer's
//! `expect-test` does; review the diff before committing.

use std::panic::Location;

use sluice_snapshot::compare;

use sluice_search::query_string::{self, QueryStringOptions};

/// Parses `input` with `options` (Lucene syntax, or the simple syntax) and compares.
#[track_caller]
pub fn check_with(input: &str, options: &QueryStringOptions, simple: bool, expected: &str) {
    let parsed = if simple {
        query_string::parse_simple(input, options)
    } else {
        query_string::parse(input, options)
    };
    let actual = match parsed {
        Ok(query) => query.to_string(),
        Err(error) => format!("error: {error}"),
    };
    compare(&actual, expected, Location::caller());
}

/// Parses `input` in Lucene syntax with the default options and compares.
#[track_caller]
pub fn check(input: &str, expected: &str) {
    let options = QueryStringOptions::default();
    let parsed = query_string::parse(input, &options);
    let actual = match parsed {
        Ok(query) => query.to_string(),
        Err(error) => format!("error: {error}"),
    };
    compare(&actual, expected, Location::caller());
}
