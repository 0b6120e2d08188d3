//! Lexer, parser and syntax tree of the QLDB PartiQL dialect (DDL, DML, queries, `?` parameters).
//!
//! [`parse`] turns the text of one statement into an [`ast::Statement`]; the ledger evaluates it.
//! Every tree renders as a one-line S-expression through `Display`, the form the snapshot tests
//! compare, and prints back as PartiQL text through `to_sql` (`sql.rs`). The crate depends on nothing: the lexer (`lexer.rs`) and the recursive-descent and
//! Pratt parser (`parser.rs`) are written by hand, never panic on any input, and bound their
//! nesting depth so hostile input gets an error instead of a stack overflow.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)
)]

mod access;
pub mod ast;
mod display;
mod error;
mod lexer;
mod parser;
mod sql;

pub use access::{Action as TableAction, INFORMATION_SCHEMA, TableAccess};
pub use error::{ParseError, Position};
pub use parser::NESTING_DEPTH_MAX;

/// Parses one statement, optionally followed by a `;`.
///
/// `?` parameters are numbered in order of appearance from 0; see
/// [`ast::Statement::parameter_count`].
///
/// ```
/// let statement = sluice_partiql::parse("SELECT * FROM Vehicle AS v WHERE v.VIN = ?;")?;
/// assert_eq!(
///     statement.to_string(),
///     "(select (project *) (from (scan Vehicle (as v))) (where (= (path v .VIN) ?0)))"
/// );
/// assert_eq!(statement.parameter_count(), 1);
/// assert_eq!(statement.to_sql(), "SELECT * FROM Vehicle AS v WHERE v.VIN = ?");
///
/// let error = sluice_partiql::parse("SELECT * FROM").unwrap_err();
/// assert_eq!(error.to_string(), "unexpected end of input, expected an expression at line 1, column 14");
/// # Ok::<(), sluice_partiql::ParseError>(())
/// ```
pub fn parse(sql: &str) -> Result<ast::Statement, ParseError> {
    parser::parse_statement(sql)
}

/// Parses one expression, such as an index path (`a.b`) or a value to compare with.
pub fn parse_expr(text: &str) -> Result<ast::Expr, ParseError> {
    parser::parse_expression(text)
}
