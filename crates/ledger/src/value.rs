//! PartiQL value semantics over Ion elements: numbers across int/decimal/float, equality,
//! ordering, truthiness, and the normalized keys of equality indexes.

use std::cmp::Ordering;

use ion_rs::{Decimal, Element, IonType, Value};

use crate::error::LedgerError;
use crate::model;

/// A number lifted out of Ion for arithmetic and comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An Ion int that fits in `i128`.
    Int(i128),
    /// An Ion decimal `coefficient × 10^exponent` whose coefficient fits in `i128`.
    Decimal { coefficient: i128, exponent: i64 },
    /// An Ion float.
    Float(f64),
}

impl Number {
    /// The number inside an element, if it is a non-null int, decimal or float.
    pub fn from_element(element: &Element) -> Option<Number> {
        match element.value() {
            Value::Int(int) => int.as_i128().map(Number::Int),
            Value::Decimal(decimal) => {
                let coefficient = ion_rs::Int::try_from(&decimal.coefficient())
                    .ok()?
                    .as_i128()?;
                let coefficient = if decimal.coefficient().is_negative() && coefficient > 0 {
                    -coefficient
                } else {
                    coefficient
                };
                Some(Number::Decimal {
                    coefficient,
                    exponent: decimal.exponent(),
                })
            }
            Value::Float(float) => Some(Number::Float(*float)),
            _ => None,
        }
    }

    /// Back to an Ion element.
    pub fn to_element(self) -> Element {
        match self {
            Number::Int(int) => Element::int(int),
            Number::Decimal {
                coefficient,
                exponent,
            } => Element::decimal(Decimal::new(coefficient, exponent)),
            Number::Float(float) => Element::float(float),
        }
    }

    /// As a float (lossy).
    pub fn to_f64(self) -> f64 {
        match self {
            Number::Int(int) => int as f64,
            Number::Decimal {
                coefficient,
                exponent,
            } => coefficient as f64 * 10f64.powi(exponent.clamp(-400, 400) as i32),
            Number::Float(float) => float,
        }
    }

    /// As an exact decimal `(coefficient, exponent)` when possible.
    fn to_decimal_parts(self) -> Option<(i128, i64)> {
        match self {
            Number::Int(int) => Some((int, 0)),
            Number::Decimal {
                coefficient,
                exponent,
            } => Some((coefficient, exponent)),
            Number::Float(_) => None,
        }
    }

    /// Exact decimal parts with trailing zeros removed, so equal values have equal parts.
    fn normalized_parts(self) -> Option<(i128, i64)> {
        let (mut coefficient, mut exponent) = match self {
            Number::Float(float) => {
                if !float.is_finite() {
                    return None;
                }
                if float.fract() == 0.0 && float.abs() < 1e30 {
                    (float as i128, 0)
                } else {
                    let decimal = Decimal::try_from(float).ok()?;
                    let parts = Number::from_element(&Element::decimal(decimal))?;
                    parts.to_decimal_parts()?
                }
            }
            other => other.to_decimal_parts()?,
        };
        if coefficient == 0 {
            return Some((0, 0));
        }
        while coefficient % 10 == 0 {
            coefficient /= 10;
            exponent = exponent.saturating_add(1);
        }
        Some((coefficient, exponent))
    }

    /// Numeric comparison across kinds.
    pub fn compare(self, other: Number) -> Option<Ordering> {
        match (self.to_decimal_parts(), other.to_decimal_parts()) {
            (Some(left), Some(right)) => {
                let (left, right) = align(left, right)?;
                Some(left.cmp(&right))
            }
            _ => self.to_f64().partial_cmp(&other.to_f64()),
        }
    }

    /// Applies an arithmetic operator; `None` on overflow or division by zero.
    pub fn arithmetic(self, other: Number, operator: ArithmeticOperator) -> Option<Number> {
        if let (Number::Int(left), Number::Int(right)) = (self, other) {
            return match operator {
                ArithmeticOperator::Add => left.checked_add(right).map(Number::Int),
                ArithmeticOperator::Subtract => left.checked_sub(right).map(Number::Int),
                ArithmeticOperator::Multiply => left.checked_mul(right).map(Number::Int),
                ArithmeticOperator::Divide => left.checked_div(right).map(Number::Int),
                ArithmeticOperator::Modulo => left.checked_rem(right).map(Number::Int),
            };
        }
        match (self.to_decimal_parts(), other.to_decimal_parts()) {
            (Some(left), Some(right)) => match operator {
                ArithmeticOperator::Add | ArithmeticOperator::Subtract => {
                    let exponent = left.1.min(right.1);
                    let (left_aligned, right_aligned) = align(left, right)?;
                    let coefficient = if operator == ArithmeticOperator::Add {
                        left_aligned.checked_add(right_aligned)?
                    } else {
                        left_aligned.checked_sub(right_aligned)?
                    };
                    Some(Number::Decimal {
                        coefficient,
                        exponent,
                    })
                }
                ArithmeticOperator::Multiply => Some(Number::Decimal {
                    coefficient: left.0.checked_mul(right.0)?,
                    exponent: left.1.checked_add(right.1)?,
                }),
                ArithmeticOperator::Divide | ArithmeticOperator::Modulo => {
                    let left_float = self.to_f64();
                    let right_float = other.to_f64();
                    if right_float == 0.0 {
                        return None;
                    }
                    let result = if operator == ArithmeticOperator::Divide {
                        left_float / right_float
                    } else {
                        left_float % right_float
                    };
                    let decimal = Decimal::try_from(result).ok()?;
                    Number::from_element(&Element::decimal(decimal))
                }
            },
            _ => {
                let left = self.to_f64();
                let right = other.to_f64();
                let result = match operator {
                    ArithmeticOperator::Add => left + right,
                    ArithmeticOperator::Subtract => left - right,
                    ArithmeticOperator::Multiply => left * right,
                    ArithmeticOperator::Divide => left / right,
                    ArithmeticOperator::Modulo => left % right,
                };
                Some(Number::Float(result))
            }
        }
    }
}

/// The arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithmeticOperator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

/// Brings two decimals to the same (smaller) exponent; `None` on overflow.
fn align(left: (i128, i64), right: (i128, i64)) -> Option<(i128, i128)> {
    let exponent = left.1.min(right.1);
    let scale = |(coefficient, own_exponent): (i128, i64)| -> Option<i128> {
        let shift = u32::try_from(own_exponent.checked_sub(exponent)?).ok()?;
        coefficient.checked_mul(10i128.checked_pow(shift)?)
    };
    Some((scale(left)?, scale(right)?))
}

/// True for an Ion null of any type.
pub fn is_null(element: &Element) -> bool {
    element.is_null()
}

/// The text of a string or symbol.
pub fn text_of(element: &Element) -> Option<&str> {
    match element.value() {
        Value::String(_) | Value::Symbol(_) => element.as_text(),
        _ => None,
    }
}

/// PartiQL `=` between two present, non-null values: numbers by value, text regardless of
/// string/symbol, timestamps by instant, containers element-wise.
pub fn values_equal(left: &Element, right: &Element) -> bool {
    if let (Some(left_number), Some(right_number)) =
        (Number::from_element(left), Number::from_element(right))
    {
        return left_number.compare(right_number) == Some(Ordering::Equal);
    }
    if let (Some(left_text), Some(right_text)) = (text_of(left), text_of(right)) {
        return left_text == right_text;
    }
    match (left.value(), right.value()) {
        (Value::Timestamp(left_time), Value::Timestamp(right_time)) => {
            match (
                model::datetime_from_timestamp(left_time),
                model::datetime_from_timestamp(right_time),
            ) {
                (Ok(left_instant), Ok(right_instant)) => left_instant == right_instant,
                _ => left == right,
            }
        }
        (Value::List(left_items), Value::List(right_items))
        | (Value::SExp(left_items), Value::SExp(right_items)) => {
            left_items.len() == right_items.len()
                && left_items
                    .elements()
                    .zip(right_items.elements())
                    .all(|(left_item, right_item)| values_equal(left_item, right_item))
        }
        (Value::Struct(left_fields), Value::Struct(right_fields)) => {
            left_fields.len() == right_fields.len()
                && left_fields.fields().all(|(name, left_value)| {
                    right_fields
                        .get_all(name.text().unwrap_or_default())
                        .any(|right_value| values_equal(left_value, right_value))
                })
        }
        _ => left == right,
    }
}

/// PartiQL ordering for `<`, `>`, `ORDER BY`, `MIN`, `MAX` between comparable values; `None`
/// when the types do not compare.
pub fn compare_values(left: &Element, right: &Element) -> Option<Ordering> {
    if let (Some(left_number), Some(right_number)) =
        (Number::from_element(left), Number::from_element(right))
    {
        return left_number.compare(right_number);
    }
    if let (Some(left_text), Some(right_text)) = (text_of(left), text_of(right)) {
        return Some(left_text.cmp(right_text));
    }
    match (left.value(), right.value()) {
        (Value::Timestamp(left_time), Value::Timestamp(right_time)) => {
            let left_instant = model::datetime_from_timestamp(left_time).ok()?;
            let right_instant = model::datetime_from_timestamp(right_time).ok()?;
            Some(left_instant.cmp(&right_instant))
        }
        (Value::Bool(left_bool), Value::Bool(right_bool)) => Some(left_bool.cmp(right_bool)),
        (Value::Blob(left_bytes), Value::Blob(right_bytes))
        | (Value::Clob(left_bytes), Value::Clob(right_bytes)) => {
            Some(left_bytes.as_ref().cmp(right_bytes.as_ref()))
        }
        _ => None,
    }
}

/// A total order for `ORDER BY`: nulls and missing first, then by type rank, then by value.
pub fn order_for_sort(left: Option<&Element>, right: Option<&Element>) -> Ordering {
    let rank = |value: Option<&Element>| -> u8 {
        match value {
            None => 0,
            Some(element) if element.is_null() => 0,
            Some(element) => match element.ion_type() {
                IonType::Bool => 1,
                IonType::Int | IonType::Float | IonType::Decimal => 2,
                IonType::Timestamp => 3,
                IonType::String | IonType::Symbol => 4,
                IonType::Clob | IonType::Blob => 5,
                IonType::List | IonType::SExp => 6,
                IonType::Struct => 7,
                IonType::Null => 0,
            },
        }
    };
    let left_rank = rank(left);
    let right_rank = rank(right);
    if left_rank != right_rank {
        return left_rank.cmp(&right_rank);
    }
    match (left, right) {
        (Some(left_value), Some(right_value)) => {
            compare_values(left_value, right_value).unwrap_or(Ordering::Equal)
        }
        _ => Ordering::Equal,
    }
}

/// The key under which an equality index stores a value, normalized so that values equal by
/// [`values_equal`] share a key. `None` for values the index does not hold (nulls, containers,
/// lobs): lookups by such values scan instead.
pub fn index_value_key(element: &Element) -> Option<String> {
    if element.is_null() {
        return None;
    }
    if let Some(number) = Number::from_element(element) {
        let (coefficient, exponent) = number.normalized_parts()?;
        return Some(format!("n:{coefficient}e{exponent}"));
    }
    if let Some(text) = text_of(element) {
        return Some(format!("s:{text}"));
    }
    match element.value() {
        Value::Bool(flag) => Some(format!("b:{flag}")),
        Value::Timestamp(timestamp) => {
            let instant = model::datetime_from_timestamp(timestamp).ok()?;
            Some(format!("t:{}", instant.unix_timestamp_nanos()))
        }
        _ => None,
    }
}

/// Follows a path of field names from a document root; `None` when a step is absent.
pub fn value_at_path<'a>(document: &'a Element, field_path: &[String]) -> Option<&'a Element> {
    let mut current = document;
    for field in field_path {
        current = current.as_struct()?.get(field.as_str())?;
    }
    Some(current)
}

/// Ion binary size of a document, for the document size limit.
pub fn encoded_size_bytes(element: &Element) -> Result<usize, LedgerError> {
    Ok(model::encode_binary(element)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ion(text: &str) -> Element {
        Element::read_one(text).unwrap()
    }

    #[test]
    fn numbers_compare_across_kinds() {
        assert!(values_equal(&ion("1"), &ion("1.0")));
        assert!(values_equal(&ion("1.50"), &ion("1.5")));
        assert!(values_equal(&ion("2e0"), &ion("2")));
        assert_eq!(compare_values(&ion("1.5"), &ion("2")), Some(Ordering::Less));
        assert!(values_equal(&ion("\"a\""), &ion("a")));
        assert!(!values_equal(&ion("\"a\""), &ion("\"b\"")));
    }

    #[test]
    fn index_keys_normalize_equal_values() {
        assert_eq!(index_value_key(&ion("10")), index_value_key(&ion("10.00")));
        assert_eq!(index_value_key(&ion("10")), index_value_key(&ion("1e1")));
        assert_ne!(index_value_key(&ion("10")), index_value_key(&ion("\"10\"")));
        assert_eq!(index_value_key(&ion("null")), None);
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        let sum = Number::from_element(&ion("0.1"))
            .unwrap()
            .arithmetic(
                Number::from_element(&ion("0.2")).unwrap(),
                ArithmeticOperator::Add,
            )
            .unwrap();
        assert!(values_equal(&sum.to_element(), &ion("0.3")));
    }
}
