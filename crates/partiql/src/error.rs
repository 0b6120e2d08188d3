//! The one error type of the crate: a message with the 1-based line and column it points at.

use std::fmt;

/// Why a statement could not be parsed, and where.
///
/// Lexer errors (an unterminated string, a malformed number) and parser errors (an unexpected
/// token) share this type: callers only need to show the message and the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong, lowercase and without a trailing period, e.g.
    /// "unexpected token `FROM`, expected an expression".
    pub message: String,
    /// The 1-based line of the offending character or token.
    pub line: u32,
    /// The 1-based column, counted in characters (not bytes), of the offending character or token.
    pub column: u32,
}

impl ParseError {
    /// An error at a position.
    pub fn new(message: impl Into<String>, position: Position) -> Self {
        ParseError {
            message: message.into(),
            line: position.line,
            column: position.column,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}

/// A 1-based line and column in the source text, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The 1-based line.
    pub line: u32,
    /// The 1-based column in characters.
    pub column: u32,
}
