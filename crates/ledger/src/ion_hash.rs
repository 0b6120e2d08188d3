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

use ion_rs::{Element, Value};
use sha2::{Digest, Sha256};

use crate::ion_binary::{
    Body, Unsupported, significant, type_code, write_decimal, write_timestamp,
};

const BEGIN: u8 = 0x0B;
const END: u8 = 0x0E;
const ESCAPE: u8 = 0x0C;

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

fn serialize_value(digest: &mut Sha256, element: &Element) -> Result<(), Unsupported> {
    digest.update([BEGIN]);
    match element.value() {
        Value::Null(ion_type) => digest.update([type_code(*ion_type) << 4 | 0x0F]),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion_values::element;
    use proptest::prelude::*;

    fn reference(element: &Element) -> [u8; 32] {
        ion_rs::ion_hash::sha256(element)
            .unwrap()
            .as_slice()
            .try_into()
            .unwrap()
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
