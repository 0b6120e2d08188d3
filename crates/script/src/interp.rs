//! The tree-walking interpreter: Java's numeric promotion (`int` < `long` < `double`, integer
//! arithmetic wrapping, `/ by zero`), Painless's `def` equality (numbers compare by value across
//! types), string concatenation with Java's `String.valueOf`, fields and elements as places that
//! can be assigned, and the methods of maps, lists, strings and `Math` the subset offers. Every
//! evaluated node and every copied or scanned element is charged to a budget of
//! [`EXECUTION_STEPS_MAX`] units.

use std::cmp::Ordering;

use crate::ast::{BinOp, DeclaredType, Expr, ExprKind, Stmt};
use crate::error::Span;
use crate::value::{Map, Value};
use crate::{EXECUTION_STEPS_MAX, STRING_BYTES_MAX};

/// The methods of `Math` in the subset.
pub(crate) const MATH_METHODS: &[&str] = &[
    "max", "min", "abs", "floor", "ceil", "round", "sqrt", "pow", "log", "log10", "exp", "signum",
];

/// A runtime failure: the Java exception Painless would throw, and where.
#[derive(Debug)]
pub(crate) struct Failure {
    pub span: Span,
    pub kind: &'static str,
    pub reason: String,
}

enum Flow {
    Fail(Failure),
    Return(Value),
}

impl From<Failure> for Flow {
    fn from(failure: Failure) -> Flow {
        Flow::Fail(failure)
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn fail(span: Span, kind: &'static str, reason: impl Into<String>) -> Failure {
    Failure {
        span,
        kind,
        reason: reason.into(),
    }
}

fn null_pointer(span: Span, what: &str) -> Failure {
    fail(
        span,
        "null_pointer_exception",
        format!("cannot {what} on a null value"),
    )
}

fn class_cast(span: Span, reason: impl Into<String>) -> Failure {
    fail(span, "class_cast_exception", reason)
}

fn illegal(span: Span, reason: impl Into<String>) -> Failure {
    fail(span, "illegal_argument_exception", reason)
}

pub(crate) fn execute(body: &[Stmt], variables: &mut Map) -> Result<Value> {
    let mut interpreter = Interpreter {
        variables,
        locals: Vec::new(),
        steps: 0,
    };
    let mut last = Value::Null;
    for statement in body {
        match interpreter.statement(statement, &mut last) {
            Ok(()) => {}
            Err(Flow::Return(value)) => return Ok(value),
            Err(Flow::Fail(failure)) => return Err(failure),
        }
    }
    Ok(last)
}

struct Local {
    name: String,
    kind: DeclaredType,
    value: Value,
}

/// A key on the way from a variable to a field or element.
enum Key {
    /// `.name`: a map's entry, or a getter (`.value`, `.empty`).
    Name(String),
    /// `[index]`: a map's key or a list's element.
    Index(Value),
}

/// A variable and the keys that lead from it to a field or an element.
struct Place {
    root: String,
    root_span: Span,
    keys: Vec<(Key, Span)>,
}

struct Interpreter<'v> {
    variables: &'v mut Map,
    locals: Vec<Local>,
    steps: u64,
}

impl Interpreter<'_> {
    fn charge(&mut self, units: u64, span: Span) -> Result<()> {
        self.steps = self.steps.saturating_add(units);
        if self.steps > EXECUTION_STEPS_MAX {
            return Err(fail(
                span,
                "circuit_breaking_exception",
                format!(
                    "the script spent more than [{EXECUTION_STEPS_MAX}] units of work; scripts are bounded"
                ),
            ));
        }
        Ok(())
    }

    fn copy(&mut self, value: &Value, span: Span) -> Result<Value> {
        self.charge(value.weight(), span)?;
        Ok(value.clone())
    }

    fn statement(&mut self, statement: &Stmt, last: &mut Value) -> std::result::Result<(), Flow> {
        match statement {
            Stmt::Expr(expression) => {
                *last = self.eval(expression)?;
            }
            Stmt::Declare {
                kind,
                name,
                value,
                span,
            } => {
                self.charge(1, *span)?;
                let value = match value {
                    Some(value) => {
                        let computed = self.eval(value)?;
                        convert(*kind, computed, value.span)?
                    }
                    None => match kind {
                        DeclaredType::Int => Value::Int(0),
                        DeclaredType::Long => Value::Long(0),
                        DeclaredType::Double => Value::Double(0.0),
                        _ => Value::Null,
                    },
                };
                if self.locals.iter().any(|l| l.name == *name) || self.variables.contains_key(name)
                {
                    return Err(
                        illegal(*span, format!("variable [{name}] is already defined")).into(),
                    );
                }
                self.locals.push(Local {
                    name: name.clone(),
                    kind: *kind,
                    value,
                });
            }
            Stmt::If {
                condition,
                then,
                otherwise,
            } => {
                let test = self.eval(condition)?;
                let test = as_bool(&test, condition.span)?;
                let branch = if test { Some(then) } else { otherwise.as_ref() };
                if let Some(branch) = branch {
                    self.block(branch, last)?;
                }
            }
            Stmt::Block(body) => self.block(body, last)?,
            Stmt::Return(value, span) => {
                self.charge(1, *span)?;
                let value = match value {
                    Some(value) => self.eval(value)?,
                    None => Value::Null,
                };
                return Err(Flow::Return(value));
            }
        }
        Ok(())
    }

    /// Runs a block; its locals end with it.
    fn block(&mut self, body: &[Stmt], last: &mut Value) -> std::result::Result<(), Flow> {
        let mark = self.locals.len();
        let mut outcome = Ok(());
        for statement in body {
            outcome = self.statement(statement, last);
            if outcome.is_err() {
                break;
            }
        }
        self.locals.truncate(mark);
        outcome
    }

    fn eval(&mut self, expression: &Expr) -> Result<Value> {
        let span = expression.span;
        self.charge(1, span)?;
        match &expression.kind {
            ExprKind::Literal(value) => Ok(value.clone()),
            ExprKind::Var(_)
            | ExprKind::Member {
                null_safe: false, ..
            }
            | ExprKind::Index { .. }
                if self.is_path(expression) =>
            {
                let place = self.place(expression)?;
                self.read(&place)
            }
            ExprKind::Var(name) => Err(illegal(span, format!("variable [{name}] is not defined"))),
            ExprKind::Member {
                target,
                name,
                null_safe,
            } => {
                let value = self.eval(target)?;
                if *null_safe && value == Value::Null {
                    return Ok(Value::Null);
                }
                let key = Key::Name(name.clone());
                match child(&value, &key, span)? {
                    Child::Borrowed(child) => self.copy(child, span),
                    Child::Owned(child) => Ok(child),
                }
            }
            ExprKind::Index { target, index } => {
                let value = self.eval(target)?;
                let index = self.eval(index)?;
                match child(&value, &Key::Index(index), span)? {
                    Child::Borrowed(child) => self.copy(child, span),
                    Child::Owned(child) => Ok(child),
                }
            }
            ExprKind::Call {
                target,
                method,
                args,
                null_safe,
            } => {
                let mut arguments = Vec::with_capacity(args.len());
                for arg in args {
                    arguments.push(self.eval(arg)?);
                }
                if self.is_path(target) {
                    let place = self.place(target)?;
                    let mut steps = self.steps;
                    let receiver = self.place_mut(&place)?;
                    if *null_safe && *receiver == Value::Null {
                        return Ok(Value::Null);
                    }
                    let result = call(receiver, method, arguments, span, &mut steps);
                    self.steps = steps;
                    self.charge(0, span)?;
                    result
                } else {
                    let mut receiver = self.eval(target)?;
                    if *null_safe && receiver == Value::Null {
                        return Ok(Value::Null);
                    }
                    let mut steps = self.steps;
                    let result = call(&mut receiver, method, arguments, span, &mut steps);
                    self.steps = steps;
                    self.charge(0, span)?;
                    result
                }
            }
            ExprKind::MathCall { method, args } => {
                let mut arguments = Vec::with_capacity(args.len());
                for arg in args {
                    arguments.push(self.eval(arg)?);
                }
                math(method, &arguments, span)
            }
            ExprKind::Neg(operand) => {
                let value = self.eval(operand)?;
                match value {
                    Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
                    Value::Long(i) => Ok(Value::Long(i.wrapping_neg())),
                    Value::Double(d) => Ok(Value::Double(-d)),
                    Value::Null => Err(null_pointer(span, "negate")),
                    other => Err(class_cast(
                        span,
                        format!("cannot apply [-] to type [{}]", other.type_name()),
                    )),
                }
            }
            ExprKind::Not(operand) => {
                let value = self.eval(operand)?;
                Ok(Value::Bool(!as_bool(&value, operand.span)?))
            }
            ExprKind::Binary { op, left, right } => {
                let left = self.eval(left)?;
                let right = self.eval(right)?;
                self.charge(left.weight().min(right.weight()), span)?;
                binary(*op, &left, &right, span)
            }
            ExprKind::And(left, right) => {
                let l = self.eval(left)?;
                if !as_bool(&l, left.span)? {
                    return Ok(Value::Bool(false));
                }
                let r = self.eval(right)?;
                Ok(Value::Bool(as_bool(&r, right.span)?))
            }
            ExprKind::Or(left, right) => {
                let l = self.eval(left)?;
                if as_bool(&l, left.span)? {
                    return Ok(Value::Bool(true));
                }
                let r = self.eval(right)?;
                Ok(Value::Bool(as_bool(&r, right.span)?))
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let test = self.eval(condition)?;
                if as_bool(&test, condition.span)? {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            ExprKind::Elvis(value, otherwise) => match self.eval(value)? {
                Value::Null => self.eval(otherwise),
                value => Ok(value),
            },
            ExprKind::Assign { target, op, value } => {
                let place = self.place(target)?;
                let value = self.eval(value)?;
                let value = match op {
                    None => value,
                    Some(op) => {
                        let current = self.read(&place)?;
                        binary(*op, &current, &value, span)?
                    }
                };
                self.write(&place, value.clone(), span)?;
                self.copy(&value, span)
            }
            ExprKind::Step {
                target,
                delta,
                prefix,
            } => {
                let place = self.place(target)?;
                let current = self.read(&place)?;
                let next = match current {
                    Value::Int(i) => Value::Int(i.wrapping_add(i32::from(*delta))),
                    Value::Long(i) => Value::Long(i.wrapping_add(i64::from(*delta))),
                    Value::Double(d) => Value::Double(d + f64::from(*delta)),
                    Value::Null => return Err(null_pointer(span, "increment or decrement")),
                    ref other => {
                        return Err(class_cast(
                            span,
                            format!("cannot increment or decrement type [{}]", other.type_name()),
                        ));
                    }
                };
                self.write(&place, next.clone(), span)?;
                Ok(if *prefix { next } else { current })
            }
            ExprKind::List(items) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    list.push(self.eval(item)?);
                }
                Ok(Value::List(list))
            }
            ExprKind::Map(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    let key_span = key.span;
                    let key = match self.eval(key)? {
                        Value::Str(s) => s,
                        other => {
                            return Err(illegal(
                                key_span,
                                format!(
                                    "map keys must be strings in Sluice's script subset, found [{}]",
                                    other.type_name()
                                ),
                            ));
                        }
                    };
                    let value = self.eval(value)?;
                    map.insert(key, value);
                }
                Ok(Value::Map(map))
            }
        }
    }

    /// Whether an expression names a place: a variable that exists, and fields or elements of it.
    fn is_path(&self, expression: &Expr) -> bool {
        match &expression.kind {
            ExprKind::Var(name) => self.has_variable(name),
            ExprKind::Member {
                target,
                null_safe: false,
                ..
            }
            | ExprKind::Index { target, .. } => self.is_path(target),
            _ => false,
        }
    }

    fn has_variable(&self, name: &str) -> bool {
        self.locals.iter().any(|l| l.name == name) || self.variables.contains_key(name)
    }

    /// Evaluates the keys of a place expression.
    fn place(&mut self, expression: &Expr) -> Result<Place> {
        match &expression.kind {
            ExprKind::Var(name) => Ok(Place {
                root: name.clone(),
                root_span: expression.span,
                keys: Vec::new(),
            }),
            ExprKind::Member { target, name, .. } => {
                let mut place = self.place(target)?;
                place.keys.push((Key::Name(name.clone()), expression.span));
                Ok(place)
            }
            ExprKind::Index { target, index } => {
                let mut place = self.place(target)?;
                let index = self.eval(index)?;
                place.keys.push((Key::Index(index), expression.span));
                Ok(place)
            }
            _ => Err(illegal(expression.span, "expected a variable or a field")),
        }
    }

    fn root(&self, place: &Place) -> Result<&Value> {
        if let Some(local) = self.locals.iter().rev().find(|l| l.name == place.root) {
            return Ok(&local.value);
        }
        self.variables.get(&place.root).ok_or_else(|| {
            illegal(
                place.root_span,
                format!("variable [{}] is not defined", place.root),
            )
        })
    }

    fn root_mut(&mut self, place: &Place) -> Result<&mut Value> {
        if let Some(local) = self.locals.iter_mut().rev().find(|l| l.name == place.root) {
            return Ok(&mut local.value);
        }
        self.variables.get_mut(&place.root).ok_or_else(|| {
            illegal(
                place.root_span,
                format!("variable [{}] is not defined", place.root),
            )
        })
    }

    fn read(&mut self, place: &Place) -> Result<Value> {
        let mut current = Child::Borrowed(self.root(place)?);
        for (key, span) in &place.keys {
            current = match current {
                Child::Borrowed(value) => child(value, key, *span)?,
                Child::Owned(value) => match child(&value, key, *span)? {
                    Child::Borrowed(v) => Child::Owned(v.clone()),
                    Child::Owned(v) => Child::Owned(v),
                },
            };
        }
        let (value, span) = match current {
            Child::Borrowed(value) => (value.clone(), place.root_span),
            Child::Owned(value) => (value, place.root_span),
        };
        self.charge(value.weight(), span)?;
        Ok(value)
    }

    /// The value at a place, to call a method on; every key on the way must exist.
    fn place_mut(&mut self, place: &Place) -> Result<&mut Value> {
        let mut current = self.root_mut(place)?;
        for (key, span) in &place.keys {
            current = child_mut(current, key, *span)?;
        }
        Ok(current)
    }

    fn write(&mut self, place: &Place, value: Value, span: Span) -> Result<()> {
        let Some(((last_key, last_span), keys)) = place.keys.split_last() else {
            if let Some(local) = self.locals.iter_mut().rev().find(|l| l.name == place.root) {
                local.value = convert(local.kind, value, span)?;
                return Ok(());
            }
            return match self.variables.get_mut(&place.root) {
                Some(variable) => {
                    *variable = value;
                    Ok(())
                }
                None => Err(illegal(
                    place.root_span,
                    format!("variable [{}] is not defined", place.root),
                )),
            };
        };
        let mut current = self.root_mut(place)?;
        for (key, key_span) in keys {
            current = child_mut(current, key, *key_span)?;
        }
        match (current, last_key) {
            (Value::Map(map), Key::Name(name)) => {
                map.insert(name.clone(), value);
                Ok(())
            }
            (Value::Map(map), Key::Index(Value::Str(name))) => {
                map.insert(name.clone(), value);
                Ok(())
            }
            (Value::List(list), Key::Index(index)) => {
                let position = list_index(index, list.len(), *last_span)?;
                if let Some(slot) = list.get_mut(position) {
                    *slot = value;
                }
                Ok(())
            }
            (Value::Null, _) => Err(null_pointer(*last_span, "assign a field")),
            (container, Key::Name(name)) => Err(illegal(
                *last_span,
                format!(
                    "cannot assign the field [{name}] of type [{}]",
                    container.type_name()
                ),
            )),
            (container, Key::Index(index)) => Err(illegal(
                *last_span,
                format!(
                    "cannot assign an element [{}] of type [{}]",
                    index.java_string(),
                    container.type_name()
                ),
            )),
        }
    }
}

enum Child<'v> {
    Borrowed(&'v Value),
    Owned(Value),
}

/// `value.name` or `value[index]` for reading: a missing map entry reads as null.
fn child<'v>(value: &'v Value, key: &Key, span: Span) -> Result<Child<'v>> {
    const NULL: &Value = &Value::Null;
    match (value, key) {
        (Value::Map(map), Key::Name(name)) => Ok(Child::Borrowed(map.get(name).unwrap_or(NULL))),
        (Value::Map(map), Key::Index(Value::Str(name))) => {
            Ok(Child::Borrowed(map.get(name).unwrap_or(NULL)))
        }
        (Value::Map(_), Key::Index(other)) => Err(illegal(
            span,
            format!("map keys are strings, found [{}]", other.type_name()),
        )),
        (Value::List(list) | Value::DocValues(list), Key::Index(index)) => {
            let position = list_index(index, list.len(), span)?;
            Ok(Child::Borrowed(list.get(position).unwrap_or(NULL)))
        }
        (Value::DocValues(values), Key::Name(name)) if name == "value" => match values.first() {
            Some(first) => Ok(Child::Borrowed(first)),
            None => Err(fail(
                span,
                "illegal_state_exception",
                "A document doesn't have a value for a field! Use doc[<field>].size()==0 to check if a document is missing a field!",
            )),
        },
        (Value::DocValues(values), Key::Name(name)) if name == "values" => {
            Ok(Child::Owned(Value::List(values.clone())))
        }
        (Value::List(list) | Value::DocValues(list), Key::Name(name)) if name == "empty" => {
            Ok(Child::Owned(Value::Bool(list.is_empty())))
        }
        (Value::List(list) | Value::DocValues(list), Key::Name(name)) if name == "length" => Ok(
            Child::Owned(Value::Int(i32::try_from(list.len()).unwrap_or(i32::MAX))),
        ),
        (Value::Null, Key::Name(name)) => {
            Err(null_pointer(span, &format!("access the field [{name}]")))
        }
        (Value::Null, Key::Index(_)) => Err(null_pointer(span, "access an element")),
        (other, Key::Name(name)) => Err(illegal(
            span,
            format!("dynamic getter [{}, {name}] not found", other.type_name()),
        )),
        (other, Key::Index(_)) => Err(illegal(
            span,
            format!(
                "attempting to address a non-array type [{}] as an array",
                other.type_name()
            ),
        )),
    }
}

/// `value.name` or `value[index]` for a method call or an assignment under it: the entry must
/// exist and not be null.
fn child_mut<'v>(value: &'v mut Value, key: &Key, span: Span) -> Result<&'v mut Value> {
    let found = match (value, key) {
        (Value::Map(map), Key::Name(name) | Key::Index(Value::Str(name))) => map.get_mut(name),
        (Value::List(list), Key::Index(index)) => {
            let position = list_index(index, list.len(), span)?;
            list.get_mut(position)
        }
        (Value::Null, _) => return Err(null_pointer(span, "access a field")),
        (other, _) => {
            return Err(illegal(
                span,
                format!(
                    "cannot change a field or an element of type [{}]",
                    other.type_name()
                ),
            ));
        }
    };
    match found {
        Some(value) => Ok(value),
        None => Err(null_pointer(span, "access a field of a missing value")),
    }
}

/// A list position from an `int` or `long`, negative ones counting from the end as in Painless.
fn list_index(index: &Value, length: usize, span: Span) -> Result<usize> {
    let raw = match index {
        Value::Int(i) => i64::from(*i),
        Value::Long(i) => *i,
        other => {
            return Err(class_cast(
                span,
                format!("cannot use [{}] as a list index", other.type_name()),
            ));
        }
    };
    let length_i64 = i64::try_from(length).unwrap_or(i64::MAX);
    let position = if raw < 0 { raw + length_i64 } else { raw };
    if position < 0 || position >= length_i64 {
        return Err(fail(
            span,
            "index_out_of_bounds_exception",
            format!("Index {raw} out of bounds for length {length}"),
        ));
    }
    usize::try_from(position).map_err(|_| illegal(span, "list index out of range"))
}

fn as_bool(value: &Value, span: Span) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Null => Err(null_pointer(span, "use null as a boolean")),
        other => Err(class_cast(
            span,
            format!("Cannot cast {} to java.lang.Boolean", other.type_name()),
        )),
    }
}

/// A value assigned to a local of a declared type: numbers widen (`int` to `long` to
/// `double`); narrowing needs a cast, which the subset does not have.
fn convert(kind: DeclaredType, value: Value, span: Span) -> Result<Value> {
    let converted = match (kind, value) {
        (DeclaredType::Def | DeclaredType::Other(_), value) => value,
        (_, Value::Null) => {
            return Err(null_pointer(
                span,
                &format!("assign null to a [{}]", kind.name()),
            ));
        }
        (DeclaredType::Int, Value::Int(i)) => Value::Int(i),
        (DeclaredType::Long, Value::Int(i)) => Value::Long(i64::from(i)),
        (DeclaredType::Long, Value::Long(i)) => Value::Long(i),
        (DeclaredType::Double, Value::Int(i)) => Value::Double(f64::from(i)),
        (DeclaredType::Double, Value::Long(i)) => Value::Double(i as f64),
        (DeclaredType::Double, Value::Double(d)) => Value::Double(d),
        (kind, value) => {
            return Err(class_cast(
                span,
                format!("Cannot cast {} to {}", value.type_name(), kind.name()),
            ));
        }
    };
    Ok(converted)
}

/// Numbers after Java's binary numeric promotion.
#[derive(Debug, Clone, Copy)]
enum Promoted {
    Int(i32, i32),
    Long(i64, i64),
    Double(f64, f64),
}

fn promote(left: &Value, right: &Value) -> Option<Promoted> {
    let as_long = |v: &Value| match v {
        Value::Int(i) => Some(i64::from(*i)),
        Value::Long(i) => Some(*i),
        _ => None,
    };
    let as_double = |v: &Value| match v {
        Value::Int(i) => Some(f64::from(*i)),
        Value::Long(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    };
    match (left, right) {
        (Value::Int(a), Value::Int(b)) => Some(Promoted::Int(*a, *b)),
        (Value::Double(_), _) | (_, Value::Double(_)) => {
            Some(Promoted::Double(as_double(left)?, as_double(right)?))
        }
        _ => Some(Promoted::Long(as_long(left)?, as_long(right)?)),
    }
}

fn binary(op: BinOp, left: &Value, right: &Value, span: Span) -> Result<Value> {
    match op {
        BinOp::Eq => Ok(Value::Bool(def_equals(left, right))),
        BinOp::Ne => Ok(Value::Bool(!def_equals(left, right))),
        BinOp::Same => Ok(Value::Bool(java_equals(left, right))),
        BinOp::NotSame => Ok(Value::Bool(!java_equals(left, right))),
        BinOp::Add if matches!(left, Value::Str(_)) || matches!(right, Value::Str(_)) => {
            let text = format!("{}{}", left.java_string(), right.java_string());
            if text.len() > STRING_BYTES_MAX {
                return Err(fail(
                    span,
                    "circuit_breaking_exception",
                    format!("the script built a string longer than [{STRING_BYTES_MAX}] bytes"),
                ));
            }
            Ok(Value::Str(text))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ordering = match promote(left, right) {
                Some(Promoted::Int(a, b)) => Some(a.cmp(&b)),
                Some(Promoted::Long(a, b)) => Some(a.cmp(&b)),
                Some(Promoted::Double(a, b)) => a.partial_cmp(&b),
                None => return Err(operand_error(op, left, right, span)),
            };
            let result = match ordering {
                None => false,
                Some(ordering) => match op {
                    BinOp::Lt => ordering == Ordering::Less,
                    BinOp::Le => ordering != Ordering::Greater,
                    BinOp::Gt => ordering == Ordering::Greater,
                    _ => ordering != Ordering::Less,
                },
            };
            Ok(Value::Bool(result))
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
            let promoted =
                promote(left, right).ok_or_else(|| operand_error(op, left, right, span))?;
            arithmetic(op, promoted, span)
        }
    }
}

fn operand_error(op: BinOp, left: &Value, right: &Value, span: Span) -> Failure {
    if *left == Value::Null || *right == Value::Null {
        return null_pointer(span, &format!("apply [{}]", op.symbol()));
    }
    class_cast(
        span,
        format!(
            "Cannot apply [{}] operation to types [{}] and [{}].",
            op.symbol(),
            left.type_name(),
            right.type_name()
        ),
    )
}

/// Java's arithmetic on promoted operands: integers wrap, integer division truncates and
/// fails on zero, doubles follow IEEE 754 (`%` is `fmod`, as Rust's).
fn arithmetic(op: BinOp, promoted: Promoted, span: Span) -> Result<Value> {
    let by_zero = || fail(span, "arithmetic_exception", "/ by zero");
    Ok(match promoted {
        Promoted::Int(a, b) => Value::Int(match op {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::Div if b == 0 => return Err(by_zero()),
            BinOp::Div => a.wrapping_div(b),
            BinOp::Rem if b == 0 => return Err(by_zero()),
            _ => a.wrapping_rem(b),
        }),
        Promoted::Long(a, b) => Value::Long(match op {
            BinOp::Add => a.wrapping_add(b),
            BinOp::Sub => a.wrapping_sub(b),
            BinOp::Mul => a.wrapping_mul(b),
            BinOp::Div if b == 0 => return Err(by_zero()),
            BinOp::Div => a.wrapping_div(b),
            BinOp::Rem if b == 0 => return Err(by_zero()),
            _ => a.wrapping_rem(b),
        }),
        Promoted::Double(a, b) => Value::Double(match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            _ => a % b,
        }),
    })
}

/// Painless's `==` on `def`: numbers compare by value after promotion, everything else with
/// Java's `equals`.
fn def_equals(left: &Value, right: &Value) -> bool {
    match promote(left, right) {
        Some(Promoted::Int(a, b)) => a == b,
        Some(Promoted::Long(a, b)) => a == b,
        Some(Promoted::Double(a, b)) => a == b,
        None => java_equals(left, right),
    }
}

/// Java's `equals`: an `Integer` never equals a `Long`, collections compare element by element.
fn java_equals(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits() || (a == b && *a != 0.0),
        (Value::List(a) | Value::DocValues(a), Value::List(b) | Value::DocValues(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| java_equals(x, y))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| java_equals(v, w)))
        }
        _ => left == right,
    }
}

fn arity(method: &str, args: &[Value], expected: usize, span: Span) -> Result<()> {
    if args.len() == expected {
        Ok(())
    } else {
        Err(illegal(
            span,
            format!("dynamic method [{method}/{}] not found", args.len()),
        ))
    }
}

fn string_arg<'a>(method: &str, args: &'a [Value], position: usize, span: Span) -> Result<&'a str> {
    match args.get(position) {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(class_cast(
            span,
            format!(
                "[{method}] expects a java.lang.String, found [{}]",
                other.type_name()
            ),
        )),
        None => Err(illegal(span, format!("[{method}] expects an argument"))),
    }
}

fn int_value(length: usize) -> Value {
    Value::Int(i32::try_from(length).unwrap_or(i32::MAX))
}

/// Calls a method on a value in place; `steps` is charged for scanning and copying.
fn call(
    receiver: &mut Value,
    method: &str,
    args: Vec<Value>,
    span: Span,
    steps: &mut u64,
) -> Result<Value> {
    *steps = steps.saturating_add(
        receiver.weight().min(1 << 20) / 8 + args.iter().map(Value::weight).sum::<u64>(),
    );
    // Methods every object has.
    match method {
        "toString" => {
            arity(method, &args, 0, span)?;
            return Ok(Value::Str(receiver.java_string()));
        }
        "equals" => {
            arity(method, &args, 1, span)?;
            let other = args.first().unwrap_or(&Value::Null);
            return Ok(Value::Bool(java_equals(receiver, other)));
        }
        _ => {}
    }
    match receiver {
        Value::Null => Err(null_pointer(span, &format!("invoke [{method}]"))),
        Value::Map(map) => map_method(map, method, args, span),
        Value::List(list) => list_method(list, method, args, span),
        Value::DocValues(values) => match method {
            "size" => {
                arity(method, &args, 0, span)?;
                Ok(int_value(values.len()))
            }
            "isEmpty" => Ok(Value::Bool(values.is_empty())),
            "getValue" => child(receiver, &Key::Name("value".into()), span).map(|c| match c {
                Child::Borrowed(v) => v.clone(),
                Child::Owned(v) => v,
            }),
            "get" => {
                arity(method, &args, 1, span)?;
                let index = args.first().unwrap_or(&Value::Null);
                let position = list_index(index, values.len(), span)?;
                Ok(values.get(position).cloned().unwrap_or(Value::Null))
            }
            "contains" => {
                arity(method, &args, 1, span)?;
                let needle = args.first().unwrap_or(&Value::Null);
                Ok(Value::Bool(values.iter().any(|v| def_equals(v, needle))))
            }
            _ => Err(no_method(receiver, method, &args, span)),
        },
        Value::Str(text) => string_method(text, method, &args, span),
        Value::Int(_) | Value::Long(_) | Value::Double(_) => {
            arity(method, &args, 0, span)?;
            let double = match receiver {
                Value::Int(i) => f64::from(*i),
                Value::Long(i) => *i as f64,
                Value::Double(d) => *d,
                _ => 0.0,
            };
            match method {
                "intValue" => Ok(Value::Int(match receiver {
                    Value::Int(i) => *i,
                    Value::Long(i) => *i as i32,
                    _ => double as i32,
                })),
                "longValue" => Ok(Value::Long(match receiver {
                    Value::Int(i) => i64::from(*i),
                    Value::Long(i) => *i,
                    _ => double as i64,
                })),
                "doubleValue" => Ok(Value::Double(double)),
                _ => Err(no_method(receiver, method, &args, span)),
            }
        }
        Value::Bool(_) => Err(no_method(receiver, method, &args, span)),
    }
}

fn no_method(receiver: &Value, method: &str, args: &[Value], span: Span) -> Failure {
    illegal(
        span,
        format!(
            "dynamic method [{}, {method}/{}] not found",
            receiver.type_name(),
            args.len()
        ),
    )
}

fn map_method(map: &mut Map, method: &str, args: Vec<Value>, span: Span) -> Result<Value> {
    let key = |position: usize| -> Result<String> {
        match args.get(position) {
            Some(Value::Str(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Ok("null".into()),
            Some(other) => Ok(other.java_string()),
        }
    };
    match method {
        "containsKey" => {
            arity(method, &args, 1, span)?;
            Ok(Value::Bool(map.contains_key(&key(0)?)))
        }
        "get" => {
            arity(method, &args, 1, span)?;
            Ok(map.get(&key(0)?).cloned().unwrap_or(Value::Null))
        }
        "getOrDefault" => {
            arity(method, &args, 2, span)?;
            let default = args.get(1).cloned().unwrap_or(Value::Null);
            Ok(map.get(&key(0)?).cloned().unwrap_or(default))
        }
        "put" => {
            arity(method, &args, 2, span)?;
            let name = key(0)?;
            let value = args.into_iter().nth(1).unwrap_or(Value::Null);
            Ok(map.insert(name, value).unwrap_or(Value::Null))
        }
        "putAll" => {
            arity(method, &args, 1, span)?;
            match args.into_iter().next() {
                Some(Value::Map(other)) => {
                    map.extend(other);
                    Ok(Value::Null)
                }
                _ => Err(class_cast(span, "[putAll] expects a map")),
            }
        }
        "remove" => {
            arity(method, &args, 1, span)?;
            Ok(map.shift_remove(&key(0)?).unwrap_or(Value::Null))
        }
        "size" => {
            arity(method, &args, 0, span)?;
            Ok(int_value(map.len()))
        }
        "isEmpty" => {
            arity(method, &args, 0, span)?;
            Ok(Value::Bool(map.is_empty()))
        }
        "clear" => {
            arity(method, &args, 0, span)?;
            map.clear();
            Ok(Value::Null)
        }
        "keySet" => {
            arity(method, &args, 0, span)?;
            Ok(Value::List(map.keys().cloned().map(Value::Str).collect()))
        }
        "values" => {
            arity(method, &args, 0, span)?;
            Ok(Value::List(map.values().cloned().collect()))
        }
        "containsValue" => {
            arity(method, &args, 1, span)?;
            let needle = args.first().unwrap_or(&Value::Null);
            Ok(Value::Bool(map.values().any(|v| java_equals(v, needle))))
        }
        _ => Err(no_method(&Value::Map(Map::new()), method, &args, span)),
    }
}

fn list_method(list: &mut Vec<Value>, method: &str, args: Vec<Value>, span: Span) -> Result<Value> {
    match method {
        "add" if args.len() == 1 => {
            list.extend(args);
            Ok(Value::Bool(true))
        }
        "add" if args.len() == 2 => {
            let mut args = args.into_iter();
            let index = args.next().unwrap_or(Value::Null);
            let value = args.next().unwrap_or(Value::Null);
            // Inserting at the length appends.
            let position = if index == int_value(list.len()) {
                list.len()
            } else {
                list_index(&index, list.len(), span)?
            };
            list.insert(position, value);
            Ok(Value::Null)
        }
        "addAll" => {
            arity(method, &args, 1, span)?;
            match args.into_iter().next() {
                Some(Value::List(other) | Value::DocValues(other)) => {
                    let changed = !other.is_empty();
                    list.extend(other);
                    Ok(Value::Bool(changed))
                }
                _ => Err(class_cast(span, "[addAll] expects a list")),
            }
        }
        "contains" => {
            arity(method, &args, 1, span)?;
            let needle = args.first().unwrap_or(&Value::Null);
            Ok(Value::Bool(list.iter().any(|v| java_equals(v, needle))))
        }
        "indexOf" => {
            arity(method, &args, 1, span)?;
            let needle = args.first().unwrap_or(&Value::Null);
            Ok(list
                .iter()
                .position(|v| java_equals(v, needle))
                .map_or(Value::Int(-1), int_value))
        }
        "get" => {
            arity(method, &args, 1, span)?;
            let position = list_index(args.first().unwrap_or(&Value::Null), list.len(), span)?;
            Ok(list.get(position).cloned().unwrap_or(Value::Null))
        }
        "set" => {
            arity(method, &args, 2, span)?;
            let mut args = args.into_iter();
            let index = args.next().unwrap_or(Value::Null);
            let position = list_index(&index, list.len(), span)?;
            let value = args.next().unwrap_or(Value::Null);
            Ok(list
                .get_mut(position)
                .map(|slot| std::mem::replace(slot, value))
                .unwrap_or(Value::Null))
        }
        "remove" => {
            arity(method, &args, 1, span)?;
            match args.first() {
                // `remove(int)` removes at a position; any other argument removes that element.
                Some(index @ Value::Int(_)) => {
                    let position = list_index(index, list.len(), span)?;
                    Ok(list.remove(position))
                }
                Some(needle) => match list.iter().position(|v| java_equals(v, needle)) {
                    Some(position) => {
                        list.remove(position);
                        Ok(Value::Bool(true))
                    }
                    None => Ok(Value::Bool(false)),
                },
                None => Ok(Value::Bool(false)),
            }
        }
        "size" => {
            arity(method, &args, 0, span)?;
            Ok(int_value(list.len()))
        }
        "isEmpty" => {
            arity(method, &args, 0, span)?;
            Ok(Value::Bool(list.is_empty()))
        }
        "clear" => {
            arity(method, &args, 0, span)?;
            list.clear();
            Ok(Value::Null)
        }
        _ => Err(no_method(&Value::List(Vec::new()), method, &args, span)),
    }
}

fn string_method(text: &str, method: &str, args: &[Value], span: Span) -> Result<Value> {
    let chars = || text.chars().count();
    match method {
        "length" => {
            arity(method, args, 0, span)?;
            Ok(int_value(chars()))
        }
        "isEmpty" => {
            arity(method, args, 0, span)?;
            Ok(Value::Bool(text.is_empty()))
        }
        "contains" => {
            arity(method, args, 1, span)?;
            Ok(Value::Bool(
                text.contains(string_arg(method, args, 0, span)?),
            ))
        }
        "startsWith" => {
            arity(method, args, 1, span)?;
            Ok(Value::Bool(
                text.starts_with(string_arg(method, args, 0, span)?),
            ))
        }
        "endsWith" => {
            arity(method, args, 1, span)?;
            Ok(Value::Bool(
                text.ends_with(string_arg(method, args, 0, span)?),
            ))
        }
        "equalsIgnoreCase" => {
            arity(method, args, 1, span)?;
            let other = string_arg(method, args, 0, span)?;
            Ok(Value::Bool(text.to_lowercase() == other.to_lowercase()))
        }
        "indexOf" => {
            arity(method, args, 1, span)?;
            let needle = string_arg(method, args, 0, span)?;
            Ok(text.find(needle).map_or(Value::Int(-1), |at| {
                int_value(text.get(..at).unwrap_or_default().chars().count())
            }))
        }
        "toLowerCase" => Ok(Value::Str(text.to_lowercase())),
        "toUpperCase" => Ok(Value::Str(text.to_uppercase())),
        "trim" => Ok(Value::Str(text.trim().to_owned())),
        "replace" => {
            arity(method, args, 2, span)?;
            let from = string_arg(method, args, 0, span)?;
            let to = string_arg(method, args, 1, span)?;
            let replaced = if from.is_empty() {
                text.to_owned()
            } else {
                text.replace(from, to)
            };
            if replaced.len() > STRING_BYTES_MAX {
                return Err(fail(
                    span,
                    "circuit_breaking_exception",
                    format!("the script built a string longer than [{STRING_BYTES_MAX}] bytes"),
                ));
            }
            Ok(Value::Str(replaced))
        }
        "substring" => {
            let length = chars();
            let bound = |position: usize| -> Result<usize> {
                match args.get(position) {
                    Some(Value::Int(i)) if *i >= 0 && (*i as usize) <= length => Ok(*i as usize),
                    Some(Value::Int(i)) => Err(fail(
                        span,
                        "string_index_out_of_bounds_exception",
                        format!("begin {i}, end {length}, length {length}"),
                    )),
                    _ => Err(class_cast(span, "[substring] expects int positions")),
                }
            };
            let (begin, end) = match args.len() {
                1 => (bound(0)?, length),
                2 => (bound(0)?, bound(1)?),
                _ => return Err(no_method(&Value::Str(String::new()), method, args, span)),
            };
            if begin > end {
                return Err(fail(
                    span,
                    "string_index_out_of_bounds_exception",
                    format!("begin {begin}, end {end}, length {length}"),
                ));
            }
            Ok(Value::Str(
                text.chars().skip(begin).take(end - begin).collect(),
            ))
        }
        _ => Err(no_method(&Value::Str(String::new()), method, args, span)),
    }
}

fn math(method: &str, args: &[Value], span: Span) -> Result<Value> {
    let double = |position: usize| -> Result<f64> {
        match args.get(position) {
            Some(Value::Int(i)) => Ok(f64::from(*i)),
            Some(Value::Long(i)) => Ok(*i as f64),
            Some(Value::Double(d)) => Ok(*d),
            Some(Value::Null) => Err(null_pointer(
                span,
                &format!("call [Math.{method}] with null"),
            )),
            Some(other) => Err(class_cast(
                span,
                format!(
                    "[Math.{method}] expects numbers, found [{}]",
                    other.type_name()
                ),
            )),
            None => Err(illegal(
                span,
                format!("[Math.{method}] expects more arguments"),
            )),
        }
    };
    let expect = |n: usize| -> Result<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(illegal(
                span,
                format!(
                    "[Math.{method}] takes {n} argument(s), found {}",
                    args.len()
                ),
            ))
        }
    };
    match method {
        "max" | "min" => {
            expect(2)?;
            let (a, b) = (
                args.first().unwrap_or(&Value::Null),
                args.get(1).unwrap_or(&Value::Null),
            );
            let pick_max = method == "max";
            match promote(a, b) {
                Some(Promoted::Int(x, y)) => {
                    Ok(Value::Int(if pick_max { x.max(y) } else { x.min(y) }))
                }
                Some(Promoted::Long(x, y)) => {
                    Ok(Value::Long(if pick_max { x.max(y) } else { x.min(y) }))
                }
                Some(Promoted::Double(x, y)) => Ok(Value::Double(if x.is_nan() || y.is_nan() {
                    f64::NAN
                } else if pick_max {
                    x.max(y)
                } else {
                    x.min(y)
                })),
                None => {
                    double(0)?;
                    double(1)?;
                    Err(illegal(span, format!("[Math.{method}] expects numbers")))
                }
            }
        }
        "abs" => {
            expect(1)?;
            match args.first() {
                Some(Value::Int(i)) => Ok(Value::Int(i.wrapping_abs())),
                Some(Value::Long(i)) => Ok(Value::Long(i.wrapping_abs())),
                _ => Ok(Value::Double(double(0)?.abs())),
            }
        }
        "round" => {
            expect(1)?;
            match args.first() {
                Some(Value::Int(i)) => Ok(Value::Int(*i)),
                Some(Value::Long(i)) => Ok(Value::Long(*i)),
                _ => {
                    let d = double(0)?;
                    // Java's Math.round: floor(x + 0.5), saturating, NaN to 0.
                    Ok(Value::Long(if d.is_nan() {
                        0
                    } else {
                        (d + 0.5).floor() as i64
                    }))
                }
            }
        }
        "pow" => {
            expect(2)?;
            Ok(Value::Double(double(0)?.powf(double(1)?)))
        }
        _ => {
            expect(1)?;
            let d = double(0)?;
            Ok(Value::Double(match method {
                "floor" => d.floor(),
                "ceil" => d.ceil(),
                "sqrt" => d.sqrt(),
                "log" => d.ln(),
                "log10" => d.log10(),
                "exp" => d.exp(),
                "signum" => {
                    if d == 0.0 || d.is_nan() {
                        d
                    } else {
                        d.signum()
                    }
                }
                _ => return Err(illegal(span, format!("[Math.{method}] is not supported"))),
            }))
        }
    }
}
