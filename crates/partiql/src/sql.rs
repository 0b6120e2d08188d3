//! Printing the syntax tree back as PartiQL text, such that parsing the text gives the same tree.
//!
//! Expressions are printed with the fewest parentheses the parser's precedence needs, using the
//! same binding powers as `parser.rs`; parentheses never create tree nodes, so adding them where
//! precedence requires is always safe. Two places are special because parentheses do mean
//! something there: the collection of `IN`, where `(a, b)` is a list, and the root of a path,
//! where `(a.b).c` is a path whose root is a path.
//!
//! Parameters print as `?`, so their numbers follow the order of appearance of the printed text.

use std::fmt::Write;

use crate::ast::*;
use crate::parser::{
    BP_ADDITIVE, BP_AND, BP_CONCAT, BP_MULTIPLICATIVE, BP_NOT, BP_OR, BP_PREDICATE, BP_UNARY,
};

/// The binding power of an expression that is a primary (a literal, name, call, constructor...).
const BP_PRIMARY: u8 = BP_UNARY + 1;

impl Statement {
    /// The statement as PartiQL text that parses back to an equal statement (up to parameter
    /// numbering, which follows the printed order).
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        write_statement(&mut out, self);
        out
    }
}

impl Select {
    /// The query as PartiQL text that parses back to an equal query.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        write_select(&mut out, self);
        out
    }
}

impl Expr {
    /// The expression as PartiQL text that parses back to an equal expression.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        write_expr(&mut out, self, 0);
        out
    }
}

fn write_ident(out: &mut String, ident: &Ident) {
    if ident.quoted {
        write_quoted(out, &ident.name, '"');
    } else {
        out.push_str(&ident.name);
    }
}

fn write_quoted(out: &mut String, text: &str, quote: char) {
    out.push(quote);
    for c in text.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
}

fn write_list(out: &mut String, items: &[Expr]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_expr(out, item, 0);
    }
}

fn write_options(out: &mut String, options: &[WithOption]) {
    if options.is_empty() {
        return;
    }
    out.push_str(" WITH (");
    for (i, option) in options.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_ident(out, &option.name);
        out.push_str(" = ");
        write_expr(out, &option.value, 0);
    }
    out.push(')');
}

fn write_bindings(out: &mut String, alias: &Option<Ident>, at: &Option<Ident>, by: &Option<Ident>) {
    for (keyword, name) in [(" AS ", alias), (" AT ", at), (" BY ", by)] {
        if let Some(name) = name {
            out.push_str(keyword);
            write_ident(out, name);
        }
    }
}

fn write_statement(out: &mut String, statement: &Statement) {
    match statement {
        Statement::CreateTable(create) => {
            out.push_str("CREATE TABLE ");
            write_ident(out, &create.table);
            write_options(out, &create.options);
        }
        Statement::DropTable(drop) => {
            out.push_str("DROP TABLE ");
            write_ident(out, &drop.table);
        }
        Statement::UndropTable(undrop) => {
            out.push_str("UNDROP TABLE ");
            write_ident(out, &undrop.table_id);
        }
        Statement::CreateIndex(create) => {
            out.push_str("CREATE INDEX ON ");
            write_ident(out, &create.table);
            out.push_str(" (");
            write_expr(out, &create.field, BP_UNARY);
            out.push(')');
        }
        Statement::DropIndex(drop) => {
            out.push_str("DROP INDEX ");
            write_ident(out, &drop.index_id);
            out.push_str(" ON ");
            write_ident(out, &drop.table);
            write_options(out, &drop.options);
        }
        Statement::Insert(insert) => {
            out.push_str("INSERT INTO ");
            write_ident(out, &insert.table);
            match &insert.source {
                InsertSource::Value(expr) => {
                    out.push_str(" VALUE ");
                    write_expr(out, expr, 0);
                }
                InsertSource::Collection(expr) => {
                    out.push(' ');
                    write_expr(out, expr, 0);
                }
            }
        }
        Statement::Update(update) => {
            let keyword = match update.form {
                UpdateForm::Update => "UPDATE ",
                UpdateForm::FromFirst => "FROM ",
            };
            out.push_str(keyword);
            write_target(out, &update.target);
            if update.form == UpdateForm::FromFirst {
                write_where(out, &update.condition);
            }
            for op in &update.ops {
                write_op(out, op);
            }
            if update.form == UpdateForm::Update {
                write_where(out, &update.condition);
            }
        }
        Statement::Delete(delete) => {
            out.push_str("DELETE FROM ");
            write_target(out, &delete.target);
            write_where(out, &delete.condition);
        }
        Statement::Select(select) => write_select(out, select),
    }
}

fn write_target(out: &mut String, target: &DmlTarget) {
    write_ident(out, &target.table);
    write_bindings(out, &target.alias, &target.at, &target.by);
}

fn write_where(out: &mut String, condition: &Option<Expr>) {
    if let Some(condition) = condition {
        out.push_str(" WHERE ");
        write_expr(out, condition, 0);
    }
}

fn write_op(out: &mut String, op: &DmlOp) {
    match op {
        DmlOp::Set { path, value } => {
            out.push_str(" SET ");
            write_expr(out, path, BP_UNARY);
            out.push_str(" = ");
            write_expr(out, value, 0);
        }
        DmlOp::Remove { path } => {
            out.push_str(" REMOVE ");
            write_expr(out, path, BP_UNARY);
        }
        DmlOp::InsertInto {
            path,
            value,
            position,
        } => {
            out.push_str(" INSERT INTO ");
            write_expr(out, path, BP_UNARY);
            out.push_str(" VALUE ");
            write_expr(out, value, 0);
            if let Some(position) = position {
                out.push_str(" AT ");
                write_expr(out, position, 0);
            }
        }
    }
}

fn write_select(out: &mut String, select: &Select) {
    out.push_str("SELECT ");
    if select.quantifier == SetQuantifier::Distinct {
        out.push_str("DISTINCT ");
    }
    match &select.projection {
        Projection::Star => out.push('*'),
        Projection::Value(expr) => {
            out.push_str("VALUE ");
            write_expr(out, expr, 0);
        }
        Projection::Items(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item {
                    ProjectItem::Expr { expr, alias } => {
                        write_expr(out, expr, 0);
                        if let Some(alias) = alias {
                            out.push_str(" AS ");
                            write_ident(out, alias);
                        }
                    }
                    ProjectItem::AllFields(expr) => {
                        write_path_root(out, expr);
                        out.push_str(".*");
                    }
                }
            }
        }
    }
    if let Some(from) = &select.from {
        out.push_str(" FROM ");
        write_from(out, from);
    }
    write_where(out, &select.condition);
    for (i, key) in select.order_by.iter().enumerate() {
        out.push_str(if i == 0 { " ORDER BY " } else { ", " });
        write_expr(out, &key.expr, 0);
        if key.direction == OrderDirection::Desc {
            out.push_str(" DESC");
        }
    }
    if let Some(limit) = &select.limit {
        out.push_str(" LIMIT ");
        write_expr(out, limit, 0);
    }
    if let Some(offset) = &select.offset {
        out.push_str(" OFFSET ");
        write_expr(out, offset, 0);
    }
}

fn write_from(out: &mut String, item: &FromItem) {
    match item {
        FromItem::Scan(scan) => {
            write_expr(out, &scan.source, BP_UNARY);
            write_bindings(out, &scan.alias, &scan.at, &scan.by);
        }
        FromItem::Join {
            kind,
            left,
            right,
            on,
        } => {
            write_from(out, left);
            out.push_str(match kind {
                JoinKind::Cross => ", ",
                JoinKind::Inner => " INNER JOIN ",
                JoinKind::Left => " LEFT JOIN ",
            });
            write_from(out, right);
            if let Some(on) = on {
                out.push_str(" ON ");
                write_expr(out, on, 0);
            }
        }
    }
}

/// The binding power of the expression's outermost operator, as the parser assigns them.
fn binding_power(expr: &Expr) -> u8 {
    match expr {
        Expr::Binary { op, .. } => match op {
            BinaryOp::Or => BP_OR,
            BinaryOp::And => BP_AND,
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq => BP_PREDICATE,
            BinaryOp::Concat => BP_CONCAT,
            BinaryOp::Add | BinaryOp::Sub => BP_ADDITIVE,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => BP_MULTIPLICATIVE,
        },
        Expr::Unary {
            op: UnaryOp::Not, ..
        } => BP_NOT,
        Expr::Unary { .. } => BP_UNARY,
        Expr::Like { .. } | Expr::Between { .. } | Expr::In { .. } | Expr::Is { .. } => {
            BP_PREDICATE
        }
        _ => BP_PRIMARY,
    }
}

/// Writes `expr` where the parser reads an operand of binding power `min_bp`, in parentheses
/// when the expression binds more loosely than that.
fn write_expr(out: &mut String, expr: &Expr, min_bp: u8) {
    if binding_power(expr) < min_bp {
        out.push('(');
        write_expr(out, expr, 0);
        out.push(')');
        return;
    }
    let operand_bp = BP_PREDICATE + 1;
    match expr {
        Expr::Lit(literal) => write_literal(out, literal),
        Expr::Ion(text) => {
            out.push('`');
            out.push_str(text);
            out.push('`');
        }
        Expr::Param(_) => out.push('?'),
        Expr::Var(ident) => write_ident(out, ident),
        Expr::Path { root, steps } => {
            write_path_root(out, root);
            for step in steps {
                match step {
                    PathStep::Field(ident) => {
                        out.push('.');
                        write_ident(out, ident);
                    }
                    PathStep::Index(index) => {
                        out.push('[');
                        write_expr(out, index, 0);
                        out.push(']');
                    }
                    PathStep::AllElements => out.push_str("[*]"),
                    PathStep::AllFields => out.push_str(".*"),
                }
            }
        }
        Expr::Struct(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, key, 0);
                out.push_str(": ");
                write_expr(out, value, 0);
            }
            out.push('}');
        }
        Expr::List(items) => {
            out.push('[');
            write_list(out, items);
            out.push(']');
        }
        Expr::Bag(items) => {
            out.push_str("<<");
            write_list(out, items);
            out.push_str(">>");
        }
        Expr::Unary { op, operand } => match op {
            UnaryOp::Not => {
                out.push_str("NOT ");
                write_expr(out, operand, BP_NOT);
            }
            UnaryOp::Neg | UnaryOp::Plus => {
                // Always parenthesized: `-5` would be a literal and `--x` a comment.
                out.push_str(if *op == UnaryOp::Neg { "-(" } else { "+(" });
                write_expr(out, operand, 0);
                out.push(')');
            }
        },
        Expr::Binary { op, left, right } => {
            let bp = binding_power(expr);
            write_expr(out, left, bp);
            let _ = write!(out, " {} ", binary_text(*op));
            write_expr(out, right, bp + 1);
        }
        Expr::Like {
            value,
            pattern,
            escape,
            negated,
        } => {
            write_expr(out, value, BP_PREDICATE);
            out.push_str(if *negated { " NOT LIKE " } else { " LIKE " });
            write_expr(out, pattern, operand_bp);
            if let Some(escape) = escape {
                out.push_str(" ESCAPE ");
                write_expr(out, escape, operand_bp);
            }
        }
        Expr::Between {
            value,
            low,
            high,
            negated,
        } => {
            write_expr(out, value, BP_PREDICATE);
            out.push_str(if *negated {
                " NOT BETWEEN "
            } else {
                " BETWEEN "
            });
            write_expr(out, low, operand_bp);
            out.push_str(" AND ");
            write_expr(out, high, operand_bp);
        }
        Expr::In {
            value,
            collection,
            negated,
        } => {
            write_expr(out, value, BP_PREDICATE);
            out.push_str(if *negated { " NOT IN " } else { " IN " });
            match collection.as_ref() {
                // `(a, b)` is how the parser reads a list after IN; `[]` is the empty list.
                Expr::List(items) if !items.is_empty() => {
                    out.push('(');
                    write_list(out, items);
                    out.push(')');
                }
                collection => write_expr(out, collection, operand_bp),
            }
        }
        Expr::Is {
            value,
            test,
            negated,
        } => {
            write_expr(out, value, BP_PREDICATE);
            out.push_str(if *negated { " IS NOT " } else { " IS " });
            out.push_str(match test {
                IsTest::Null => "NULL",
                IsTest::Missing => "MISSING",
            });
        }
        Expr::Call { name, args } => match (name.as_str(), args.as_slice()) {
            ("extract", [Expr::Var(part), value]) => {
                out.push_str("EXTRACT(");
                write_ident(out, part);
                out.push_str(" FROM ");
                write_expr(out, value, 0);
                out.push(')');
            }
            _ => {
                out.push_str(name);
                out.push('(');
                write_list(out, args);
                out.push(')');
            }
        },
        Expr::CountStar => out.push_str("COUNT(*)"),
        Expr::Cast { value, to } => {
            out.push_str("CAST(");
            write_expr(out, value, 0);
            out.push_str(" AS ");
            out.push_str(&to.name);
            for (i, param) in to.params.iter().enumerate() {
                out.push_str(if i == 0 { "(" } else { ", " });
                let _ = write!(out, "{param}");
            }
            if !to.params.is_empty() {
                out.push(')');
            }
            out.push(')');
        }
        Expr::Trim { spec, chars, value } => {
            out.push_str(match spec {
                TrimSpec::Both => "TRIM(BOTH ",
                TrimSpec::Leading => "TRIM(LEADING ",
                TrimSpec::Trailing => "TRIM(TRAILING ",
            });
            if let Some(chars) = chars {
                write_expr(out, chars, 0);
                out.push(' ');
            }
            out.push_str("FROM ");
            write_expr(out, value, 0);
            out.push(')');
        }
        Expr::Case {
            operand,
            branches,
            otherwise,
        } => {
            out.push_str("CASE");
            if let Some(operand) = operand {
                out.push(' ');
                write_expr(out, operand, 0);
            }
            for (when, then) in branches {
                out.push_str(" WHEN ");
                write_expr(out, when, 0);
                out.push_str(" THEN ");
                write_expr(out, then, 0);
            }
            if let Some(otherwise) = otherwise {
                out.push_str(" ELSE ");
                write_expr(out, otherwise, 0);
            }
            out.push_str(" END");
        }
        Expr::Subquery(select) => {
            out.push('(');
            write_select(out, select);
            out.push(')');
        }
    }
}

/// Writes the root of a path: bare when the parser reads it as a primary followed by steps,
/// parenthesized otherwise (including a path, whose steps would merge with the outer ones).
fn write_path_root(out: &mut String, root: &Expr) {
    if binding_power(root) == BP_PRIMARY && !matches!(root, Expr::Path { .. }) {
        write_expr(out, root, BP_PRIMARY);
    } else {
        out.push('(');
        write_expr(out, root, 0);
        out.push(')');
    }
}

fn write_literal(out: &mut String, literal: &Literal) {
    match literal {
        Literal::Null => out.push_str("NULL"),
        Literal::Missing => out.push_str("MISSING"),
        Literal::Bool(true) => out.push_str("TRUE"),
        Literal::Bool(false) => out.push_str("FALSE"),
        Literal::Int(value) => {
            let _ = write!(out, "{value}");
        }
        Literal::Decimal(text) => out.push_str(text),
        // `{:e}` always has an exponent, so the text reads back as a float, and Rust prints the
        // shortest digits that read back to the same value.
        Literal::Float(value) => {
            let _ = write!(out, "{value:e}");
        }
        Literal::String(text) => write_quoted(out, text, '\''),
    }
}

fn binary_text(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Or => "OR",
        BinaryOp::And => "AND",
        BinaryOp::Eq => "=",
        BinaryOp::NotEq => "<>",
        BinaryOp::Lt => "<",
        BinaryOp::LtEq => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::GtEq => ">=",
        BinaryOp::Concat => "||",
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
        BinaryOp::Mod => "%",
    }
}
