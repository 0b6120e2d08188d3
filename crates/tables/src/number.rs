//! DynamoDB's `N`: an exact decimal of at most 38 significant digits whose magnitude lies
//! between 1E-130 and 9.9999999999999999999999999999999999999E+125, or zero. Parsing follows
//! DynamoDB's rules and error texts; a number is kept normalized (no leading or trailing
//! zeros in its digits) so equal values compare, hash and print equal, and it orders by value.

use std::cmp::Ordering;
use std::fmt;

use crate::error::TablesError;

/// Most significant digits a number keeps; more is refused, never rounded.
pub const NUMBER_DIGITS_MAX: usize = 38;
/// Largest decimal exponent of a number's leading digit (`9.99…E+125`); larger overflows.
pub const NUMBER_EXPONENT_MAX: i32 = 125;
/// Smallest decimal exponent of a number's leading digit (`1E-130`); smaller underflows.
pub const NUMBER_EXPONENT_MIN: i32 = -130;
/// Longest number text read: longer texts (a digit run of leading zeros, say) are refused
/// before any arithmetic, so parsing is bounded whatever the input.
pub const NUMBER_TEXT_BYTES_MAX: usize = 512;

/// An exact decimal: `digits × 10^exponent`, negated when `negative`. Zero is
/// `{negative: false, digits: 0, exponent: 0}`; otherwise `digits` has no trailing zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Number {
    negative: bool,
    digits: u128,
    exponent: i32,
}

const INVALID: &str = "A value provided cannot be converted into a number";

impl Number {
    pub const ZERO: Number = Number {
        negative: false,
        digits: 0,
        exponent: 0,
    };

    /// Parses DynamoDB number text: optional sign, digits with an optional point, optional
    /// `e`/`E` exponent. Errors carry DynamoDB's own messages.
    pub fn parse(text: &str) -> Result<Number, TablesError> {
        let invalid = || TablesError::Validation(INVALID.to_owned());
        if text.is_empty() || text.len() > NUMBER_TEXT_BYTES_MAX {
            return Err(invalid());
        }
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent_text) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (integer, fraction) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if (integer.is_empty() && fraction.is_empty())
            || !all_digits(integer)
            || !all_digits(fraction)
        {
            return Err(invalid());
        }
        let mut exponent: i64 = match exponent_text {
            None => 0,
            Some(exponent_text) => {
                let (exponent_negative, exponent_digits) = match exponent_text.as_bytes().first() {
                    Some(b'-') => (true, &exponent_text[1..]),
                    Some(b'+') => (false, &exponent_text[1..]),
                    _ => (false, exponent_text),
                };
                if exponent_digits.is_empty() || !all_digits(exponent_digits) {
                    return Err(invalid());
                }
                // The text is bounded, but its exponent may still not fit: anything beyond
                // this saturates, and the range check below refuses it.
                let magnitude = exponent_digits
                    .bytes()
                    .fold(0_i64, |sum, byte| {
                        sum.saturating_mul(10)
                            .saturating_add(i64::from(byte - b'0'))
                    })
                    .min(1_000_000);
                if exponent_negative {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        // Significant digits: integer then fraction, without leading or trailing zeros.
        exponent -= fraction.len() as i64;
        let joined: Vec<u8> = integer.bytes().chain(fraction.bytes()).collect();
        let first = joined.iter().position(|digit| *digit != b'0');
        let Some(first) = first else {
            return Ok(Number::ZERO);
        };
        let last = joined
            .iter()
            .rposition(|digit| *digit != b'0')
            .unwrap_or(first);
        exponent += (joined.len() - 1 - last) as i64;
        let significant = joined.get(first..=last).unwrap_or_default();
        if significant.len() > NUMBER_DIGITS_MAX {
            return Err(TablesError::Validation(
                "Attempting to store more than 38 significant digits in a Number".to_owned(),
            ));
        }
        let leading_exponent = exponent + significant.len() as i64 - 1;
        if leading_exponent > i64::from(NUMBER_EXPONENT_MAX) {
            return Err(TablesError::Validation(
                "Number overflow. Attempting to store a number with magnitude larger than supported range"
                    .to_owned(),
            ));
        }
        if leading_exponent < i64::from(NUMBER_EXPONENT_MIN) {
            return Err(TablesError::Validation(
                "Number underflow. Attempting to store a number with magnitude smaller than supported range"
                    .to_owned(),
            ));
        }
        let digits = significant
            .iter()
            .fold(0_u128, |sum, digit| sum * 10 + u128::from(digit - b'0'));
        Ok(Number {
            negative,
            digits,
            // In range: checked against the bounds above.
            exponent: exponent as i32,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.digits == 0
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The significant digits as ASCII, without leading or trailing zeros (`"0"` for zero).
    pub fn digit_text(&self) -> String {
        self.digits.to_string()
    }

    /// The decimal exponent of the least significant digit.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The decimal exponent of the leading digit (scientific notation's), 0 for zero.
    pub fn leading_exponent(&self) -> i32 {
        if self.is_zero() {
            return 0;
        }
        self.exponent + self.digit_text().len() as i32 - 1
    }

    /// How many significant digits the number has (1 for zero).
    pub fn significant_digits(&self) -> usize {
        self.digit_text().len()
    }

    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        self.leading_exponent()
            .cmp(&other.leading_exponent())
            // Same leading exponent, no trailing zeros: digit strings compare as values.
            .then_with(|| self.digit_text().cmp(&other.digit_text()))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        let sign = |number: &Number| -> i8 {
            if number.is_zero() {
                0
            } else if number.negative {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal if sign(self) < 0 => other.cmp_magnitude(self),
            Ordering::Equal => self.cmp_magnitude(other),
            unequal => unequal,
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Plain decimal notation without an exponent, as DynamoDB answers: `100`, `0.015`, `-2.5`.
impl fmt::Display for Number {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return formatter.write_str("0");
        }
        if self.negative {
            formatter.write_str("-")?;
        }
        let digits = self.digit_text();
        if self.exponent >= 0 {
            formatter.write_str(&digits)?;
            for _ in 0..self.exponent {
                formatter.write_str("0")?;
            }
            return Ok(());
        }
        let fraction_len = self.exponent.unsigned_abs() as usize;
        if digits.len() > fraction_len {
            let (integer, fraction) = digits.split_at(digits.len() - fraction_len);
            write!(formatter, "{integer}.{fraction}")
        } else {
            formatter.write_str("0.")?;
            for _ in 0..fraction_len - digits.len() {
                formatter.write_str("0")?;
            }
            formatter.write_str(&digits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(text: &str) -> Number {
        Number::parse(text).unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        for (text, shown) in [
            ("0", "0"),
            ("-0.000", "0"),
            ("100", "100"),
            ("1e2", "100"),
            ("1.50", "1.5"),
            ("+007.250", "7.25"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-1.5E-3", "-0.0015"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            ("1E125", &format!("1{}", "0".repeat(125))),
            ("1E-130", &format!("0.{}1", "0".repeat(129))),
        ] {
            assert_eq!(n(text).to_string(), shown, "{text}");
        }
    }

    #[test]
    fn refuses_what_dynamodb_refuses() {
        for text in [
            "", "-", ".", "1e", "1x", "abc", "1.2.3", "1e+", "--1", " 1", "1 ",
        ] {
            assert!(Number::parse(text).is_err(), "{text:?} parsed");
        }
        let too_precise = Number::parse("1234567890123456789012345678901234567891").unwrap_err();
        assert!(too_precise.to_string().contains("38 significant digits"));
        assert!(
            Number::parse("1E126")
                .unwrap_err()
                .to_string()
                .contains("overflow")
        );
        assert!(
            Number::parse("1E-131")
                .unwrap_err()
                .to_string()
                .contains("underflow")
        );
        assert!(Number::parse("1E99999999999999999999").is_err());
        // Trailing zeros are not significant: 1 followed by 100 zeros is one digit.
        assert!(Number::parse(&format!("1{}", "0".repeat(100))).is_ok());
    }

    #[test]
    fn orders_by_value() {
        let ordered = [
            "-100", "-1.5", "-1", "-0.001", "0", "0.001", "0.12", "0.123", "1", "9", "10", "1e100",
        ];
        for pair in ordered.windows(2) {
            assert!(n(pair[0]) < n(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(n("1.0"), n("1"));
    }

    proptest! {
        #[test]
        fn display_round_trips_and_order_matches_integers(a in -1_000_000_i64..1_000_000, b in -1_000_000_i64..1_000_000, scale in 0_u32..8) {
            let text = |value: i64| {
                let scaled = format!("{}", value.unsigned_abs());
                let padded = format!("{:0>width$}", scaled, width = scale as usize + 1);
                let (integer, fraction) = padded.split_at(padded.len() - scale as usize);
                format!("{}{}.{}", if value < 0 { "-" } else { "" }, integer, fraction)
            };
            let (x, y) = (n(&text(a)), n(&text(b)));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(n(&x.to_string()), x);
        }
    }
}
