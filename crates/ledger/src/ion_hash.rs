//! Ion Hash 1.0 over SHA-256, computed straight from an [`Element`] into one running digest.
//!
//! `ion_rs` has a hasher too, which this must agree with byte for byte (the tests compare the
//! two on generated values), but it allocates for every scalar and builds a writer for every
//! decimal and timestamp; a commit hashes its statement, its documents, their metadata and its
//! transaction info, so that cost sat on every commit's path. Values this module does not
//! encode itself (integers and decimal coefficients beyond 128 bits, fractional seconds finer
//! than nanoseconds) return `None`, and the caller falls back to `ion_rs`.
//!
//! The algorithm (<https://amazon-ion.github.io/ion-hash/docs/spec.html>): a scalar is
//! serialized as `B TQ escape(representation) E`, where the representation is its Ion 1.0
//! binary body; a list or s-expression as `B TQ s(child)… E`; a struct as `B TQ
//! escape(sorted field hashes) E`, each field hash being `H(s(name) s(value))`; annotations
//! wrap the value as `B 0xE0 s(annotation)… s(value) E`.

use ion_rs::{Decimal, Element, IonType, Timestamp, TimestampPrecision, Value};
use sha2::{Digest, Sha256};

const BEGIN: u8 = 0x0B;
const END: u8 = 0x0E;
const ESCAPE: u8 = 0x0C;

/// The most bytes a timestamp's or decimal's body takes here: offset, year, five components
/// and a fraction of at most nine digits; or a 64-bit exponent and a 128-bit coefficient.
const SCALAR_BODY_BYTES_MAX: usize = 48;

/// A value this module leaves to `ion_rs`.
#[derive(Debug)]
struct Unsupported;

/// The Ion hash of `element`, or `None` for the rare values left to `ion_rs`.
pub(crate) fn sha256(element: &Element) -> Option<[u8; 32]> {
    let mut digest = Sha256::new();
    serialize(&mut digest, element).ok()?;
    Some(digest.finalize().into())
}

/// Feeds `bytes` with every marker byte escaped.
fn update_escaped(digest: &mut Sha256, bytes: &[u8]) {
    let mut rest = bytes;
    while let Some(position) = rest
        .iter()
        .position(|byte| matches!(*byte, BEGIN | END | ESCAPE))
    {
        let (before, from_marker) = rest.split_at(position);
        let (marker, after) = from_marker.split_at(1);
        digest.update(before);
        digest.update([ESCAPE]);
        digest.update(marker);
        rest = after;
    }
    digest.update(rest);
}

fn serialize(digest: &mut Sha256, element: &Element) -> Result<(), Unsupported> {
    let annotations = element.annotations();
    if annotations.is_empty() {
        return serialize_value(digest, element);
    }
    digest.update([BEGIN, 0xE0]);
    for annotation in annotations.iter() {
        serialize_symbol(digest, annotation.text());
    }
    serialize_value(digest, element)?;
    digest.update([END]);
    Ok(())
}

/// `s(symbol)`: a field name, an annotation or a symbol value.
fn serialize_symbol(digest: &mut Sha256, text: Option<&str>) {
    match text {
        Some(text) => {
            digest.update([BEGIN, 0x70]);
            update_escaped(digest, text.as_bytes());
        }
        None => digest.update([BEGIN, 0x71]),
    }
    digest.update([END]);
}

/// The type code (the high nibble of the type qualifier) of a null of `ion_type`.
fn null_type_code(ion_type: IonType) -> u8 {
    match ion_type {
        IonType::Null => 0x0,
        IonType::Bool => 0x1,
        IonType::Int => 0x2,
        IonType::Float => 0x4,
        IonType::Decimal => 0x5,
        IonType::Timestamp => 0x6,
        IonType::Symbol => 0x7,
        IonType::String => 0x8,
        IonType::Clob => 0x9,
        IonType::Blob => 0xA,
        IonType::List => 0xB,
        IonType::SExp => 0xC,
        IonType::Struct => 0xD,
    }
}

fn serialize_value(digest: &mut Sha256, element: &Element) -> Result<(), Unsupported> {
    digest.update([BEGIN]);
    match element.value() {
        Value::Null(ion_type) => digest.update([null_type_code(*ion_type) << 4 | 0x0F]),
        Value::Bool(value) => digest.update([0x10 | u8::from(*value)]),
        Value::Int(int) => {
            let value = int.as_i128().ok_or(Unsupported)?;
            digest.update([if value < 0 { 0x30 } else { 0x20 }]);
            let magnitude = value.unsigned_abs().to_be_bytes();
            update_escaped(digest, significant(&magnitude));
        }
        Value::Float(value) => {
            digest.update([0x40]);
            // Nothing for +0, the canonical NaN, else the 8 big-endian bytes (-0 included).
            if value.is_nan() {
                update_escaped(digest, &[0x7F, 0xF8, 0, 0, 0, 0, 0, 0]);
            } else if !(*value == 0.0 && value.is_sign_positive()) {
                update_escaped(digest, &value.to_be_bytes());
            }
        }
        Value::Decimal(decimal) => {
            digest.update([0x50]);
            let mut body = Body::new();
            write_decimal(&mut body, decimal)?;
            update_escaped(digest, body.bytes());
        }
        Value::Timestamp(timestamp) => {
            digest.update([0x60]);
            let mut body = Body::new();
            write_timestamp(&mut body, timestamp)?;
            update_escaped(digest, body.bytes());
        }
        Value::Symbol(symbol) => match symbol.text() {
            Some(text) => {
                digest.update([0x70]);
                update_escaped(digest, text.as_bytes());
            }
            None => digest.update([0x71]),
        },
        Value::String(text) => {
            digest.update([0x80]);
            update_escaped(digest, text.text().as_bytes());
        }
        Value::Clob(bytes) => {
            digest.update([0x90]);
            update_escaped(digest, bytes.as_ref());
        }
        Value::Blob(bytes) => {
            digest.update([0xA0]);
            update_escaped(digest, bytes.as_ref());
        }
        Value::List(sequence) | Value::SExp(sequence) => {
            let list = matches!(element.value(), Value::List(_));
            digest.update([if list { 0xB0 } else { 0xC0 }]);
            for child in sequence.elements() {
                serialize(digest, child)?;
            }
        }
        Value::Struct(fields) => {
            digest.update([0xD0]);
            let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(fields.len());
            for (name, value) in fields.iter() {
                let mut field = Sha256::new();
                serialize_symbol(&mut field, name.text());
                serialize(&mut field, value)?;
                hashes.push(field.finalize().into());
            }
            hashes.sort_unstable();
            for hash in &hashes {
                update_escaped(digest, hash);
            }
        }
    }
    digest.update([END]);
    Ok(())
}

/// Big-endian bytes without their leading zeros (none at all for zero).
fn significant(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|byte| **byte == 0).count();
    bytes.get(skip..).unwrap_or_default()
}

/// A decimal's binary body: nothing for `0d0`; else the exponent, then the coefficient (nothing
/// for +0, a lone sign byte for -0).
fn write_decimal(body: &mut Body, decimal: &Decimal) -> Result<(), Unsupported> {
    let coefficient = decimal.coefficient();
    let exponent = decimal.exponent();
    if exponent == 0 && coefficient.is_positive_zero() {
        return Ok(());
    }
    body.var_int(exponent)?;
    if coefficient.is_zero() {
        if coefficient.is_negative() {
            body.push(0x80)?;
        }
        return Ok(());
    }
    let magnitude = coefficient.magnitude().as_u128().ok_or(Unsupported)?;
    body.int(magnitude, coefficient.is_negative())
}

/// A timestamp's binary body: its offset (-0 when unknown), then its UTC components down to its
/// precision, then its fractional seconds as a decimal.
fn write_timestamp(body: &mut Body, timestamp: &Timestamp) -> Result<(), Unsupported> {
    match timestamp.offset() {
        Some(minutes) => body.var_int(i64::from(minutes))?,
        None => body.push(0xC0)?,
    }
    let utc = timestamp.to_utc();
    body.var_uint(u64::from(utc.year()))?;
    let precision = timestamp.precision();
    if precision == TimestampPrecision::Year {
        return Ok(());
    }
    body.var_uint(u64::from(utc.month()))?;
    if precision == TimestampPrecision::Month {
        return Ok(());
    }
    body.var_uint(u64::from(utc.day()))?;
    if precision == TimestampPrecision::Day {
        return Ok(());
    }
    body.var_uint(u64::from(utc.hour()))?;
    body.var_uint(u64::from(utc.minute()))?;
    if precision == TimestampPrecision::HourAndMinute {
        return Ok(());
    }
    body.var_uint(u64::from(utc.second()))?;
    let Some(scale) = timestamp.fractional_seconds_scale() else {
        return Ok(());
    };
    // Finer than nanoseconds is not reachable through the public API: left to ion_rs.
    let scale = u32::try_from(scale)
        .ok()
        .filter(|scale| *scale <= 9)
        .ok_or(Unsupported)?;
    let coefficient = u64::from(timestamp.nanoseconds()) / 10u64.pow(9 - scale);
    write_decimal(body, &Decimal::new(coefficient, -i64::from(scale)))
}

/// A scalar's binary body, on the stack.
struct Body {
    bytes: [u8; SCALAR_BODY_BYTES_MAX],
    length: usize,
}

impl Body {
    fn new() -> Body {
        Body {
            bytes: [0; SCALAR_BODY_BYTES_MAX],
            length: 0,
        }
    }

    fn push(&mut self, byte: u8) -> Result<(), Unsupported> {
        let slot = self.bytes.get_mut(self.length).ok_or(Unsupported)?;
        *slot = byte;
        self.length += 1;
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.length).unwrap_or_default()
    }

    /// Ion 1.0 `VarUInt`: 7 bits a byte, most significant first, the last byte flagged.
    fn var_uint(&mut self, value: u64) -> Result<(), Unsupported> {
        let groups = (u64::BITS - value.leading_zeros()).div_ceil(7).max(1);
        for index in (0..groups).rev() {
            let group = ((value >> (7 * index)) & 0x7F) as u8;
            self.push(group | if index == 0 { 0x80 } else { 0 })?;
        }
        Ok(())
    }

    /// Ion 1.0 `VarInt`: as `VarUInt`, with the sign in bit 6 of the first byte (which so
    /// carries 6 bits of the magnitude).
    fn var_int(&mut self, value: i64) -> Result<(), Unsupported> {
        let magnitude = value.unsigned_abs();
        let bits = u64::BITS - magnitude.leading_zeros();
        let groups = if bits <= 6 {
            1
        } else {
            1 + (bits - 6).div_ceil(7)
        };
        for index in (0..groups).rev() {
            let mut byte = ((magnitude >> (7 * index)) & 0x7F) as u8;
            if index == groups - 1 && value < 0 {
                byte |= 0x40;
            }
            if index == 0 {
                byte |= 0x80;
            }
            self.push(byte)?;
        }
        Ok(())
    }

    /// Ion 1.0 `Int` (sign and magnitude) of a non-zero magnitude: its significant bytes,
    /// behind a byte of its own for the sign when the first one has its top bit set.
    fn int(&mut self, magnitude: u128, negative: bool) -> Result<(), Unsupported> {
        let be = magnitude.to_be_bytes();
        let digits = significant(&be);
        let sign = if negative { 0x80 } else { 0 };
        let (first, rest) = digits.split_first().ok_or(Unsupported)?;
        if first & 0x80 != 0 {
            self.push(sign)?;
            self.push(*first)?;
        } else {
            self.push(first | sign)?;
        }
        for byte in rest {
            self.push(*byte)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ion_rs::{Int, Struct, Symbol};
    use proptest::prelude::*;

    fn reference(element: &Element) -> [u8; 32] {
        ion_rs::ion_hash::sha256(element)
            .unwrap()
            .as_slice()
            .try_into()
            .unwrap()
    }

    /// Text that often holds the three marker bytes, which must be escaped.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('\u{0B}'),
                Just('\u{0C}'),
                Just('\u{0E}'),
                any::<char>(),
                prop::char::range('a', 'z'),
            ],
            0..12,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![Just(0x0Bu8), Just(0x0C), Just(0x0E), any::<u8>()],
            0..12,
        )
    }

    fn timestamp() -> impl Strategy<Value = Element> {
        (
            1u32..9999,
            1u32..=12,
            1u32..=28,
            0u32..24,
            0u32..60,
            0u32..60,
            0u32..1_000_000_000,
            0u32..=9,
            prop::option::of(-1439i32..=1439),
            0u8..5,
        )
            .prop_map(
                |(year, month, day, hour, minute, second, nanos, digits, offset, precision)| {
                    let built = match precision {
                        0 => Timestamp::with_year(year).build(),
                        1 => Timestamp::with_year(year).with_month(month).build(),
                        2 => Timestamp::with_ymd(year, month, day).build(),
                        3 => {
                            let local = Timestamp::with_ymd(year, month, day)
                                .with_hour_and_minute(hour, minute);
                            match offset {
                                Some(offset) => local.with_offset(offset).build(),
                                None => local.build(),
                            }
                        }
                        _ => {
                            let seconds = Timestamp::with_ymd(year, month, day)
                                .with_hms(hour, minute, second);
                            let scale = 10u32.pow(9 - digits);
                            let local = if digits == 0 {
                                seconds.with_nanoseconds_and_precision(0, 0)
                            } else {
                                seconds
                                    .with_nanoseconds_and_precision(nanos / scale * scale, digits)
                            };
                            match offset {
                                Some(offset) => local.with_offset(offset).build(),
                                None => local.build(),
                            }
                        }
                    };
                    // Dates the offset pushes out of range are not what this tests.
                    built.map(Element::from).unwrap_or_else(|_| {
                        Element::from(Timestamp::with_year(year).build().unwrap())
                    })
                },
            )
    }

    fn decimal() -> impl Strategy<Value = Element> {
        prop_oneof![
            (any::<i64>(), -40i64..40).prop_map(|(c, e)| Element::from(Decimal::new(c, e))),
            (any::<i128>(), any::<i64>()).prop_map(|(c, e)| Element::from(Decimal::new(c, e))),
            (-5i64..5).prop_map(|e| Element::from(Decimal::negative_zero_with_exponent(e))),
            (-5i64..5).prop_map(|e| Element::from(Decimal::new(0, e))),
            Just(Element::from(Decimal::new(0, 0))),
        ]
    }

    fn scalar() -> impl Strategy<Value = Element> {
        prop_oneof![
            Just(Element::null(IonType::Null)),
            prop::sample::select(vec![
                IonType::Bool,
                IonType::Int,
                IonType::Float,
                IonType::Decimal,
                IonType::Timestamp,
                IonType::Symbol,
                IonType::String,
                IonType::Clob,
                IonType::Blob,
                IonType::List,
                IonType::SExp,
                IonType::Struct,
            ])
            .prop_map(Element::null),
            any::<bool>().prop_map(Element::from),
            any::<i64>().prop_map(Element::from),
            any::<i128>().prop_map(|value| Element::from(Int::from(value))),
            prop_oneof![
                any::<f64>(),
                Just(0.0),
                Just(-0.0),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY)
            ]
            .prop_map(Element::from),
            decimal(),
            timestamp(),
            text().prop_map(|text| Element::symbol(Symbol::from(text))),
            Just(Element::symbol(Symbol::unknown_text())),
            text().prop_map(Element::string),
            bytes().prop_map(Element::blob),
            bytes().prop_map(Element::clob),
        ]
    }

    fn element() -> impl Strategy<Value = Element> {
        let leaf =
            (scalar(), prop::collection::vec(text(), 0..3)).prop_map(|(value, annotations)| {
                if annotations.is_empty() {
                    value
                } else {
                    value.with_annotations(annotations)
                }
            });
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| Element::from(ion_rs::List::from(items))),
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| Element::from(ion_rs::SExp::from(items))),
                // Repeated names too: a struct may hold a name more than once.
                prop::collection::vec((prop_oneof![text(), Just("a".to_owned())], inner), 0..6)
                    .prop_map(|fields| {
                        let mut builder = Struct::builder();
                        for (name, value) in fields {
                            builder = builder.with_field(name, value);
                        }
                        Element::from(builder.build())
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn agrees_with_ion_rs_on_every_value_it_hashes(element in element()) {
            if let Some(hash) = sha256(&element) {
                prop_assert_eq!(hash, reference(&element), "{}", element);
            }
        }
    }

    #[test]
    fn hashes_the_ledgers_own_values_itself() {
        for text in [
            "{VIN: \"1C4RJFAG0FC625797\", Year: 2019, Price: 123.45d0, From: 2019-04-05T, Owner: null.string}",
            "{id: \"3Qv67yjXEwB9SjmvkuG6Cp\", version: 0, txTime: 2026-12-04T15:28:32.123Z}",
            "{statements: [{statement: \"INSERT INTO T ?\", startTime: 2026-12-04T15:28:32.123456789-08:00}]}",
            "a::b::[1, -1, 0, 1e0, -0e0, 0d0, -0d-3, 1.5d40, (x y), {}, 2026T, 2026-12T, 2026-12-04T01:02-00:00]",
        ] {
            let element = Element::read_one(text.as_bytes()).unwrap();
            assert_eq!(sha256(&element), Some(reference(&element)), "{text}");
        }
    }

    #[test]
    fn leaves_what_it_does_not_encode_to_ion_rs() {
        let big = Element::read_one(b"340282366920938463463374607431768211456").unwrap();
        assert_eq!(sha256(&big), None);
        let atto = Element::read_one(b"2026-12-04T01:02:03.123456789012Z").unwrap();
        assert_eq!(sha256(&atto), None);
        // And the ledger's hash still covers them, through ion_rs.
        assert_eq!(crate::hash::ion_hash(&big).unwrap(), reference(&big));
        assert_eq!(crate::hash::ion_hash(&atto).unwrap(), reference(&atto));
    }
}
