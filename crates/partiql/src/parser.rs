//! The parser: recursive descent for statements and clauses, precedence climbing (Pratt) for
//! expressions, over the tokens of `lexer.rs`.
//!
//! Every recursive rule passes through [`Parser::enter`], which bounds the nesting depth so that
//! hostile input such as ten thousand `(` gets an error instead of overflowing the stack.

use crate::ast::*;
use crate::error::{ParseError, Position};
use crate::lexer::{Sym, Token, TokenKind, tokenize};

/// The deepest nesting of expressions and subqueries accepted. Real statements nest a handful of
/// levels; the bound exists so that recursion cannot exhaust a 2 MiB thread stack.
pub const NESTING_DEPTH_MAX: u32 = 256;

/// Words that cannot be used as bare identifiers, because the grammar gives them a meaning
/// where an identifier or an implicit alias could stand (`FROM T WHERE ...` must not read
/// `WHERE` as an alias). They remain usable after `.` and when double-quoted.
const RESERVED_WORDS: &[&str] = &[
    "all",
    "and",
    "as",
    "asc",
    "at",
    "between",
    "both",
    "by",
    "case",
    "create",
    "cross",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "false",
    "for",
    "from",
    "full",
    "group",
    "having",
    "in",
    "index",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "join",
    "leading",
    "left",
    "like",
    "limit",
    "missing",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "remove",
    "right",
    "select",
    "set",
    "table",
    "then",
    "trailing",
    "true",
    "undrop",
    "union",
    "update",
    "value",
    "values",
    "when",
    "where",
    "with",
];

fn is_reserved(word: &str) -> bool {
    RESERVED_WORDS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(word))
}

// Binding powers of the infix operators, lowest first. A left-associative operator of power `p`
// parses its right operand at `p + 1`.
const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_NOT: u8 = 3;
const BP_PREDICATE: u8 = 4;
const BP_CONCAT: u8 = 5;
const BP_ADDITIVE: u8 = 6;
const BP_MULTIPLICATIVE: u8 = 7;
const BP_UNARY: u8 = 8;

/// Parses one statement with an optional trailing `;`.
pub(crate) fn parse_statement(source: &str) -> Result<Statement, ParseError> {
    let mut parser = Parser::new(source)?;
    let statement = parser.statement()?;
    parser.eat_sym(Sym::Semicolon);
    parser.expect_eof("the end of the statement")?;
    Ok(statement)
}

/// Parses one expression, e.g. an index path or a default value.
pub(crate) fn parse_expression(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(source)?;
    let expr = parser.expr()?;
    parser.expect_eof("the end of the expression")?;
    Ok(expr)
}

/// The optional names bound by a source: `[AS] alias [AT at] [BY by]`.
struct Bindings {
    alias: Option<Ident>,
    at: Option<Ident>,
    by: Option<Ident>,
}

struct Parser {
    tokens: Vec<Token>,
    index: usize,
    depth: u32,
    n_parameters: usize,
    eof: Token,
}

impl Parser {
    fn new(source: &str) -> Result<Self, ParseError> {
        let tokens = tokenize(source)?;
        // The lexer always ends with Eof; a copy serves as the answer for peeking past the end.
        let eof_position = tokens
            .last()
            .map(|token| token.position)
            .unwrap_or(Position { line: 1, column: 1 });
        let eof = Token {
            kind: TokenKind::Eof,
            position: eof_position,
        };
        Ok(Parser {
            tokens,
            index: 0,
            depth: 0,
            n_parameters: 0,
            eof,
        })
    }

    // ---- token access -------------------------------------------------------------------------

    fn peek(&self) -> &Token {
        self.tokens.get(self.index).unwrap_or(&self.eof)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        self.tokens
            .get(self.index.saturating_add(ahead))
            .unwrap_or(&self.eof)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.index < self.tokens.len() {
            self.index = self.index.saturating_add(1);
        }
        token
    }

    fn is_sym(&self, sym: Sym) -> bool {
        self.peek().kind == TokenKind::Sym(sym)
    }

    fn eat_sym(&mut self, sym: Sym) -> bool {
        let found = self.is_sym(sym);
        if found {
            self.advance();
        }
        found
    }

    fn expect_sym(&mut self, sym: Sym) -> Result<(), ParseError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", sym.text())))
        }
    }

    fn word_is(token: &Token, keyword: &str) -> bool {
        matches!(&token.kind, TokenKind::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn is_kw(&self, keyword: &str) -> bool {
        Self::word_is(self.peek(), keyword)
    }

    fn is_kw_at(&self, ahead: usize, keyword: &str) -> bool {
        Self::word_is(self.peek_at(ahead), keyword)
    }

    fn eat_kw(&mut self, keyword: &str) -> bool {
        let found = self.is_kw(keyword);
        if found {
            self.advance();
        }
        found
    }

    fn expect_kw(&mut self, keyword: &str) -> Result<(), ParseError> {
        if self.eat_kw(keyword) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", keyword.to_ascii_uppercase())))
        }
    }

    fn expect_eof(&self, expected: &str) -> Result<(), ParseError> {
        if self.peek().kind == TokenKind::Eof {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// "unexpected token `x`, expected ..." at the current token.
    fn unexpected(&self, expected: &str) -> ParseError {
        let token = self.peek();
        ParseError::new(
            format!("unexpected {}, expected {expected}", token.describe()),
            token.position,
        )
    }

    /// Counts one level of nesting; the caller calls [`Parser::leave`] when the rule returns.
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= NESTING_DEPTH_MAX {
            return Err(ParseError::new(
                format!("statement nested too deeply: more than {NESTING_DEPTH_MAX} levels"),
                self.peek().position,
            ));
        }
        self.depth = self.depth.saturating_add(1);
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- identifiers --------------------------------------------------------------------------

    /// A regular identifier that is not a reserved word, or a quoted identifier.
    fn ident(&mut self, expected: &str) -> Result<Ident, ParseError> {
        self.maybe_ident().ok_or_else(|| self.unexpected(expected))
    }

    fn maybe_ident(&mut self) -> Option<Ident> {
        let ident = match &self.peek().kind {
            TokenKind::Word(word) if !is_reserved(word) => Ident::regular(word.clone()),
            TokenKind::QuotedIdent(name) => Ident::quoted(name.clone()),
            _ => return None,
        };
        self.advance();
        Some(ident)
    }

    /// `AS x` or a bare identifier used as an alias.
    fn maybe_alias(&mut self) -> Result<Option<Ident>, ParseError> {
        if self.eat_kw("as") {
            return self.ident("an alias after `AS`").map(Some);
        }
        Ok(self.maybe_ident())
    }

    /// The `[AS] x [AT i] [BY id]` bindings of a source.
    fn bindings(&mut self) -> Result<Bindings, ParseError> {
        let alias = self.maybe_alias()?;
        let at = if self.eat_kw("at") {
            Some(self.ident("a name after `AT`")?)
        } else {
            None
        };
        let by = if self.eat_kw("by") {
            Some(self.ident("a name after `BY`")?)
        } else {
            None
        };
        Ok(Bindings { alias, at, by })
    }

    // ---- statements ---------------------------------------------------------------------------

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let token = self.peek();
        let keyword = match &token.kind {
            TokenKind::Word(word) => word.to_ascii_lowercase(),
            _ => String::new(),
        };
        match keyword.as_str() {
            "select" => Ok(Statement::Select(Box::new(self.select()?))),
            "insert" => self.insert(),
            "update" => self.update(),
            "from" => self.update_from_first(),
            "delete" => self.delete(),
            "create" => self.create(),
            "drop" => self.drop(),
            "undrop" => {
                self.advance();
                self.expect_kw("table")?;
                let table_id = self.ident("a table id")?;
                Ok(Statement::UndropTable(UndropTable { table_id }))
            }
            _ => Err(self.unexpected(
                "a statement (SELECT, INSERT, UPDATE, DELETE, FROM, CREATE, DROP or UNDROP)",
            )),
        }
    }

    fn with_options(&mut self) -> Result<Vec<WithOption>, ParseError> {
        let mut options = Vec::new();
        if !self.eat_kw("with") {
            return Ok(options);
        }
        self.expect_sym(Sym::LParen)?;
        loop {
            let name = self.ident("an option name")?;
            self.expect_sym(Sym::Eq)?;
            let value = self.expr()?;
            options.push(WithOption { name, value });
            if !self.eat_sym(Sym::Comma) {
                break;
            }
        }
        self.expect_sym(Sym::RParen)?;
        Ok(options)
    }

    fn create(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        if self.eat_kw("table") {
            let table = self.ident("a table name")?;
            let options = self.with_options()?;
            Ok(Statement::CreateTable(CreateTable { table, options }))
        } else if self.eat_kw("index") {
            self.expect_kw("on")?;
            let table = self.ident("a table name")?;
            self.expect_sym(Sym::LParen)?;
            let field = self.path_expr()?;
            self.expect_sym(Sym::RParen)?;
            Ok(Statement::CreateIndex(CreateIndex { table, field }))
        } else {
            Err(self.unexpected("`TABLE` or `INDEX`"))
        }
    }

    fn drop(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        if self.eat_kw("table") {
            let table = self.ident("a table name")?;
            Ok(Statement::DropTable(DropTable { table }))
        } else if self.eat_kw("index") {
            let index_id = self.ident("an index id")?;
            self.expect_kw("on")?;
            let table = self.ident("a table name")?;
            let options = self.with_options()?;
            Ok(Statement::DropIndex(DropIndex {
                index_id,
                table,
                options,
            }))
        } else {
            Err(self.unexpected("`TABLE` or `INDEX`"))
        }
    }

    fn insert(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        self.expect_kw("into")?;
        let table = self.ident("a table name")?;
        let source = if self.eat_kw("value") {
            InsertSource::Value(self.expr()?)
        } else {
            InsertSource::Collection(self.expr()?)
        };
        Ok(Statement::Insert(Insert { table, source }))
    }

    fn dml_target(&mut self) -> Result<DmlTarget, ParseError> {
        let table = self.ident("a table name")?;
        let Bindings { alias, at, by } = self.bindings()?;
        Ok(DmlTarget {
            table,
            alias,
            at,
            by,
        })
    }

    /// An expression that must be a variable or a path, as the target of SET or an index field.
    fn path_expr(&mut self) -> Result<Expr, ParseError> {
        let position = self.peek().position;
        let expr = self.expr_bp(BP_UNARY)?;
        match expr {
            Expr::Var(_) | Expr::Path { .. } => Ok(expr),
            _ => Err(ParseError::new("expected a field name or a path", position)),
        }
    }

    fn dml_ops(&mut self) -> Result<Vec<DmlOp>, ParseError> {
        let mut ops = Vec::new();
        loop {
            if self.eat_kw("set") {
                loop {
                    let path = self.path_expr()?;
                    self.expect_sym(Sym::Eq)?;
                    let value = self.expr()?;
                    ops.push(DmlOp::Set { path, value });
                    if !self.eat_sym(Sym::Comma) {
                        break;
                    }
                }
            } else if self.eat_kw("remove") {
                let path = self.path_expr()?;
                ops.push(DmlOp::Remove { path });
            } else if self.is_kw("insert") {
                self.advance();
                self.expect_kw("into")?;
                let path = self.path_expr()?;
                self.expect_kw("value")?;
                let value = self.expr()?;
                let position = if self.eat_kw("at") {
                    Some(self.expr()?)
                } else {
                    None
                };
                ops.push(DmlOp::InsertInto {
                    path,
                    value,
                    position,
                });
            } else if ops.is_empty() {
                return Err(self.unexpected("`SET`, `REMOVE` or `INSERT INTO`"));
            } else {
                return Ok(ops);
            }
        }
    }

    fn where_clause(&mut self) -> Result<Option<Expr>, ParseError> {
        if self.eat_kw("where") {
            self.expr().map(Some)
        } else {
            Ok(None)
        }
    }

    fn update(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let target = self.dml_target()?;
        let ops = self.dml_ops()?;
        let condition = self.where_clause()?;
        Ok(Statement::Update(Update {
            target,
            ops,
            condition,
            form: UpdateForm::Update,
        }))
    }

    fn update_from_first(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let target = self.dml_target()?;
        let mut condition = self.where_clause()?;
        let ops = self.dml_ops()?;
        // A WHERE after the operations is accepted too, as long as there is only one.
        if condition.is_none() {
            condition = self.where_clause()?;
        }
        Ok(Statement::Update(Update {
            target,
            ops,
            condition,
            form: UpdateForm::FromFirst,
        }))
    }

    fn delete(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        self.expect_kw("from")?;
        let target = self.dml_target()?;
        let condition = self.where_clause()?;
        Ok(Statement::Delete(Delete { target, condition }))
    }

    // ---- queries ------------------------------------------------------------------------------

    fn select(&mut self) -> Result<Select, ParseError> {
        self.enter()?;
        let select = self.select_inner();
        self.leave();
        select
    }

    fn select_inner(&mut self) -> Result<Select, ParseError> {
        self.expect_kw("select")?;
        let quantifier = if self.eat_kw("distinct") {
            SetQuantifier::Distinct
        } else {
            self.eat_kw("all");
            SetQuantifier::All
        };
        let projection = if self.eat_sym(Sym::Star) {
            Projection::Star
        } else if self.eat_kw("value") {
            Projection::Value(self.expr()?)
        } else {
            let mut items = Vec::new();
            loop {
                items.push(self.project_item()?);
                if !self.eat_sym(Sym::Comma) {
                    break;
                }
            }
            Projection::Items(items)
        };
        let from = if self.eat_kw("from") {
            Some(self.sources()?)
        } else {
            None
        };
        let condition = self.where_clause()?;
        let mut order_by = Vec::new();
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let expr = self.expr()?;
                let direction = if self.eat_kw("desc") {
                    OrderDirection::Desc
                } else {
                    self.eat_kw("asc");
                    OrderDirection::Asc
                };
                order_by.push(OrderKey { expr, direction });
                if !self.eat_sym(Sym::Comma) {
                    break;
                }
            }
        }
        let limit = if self.eat_kw("limit") {
            Some(self.expr()?)
        } else {
            None
        };
        let offset = if self.eat_kw("offset") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Select {
            quantifier,
            projection,
            from,
            condition,
            order_by,
            limit,
            offset,
        })
    }

    fn project_item(&mut self) -> Result<ProjectItem, ParseError> {
        let expr = self.expr()?;
        if let Expr::Path { root, mut steps } = expr {
            if steps.last() == Some(&PathStep::AllFields) {
                steps.pop();
                let base = if steps.is_empty() {
                    *root
                } else {
                    Expr::Path { root, steps }
                };
                return Ok(ProjectItem::AllFields(base));
            }
            let alias = self.maybe_alias()?;
            return Ok(ProjectItem::Expr {
                expr: Expr::Path { root, steps },
                alias,
            });
        }
        let alias = self.maybe_alias()?;
        Ok(ProjectItem::Expr { expr, alias })
    }

    fn sources(&mut self) -> Result<FromItem, ParseError> {
        let mut item = FromItem::Scan(self.scan()?);
        loop {
            let (kind, needs_on) = if self.eat_sym(Sym::Comma) {
                (JoinKind::Cross, false)
            } else if self.is_kw("cross") && self.is_kw_at(1, "join") {
                self.advance();
                self.advance();
                (JoinKind::Cross, false)
            } else if self.is_kw("join") || (self.is_kw("inner") && self.is_kw_at(1, "join")) {
                self.eat_kw("inner");
                self.advance();
                (JoinKind::Inner, false)
            } else if self.is_kw("left") {
                self.advance();
                self.eat_kw("outer");
                self.expect_kw("join")?;
                (JoinKind::Left, true)
            } else {
                return Ok(item);
            };
            let right = FromItem::Scan(self.scan()?);
            let on = if kind != JoinKind::Cross && (needs_on || self.is_kw("on")) {
                self.expect_kw("on")?;
                Some(self.expr()?)
            } else {
                None
            };
            item = FromItem::Join {
                kind,
                left: Box::new(item),
                right: Box::new(right),
                on,
            };
        }
    }

    fn scan(&mut self) -> Result<Scan, ParseError> {
        // The source is a primary with its path steps, so that `FROM T t` and `FROM a, b` stay
        // unambiguous; arbitrary expressions can be written in parentheses.
        let source = self.expr_bp(BP_UNARY)?;
        let Bindings { alias, at, by } = self.bindings()?;
        Ok(Scan {
            source,
            alias,
            at,
            by,
        })
    }

    // ---- expressions --------------------------------------------------------------------------

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.expr_bp(0)
    }

    fn expr_bp(&mut self, min_bp: u8) -> Result<Expr, ParseError> {
        self.enter()?;
        let expr = self.expr_bp_inner(min_bp);
        self.leave();
        expr
    }

    fn expr_bp_inner(&mut self, min_bp: u8) -> Result<Expr, ParseError> {
        let mut left = self.prefix()?;
        loop {
            let token = self.peek();
            if let TokenKind::Sym(sym) = token.kind {
                let (op, bp) = match sym {
                    Sym::Eq => (BinaryOp::Eq, BP_PREDICATE),
                    Sym::NotEq => (BinaryOp::NotEq, BP_PREDICATE),
                    Sym::Lt => (BinaryOp::Lt, BP_PREDICATE),
                    Sym::LtEq => (BinaryOp::LtEq, BP_PREDICATE),
                    Sym::Gt => (BinaryOp::Gt, BP_PREDICATE),
                    Sym::GtEq => (BinaryOp::GtEq, BP_PREDICATE),
                    Sym::Concat => (BinaryOp::Concat, BP_CONCAT),
                    Sym::Plus => (BinaryOp::Add, BP_ADDITIVE),
                    Sym::Minus => (BinaryOp::Sub, BP_ADDITIVE),
                    Sym::Star => (BinaryOp::Mul, BP_MULTIPLICATIVE),
                    Sym::Slash => (BinaryOp::Div, BP_MULTIPLICATIVE),
                    Sym::Percent => (BinaryOp::Mod, BP_MULTIPLICATIVE),
                    _ => return Ok(left),
                };
                if bp < min_bp {
                    return Ok(left);
                }
                self.advance();
                let right = self.expr_bp(bp.saturating_add(1))?;
                left = Expr::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                };
                continue;
            }
            let TokenKind::Word(word) = &token.kind else {
                return Ok(left);
            };
            let word = word.to_ascii_lowercase();
            let bp = match word.as_str() {
                "or" => BP_OR,
                "and" => BP_AND,
                "is" | "in" | "like" | "between" => BP_PREDICATE,
                "not"
                    if self.is_kw_at(1, "in")
                        || self.is_kw_at(1, "like")
                        || self.is_kw_at(1, "between") =>
                {
                    BP_PREDICATE
                }
                _ => return Ok(left),
            };
            if bp < min_bp {
                return Ok(left);
            }
            self.advance();
            left = match word.as_str() {
                "or" | "and" => {
                    let op = if word == "or" {
                        BinaryOp::Or
                    } else {
                        BinaryOp::And
                    };
                    let right = self.expr_bp(bp.saturating_add(1))?;
                    Expr::Binary {
                        op,
                        left: Box::new(left),
                        right: Box::new(right),
                    }
                }
                "is" => {
                    let negated = self.eat_kw("not");
                    let test = if self.eat_kw("null") {
                        IsTest::Null
                    } else if self.eat_kw("missing") {
                        IsTest::Missing
                    } else {
                        return Err(self.unexpected("`NULL` or `MISSING`"));
                    };
                    Expr::Is {
                        value: Box::new(left),
                        test,
                        negated,
                    }
                }
                _ => {
                    let negated = word == "not";
                    let predicate = if negated {
                        let predicate = self.peek().kind.clone();
                        self.advance();
                        match predicate {
                            TokenKind::Word(predicate) => predicate.to_ascii_lowercase(),
                            _ => String::new(),
                        }
                    } else {
                        word
                    };
                    self.predicate(left, &predicate, negated)?
                }
            };
        }
    }

    /// The rest of `IN`, `LIKE` or `BETWEEN`, whose keyword (and `NOT`) is consumed.
    fn predicate(
        &mut self,
        left: Expr,
        predicate: &str,
        negated: bool,
    ) -> Result<Expr, ParseError> {
        let value = Box::new(left);
        let operand_bp = BP_PREDICATE.saturating_add(1);
        match predicate {
            "in" => {
                let collection = if self.is_sym(Sym::LParen) && !self.is_kw_at(1, "select") {
                    // `IN (a, b)` is a list even with one element; `IN (SELECT ...)` is a subquery.
                    self.enter()?;
                    let items = self.parenthesized_list();
                    self.leave();
                    Expr::List(items?)
                } else {
                    self.expr_bp(operand_bp)?
                };
                Ok(Expr::In {
                    value,
                    collection: Box::new(collection),
                    negated,
                })
            }
            "like" => {
                let pattern = Box::new(self.expr_bp(operand_bp)?);
                let escape = if self.eat_kw("escape") {
                    Some(Box::new(self.expr_bp(operand_bp)?))
                } else {
                    None
                };
                Ok(Expr::Like {
                    value,
                    pattern,
                    escape,
                    negated,
                })
            }
            _ => {
                let low = Box::new(self.expr_bp(operand_bp)?);
                self.expect_kw("and")?;
                let high = Box::new(self.expr_bp(operand_bp)?);
                Ok(Expr::Between {
                    value,
                    low,
                    high,
                    negated,
                })
            }
        }
    }

    /// `( expr, ... )` with at least one element.
    fn parenthesized_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect_sym(Sym::LParen)?;
        let items = self.expr_list(Sym::RParen)?;
        if items.is_empty() {
            return Err(self.unexpected("an expression"));
        }
        self.expect_sym(Sym::RParen)?;
        Ok(items)
    }

    /// Comma-separated expressions up to (not including) `close`; possibly none.
    fn expr_list(&mut self, close: Sym) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if self.is_sym(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            if !self.eat_sym(Sym::Comma) {
                return Ok(items);
            }
        }
    }

    fn prefix(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Sym(Sym::Minus) | TokenKind::Sym(Sym::Plus) => {
                self.advance();
                let negative = token.kind == TokenKind::Sym(Sym::Minus);
                // A sign directly before a number is part of the literal, so that i64::MIN and
                // negative decimals are literals rather than negations.
                let number = match &self.peek().kind {
                    TokenKind::Int(_) | TokenKind::Decimal(_) | TokenKind::Float(_) => {
                        Some(self.advance())
                    }
                    _ => None,
                };
                if let Some(number) = number {
                    let literal = Self::number_literal(&number, negative)?;
                    return self.postfix(Expr::Lit(literal));
                }
                let operand = Box::new(self.expr_bp(BP_UNARY)?);
                let op = if negative {
                    UnaryOp::Neg
                } else {
                    UnaryOp::Plus
                };
                Ok(Expr::Unary { op, operand })
            }
            TokenKind::Word(word) if word.eq_ignore_ascii_case("not") => {
                self.advance();
                let operand = Box::new(self.expr_bp(BP_NOT)?);
                Ok(Expr::Unary {
                    op: UnaryOp::Not,
                    operand,
                })
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    fn number_literal(token: &Token, negative: bool) -> Result<Literal, ParseError> {
        let sign = if negative { "-" } else { "" };
        match &token.kind {
            TokenKind::Int(digits) => format!("{sign}{digits}")
                .parse::<i64>()
                .map(Literal::Int)
                .map_err(|_| {
                    ParseError::new(
                        format!(
                            "integer literal `{sign}{digits}` is out of range for a 64-bit integer"
                        ),
                        token.position,
                    )
                }),
            TokenKind::Decimal(text) => {
                // `.5` is written as `0.5` so the text is always a valid Ion decimal.
                let text = if text.starts_with('.') {
                    format!("0{text}")
                } else {
                    text.clone()
                };
                Ok(Literal::Decimal(format!("{sign}{text}")))
            }
            TokenKind::Float(text) => format!("{sign}{text}")
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .map(Literal::Float)
                .ok_or_else(|| {
                    ParseError::new(
                        format!("float literal `{sign}{text}` is out of range"),
                        token.position,
                    )
                }),
            _ => Err(ParseError::new(
                format!("unexpected {}, expected a number", token.describe()),
                token.position,
            )),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Int(_) | TokenKind::Decimal(_) | TokenKind::Float(_) => {
                self.advance();
                Ok(Expr::Lit(Self::number_literal(&token, false)?))
            }
            TokenKind::String(text) => {
                self.advance();
                Ok(Expr::Lit(Literal::String(text.clone())))
            }
            TokenKind::Ion(text) => {
                self.advance();
                Ok(Expr::Ion(text.clone()))
            }
            TokenKind::QuotedIdent(name) => {
                self.advance();
                Ok(Expr::Var(Ident::quoted(name.clone())))
            }
            TokenKind::Sym(Sym::Question) => {
                self.advance();
                let index = self.n_parameters;
                self.n_parameters = self.n_parameters.saturating_add(1);
                Ok(Expr::Param(index))
            }
            TokenKind::Sym(Sym::LParen) => {
                self.advance();
                if self.is_kw("select") {
                    let select = self.select()?;
                    self.expect_sym(Sym::RParen)?;
                    return Ok(Expr::Subquery(Box::new(select)));
                }
                let mut items = self.expr_list(Sym::RParen)?;
                if items.is_empty() {
                    return Err(self.unexpected("an expression"));
                }
                self.expect_sym(Sym::RParen)?;
                match (items.pop(), items.is_empty()) {
                    (Some(only), true) => Ok(only),
                    (Some(last), false) => {
                        items.push(last);
                        Ok(Expr::List(items))
                    }
                    (None, _) => Err(ParseError::new("expected an expression", token.position)),
                }
            }
            TokenKind::Sym(Sym::LBracket) => {
                self.advance();
                let items = self.expr_list(Sym::RBracket)?;
                self.expect_sym(Sym::RBracket)?;
                Ok(Expr::List(items))
            }
            TokenKind::Sym(Sym::LBag) => {
                self.advance();
                let items = self.expr_list(Sym::RBag)?;
                self.expect_sym(Sym::RBag)?;
                Ok(Expr::Bag(items))
            }
            TokenKind::Sym(Sym::LBrace) => {
                self.advance();
                self.struct_fields()
            }
            TokenKind::Word(word) => self.word_primary(&word.to_ascii_lowercase(), word),
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn struct_fields(&mut self) -> Result<Expr, ParseError> {
        let mut fields = Vec::new();
        if !self.is_sym(Sym::RBrace) {
            loop {
                let key = match self.expr()? {
                    Expr::Var(ident) => Expr::Lit(Literal::String(ident.name)),
                    key => key,
                };
                self.expect_sym(Sym::Colon)?;
                let value = self.expr()?;
                fields.push((key, value));
                if !self.eat_sym(Sym::Comma) {
                    break;
                }
            }
        }
        self.expect_sym(Sym::RBrace)?;
        Ok(Expr::Struct(fields))
    }

    fn word_primary(&mut self, lower: &str, word: &str) -> Result<Expr, ParseError> {
        let literal = match lower {
            "null" => Some(Literal::Null),
            "missing" => Some(Literal::Missing),
            "true" => Some(Literal::Bool(true)),
            "false" => Some(Literal::Bool(false)),
            _ => None,
        };
        if let Some(literal) = literal {
            self.advance();
            return Ok(Expr::Lit(literal));
        }
        if lower == "case" {
            self.advance();
            return self.case();
        }
        let is_call = self.peek_at(1).kind == TokenKind::Sym(Sym::LParen);
        if is_call && lower != "select" {
            self.advance();
            self.advance();
            let call = match lower {
                "cast" => self.cast()?,
                "trim" => self.trim()?,
                "substring" => self.substring()?,
                "extract" => self.extract()?,
                "count" if self.is_sym(Sym::Star) => {
                    self.advance();
                    Expr::CountStar
                }
                _ => {
                    // `EXISTS(SELECT ...)` and similar take a bare query as their argument.
                    let args = if self.is_kw("select") {
                        vec![Expr::Subquery(Box::new(self.select()?))]
                    } else {
                        self.expr_list(Sym::RParen)?
                    };
                    Expr::Call {
                        name: lower.to_owned(),
                        args,
                    }
                }
            };
            self.expect_sym(Sym::RParen)?;
            return Ok(call);
        }
        if is_reserved(word) {
            return Err(self.unexpected("an expression"));
        }
        self.advance();
        Ok(Expr::Var(Ident::regular(word)))
    }

    fn case(&mut self) -> Result<Expr, ParseError> {
        let operand = if self.is_kw("when") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut branches = Vec::new();
        while self.eat_kw("when") {
            let when = self.expr()?;
            self.expect_kw("then")?;
            let then = self.expr()?;
            branches.push((when, then));
        }
        if branches.is_empty() {
            return Err(self.unexpected("`WHEN`"));
        }
        let otherwise = if self.eat_kw("else") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_kw("end")?;
        Ok(Expr::Case {
            operand,
            branches,
            otherwise,
        })
    }

    fn cast(&mut self) -> Result<Expr, ParseError> {
        let value = Box::new(self.expr()?);
        self.expect_kw("as")?;
        let mut words = Vec::new();
        while let TokenKind::Word(word) = &self.peek().kind {
            words.push(word.to_ascii_lowercase());
            self.advance();
        }
        if words.is_empty() {
            return Err(self.unexpected("a type name"));
        }
        let mut params = Vec::new();
        if self.eat_sym(Sym::LParen) {
            loop {
                let token = self.peek().clone();
                let param = match &token.kind {
                    TokenKind::Int(digits) => digits.parse::<u32>().ok(),
                    _ => None,
                };
                let Some(param) = param else {
                    return Err(self.unexpected("a type parameter (a non-negative integer)"));
                };
                self.advance();
                params.push(param);
                if !self.eat_sym(Sym::Comma) {
                    break;
                }
            }
            self.expect_sym(Sym::RParen)?;
        }
        Ok(Expr::Cast {
            value,
            to: TypeName {
                name: words.join(" "),
                params,
            },
        })
    }

    fn trim(&mut self) -> Result<Expr, ParseError> {
        let spec = if self.eat_kw("leading") {
            Some(TrimSpec::Leading)
        } else if self.eat_kw("trailing") {
            Some(TrimSpec::Trailing)
        } else if self.eat_kw("both") {
            Some(TrimSpec::Both)
        } else {
            None
        };
        if self.eat_kw("from") {
            let value = Box::new(self.expr()?);
            return Ok(Expr::Trim {
                spec: spec.unwrap_or(TrimSpec::Both),
                chars: None,
                value,
            });
        }
        let first = Box::new(self.expr()?);
        if self.eat_kw("from") {
            let value = Box::new(self.expr()?);
            return Ok(Expr::Trim {
                spec: spec.unwrap_or(TrimSpec::Both),
                chars: Some(first),
                value,
            });
        }
        if spec.is_some() {
            return Err(self.unexpected("`FROM`"));
        }
        Ok(Expr::Trim {
            spec: TrimSpec::Both,
            chars: None,
            value: first,
        })
    }

    fn substring(&mut self) -> Result<Expr, ParseError> {
        let mut args = vec![self.expr()?];
        if self.eat_kw("from") {
            args.push(self.expr()?);
            if self.eat_kw("for") {
                args.push(self.expr()?);
            }
        } else {
            while self.eat_sym(Sym::Comma) {
                args.push(self.expr()?);
            }
        }
        Ok(Expr::Call {
            name: "substring".to_owned(),
            args,
        })
    }

    fn extract(&mut self) -> Result<Expr, ParseError> {
        let part = self.ident("a date part such as `year`")?;
        self.expect_kw("from")?;
        let value = self.expr()?;
        Ok(Expr::Call {
            name: "extract".to_owned(),
            args: vec![Expr::Var(part), value],
        })
    }

    /// Path steps after a primary: `.name`, `."Name"`, `.*`, `[expr]`, `[*]`.
    fn postfix(&mut self, root: Expr) -> Result<Expr, ParseError> {
        let mut steps = Vec::new();
        loop {
            if self.eat_sym(Sym::Dot) {
                let step = match &self.peek().kind {
                    TokenKind::Word(word) => PathStep::Field(Ident::regular(word.clone())),
                    TokenKind::QuotedIdent(name) => PathStep::Field(Ident::quoted(name.clone())),
                    TokenKind::Sym(Sym::Star) => PathStep::AllFields,
                    _ => return Err(self.unexpected("a field name or `*` after `.`")),
                };
                self.advance();
                steps.push(step);
            } else if self.eat_sym(Sym::LBracket) {
                if self.is_sym(Sym::Star) && self.peek_at(1).kind == TokenKind::Sym(Sym::RBracket) {
                    self.advance();
                    self.advance();
                    steps.push(PathStep::AllElements);
                } else {
                    let index = self.expr()?;
                    self.expect_sym(Sym::RBracket)?;
                    steps.push(PathStep::Index(index));
                }
            } else {
                break;
            }
        }
        if steps.is_empty() {
            Ok(root)
        } else {
            Ok(Expr::Path {
                root: Box::new(root),
                steps,
            })
        }
    }
}
