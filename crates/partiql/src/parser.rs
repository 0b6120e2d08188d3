//! The parser: recursive descent for statements and clauses, precedence climbing (Pratt) for
//! expressions, over the tokens of `lexer.rs`.
//!
//! Every recursive rule passes through [`Parser::enter`], which bounds the nesting depth so that
//! hostile input such as ten thousand `(` gets an error instead of overflowing the stack.

use crate::ast::*;
use crate::error::{ParseError, Position};
use crate::lexer::{Sym, Token, TokenKind, tokenize};

/// The deepest nesting of expressions and subqueries accepted. Real statements nest a handful of
/// levels; the bound exists so that recursion cannot exhaust the stack. An optimized build uses
/// about 2 KiB of stack per level, so the deepest statement needs about 512 KiB.
pub const NESTING_DEPTH_MAX: u32 = 256;

/// The most stack the parser uses below its entry point before it reports "nested too deeply".
/// This is the safety net for unoptimized builds, whose frames are several times larger than
/// those of optimized builds: there the limit is reached before [`NESTING_DEPTH_MAX`]. Either
/// way a caller on a thread with the default 2 MiB stack is safe.
const STACK_BYTES_MAX: usize = 1024 * 1024;

/// The address of a local variable of the caller's frame, to measure how much stack the parser
/// has used so far; only differences of two such addresses are meaningful.
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0_u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

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
pub(crate) const BP_OR: u8 = 1;
pub(crate) const BP_AND: u8 = 2;
pub(crate) const BP_NOT: u8 = 3;
pub(crate) const BP_PREDICATE: u8 = 4;
pub(crate) const BP_CONCAT: u8 = 5;
pub(crate) const BP_ADDITIVE: u8 = 6;
pub(crate) const BP_MULTIPLICATIVE: u8 = 7;
pub(crate) const BP_UNARY: u8 = 8;

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

/// An infix form, found by [`Parser::peek_infix`].
#[derive(Clone, Copy)]
enum Infix {
    Binary(BinaryOp),
    Is,
    In { negated: bool },
    Like { negated: bool },
    Between { negated: bool },
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
    /// The stack address when parsing began, see [`STACK_BYTES_MAX`].
    stack_base: usize,
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
            stack_base: stack_address(),
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
        let stack_bytes = self.stack_base.abs_diff(stack_address());
        if self.depth >= NESTING_DEPTH_MAX || stack_bytes > STACK_BYTES_MAX {
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
        // Each join nests the sources before it one level deeper, as operator chains do.
        let mut n_levels = 0_u32;
        let item = loop {
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
                break item;
            };
            self.enter()?;
            n_levels = n_levels.saturating_add(1);
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
        };
        self.depth = self.depth.saturating_sub(n_levels);
        Ok(item)
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
        // Each step of the loop is its own function: in unoptimized builds a frame holds every
        // temporary of its function, and this loop is on the path of every nesting level.
        let mut left = self.prefix()?;
        // A chain such as `a + b + c` nests one level deeper per operator (the tree leans left),
        // so each operator counts as a level: trees are dropped and printed recursively too.
        let mut n_levels = 0_u32;
        while let Some((infix, bp)) = self.peek_infix() {
            if bp < min_bp {
                break;
            }
            self.enter()?;
            n_levels = n_levels.saturating_add(1);
            left = self.infix(left, infix, bp)?;
        }
        self.depth = self.depth.saturating_sub(n_levels);
        Ok(left)
    }

    /// The infix operator or predicate at the current token, with its binding power.
    fn peek_infix(&self) -> Option<(Infix, u8)> {
        match &self.peek().kind {
            TokenKind::Sym(sym) => {
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
                    _ => return None,
                };
                Some((Infix::Binary(op), bp))
            }
            TokenKind::Word(word) => {
                let infix = match word.to_ascii_lowercase().as_str() {
                    "or" => Infix::Binary(BinaryOp::Or),
                    "and" => Infix::Binary(BinaryOp::And),
                    "is" => Infix::Is,
                    "in" => Infix::In { negated: false },
                    "like" => Infix::Like { negated: false },
                    "between" => Infix::Between { negated: false },
                    "not" if self.is_kw_at(1, "in") => Infix::In { negated: true },
                    "not" if self.is_kw_at(1, "like") => Infix::Like { negated: true },
                    "not" if self.is_kw_at(1, "between") => Infix::Between { negated: true },
                    _ => return None,
                };
                let bp = match infix {
                    Infix::Binary(BinaryOp::Or) => BP_OR,
                    Infix::Binary(BinaryOp::And) => BP_AND,
                    _ => BP_PREDICATE,
                };
                Some((infix, bp))
            }
            _ => None,
        }
    }

    /// Parses the rest of an infix form whose operator is the current token.
    fn infix(&mut self, left: Expr, infix: Infix, bp: u8) -> Result<Expr, ParseError> {
        self.advance();
        let value = Box::new(left);
        match infix {
            Infix::Binary(op) => {
                let right = Box::new(self.expr_bp(bp.saturating_add(1))?);
                Ok(Expr::Binary {
                    op,
                    left: value,
                    right,
                })
            }
            Infix::Is => self.is_test(value),
            Infix::In { negated } => {
                if negated {
                    self.advance();
                }
                let collection = Box::new(self.in_collection()?);
                Ok(Expr::In {
                    value,
                    collection,
                    negated,
                })
            }
            Infix::Like { negated } => self.like(value, negated),
            Infix::Between { negated } => self.between(value, negated),
        }
    }

    /// The rest of `IS [NOT] NULL` / `IS [NOT] MISSING`.
    fn is_test(&mut self, value: Box<Expr>) -> Result<Expr, ParseError> {
        let negated = self.eat_kw("not");
        let test = if self.eat_kw("null") {
            IsTest::Null
        } else if self.eat_kw("missing") {
            IsTest::Missing
        } else {
            return Err(self.unexpected("`NULL` or `MISSING`"));
        };
        Ok(Expr::Is {
            value,
            test,
            negated,
        })
    }

    /// The rest of `[NOT] LIKE pattern [ESCAPE escape]`.
    fn like(&mut self, value: Box<Expr>, negated: bool) -> Result<Expr, ParseError> {
        if negated {
            self.advance();
        }
        let operand_bp = BP_PREDICATE.saturating_add(1);
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

    /// The rest of `[NOT] BETWEEN low AND high`.
    fn between(&mut self, value: Box<Expr>, negated: bool) -> Result<Expr, ParseError> {
        if negated {
            self.advance();
        }
        let operand_bp = BP_PREDICATE.saturating_add(1);
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

    /// The collection after `IN`: `(a, b)` is a list even with one element, `(SELECT ...)` a
    /// subquery, anything else an expression such as `?` or `[a, b]`.
    fn in_collection(&mut self) -> Result<Expr, ParseError> {
        if self.is_sym(Sym::LParen) && !self.is_kw_at(1, "select") {
            self.enter()?;
            let items = self.parenthesized_list();
            self.leave();
            Ok(Expr::List(items?))
        } else {
            self.expr_bp(BP_PREDICATE.saturating_add(1))
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
        if self.is_sym(Sym::Minus) || self.is_sym(Sym::Plus) {
            return self.signed();
        }
        if self.is_kw("not") {
            self.advance();
            let operand = Box::new(self.expr_bp(BP_NOT)?);
            return Ok(Expr::Unary {
                op: UnaryOp::Not,
                operand,
            });
        }
        let primary = self.primary()?;
        self.postfix(primary)
    }

    /// `-x` or `+x`; a sign directly before a number is part of the literal, so that i64::MIN
    /// and negative decimals are literals rather than negations.
    fn signed(&mut self) -> Result<Expr, ParseError> {
        let negative = self.advance().kind == TokenKind::Sym(Sym::Minus);
        if matches!(
            self.peek().kind,
            TokenKind::Int(_) | TokenKind::Decimal(_) | TokenKind::Float(_)
        ) {
            let number = self.advance();
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
        match &self.peek().kind {
            TokenKind::Sym(Sym::LParen) => self.parenthesized(),
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
            TokenKind::Word(_) => self.word_primary(),
            TokenKind::Sym(Sym::At) => {
                // `@x` asks PartiQL to look `x` up among the bindings before the tables; names
                // resolve to bindings first anyway (see `ast::Scan`), so the `@` adds nothing.
                self.advance();
                self.ident("a name after `@`").map(Expr::Var)
            }
            _ => self.atom(),
        }
    }

    /// A literal, Ion literal, quoted identifier or parameter.
    fn atom(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        let expr = match token.kind {
            TokenKind::Int(_) | TokenKind::Decimal(_) | TokenKind::Float(_) => {
                Expr::Lit(Self::number_literal(&token, false)?)
            }
            TokenKind::String(text) => Expr::Lit(Literal::String(text)),
            TokenKind::Ion(text) => Expr::Ion(text),
            TokenKind::QuotedIdent(name) => Expr::Var(Ident::quoted(name)),
            TokenKind::Sym(Sym::Question) => {
                let index = self.n_parameters;
                self.n_parameters = self.n_parameters.saturating_add(1);
                Expr::Param(index)
            }
            _ => return Err(self.unexpected("an expression")),
        };
        self.advance();
        Ok(expr)
    }

    /// `(expr)`, `(SELECT ...)` or `(a, b, ...)`, which is a list.
    fn parenthesized(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        if self.is_kw("select") {
            return self.subquery(Sym::RParen);
        }
        let mut items = self.expr_list(Sym::RParen)?;
        if items.is_empty() {
            return Err(self.unexpected("an expression"));
        }
        self.expect_sym(Sym::RParen)?;
        if items.len() == 1
            && let Some(only) = items.pop()
        {
            return Ok(only);
        }
        Ok(Expr::List(items))
    }

    /// A query used as a value, followed by `close`.
    fn subquery(&mut self, close: Sym) -> Result<Expr, ParseError> {
        let select = Box::new(self.select()?);
        self.expect_sym(close)?;
        Ok(Expr::Subquery(select))
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

    fn word_primary(&mut self) -> Result<Expr, ParseError> {
        let TokenKind::Word(word) = &self.peek().kind else {
            return Err(self.unexpected("an expression"));
        };
        let lower = word.to_ascii_lowercase();
        let literal = match lower.as_str() {
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
        if self.peek_at(1).kind == TokenKind::Sym(Sym::LParen) && lower != "select" {
            return self.call(lower);
        }
        if is_reserved(&lower) {
            return Err(self.unexpected("an expression"));
        }
        let ident = Ident::regular(word.clone());
        self.advance();
        Ok(Expr::Var(ident))
    }

    /// Expects the `)` that closes a call's arguments.
    fn closed(&mut self, expr: Expr) -> Result<Expr, ParseError> {
        self.expect_sym(Sym::RParen)?;
        Ok(expr)
    }

    /// A function call; the name and `(` are the current tokens.
    fn call(&mut self, name: String) -> Result<Expr, ParseError> {
        self.advance();
        self.advance();
        match name.as_str() {
            "cast" => self.cast().and_then(|expr| self.closed(expr)),
            "trim" => self.trim().and_then(|expr| self.closed(expr)),
            "substring" => self.substring().and_then(|expr| self.closed(expr)),
            "extract" => self.extract().and_then(|expr| self.closed(expr)),
            "count" if self.is_sym(Sym::Star) => {
                self.advance();
                self.expect_sym(Sym::RParen)?;
                Ok(Expr::CountStar)
            }
            _ if self.is_kw("select") => {
                // `EXISTS(SELECT ...)` and similar take a bare query as their argument.
                let args = vec![self.subquery(Sym::RParen)?];
                Ok(Expr::Call { name, args })
            }
            _ => {
                let args = self.expr_list(Sym::RParen)?;
                self.expect_sym(Sym::RParen)?;
                Ok(Expr::Call { name, args })
            }
        }
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
        // An empty argument list is left for the evaluator to reject, as for any other call.
        if self.is_sym(Sym::RParen) {
            return Ok(Expr::Call {
                name: "substring".to_owned(),
                args: Vec::new(),
            });
        }
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
