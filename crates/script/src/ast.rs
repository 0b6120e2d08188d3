//! The syntax tree of the subset, and its S-expression rendering for snapshot tests.

use std::fmt;

use crate::error::Span;
use crate::value::{Value, java_double};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    /// `===`: the same instance; for values, equal and of the same type.
    Same,
    NotSame,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Same => "===",
            BinOp::NotSame => "!==",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Literal(Value),
    Var(String),
    /// `target.name`, or `target?.name` when `null_safe`.
    Member {
        target: Box<Expr>,
        name: String,
        null_safe: bool,
    },
    /// `target[index]`.
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    /// `target.method(args)`.
    Call {
        target: Box<Expr>,
        method: String,
        args: Vec<Expr>,
        null_safe: bool,
    },
    /// `Math.method(args)`.
    MathCall {
        method: String,
        args: Vec<Expr>,
    },
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// `a ?: b`: `a` unless it is null.
    Elvis(Box<Expr>, Box<Expr>),
    /// `target = value`, or `target op= value` when `op` is set.
    Assign {
        target: Box<Expr>,
        op: Option<BinOp>,
        value: Box<Expr>,
    },
    /// `++x`, `x--`, …: `delta` is 1 or -1.
    Step {
        target: Box<Expr>,
        delta: i8,
        prefix: bool,
    },
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stmt {
    Expr(Expr),
    /// `def x = …;` or `int x;`: the declared type is kept for numeric conversions.
    Declare {
        kind: DeclaredType,
        name: String,
        value: Option<Expr>,
        span: Span,
    },
    If {
        condition: Expr,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
    },
    Block(Vec<Stmt>),
    Return(Option<Expr>, Span),
}

/// Calls `f` with every expression of `stmt`, outermost first.
pub(crate) fn visit_stmt(stmt: &Stmt, f: &mut dyn FnMut(&Expr)) {
    match stmt {
        Stmt::Expr(expr) => visit_expr(expr, f),
        Stmt::Declare { value, .. } => {
            if let Some(value) = value {
                visit_expr(value, f);
            }
        }
        Stmt::If {
            condition,
            then,
            otherwise,
        } => {
            visit_expr(condition, f);
            for stmt in then.iter().chain(otherwise.iter().flatten()) {
                visit_stmt(stmt, f);
            }
        }
        Stmt::Block(stmts) => stmts.iter().for_each(|stmt| visit_stmt(stmt, f)),
        Stmt::Return(value, _) => {
            if let Some(value) = value {
                visit_expr(value, f);
            }
        }
    }
}

/// Calls `f` with `expr` and every expression inside it, outermost first.
pub(crate) fn visit_expr(expr: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(expr);
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Var(_) => {}
        ExprKind::Member { target, .. } | ExprKind::Step { target, .. } => visit_expr(target, f),
        ExprKind::Neg(inner) | ExprKind::Not(inner) => visit_expr(inner, f),
        ExprKind::Index { target, index } => {
            visit_expr(target, f);
            visit_expr(index, f);
        }
        ExprKind::Call { target, args, .. } => {
            visit_expr(target, f);
            args.iter().for_each(|arg| visit_expr(arg, f));
        }
        ExprKind::MathCall { args, .. } | ExprKind::List(args) => {
            args.iter().for_each(|arg| visit_expr(arg, f))
        }
        ExprKind::Binary { left, right, .. }
        | ExprKind::And(left, right)
        | ExprKind::Or(left, right)
        | ExprKind::Elvis(left, right) => {
            visit_expr(left, f);
            visit_expr(right, f);
        }
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            visit_expr(condition, f);
            visit_expr(then, f);
            visit_expr(otherwise, f);
        }
        ExprKind::Assign { target, value, .. } => {
            visit_expr(target, f);
            visit_expr(value, f);
        }
        ExprKind::Map(entries) => {
            for (key, value) in entries {
                visit_expr(key, f);
                visit_expr(value, f);
            }
        }
    }
}

/// Declared types a local may have; numbers assigned to a numeric local convert to its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeclaredType {
    Def,
    Int,
    Long,
    Double,
    Other(&'static str),
}

impl DeclaredType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DeclaredType::Def => "def",
            DeclaredType::Int => "int",
            DeclaredType::Long => "long",
            DeclaredType::Double => "double",
            DeclaredType::Other(name) => name,
        }
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for item in items {
        write!(f, " {item}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(Value::Str(s)) => write!(f, "{s:?}"),
            ExprKind::Literal(Value::Long(i)) => write!(f, "{i}L"),
            ExprKind::Literal(Value::Double(d)) => write!(f, "{}", java_double(*d)),
            ExprKind::Literal(value) => write!(f, "{}", value.java_string()),
            ExprKind::Var(name) => write!(f, "{name}"),
            ExprKind::Member {
                target,
                name,
                null_safe,
            } => write!(
                f,
                "({} {target} {name})",
                if *null_safe { "?." } else { "." }
            ),
            ExprKind::Index { target, index } => write!(f, "([] {target} {index})"),
            ExprKind::Call {
                target,
                method,
                args,
                null_safe,
            } => {
                write!(
                    f,
                    "({}{method} {target}",
                    if *null_safe { "?." } else { "." }
                )?;
                write_list(f, args)?;
                write!(f, ")")
            }
            ExprKind::MathCall { method, args } => {
                write!(f, "(Math.{method}")?;
                write_list(f, args)?;
                write!(f, ")")
            }
            ExprKind::Neg(e) => write!(f, "(neg {e})"),
            ExprKind::Not(e) => write!(f, "(! {e})"),
            ExprKind::Binary { op, left, right } => write!(f, "({} {left} {right})", op.symbol()),
            ExprKind::And(a, b) => write!(f, "(&& {a} {b})"),
            ExprKind::Or(a, b) => write!(f, "(|| {a} {b})"),
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => write!(f, "(? {condition} {then} {otherwise})"),
            ExprKind::Elvis(a, b) => write!(f, "(?: {a} {b})"),
            ExprKind::Assign { target, op, value } => {
                write!(f, "({}= {target} {value})", op.map_or("", BinOp::symbol))
            }
            ExprKind::Step {
                target,
                delta,
                prefix,
            } => {
                let op = if *delta > 0 { "++" } else { "--" };
                if *prefix {
                    write!(f, "({op}x {target})")
                } else {
                    write!(f, "(x{op} {target})")
                }
            }
            ExprKind::List(items) => {
                write!(f, "(list")?;
                write_list(f, items)?;
                write!(f, ")")
            }
            ExprKind::Map(entries) => {
                write!(f, "(map")?;
                for (k, v) in entries {
                    write!(f, " {k}:{v}")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Expr(e) => write!(f, "{e}"),
            Stmt::Declare {
                kind, name, value, ..
            } => match value {
                Some(value) => write!(f, "(declare {} {name} {value})", kind.name()),
                None => write!(f, "(declare {} {name})", kind.name()),
            },
            Stmt::If {
                condition,
                then,
                otherwise,
            } => {
                write!(f, "(if {condition} (block")?;
                write_list(f, then)?;
                write!(f, ")")?;
                if let Some(otherwise) = otherwise {
                    write!(f, " (block")?;
                    write_list(f, otherwise)?;
                    write!(f, ")")?;
                }
                write!(f, ")")
            }
            Stmt::Block(body) => {
                write!(f, "(block")?;
                write_list(f, body)?;
                write!(f, ")")
            }
            Stmt::Return(Some(e), _) => write!(f, "(return {e})"),
            Stmt::Return(None, _) => write!(f, "(return)"),
        }
    }
}
