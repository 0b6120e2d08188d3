//! Generated Ion values for the property tests of the hasher and the binary writer and reader
//! (every type, nulls of every type, annotations, repeated field names, and text and bytes that
//! often hold the bytes Ion Hash escapes), and equality in Ion's data model.

use ion_rs::{Decimal, Element, Int, IonType, Struct, Symbol, Timestamp};
use proptest::prelude::*;

/// Equal in Ion's data model (where `nan` equals `nan`, unlike `Element`'s `==`).
pub(crate) fn same(left: &Element, right: &Element) -> bool {
    ion_rs::IonData::from(left.clone()) == ion_rs::IonData::from(right.clone())
}

/// Text that often holds the three marker bytes, which must be escaped.
pub(crate) fn text() -> impl Strategy<Value = String> {
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

pub(crate) fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0x0Bu8), Just(0x0C), Just(0x0E), any::<u8>()],
        0..12,
    )
}

pub(crate) fn timestamp() -> impl Strategy<Value = Element> {
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
                        let seconds =
                            Timestamp::with_ymd(year, month, day).with_hms(hour, minute, second);
                        let scale = 10u32.pow(9 - digits);
                        let local = if digits == 0 {
                            seconds.with_nanoseconds_and_precision(0, 0)
                        } else {
                            seconds.with_nanoseconds_and_precision(nanos / scale * scale, digits)
                        };
                        match offset {
                            Some(offset) => local.with_offset(offset).build(),
                            None => local.build(),
                        }
                    }
                };
                // Dates the offset pushes out of range are not what this tests.
                built
                    .map(Element::from)
                    .unwrap_or_else(|_| Element::from(Timestamp::with_year(year).build().unwrap()))
            },
        )
}

pub(crate) fn decimal() -> impl Strategy<Value = Element> {
    prop_oneof![
        (any::<i64>(), -40i64..40).prop_map(|(c, e)| Element::from(Decimal::new(c, e))),
        (any::<i128>(), any::<i64>()).prop_map(|(c, e)| Element::from(Decimal::new(c, e))),
        (-5i64..5).prop_map(|e| Element::from(Decimal::negative_zero_with_exponent(e))),
        (-5i64..5).prop_map(|e| Element::from(Decimal::new(0, e))),
        Just(Element::from(Decimal::new(0, 0))),
    ]
}

pub(crate) fn scalar() -> impl Strategy<Value = Element> {
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

pub(crate) fn element() -> impl Strategy<Value = Element> {
    let leaf = (scalar(), prop::collection::vec(text(), 0..3)).prop_map(|(value, annotations)| {
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
