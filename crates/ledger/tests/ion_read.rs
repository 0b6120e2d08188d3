//! Fuzzing the bounded Ion reader against ion-rs itself: on arbitrary bytes it never panics and
//! never returns a value deeper than its limit; on Ion that ion-rs reads, the depth it measures
//! without recursion is never below the depth ion-rs builds (so ion-rs never recurses past the
//! limit), and on well-formed Ion it is exact. Bounded case counts keep it to seconds.

mod common;

use common::nested_binary_lists;
use ion_rs::{Element, IonType, List, SExp, Sequence, Struct};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sluice_ledger::ion_read::{self, IonReadError};

/// The limit the properties use: small, so that generated input often crosses it.
const DEPTH_MAX: usize = 6;

/// Runs a property on a thread with a large stack: the properties also read generated input
/// with ion-rs's unbounded reader, to compare. `PROPTEST_CASES` overrides the case count for a
/// longer run.
fn check<S: Strategy + 'static>(
    cases: u32,
    strategy: impl FnOnce() -> S + Send + 'static,
    property: impl Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
) where
    S::Value: std::fmt::Debug,
{
    let runner = std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let cases = std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or(cases);
            let config = Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            };
            TestRunner::new(config)
                .run(&strategy(), property)
                .map_err(|error| error.to_string())
        })
        .expect("spawn the property thread");
    if let Err(failure) = runner.join().expect("the property thread panicked") {
        panic!("{failure}");
    }
}

/// What the bounded reader must guarantee on any input: a value, if any, within the limit, and
/// a measured depth never below what ion-rs builds when ion-rs reads the input.
fn assert_bounded(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(element) = ion_read::read_one(bytes, DEPTH_MAX) {
        prop_assert!(ion_read::element_depth(&element) <= DEPTH_MAX);
    }
    if let Ok(values) = ion_read::read_all(bytes, DEPTH_MAX) {
        for value in values.elements() {
            prop_assert!(ion_read::element_depth(value) <= DEPTH_MAX);
        }
    }
    // ion-rs itself may panic on malformed binary (see `contain_panic`): compare only what it reads.
    let unbounded = std::panic::catch_unwind(|| Element::read_all(bytes));
    if let Ok(Ok(values)) = unbounded {
        let built = values
            .elements()
            .map(ion_read::element_depth)
            .max()
            .unwrap_or(0);
        match ion_read::nesting_depth(bytes, usize::MAX) {
            Ok(measured) => prop_assert!(
                measured >= built,
                "measured {measured} < built {built} in {:?}",
                String::from_utf8_lossy(bytes)
            ),
            // Refusing Ion 1.1 is allowed whatever ion-rs would do with it, and so is refusing
            // binary whose lengths do not nest (ion-rs reads some such input anyway).
            Err(IonReadError::UnsupportedVersion) => {}
            Err(IonReadError::Invalid(_)) if bytes.first() == Some(&0xE0) => {}
            Err(other) => prop_assert!(false, "{other} for input ion-rs reads: {bytes:x?}"),
        }
    }
    Ok(())
}

/// Fragments of Ion text, chosen for what can hide or open containers.
fn text_fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        "(",
        ")",
        "{{",
        "}}",
        "a:",
        "'b':",
        "\"c\":",
        ",",
        " ",
        "\n",
        "1",
        "-2.5e3",
        "2020-01-01T",
        "null.list",
        "sym",
        "'[q'",
        "'''[l'''",
        "\"[s\"",
        "\"\\\"[\"",
        "'\\'['",
        "//[ c\n",
        "/*[ c*/",
        "/",
        "*",
        "+",
        "+//",
        "a::",
        "$ion_1_0",
        "$ion_1_1",
        "{{ W1s= }}",
        "{{ \"}}[\" }}",
        "{{ '''}}''' }}",
        "\\",
        "'",
        "\"",
        "'''",
        ".",
        "-",
        "%",
    ])
}

fn text_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(text_fragment(), 0..60).prop_map(|fragments| fragments.concat())
}

/// Ion elements of every container kind, annotated or not, with scalars whose text holds
/// brackets.
fn element() -> impl Strategy<Value = Element> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(Element::int),
        "[\\[\\]{}()'\"/*a-z ]{0,8}".prop_map(Element::string),
        "[a-z\\[\\]{}()/* ]{1,6}".prop_map(Element::symbol),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Element::blob),
        prop::collection::vec(b'!'..=b'~', 0..8).prop_map(Element::clob),
        Just(Element::null(IonType::List)),
        Just(Element::null(IonType::Struct)),
        any::<bool>().prop_map(Element::boolean),
    ];
    let tree = scalar.prop_recursive(12, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| Element::from(List::from(Sequence::new(items)))),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| Element::from(SExp::from(Sequence::new(items)))),
            prop::collection::vec(("[a-z\\[{( ]{1,4}", inner), 0..4).prop_map(|fields| {
                let mut builder = Struct::builder();
                for (name, value) in fields {
                    builder = builder.with_field(name, value);
                }
                Element::from(builder.build())
            }),
        ]
    });
    (tree, prop::collection::vec("[a-z\\[]{1,3}", 0..2))
        .prop_map(|(element, annotations)| element.with_annotations(annotations))
}

#[test]
fn arbitrary_bytes_never_panic_or_pass_the_limit() {
    check(
        2_000,
        || (any::<bool>(), prop::collection::vec(any::<u8>(), 0..400)),
        |(binary, mut bytes)| {
            if binary {
                bytes.splice(0..0, [0xE0, 0x01, 0x00, 0xEA]);
            }
            assert_bounded(&bytes)
        },
    );
}

#[test]
fn text_soup_is_measured_no_shallower_than_ion_rs_reads_it() {
    check(3_000, text_soup, |text| assert_bounded(text.as_bytes()));
}

#[test]
fn well_formed_text_and_binary_are_measured_exactly() {
    check(1_000, element, |element| {
        let depth = ion_read::element_depth(&element);
        let text = sluice_ledger::model::encode_text(&element).expect("encode text");
        prop_assert_eq!(
            ion_read::nesting_depth(text.as_bytes(), usize::MAX),
            Ok(depth),
            "{}",
            text
        );
        // Binary may carry a local symbol table, a struct of lists (2 levels), before the value.
        let binary = sluice_ledger::model::encode_binary(&element).expect("encode binary");
        let measured = ion_read::nesting_depth(&binary, usize::MAX);
        prop_assert!(
            measured == Ok(depth) || (depth < 2 && measured == Ok(2)),
            "binary measured {:?}, depth {}",
            measured,
            depth
        );
        let pretty = element
            .encode_as(ion_rs::v1_0::Text.with_format(ion_rs::TextFormat::Pretty))
            .expect("encode pretty");
        prop_assert_eq!(
            ion_read::nesting_depth(pretty.as_bytes(), usize::MAX),
            Ok(depth)
        );
        match ion_read::read_one(text.as_bytes(), DEPTH_MAX) {
            Ok(read) => prop_assert_eq!(read, element),
            Err(error) => prop_assert_eq!(
                error,
                IonReadError::TooDeep {
                    depth_max: DEPTH_MAX
                }
            ),
        }
        Ok(())
    });
}

#[test]
fn mutated_binary_never_panics_or_hides_depth() {
    check(
        2_000,
        || {
            (
                element(),
                prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
            )
        },
        |(element, mutations)| {
            let mut binary = sluice_ledger::model::encode_binary(&element).expect("encode binary");
            for (index, byte, kind) in mutations {
                let position = index.index(binary.len().max(1));
                match kind {
                    0 if position < binary.len() => binary[position] = byte,
                    1 => binary.insert(position.min(binary.len()), byte),
                    _ => binary.truncate(position.max(4)),
                }
            }
            assert_bounded(&binary)
        },
    );
}

#[test]
fn deep_input_is_refused_in_linear_time_without_recursion() {
    // On this test's ordinary 2 MiB stack: nothing recurses on input ten times the limit.
    let depth = 10 * ion_read::ION_DEPTH_MAX;
    for (open, close) in [("[", "]"), ("{a:", "}"), ("(", ")"), ("(+//[\n", "])")] {
        let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        assert_eq!(
            ion_read::read_one(text.as_bytes(), ion_read::ION_DEPTH_MAX),
            Err(IonReadError::TooDeep {
                depth_max: ion_read::ION_DEPTH_MAX
            })
        );
    }
    let binary = nested_binary_lists(depth);
    assert_eq!(
        ion_read::read_one(&binary, ion_read::ION_DEPTH_MAX),
        Err(IonReadError::TooDeep {
            depth_max: ion_read::ION_DEPTH_MAX
        })
    );
    assert_eq!(ion_read::nesting_depth(&binary, usize::MAX), Ok(depth));
}
