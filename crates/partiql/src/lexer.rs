//! The lexer: turns statement text into tokens with their 1-based line and column.
//!
//! Keywords are not recognised here: every word becomes a [`TokenKind::Word`] and the parser
//! compares words case-insensitively, so that keywords stay usable as field names after a `.`.

use crate::error::{ParseError, Position};

/// A punctuation or operator token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    LBag,
    RBag,
    Comma,
    Dot,
    Colon,
    Semicolon,
    Question,
    At,
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Sym {
    /// The symbol as it is written, for error messages.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Sym::LParen => "(",
            Sym::RParen => ")",
            Sym::LBracket => "[",
            Sym::RBracket => "]",
            Sym::LBrace => "{",
            Sym::RBrace => "}",
            Sym::LBag => "<<",
            Sym::RBag => ">>",
            Sym::Comma => ",",
            Sym::Dot => ".",
            Sym::Colon => ":",
            Sym::Semicolon => ";",
            Sym::Question => "?",
            Sym::At => "@",
            Sym::Star => "*",
            Sym::Plus => "+",
            Sym::Minus => "-",
            Sym::Slash => "/",
            Sym::Percent => "%",
            Sym::Concat => "||",
            Sym::Eq => "=",
            Sym::NotEq => "<>",
            Sym::Lt => "<",
            Sym::LtEq => "<=",
            Sym::Gt => ">",
            Sym::GtEq => ">=",
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A regular identifier or a keyword, as written.
    Word(String),
    /// A double-quoted identifier, without quotes and with `""` resolved.
    QuotedIdent(String),
    /// A single-quoted string, without quotes and with `''` resolved.
    String(String),
    /// Digits only.
    Int(String),
    /// Digits with a fraction and no exponent, as written.
    Decimal(String),
    /// A number with an exponent, as written.
    Float(String),
    /// The raw text between backticks.
    Ion(String),
    /// Punctuation or an operator.
    Sym(Sym),
    /// The end of the input.
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) position: Position,
}

impl Token {
    /// The token as shown in error messages: "`FROM`", "end of input".
    pub(crate) fn describe(&self) -> String {
        // Long tokens are cut so an error message stays one readable line.
        const SHOWN_CHARS_MAX: usize = 40;
        let text = match &self.kind {
            TokenKind::Eof => return "end of input".to_owned(),
            TokenKind::Word(word) => word.clone(),
            TokenKind::QuotedIdent(name) => format!("\"{}\"", name.replace('"', "\"\"")),
            TokenKind::String(text) => format!("'{}'", text.replace('\'', "''")),
            TokenKind::Int(text) | TokenKind::Decimal(text) | TokenKind::Float(text) => {
                text.clone()
            }
            TokenKind::Ion(text) => format!("`{text}`"),
            TokenKind::Sym(sym) => sym.text().to_owned(),
        };
        let mut shown: String = text.chars().take(SHOWN_CHARS_MAX).collect();
        if shown.len() < text.len() {
            shown.push_str("...");
        }
        format!("token `{shown}`")
    }
}

/// Splits `source` into tokens; the last token is always [`TokenKind::Eof`].
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        index: 0,
        line: 1,
        column: 1,
    };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.kind == TokenKind::Eof;
        tokens.push(token);
        if done {
            return Ok(tokens);
        }
    }
}

struct Lexer {
    chars: Vec<char>,
    index: usize,
    line: u32,
    column: u32,
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_word_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.index.saturating_add(ahead)).copied()
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.index = self.index.saturating_add(1);
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    /// Skips whitespace, `-- line` comments and `/* block */` comments.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('-'), Some('-')) => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.position();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(ParseError::new("unterminated block comment", start));
                            }
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let position = self.position();
        let token = |kind| Ok(Token { kind, position });
        let Some(c) = self.peek() else {
            return token(TokenKind::Eof);
        };
        if is_word_start(c) {
            let mut word = String::new();
            while let Some(c) = self.peek().filter(|&c| is_word_continue(c)) {
                word.push(c);
                self.bump();
            }
            return token(TokenKind::Word(word));
        }
        if c.is_ascii_digit() || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) {
            return token(self.number(position)?);
        }
        match c {
            '\'' => return token(TokenKind::String(self.quoted('\'', "string literal")?)),
            '"' => {
                return token(TokenKind::QuotedIdent(
                    self.quoted('"', "quoted identifier")?,
                ));
            }
            '`' => return token(TokenKind::Ion(self.ion(position)?)),
            _ => {}
        }
        let next = self.peek_at(1);
        let (sym, width) = match (c, next) {
            ('<', Some('<')) => (Sym::LBag, 2),
            ('<', Some('=')) => (Sym::LtEq, 2),
            ('<', Some('>')) => (Sym::NotEq, 2),
            ('<', _) => (Sym::Lt, 1),
            ('>', Some('>')) => (Sym::RBag, 2),
            ('>', Some('=')) => (Sym::GtEq, 2),
            ('>', _) => (Sym::Gt, 1),
            ('!', Some('=')) => (Sym::NotEq, 2),
            ('|', Some('|')) => (Sym::Concat, 2),
            ('(', _) => (Sym::LParen, 1),
            (')', _) => (Sym::RParen, 1),
            ('[', _) => (Sym::LBracket, 1),
            (']', _) => (Sym::RBracket, 1),
            ('{', _) => (Sym::LBrace, 1),
            ('}', _) => (Sym::RBrace, 1),
            (',', _) => (Sym::Comma, 1),
            ('.', _) => (Sym::Dot, 1),
            (':', _) => (Sym::Colon, 1),
            (';', _) => (Sym::Semicolon, 1),
            ('?', _) => (Sym::Question, 1),
            ('@', _) => (Sym::At, 1),
            ('*', _) => (Sym::Star, 1),
            ('+', _) => (Sym::Plus, 1),
            ('-', _) => (Sym::Minus, 1),
            ('/', _) => (Sym::Slash, 1),
            ('%', _) => (Sym::Percent, 1),
            ('=', _) => (Sym::Eq, 1),
            _ => {
                return Err(ParseError::new(
                    format!("unexpected character `{}`", c.escape_debug()),
                    position,
                ));
            }
        };
        for _ in 0..width {
            self.bump();
        }
        token(TokenKind::Sym(sym))
    }

    /// Reads `digits [. digits] [e [+|-] digits]`, or `. digits ...`.
    fn number(&mut self, start: Position) -> Result<TokenKind, ParseError> {
        let mut text = String::new();
        let mut has_fraction = false;
        let mut has_exponent = false;
        self.digits(&mut text);
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
            has_fraction = true;
            text.push('.');
            self.bump();
            self.digits(&mut text);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            has_exponent = true;
            text.push('e');
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            if !self.peek().is_some_and(|d| d.is_ascii_digit()) {
                return Err(ParseError::new(
                    format!("invalid number literal `{text}`: the exponent has no digits"),
                    start,
                ));
            }
            self.digits(&mut text);
        }
        // `123abc` or `1.5.2` is a typo, not a number followed by a name.
        let next_digit = self.peek_at(1).is_some_and(|d| d.is_ascii_digit());
        if let Some(c) = self
            .peek()
            .filter(|&c| is_word_continue(c) || (c == '.' && next_digit))
        {
            text.push(c);
            self.bump();
            while let Some(c) = self.peek().filter(|&c| is_word_continue(c) || c == '.') {
                text.push(c);
                self.bump();
            }
            return Err(ParseError::new(
                format!("invalid number literal `{text}`"),
                start,
            ));
        }
        Ok(if has_exponent {
            TokenKind::Float(text)
        } else if has_fraction {
            TokenKind::Decimal(text)
        } else {
            TokenKind::Int(text)
        })
    }

    fn digits(&mut self, text: &mut String) {
        while let Some(d) = self.peek().filter(|d| d.is_ascii_digit()) {
            text.push(d);
            self.bump();
        }
    }

    /// Reads a string or quoted identifier delimited by `quote`, where a doubled quote stands for
    /// one quote character.
    fn quoted(&mut self, quote: char, what: &str) -> Result<String, ParseError> {
        let start = self.position();
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return Err(ParseError::new(format!("unterminated {what}"), start)),
                Some(c) if c == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                        text.push(quote);
                    } else {
                        return Ok(text);
                    }
                }
                Some(c) => text.push(c),
            }
        }
    }

    /// Reads an Ion literal between backticks and returns its raw text. Ion strings and quoted
    /// symbols may contain backticks, so they are skipped as units rather than searched. Ion
    /// comments are not recognised: base64 blobs may contain `//`, and a comment holding a
    /// backtick is far rarer than a blob.
    fn ion(&mut self, start: Position) -> Result<String, ParseError> {
        let unterminated = || ParseError::new("unterminated Ion literal", start);
        self.bump();
        let mut text = String::new();
        loop {
            let c = self.bump().ok_or_else(unterminated)?;
            match c {
                '`' => return Ok(text),
                '\'' if self.peek() == Some('\'') && self.peek_at(1) == Some('\'') => {
                    // A long string '''...''' ends at the next unescaped '''.
                    text.push_str("'''");
                    self.bump();
                    self.bump();
                    loop {
                        let c = self.bump().ok_or_else(unterminated)?;
                        text.push(c);
                        if c == '\\' {
                            text.push(self.bump().ok_or_else(unterminated)?);
                        } else if c == '\''
                            && self.peek() == Some('\'')
                            && self.peek_at(1) == Some('\'')
                        {
                            text.push_str("''");
                            self.bump();
                            self.bump();
                            break;
                        }
                    }
                }
                '"' | '\'' => {
                    text.push(c);
                    loop {
                        let inner = self.bump().ok_or_else(unterminated)?;
                        text.push(inner);
                        if inner == '\\' {
                            text.push(self.bump().ok_or_else(unterminated)?);
                        } else if inner == c {
                            break;
                        }
                    }
                }
                _ => text.push(c),
            }
        }
    }
}
