//! Recursive descent over statements and precedence climbing over expressions, with nesting
//! bounded by [`NESTING_DEPTH_MAX`]. Every construct of Painless outside the subset is named in
//! its refusal.

use crate::NESTING_DEPTH_MAX;
use crate::ast::{BinOp, DeclaredType, Expr, ExprKind, Stmt};
use crate::error::Span;
use crate::lexer::{Tok, Token};
use crate::value::Value;

pub(crate) type ParseError = (Span, String);
type Result<T> = std::result::Result<T, ParseError>;

/// Keywords of Painless outside the subset, and what to call them in the refusal.
const UNSUPPORTED_KEYWORDS: &[(&str, &str)] = &[
    ("for", "loops ([for]) are"),
    ("while", "loops ([while]) are"),
    ("do", "loops ([do]) are"),
    ("break", "[break] is"),
    ("continue", "[continue] is"),
    ("new", "object creation ([new]) is"),
    ("try", "exceptions ([try]) are"),
    ("catch", "exceptions ([catch]) are"),
    ("throw", "exceptions ([throw]) are"),
    ("instanceof", "[instanceof] is"),
    ("switch", "[switch] is"),
    ("this", "[this] is"),
];

/// Operators of Painless outside the subset, and what to call them.
const UNSUPPORTED_OPERATORS: &[(&str, &str)] = &[
    ("->", "lambdas ([->])"),
    ("::", "method references ([::])"),
    ("=~", "regular expressions ([=~])"),
    ("==~", "regular expressions ([==~])"),
    ("&", "bitwise operators ([&])"),
    ("|", "bitwise operators ([|])"),
    ("^", "bitwise operators ([^])"),
    ("~", "bitwise operators ([~])"),
    ("<<", "shift operators ([<<])"),
    (">>", "shift operators ([>>])"),
    (">>>", "shift operators ([>>>])"),
    ("&=", "bitwise operators ([&=])"),
    ("|=", "bitwise operators ([|=])"),
    ("^=", "bitwise operators ([^=])"),
    ("<<=", "shift operators ([<<=])"),
    (">>=", "shift operators ([>>=])"),
    (">>>=", "shift operators ([>>>=])"),
    ("@", "annotations ([@])"),
];

/// Type names a declaration may start with.
const TYPE_NAMES: &[&str] = &[
    "def",
    "var",
    "int",
    "long",
    "double",
    "float",
    "short",
    "byte",
    "boolean",
    "String",
    "Map",
    "List",
    "Object",
    "Integer",
    "Long",
    "Double",
    "Boolean",
    "ArrayList",
    "HashMap",
];

pub(crate) fn parse(tokens: &[Token]) -> Result<Vec<Stmt>> {
    let mut parser = Parser {
        tokens,
        position: 0,
        depth: 0,
    };
    let mut body = Vec::new();
    while !parser.at_eof() {
        body.push(parser.statement()?);
    }
    Ok(body)
}

struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
    depth: usize,
}

fn unsupported(what: &str) -> String {
    format!("{what} not supported by Sluice's script subset")
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.position).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.tokens
            .get(self.position + ahead)
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    fn span(&self) -> Span {
        self.tokens
            .get(self.position)
            .or_else(|| self.tokens.last())
            .map_or(Span::default(), |t| t.span)
    }

    fn previous_span(&self) -> Span {
        self.position
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(Span::default(), |t| t.span)
    }

    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }

    fn advance(&mut self) -> Tok {
        let tok = self.peek().clone();
        if !self.at_eof() {
            self.position += 1;
        }
        tok
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected [{p}]")))
        }
    }

    fn unexpected(&self, expectation: &str) -> ParseError {
        let span = self.span();
        match self.peek() {
            Tok::Punct(p) => {
                if let Some((_, what)) = UNSUPPORTED_OPERATORS.iter().find(|(op, _)| op == p) {
                    return (span, unsupported(&format!("{what} are")));
                }
                (span, format!("unexpected token [{p}], {expectation}"))
            }
            Tok::Eof => (span, format!("unexpected end of script, {expectation}")),
            Tok::Ident(word) => (span, format!("unexpected token [{word}], {expectation}")),
            Tok::Integer(..) | Tok::Double(_) => {
                (span, format!("unexpected number, {expectation}"))
            }
            Tok::Str(_) => (span, format!("unexpected string, {expectation}")),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > NESTING_DEPTH_MAX {
            return Err((
                self.span(),
                format!("script nests deeper than [{NESTING_DEPTH_MAX}] levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn statement(&mut self) -> Result<Stmt> {
        self.enter()?;
        let statement = self.statement_inner();
        self.leave();
        statement
    }

    fn statement_inner(&mut self) -> Result<Stmt> {
        let span = self.span();
        if let Tok::Ident(word) = self.peek() {
            if let Some((_, what)) = UNSUPPORTED_KEYWORDS.iter().find(|(k, _)| k == word) {
                return Err((span, unsupported(what)));
            }
            match word.as_str() {
                "if" => return self.if_statement(),
                "else" => return Err((span, "[else] without [if]".into())),
                "return" => {
                    self.advance();
                    if self.eat_punct(";") || self.at_eof() || self.is_punct("}") {
                        return Ok(Stmt::Return(None, span));
                    }
                    let value = self.expression()?;
                    self.end_of_statement()?;
                    return Ok(Stmt::Return(Some(value), span));
                }
                _ => {}
            }
            if let Some(kind) = self.declaration_type() {
                return self.declaration(kind);
            }
        }
        if self.eat_punct("{") {
            let body = self.block_rest()?;
            return Ok(Stmt::Block(body));
        }
        if self.eat_punct(";") {
            return Ok(Stmt::Block(Vec::new()));
        }
        let expression = self.expression()?;
        self.end_of_statement()?;
        Ok(Stmt::Expr(expression))
    }

    /// A statement ends with `;`, or at the end of a block or of the script, as in Painless.
    fn end_of_statement(&mut self) -> Result<()> {
        if self.eat_punct(";") || self.at_eof() || self.is_punct("}") {
            Ok(())
        } else {
            Err(self.unexpected("expected [;]"))
        }
    }

    /// `int x`, `def y`, `List z`: a type name followed by a variable name (`int[]` arrays are
    /// outside the subset).
    fn declaration_type(&self) -> Option<DeclaredType> {
        let Tok::Ident(word) = self.peek() else {
            return None;
        };
        let name = TYPE_NAMES.iter().find(|t| *t == word)?;
        let is_declaration = matches!(self.peek_at(1), Tok::Ident(_))
            || matches!(self.peek_at(1), Tok::Punct("["))
                && matches!(self.peek_at(2), Tok::Punct("]"));
        if !is_declaration {
            return None;
        }
        Some(match *name {
            "def" | "var" => DeclaredType::Def,
            "int" | "short" | "byte" | "Integer" => DeclaredType::Int,
            "long" | "Long" => DeclaredType::Long,
            "double" | "float" | "Double" => DeclaredType::Double,
            other => DeclaredType::Other(other),
        })
    }

    fn declaration(&mut self, kind: DeclaredType) -> Result<Stmt> {
        let span = self.span();
        self.advance();
        if self.is_punct("[") {
            return Err((span, unsupported("arrays are")));
        }
        let name = match self.advance() {
            Tok::Ident(name) => name,
            _ => return Err((self.previous_span(), "expected a variable name".into())),
        };
        if self.is_punct("(") {
            return Err((span, unsupported("function definitions are")));
        }
        let value = if self.eat_punct("=") {
            Some(self.expression()?)
        } else {
            None
        };
        if self.is_punct(",") {
            return Err((
                self.span(),
                unsupported("several declarations in one statement are"),
            ));
        }
        self.end_of_statement()?;
        Ok(Stmt::Declare {
            kind,
            name,
            value,
            span: span.to(self.previous_span()),
        })
    }

    fn if_statement(&mut self) -> Result<Stmt> {
        self.advance();
        self.expect_punct("(")?;
        let condition = self.expression()?;
        self.expect_punct(")")?;
        let then = self.branch()?;
        let otherwise = if matches!(self.peek(), Tok::Ident(w) if w == "else") {
            self.advance();
            Some(self.branch()?)
        } else {
            None
        };
        Ok(Stmt::If {
            condition,
            then,
            otherwise,
        })
    }

    fn branch(&mut self) -> Result<Vec<Stmt>> {
        if self.eat_punct("{") {
            self.enter()?;
            let body = self.block_rest();
            self.leave();
            body
        } else {
            Ok(vec![self.statement()?])
        }
    }

    fn block_rest(&mut self) -> Result<Vec<Stmt>> {
        let mut body = Vec::new();
        while !self.eat_punct("}") {
            if self.at_eof() {
                return Err(self.unexpected("expected [}]"));
            }
            body.push(self.statement()?);
        }
        Ok(body)
    }

    fn expression(&mut self) -> Result<Expr> {
        self.enter()?;
        let expression = self.assignment();
        self.leave();
        expression
    }

    fn assignment(&mut self) -> Result<Expr> {
        let target = self.conditional()?;
        let op = match self.peek() {
            Tok::Punct("=") => None,
            Tok::Punct("+=") => Some(BinOp::Add),
            Tok::Punct("-=") => Some(BinOp::Sub),
            Tok::Punct("*=") => Some(BinOp::Mul),
            Tok::Punct("/=") => Some(BinOp::Div),
            Tok::Punct("%=") => Some(BinOp::Rem),
            _ => return Ok(target),
        };
        let operator_span = self.span();
        self.advance();
        if !is_place(&target) {
            return Err((
                operator_span,
                "the left side of an assignment must be a variable or a field".into(),
            ));
        }
        let value = self.expression()?;
        let span = target.span.to(value.span);
        Ok(Expr {
            kind: ExprKind::Assign {
                target: Box::new(target),
                op,
                value: Box::new(value),
            },
            span,
        })
    }

    fn conditional(&mut self) -> Result<Expr> {
        let condition = self.or()?;
        if self.eat_punct("?") {
            let then = self.expression()?;
            self.expect_punct(":")?;
            let otherwise = self.expression()?;
            let span = condition.span.to(otherwise.span);
            return Ok(Expr {
                kind: ExprKind::Conditional {
                    condition: Box::new(condition),
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                },
                span,
            });
        }
        if self.eat_punct("?:") {
            let otherwise = self.expression()?;
            let span = condition.span.to(otherwise.span);
            return Ok(Expr {
                kind: ExprKind::Elvis(Box::new(condition), Box::new(otherwise)),
                span,
            });
        }
        Ok(condition)
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.eat_punct("||") {
            let right = self.and()?;
            let span = left.span.to(right.span);
            left = Expr {
                kind: ExprKind::Or(Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.binary(0)?;
        while self.eat_punct("&&") {
            let right = self.binary(0)?;
            let span = left.span.to(right.span);
            left = Expr {
                kind: ExprKind::And(Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    /// Equality (level 0), relational (1), additive (2) and multiplicative (3) operators, all
    /// left associative.
    fn binary(&mut self, level: u8) -> Result<Expr> {
        if level > 3 {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let op = match (level, self.peek()) {
                (0, Tok::Punct("==")) => BinOp::Eq,
                (0, Tok::Punct("!=")) => BinOp::Ne,
                (0, Tok::Punct("===")) => BinOp::Same,
                (0, Tok::Punct("!==")) => BinOp::NotSame,
                (1, Tok::Punct("<")) => BinOp::Lt,
                (1, Tok::Punct("<=")) => BinOp::Le,
                (1, Tok::Punct(">")) => BinOp::Gt,
                (1, Tok::Punct(">=")) => BinOp::Ge,
                (2, Tok::Punct("+")) => BinOp::Add,
                (2, Tok::Punct("-")) => BinOp::Sub,
                (3, Tok::Punct("*")) => BinOp::Mul,
                (3, Tok::Punct("/")) => BinOp::Div,
                (3, Tok::Punct("%")) => BinOp::Rem,
                (_, Tok::Punct(p)) => {
                    if let Some((_, what)) = UNSUPPORTED_OPERATORS.iter().find(|(op, _)| op == p) {
                        return Err((self.span(), unsupported(&format!("{what} are"))));
                    }
                    if *p == "instanceof" {
                        return Err((self.span(), unsupported("[instanceof] is")));
                    }
                    return Ok(left);
                }
                (_, Tok::Ident(word)) if word == "instanceof" => {
                    return Err((self.span(), unsupported("[instanceof] is")));
                }
                _ => return Ok(left),
            };
            self.advance();
            let right = self.binary(level + 1)?;
            let span = left.span.to(right.span);
            left = Expr {
                kind: ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                span,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        self.enter()?;
        let expression = self.unary_inner();
        self.leave();
        expression
    }

    fn unary_inner(&mut self) -> Result<Expr> {
        let span = self.span();
        match self.peek() {
            Tok::Punct("-") => {
                self.advance();
                // `-2147483648` is an int although `2147483648` alone is not.
                if let Tok::Integer(value, long) = self.peek().clone() {
                    let literal_span = span.to(self.span());
                    self.advance();
                    let literal = integer_literal(-value, long, literal_span)?;
                    return self.postfix(literal);
                }
                let operand = self.unary()?;
                let span = span.to(operand.span);
                Ok(Expr {
                    kind: ExprKind::Neg(Box::new(operand)),
                    span,
                })
            }
            Tok::Punct("+") => {
                self.advance();
                self.unary()
            }
            Tok::Punct("!") => {
                self.advance();
                let operand = self.unary()?;
                let span = span.to(operand.span);
                Ok(Expr {
                    kind: ExprKind::Not(Box::new(operand)),
                    span,
                })
            }
            Tok::Punct(op @ ("++" | "--")) => {
                let delta = if *op == "++" { 1 } else { -1 };
                self.advance();
                let target = self.unary()?;
                if !is_place(&target) {
                    return Err((
                        span,
                        "the operand of [++] or [--] must be a variable or a field".into(),
                    ));
                }
                let span = span.to(target.span);
                Ok(Expr {
                    kind: ExprKind::Step {
                        target: Box::new(target),
                        delta,
                        prefix: true,
                    },
                    span,
                })
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    fn postfix(&mut self, mut expression: Expr) -> Result<Expr> {
        loop {
            let null_safe = self.is_punct("?.");
            if self.eat_punct(".") || self.eat_punct("?.") {
                let name_span = self.span();
                let name = match self.advance() {
                    Tok::Ident(name) => name,
                    _ => {
                        return Err((
                            name_span,
                            "expected a field or method name after [.]".into(),
                        ));
                    }
                };
                if self.eat_punct("(") {
                    let args = self.arguments()?;
                    let span = expression.span.to(self.previous_span());
                    expression = Expr {
                        kind: ExprKind::Call {
                            target: Box::new(expression),
                            method: name,
                            args,
                            null_safe,
                        },
                        span,
                    };
                } else {
                    let span = expression.span.to(name_span);
                    expression = Expr {
                        kind: ExprKind::Member {
                            target: Box::new(expression),
                            name,
                            null_safe,
                        },
                        span,
                    };
                }
            } else if self.eat_punct("[") {
                let index = self.expression()?;
                self.expect_punct("]")?;
                let span = expression.span.to(self.previous_span());
                expression = Expr {
                    kind: ExprKind::Index {
                        target: Box::new(expression),
                        index: Box::new(index),
                    },
                    span,
                };
            } else if matches!(self.peek(), Tok::Punct("++" | "--")) {
                let delta = if self.is_punct("++") { 1 } else { -1 };
                let span = self.span();
                if !is_place(&expression) {
                    return Err((
                        span,
                        "the operand of [++] or [--] must be a variable or a field".into(),
                    ));
                }
                self.advance();
                let span = expression.span.to(span);
                expression = Expr {
                    kind: ExprKind::Step {
                        target: Box::new(expression),
                        delta,
                        prefix: false,
                    },
                    span,
                };
            } else {
                return Ok(expression);
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>> {
        let mut args = Vec::new();
        if self.eat_punct(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expression()?);
            if self.eat_punct(")") {
                return Ok(args);
            }
            self.expect_punct(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let span = self.span();
        let literal = |value| Expr {
            kind: ExprKind::Literal(value),
            span,
        };
        match self.peek().clone() {
            Tok::Integer(value, long) => {
                self.advance();
                integer_literal(value, long, span)
            }
            Tok::Double(value) => {
                self.advance();
                Ok(literal(Value::Double(value)))
            }
            Tok::Str(text) => {
                self.advance();
                Ok(literal(Value::Str(text)))
            }
            Tok::Punct("(") => {
                if let Tok::Ident(word) = self.peek_at(1)
                    && TYPE_NAMES.contains(&word.as_str())
                    && matches!(self.peek_at(2), Tok::Punct(")"))
                {
                    return Err((span, unsupported(&format!("casts ([({word})]) are"))));
                }
                self.advance();
                let inner = self.expression()?;
                self.expect_punct(")")?;
                if self.is_punct("->") {
                    return Err((self.span(), unsupported("lambdas ([->]) are")));
                }
                Ok(Expr {
                    kind: inner.kind,
                    span: span.to(self.previous_span()),
                })
            }
            Tok::Punct("[") => {
                self.advance();
                self.collection(span)
            }
            Tok::Ident(word) => {
                if let Some((_, what)) = UNSUPPORTED_KEYWORDS.iter().find(|(k, _)| *k == word) {
                    return Err((span, unsupported(what)));
                }
                self.advance();
                if self.is_punct("->") {
                    return Err((self.span(), unsupported("lambdas ([->]) are")));
                }
                match word.as_str() {
                    "true" => return Ok(literal(Value::Bool(true))),
                    "false" => return Ok(literal(Value::Bool(false))),
                    "null" => return Ok(literal(Value::Null)),
                    "Math" => return self.math(span),
                    _ => {}
                }
                if word.starts_with(|c: char| c.is_ascii_uppercase()) && self.is_punct(".") {
                    return Err((span, unsupported(&format!("the class [{word}] is"))));
                }
                if self.is_punct("(") {
                    return Err((
                        span,
                        unsupported(&format!("calling the function [{word}] is")),
                    ));
                }
                Ok(Expr {
                    kind: ExprKind::Var(word),
                    span,
                })
            }
            _ => Err(self.unexpected("expected an expression")),
        }
    }

    fn math(&mut self, span: Span) -> Result<Expr> {
        self.expect_punct(".")?;
        let name_span = self.span();
        let Tok::Ident(method) = self.advance() else {
            return Err((name_span, "expected a method of [Math]".into()));
        };
        match method.as_str() {
            "PI" => {
                return Ok(Expr {
                    kind: ExprKind::Literal(Value::Double(std::f64::consts::PI)),
                    span: span.to(name_span),
                });
            }
            "E" => {
                return Ok(Expr {
                    kind: ExprKind::Literal(Value::Double(std::f64::consts::E)),
                    span: span.to(name_span),
                });
            }
            _ => {}
        }
        if !crate::interp::MATH_METHODS.contains(&method.as_str()) {
            return Err((name_span, unsupported(&format!("[Math.{method}] is"))));
        }
        self.expect_punct("(")?;
        let args = self.arguments()?;
        Ok(Expr {
            kind: ExprKind::MathCall { method, args },
            span: span.to(self.previous_span()),
        })
    }

    /// After `[`: a list `[a, b]`, a map `[k: v, …]`, or the empty map `[:]`.
    fn collection(&mut self, span: Span) -> Result<Expr> {
        if self.eat_punct(":") {
            self.expect_punct("]")?;
            return Ok(Expr {
                kind: ExprKind::Map(Vec::new()),
                span: span.to(self.previous_span()),
            });
        }
        if self.eat_punct("]") {
            return Ok(Expr {
                kind: ExprKind::List(Vec::new()),
                span: span.to(self.previous_span()),
            });
        }
        let first = self.expression()?;
        if self.eat_punct(":") {
            let mut entries = vec![(first, self.expression()?)];
            while self.eat_punct(",") {
                let key = self.expression()?;
                self.expect_punct(":")?;
                entries.push((key, self.expression()?));
            }
            self.expect_punct("]")?;
            return Ok(Expr {
                kind: ExprKind::Map(entries),
                span: span.to(self.previous_span()),
            });
        }
        let mut items = vec![first];
        while self.eat_punct(",") {
            items.push(self.expression()?);
        }
        self.expect_punct("]")?;
        Ok(Expr {
            kind: ExprKind::List(items),
            span: span.to(self.previous_span()),
        })
    }
}

fn integer_literal(value: i64, long: bool, span: Span) -> Result<Expr> {
    let value = if long {
        Value::Long(value)
    } else {
        match i32::try_from(value) {
            Ok(v) => Value::Int(v),
            Err(_) => return Err((span, format!("invalid int constant [{value}]"))),
        }
    };
    Ok(Expr {
        kind: ExprKind::Literal(value),
        span,
    })
}

/// Whether an expression can be assigned to: a variable, a field, or an element.
fn is_place(expression: &Expr) -> bool {
    match &expression.kind {
        ExprKind::Var(_) => true,
        ExprKind::Member {
            target, null_safe, ..
        } => !null_safe && is_place(target),
        ExprKind::Index { target, .. } => is_place(target),
        _ => false,
    }
}
