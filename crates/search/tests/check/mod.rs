//! The one snapshot helper of the query parser tests: `check(input, expected)` parses a query
//! string and compares the rendered tree (or error) with `expected`.
//!
//! `expected` must be a raw string `r#"..."#`, the first one after the `check(` call. Run the tests
//! with `UPDATE_EXPECT=1` to rewrite every mismatching snapshot in place, the way rust-analyzer's
//! `expect-test` does; review the diff before committing.

use std::collections::HashMap;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

fn compare(actual: &str, expected: &str, caller: &Location<'_>) {
    let expected = trim_indent(expected);
    if actual == expected {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        update(actual, caller);
        return;
    }
    panic!(
        "snapshot mismatch at {}:{}\n--- expected\n{expected}\n--- actual\n{actual}\n---\n\
         rerun with UPDATE_EXPECT=1 to accept the actual output",
        caller.file(),
        caller.line()
    );
}

fn trim_indent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect();
    lines.join("\n").trim_end().to_owned()
}

type LineShifts = Vec<(u32, i64)>;

static PATCHES: Mutex<Option<HashMap<PathBuf, LineShifts>>> = Mutex::new(None);

fn source_path(file: &str) -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .map(|dir| dir.join(file))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("cannot find the test source {file}"))
}

fn update(actual: &str, caller: &Location<'_>) {
    let mut patches = PATCHES.lock().unwrap_or_else(|p| p.into_inner());
    let patches = patches.get_or_insert_with(HashMap::new);
    let path = source_path(caller.file());
    let file_patches = patches.entry(path.clone()).or_default();
    let shift: i64 = file_patches
        .iter()
        .filter(|(line, _)| *line < caller.line())
        .map(|(_, added)| added)
        .sum();
    let line_index = usize::try_from(i64::from(caller.line()) - 1 + shift).expect("line in file");
    let source = std::fs::read_to_string(&path).expect("read test source");
    let line_start: usize = source
        .split_inclusive('\n')
        .take(line_index)
        .map(str::len)
        .sum();
    let open = line_start
        + source[line_start..]
            .find("r#\"")
            .expect("snapshot r#\"...\"# after check(");
    let open_line_start = source[..open].rfind('\n').map_or(0, |newline| newline + 1);
    let indent =
        source[open_line_start..open].len() - source[open_line_start..open].trim_start().len();
    let body_start = open + 3;
    let body_end = body_start
        + source[body_start..]
            .find("\"#")
            .expect("end of the snapshot");
    let pad = " ".repeat(indent);
    let mut body = String::from("\n");
    for line in actual.lines() {
        if !line.is_empty() {
            body.push_str(&pad);
            body.push_str(line);
        }
        body.push('\n');
    }
    body.push_str(&" ".repeat(indent));
    let old_lines = source[body_start..body_end].matches('\n').count() as i64;
    let new_lines = body.matches('\n').count() as i64;
    let updated = format!("{}{}{}", &source[..body_start], body, &source[body_end..]);
    std::fs::write(&path, updated).expect("write test source");
    file_patches.push((caller.line(), new_lines - old_lines));
}
