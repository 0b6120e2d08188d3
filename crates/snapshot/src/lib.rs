//! Snapshot tests for the workspace's parsers: a test calls a `#[track_caller]` helper with the
//! input and a raw string `r#"..."#` holding the expected rendering (the first raw string after
//! the call), and the helper hands both to [`compare`].
//!
//! Run the tests with `UPDATE_EXPECT=1` to rewrite every mismatching snapshot in place, the way
//! rust-analyzer's `expect-test` does; review the diff before committing.

use std::collections::HashMap;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Compares `actual` with the snapshot `expected` written at `caller` (a `#[track_caller]`
/// helper's `Location::caller()`): panics on a mismatch, or rewrites the snapshot in the test's
/// source when `UPDATE_EXPECT` is set.
pub fn compare(actual: &str, expected: &str, caller: &Location<'_>) {
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

/// Removes the first newline, the common indentation and trailing whitespace.
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

/// Line shifts already applied to one file in this run: (original line, lines added).
type LineShifts = Vec<(u32, i64)>;

/// The shifts of every file rewritten in this run, so later snapshots are still found.
static PATCHES: Mutex<Option<HashMap<PathBuf, LineShifts>>> = Mutex::new(None);

fn source_path(file: &str) -> PathBuf {
    // Caller paths are relative to the workspace root, which is an ancestor of the crate.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .map(|dir| dir.join(file))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("cannot find the test source {file}"))
}

fn update(actual: &str, caller: &Location<'_>) {
    let mut patches = PATCHES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
    // The snapshot is indented like the line that opens it, expect-test style.
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
