//! Tokens of the script subset. Operators outside the subset are lexed too, so the parser can
//! refuse them by name instead of as stray characters.

use crate::error::Span;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    /// An integer literal and whether it had an `L` suffix.
    Integer(i64, bool),
    Double(f64),
    Str(String),
    /// Punctuation and operators, as written.
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Operators, longest first so that `>=` wins over `>`.
const PUNCTUATION: &[&str] = &[
    "==~", ">>>=", "===", "!==", ">>>", "<<=", ">>=", "?.", "?:", "==", "!=", "<=", ">=", "&&",
    "||", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "->", "::", "=~", "<<", ">>",
    "(", ")", "[", "]", "{", "}", ".", ",", ";", "?", ":", "=", "+", "-", "*", "/", "%", "!", "<",
    ">", "&", "|", "^", "~", "@",
];

pub(crate) type LexError = (Span, String);

pub(crate) fn lex(source: &str) -> Result<Vec<Token>, LexError> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes.get(i).copied().unwrap_or(0);
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let rest = source.get(i..).unwrap_or_default();
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        if rest.starts_with("/*") {
            match rest.get(2..).and_then(|r| r.find("*/")) {
                Some(end) => i += end + 4,
                None => return Err((Span::new(i, source.len()), "unterminated comment".into())),
            }
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while bytes
                .get(i)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
            {
                i += 1;
            }
            let word = source.get(start..i).unwrap_or_default().to_owned();
            tokens.push(Token {
                tok: Tok::Ident(word),
                span: Span::new(start, i),
            });
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, end) = number(source, start)?;
            tokens.push(Token {
                tok,
                span: Span::new(start, end),
            });
            i = end;
            continue;
        }
        if c == b'\'' || c == b'"' {
            let (text, end) = string(source, start, c)?;
            tokens.push(Token {
                tok: Tok::Str(text),
                span: Span::new(start, end),
            });
            i = end;
            continue;
        }
        match PUNCTUATION.iter().find(|p| rest.starts_with(**p)) {
            Some(p) => {
                i += p.len();
                tokens.push(Token {
                    tok: Tok::Punct(p),
                    span: Span::new(start, i),
                });
            }
            None => {
                let ch = rest.chars().next().unwrap_or('?');
                return Err((
                    Span::new(start, start + ch.len_utf8()),
                    format!("unexpected character [{ch}]"),
                ));
            }
        }
    }
    tokens.push(Token {
        tok: Tok::Eof,
        span: Span::new(source.len(), source.len()),
    });
    Ok(tokens)
}

fn number(source: &str, start: usize) -> Result<(Tok, usize), LexError> {
    let bytes = source.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut is_double = false;
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        is_double = true;
        i += 1;
        digits(&mut i);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            is_double = true;
            i = j;
            digits(&mut i);
        }
    }
    let text = source.get(start..i).unwrap_or_default();
    let span = |end: usize| Span::new(start, end);
    match bytes.get(i) {
        Some(b'L' | b'l') if !is_double => {
            let value = text
                .parse::<i64>()
                .map_err(|_| (span(i + 1), format!("invalid long constant [{text}L]")))?;
            Ok((Tok::Integer(value, true), i + 1))
        }
        Some(b'd' | b'D' | b'f' | b'F') => {
            let value = text
                .parse::<f64>()
                .map_err(|_| (span(i + 1), format!("invalid double constant [{text}]")))?;
            Ok((Tok::Double(value), i + 1))
        }
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => Err((
            span(i + 1),
            format!("invalid number [{}]", source.get(start..=i).unwrap_or(text)),
        )),
        _ if is_double => {
            let value = text
                .parse::<f64>()
                .map_err(|_| (span(i), format!("invalid double constant [{text}]")))?;
            Ok((Tok::Double(value), i))
        }
        _ => {
            let value = text
                .parse::<i64>()
                .map_err(|_| (span(i), format!("invalid int constant [{text}]")))?;
            Ok((Tok::Integer(value, false), i))
        }
    }
}

fn string(source: &str, start: usize, quote: u8) -> Result<(String, usize), LexError> {
    let mut out = String::new();
    let mut chars = source.get(start + 1..).unwrap_or_default().char_indices();
    while let Some((offset, ch)) = chars.next() {
        let at = start + 1 + offset;
        if ch as u32 == u32::from(quote) {
            return Ok((out, at + 1));
        }
        if ch == '\\' {
            match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => {
                    return Err((
                        Span::new(at, at + 2),
                        format!("unsupported escape sequence [\\{other}] in a string"),
                    ));
                }
                None => break,
            }
            continue;
        }
        out.push(ch);
    }
    Err((Span::new(start, source.len()), "unterminated string".into()))
}
