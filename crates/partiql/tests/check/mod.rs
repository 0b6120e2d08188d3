//! The one snapshot helper of the parser tests: `check(input, expected)` parses `input` and
//! compares the rendered tree (or error) with `expected`.
//!
//! `expected` must be a raw string `r#"..."#`, the first one after the `check(` call. Run the tests
//! with `UPDATE_EXPECT=1` to rewrite every mismatching snapshot in place, the way rust-analyzer's
//! `expect-test` does; review the diff before committing.

use std::panic::Location;

use sluice_snapshot::compare;

/// Widest line of a rendered tree before it is broken over several lines.
const LINE_WIDTH_MAX: usize = 80;

/// Parses `input` as a statement and compares the result with the snapshot `expected`.
#[track_caller]
pub fn check(input: &str, expected: &str) {
    let actual = match sluice_partiql::parse(input) {
        Ok(statement) => {
            // Every snapshot is also a round trip through the printer.
            let printed = statement.to_sql();
            match sluice_partiql::parse(&printed) {
                Ok(reparsed) => assert_eq!(reparsed, statement, "printed as {printed}"),
                Err(error) => panic!("printed form {printed} does not parse: {error}"),
            }
            pretty(&statement.to_string())
        }
        Err(error) => render_error(&error),
    };
    compare(&actual, expected, Location::caller());
}

/// Parses `input` as an expression and compares the result with the snapshot `expected`.
#[track_caller]
pub fn check_expr(input: &str, expected: &str) {
    let actual = match sluice_partiql::parse_expr(input) {
        Ok(expr) => {
            let printed = expr.to_sql();
            match sluice_partiql::parse_expr(&printed) {
                Ok(reparsed) => assert_eq!(reparsed, expr, "printed as {printed}"),
                Err(error) => panic!("printed form {printed} does not parse: {error}"),
            }
            pretty(&expr.to_string())
        }
        Err(error) => render_error(&error),
    };
    compare(&actual, expected, Location::caller());
}

pub fn render_error(error: &sluice_partiql::ParseError) -> String {
    format!("error {}:{}: {}", error.line, error.column, error.message)
}

/// One node of a rendered S-expression: an atom or a parenthesized list.
enum Sexp {
    Atom(String),
    /// The elements, and the list's original one-line text.
    List(Vec<Sexp>, String),
}

/// Lays out a one-line S-expression over several lines when it is wider than the limit: the
/// head stays on the first line, every other element goes on its own line, two spaces deeper.
pub fn pretty(flat: &str) -> String {
    let chars: Vec<char> = flat.chars().collect();
    let mut position = 0;
    let mut roots = Vec::new();
    while position < chars.len() {
        match read(&chars, &mut position) {
            Some(node) => roots.push(node),
            None => return flat.to_owned(),
        }
    }
    let mut out = String::new();
    for root in &roots {
        layout(root, 0, &mut out);
    }
    out
}

fn read(chars: &[char], position: &mut usize) -> Option<Sexp> {
    while chars.get(*position) == Some(&' ') {
        *position += 1;
    }
    match chars.get(*position)? {
        '(' => {
            let start = *position;
            *position += 1;
            let mut items = Vec::new();
            loop {
                while chars.get(*position) == Some(&' ') {
                    *position += 1;
                }
                if chars.get(*position)? == &')' {
                    *position += 1;
                    let text = chars.get(start..*position)?.iter().collect();
                    return Some(Sexp::List(items, text));
                }
                items.push(read(chars, position)?);
            }
        }
        ')' => None,
        _ => {
            // An atom runs to the next space or parenthesis outside quotes.
            let mut atom = String::new();
            let mut quote: Option<char> = None;
            while let Some(&c) = chars.get(*position) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == '\'' || c == '"' || c == '`' => quote = Some(c),
                    None if c == ' ' || c == '(' || c == ')' => break,
                    None => {}
                }
                atom.push(c);
                *position += 1;
            }
            Some(Sexp::Atom(atom))
        }
    }
}

fn flat(node: &Sexp) -> &str {
    match node {
        Sexp::Atom(text) | Sexp::List(_, text) => text,
    }
}

fn layout(node: &Sexp, indent: usize, out: &mut String) {
    let one_line = flat(node);
    let items = match node {
        Sexp::List(items, _) if indent + one_line.len() > LINE_WIDTH_MAX && items.len() > 1 => {
            items
        }
        _ => {
            out.push_str(one_line);
            return;
        }
    };
    out.push('(');
    // Leading atoms (the head and names such as a table) stay on the first line.
    let n_leading_atoms = items
        .iter()
        .take_while(|item| matches!(item, Sexp::Atom(_)))
        .count();
    let mut rest = items.iter().skip(n_leading_atoms);
    for (i, item) in items.iter().take(n_leading_atoms).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(flat(item));
    }
    if n_leading_atoms == 0
        && let Some(first) = rest.next()
    {
        layout(first, indent + 1, out);
    }
    for item in rest {
        out.push('\n');
        out.push_str(&" ".repeat(indent + 2));
        layout(item, indent + 2, out);
    }
    out.push(')');
}
