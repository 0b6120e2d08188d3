//! The S-expression rendering of the syntax tree, through `Display`.
//!
//! The rendering is one line, unambiguous and stable: every distinct tree renders differently,
//! so snapshot tests and logs can compare trees as text. Shapes, by example:
//! `(select (project (item (path r .VIN)) (all_fields r)) (from (scan Vehicle (as r))) (where (= (path r .Year) 2019)))`.
//! Regular identifiers print bare, quoted identifiers in double quotes, strings in single quotes,
//! Ion literals in backticks, parameters as `?0`, decimals with their point and floats with an
//! exponent, so that literals of different types never print alike.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;

/// Writes `(head item item ...)`, with the items separated by single spaces.
fn list(f: &mut Formatter<'_>, head: &str, items: &[&dyn Display]) -> fmt::Result {
    f.write_char('(')?;
    f.write_str(head)?;
    for item in items {
        f.write_char(' ')?;
        item.fmt(f)?;
    }
    f.write_char(')')
}

/// Writes `(head value)` when the value is present, nothing otherwise; preceded by a space.
fn optional<T: Display>(f: &mut Formatter<'_>, head: &str, value: &Option<T>) -> fmt::Result {
    match value {
        Some(value) => {
            f.write_char(' ')?;
            list(f, head, &[value])
        }
        None => Ok(()),
    }
}

/// Writes each item preceded by a space.
fn spaced<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for item in items {
        write!(f, " {item}")?;
    }
    Ok(())
}

fn quote(f: &mut Formatter<'_>, text: &str, quote: char) -> fmt::Result {
    f.write_char(quote)?;
    for c in text.chars() {
        if c == quote {
            f.write_char(quote)?;
        }
        f.write_char(c)?;
    }
    f.write_char(quote)
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.quoted {
            quote(f, &self.name, '"')
        } else {
            f.write_str(&self.name)
        }
    }
}

fn options(f: &mut Formatter<'_>, options: &[WithOption]) -> fmt::Result {
    if options.is_empty() {
        return Ok(());
    }
    f.write_str(" (with")?;
    for option in options {
        write!(f, " ({} {})", option.name, option.value)?;
    }
    f.write_char(')')
}

fn bindings(
    f: &mut Formatter<'_>,
    alias: &Option<Ident>,
    at: &Option<Ident>,
    by: &Option<Ident>,
) -> fmt::Result {
    optional(f, "as", alias)?;
    optional(f, "at", at)?;
    optional(f, "by", by)
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateTable(create) => {
                write!(f, "(create_table {}", create.table)?;
                options(f, &create.options)?;
                f.write_char(')')
            }
            Statement::DropTable(drop) => list(f, "drop_table", &[&drop.table]),
            Statement::UndropTable(undrop) => list(f, "undrop_table", &[&undrop.table_id]),
            Statement::CreateIndex(create) => {
                list(f, "create_index", &[&create.table, &create.field])
            }
            Statement::DropIndex(drop) => {
                write!(f, "(drop_index {} {}", drop.index_id, drop.table)?;
                options(f, &drop.options)?;
                f.write_char(')')
            }
            Statement::Insert(insert) => match &insert.source {
                InsertSource::Value(expr) => write!(f, "(insert {} (value {expr}))", insert.table),
                InsertSource::Collection(expr) => {
                    write!(f, "(insert {} (collection {expr}))", insert.table)
                }
            },
            Statement::Update(update) => {
                let head = match update.form {
                    UpdateForm::Update => "update",
                    UpdateForm::FromFirst => "from_update",
                };
                write!(f, "({head} {}", update.target)?;
                spaced(f, &update.ops)?;
                optional(f, "where", &update.condition)?;
                f.write_char(')')
            }
            Statement::Delete(delete) => {
                write!(f, "(delete {}", delete.target)?;
                optional(f, "where", &delete.condition)?;
                f.write_char(')')
            }
            Statement::Select(select) => select.fmt(f),
        }
    }
}

impl Display for DmlTarget {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.table.fmt(f)?;
        bindings(f, &self.alias, &self.at, &self.by)
    }
}

impl Display for DmlOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            DmlOp::Set { path, value } => list(f, "set", &[path, value]),
            DmlOp::Remove { path } => list(f, "remove", &[path]),
            DmlOp::InsertInto {
                path,
                value,
                position,
            } => {
                write!(f, "(insert_into {path} {value}")?;
                optional(f, "at", position)?;
                f.write_char(')')
            }
        }
    }
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("(select")?;
        if self.quantifier == SetQuantifier::Distinct {
            f.write_str(" distinct")?;
        }
        match &self.projection {
            Projection::Star => f.write_str(" (project *)")?,
            Projection::Value(expr) => write!(f, " (project_value {expr})")?,
            Projection::Items(items) => {
                f.write_str(" (project")?;
                spaced(f, items)?;
                f.write_char(')')?;
            }
        }
        optional(f, "from", &self.from)?;
        optional(f, "where", &self.condition)?;
        if !self.order_by.is_empty() {
            f.write_str(" (order_by")?;
            spaced(f, &self.order_by)?;
            f.write_char(')')?;
        }
        optional(f, "limit", &self.limit)?;
        optional(f, "offset", &self.offset)?;
        f.write_char(')')
    }
}

impl Display for ProjectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ProjectItem::Expr { expr, alias } => {
                write!(f, "(item {expr}")?;
                optional(f, "as", alias)?;
                f.write_char(')')
            }
            ProjectItem::AllFields(expr) => list(f, "all_fields", &[expr]),
        }
    }
}

impl Display for FromItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FromItem::Scan(scan) => scan.fmt(f),
            FromItem::Join {
                kind,
                left,
                right,
                on,
            } => {
                let head = match kind {
                    JoinKind::Cross => "cross_join",
                    JoinKind::Inner => "inner_join",
                    JoinKind::Left => "left_join",
                };
                write!(f, "({head} {left} {right}")?;
                optional(f, "on", on)?;
                f.write_char(')')
            }
        }
    }
}

impl Display for Scan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "(scan {}", self.source)?;
        bindings(f, &self.alias, &self.at, &self.by)?;
        f.write_char(')')
    }
}

impl Display for OrderKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let head = match self.direction {
            OrderDirection::Asc => "asc",
            OrderDirection::Desc => "desc",
        };
        list(f, head, &[&self.expr])
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Missing => f.write_str("missing"),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Int(value) => write!(f, "{value}"),
            Literal::Decimal(text) => f.write_str(text),
            Literal::Float(value) => write!(f, "{value:e}"),
            Literal::String(text) => quote(f, text, '\''),
        }
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
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
        })
    }
}

impl Display for TypeName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.params.is_empty() {
            return write!(f, "(type {})", self.name);
        }
        write!(f, "(type {}", self.name)?;
        spaced(f, &self.params)?;
        f.write_char(')')
    }
}

impl Display for PathStep {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PathStep::Field(ident) => write!(f, ".{ident}"),
            PathStep::Index(expr) => write!(f, "[{expr}]"),
            PathStep::AllElements => f.write_str("[*]"),
            PathStep::AllFields => f.write_str(".*"),
        }
    }
}

fn negatable(negated: bool, head: &str) -> String {
    if negated {
        format!("not_{head}")
    } else {
        head.to_owned()
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Lit(literal) => literal.fmt(f),
            Expr::Ion(text) => write!(f, "`{text}`"),
            Expr::Param(index) => write!(f, "?{index}"),
            Expr::Var(ident) => ident.fmt(f),
            Expr::Path { root, steps } => {
                write!(f, "(path {root}")?;
                spaced(f, steps)?;
                f.write_char(')')
            }
            Expr::Struct(fields) => {
                f.write_str("(struct")?;
                for (key, value) in fields {
                    write!(f, " ({key} {value})")?;
                }
                f.write_char(')')
            }
            Expr::List(items) => {
                f.write_str("(list")?;
                spaced(f, items)?;
                f.write_char(')')
            }
            Expr::Bag(items) => {
                f.write_str("(bag")?;
                spaced(f, items)?;
                f.write_char(')')
            }
            Expr::Unary { op, operand } => {
                let head = match op {
                    UnaryOp::Not => "not",
                    UnaryOp::Neg => "neg",
                    UnaryOp::Plus => "pos",
                };
                list(f, head, &[operand])
            }
            Expr::Binary { op, left, right } => list(f, &op.to_string(), &[left, right]),
            Expr::Like {
                value,
                pattern,
                escape,
                negated,
            } => {
                write!(f, "({} {value} {pattern}", negatable(*negated, "like"))?;
                optional(f, "escape", escape)?;
                f.write_char(')')
            }
            Expr::Between {
                value,
                low,
                high,
                negated,
            } => list(f, &negatable(*negated, "between"), &[value, low, high]),
            Expr::In {
                value,
                collection,
                negated,
            } => list(f, &negatable(*negated, "in"), &[value, collection]),
            Expr::Is {
                value,
                test,
                negated,
            } => {
                let test = match test {
                    IsTest::Null => "null",
                    IsTest::Missing => "missing",
                };
                let head = if *negated {
                    format!("is_not_{test}")
                } else {
                    format!("is_{test}")
                };
                list(f, &head, &[value])
            }
            Expr::Call { name, args } => {
                write!(f, "(call {name}")?;
                spaced(f, args)?;
                f.write_char(')')
            }
            Expr::CountStar => f.write_str("(count_star)"),
            Expr::Cast { value, to } => list(f, "cast", &[value, to]),
            Expr::Trim { spec, chars, value } => {
                let spec = match spec {
                    TrimSpec::Both => "both",
                    TrimSpec::Leading => "leading",
                    TrimSpec::Trailing => "trailing",
                };
                write!(f, "(trim {spec}")?;
                optional(f, "chars", chars)?;
                write!(f, " {value})")
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                f.write_str("(case")?;
                if let Some(operand) = operand {
                    write!(f, " {operand}")?;
                }
                for (when, then) in branches {
                    write!(f, " (when {when} {then})")?;
                }
                optional(f, "else", otherwise)?;
                f.write_char(')')
            }
            Expr::Subquery(select) => list(f, "subquery", &[select]),
        }
    }
}

impl Display for WithOption {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        list(f, &self.name.to_string(), &[&self.value])
    }
}
