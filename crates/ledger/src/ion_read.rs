//! The one way Ion from outside is read: measure its nesting first, without recursion, then hand
//! it to ion-rs, whose reader (like its writer, hasher, `Clone` and `Drop`) recurses once per
//! level and would otherwise overflow the thread's stack on hostile input: a 4 KB parameter of
//! nested structs is enough on a 2 MiB stack.
//!
//! [`nesting_depth`] walks Ion text as ion-rs's lexer does, only for what can hide or open a
//! container: strings, long strings, quoted symbols, comments, `{{ lobs }}` and, inside
//! s-expressions, operator runs (`(a +//[`: `+//` is one operator, not a comment). Ion binary
//! is walked by its length prefixes with an explicit stack. Both stop as soon as the limit is
//! passed, and both refuse Ion 1.1, whose macros can expand shallow text into deep values.
//!
//! Callers choose the limit: [`ION_DEPTH_MAX`] for values (statement parameters, Ion literals,
//! block addresses, proofs, manifests), [`BLOCK_DEPTH_MAX`] for journal blocks, which carry
//! documents three levels down (import and restore files, stored blocks and revisions).

use ion_rs::{Element, Sequence, Value};

use crate::error::LedgerError;

/// How deeply an Ion value from outside may nest containers (`[[1]]` nests 2 levels). Real
/// documents nest a few dozen levels at most, while a 128 KB document could nest some 60,000,
/// so the limit is about the stack, not about documents: 2,000 is far beyond any real document,
/// and above the deepest values the previous release could read on its 2 MiB stacks (about
/// 1,900 levels of structs in Ion binary), so every value it stored still restores from its
/// export. Beyond it the value is refused as a bad request before ion-rs sees it; a committed
/// document deeper than this is refused with `LimitExceeded`. The server's threads have stacks
/// sized for this depth plus the nesting a PartiQL statement can add (see `sluice up`).
pub const ION_DEPTH_MAX: usize = 2_000;

/// Levels a journal block adds above a document: the block struct, its `revisions` list and the
/// revision struct whose `data` the document is.
pub const BLOCK_ENVELOPE_DEPTH: usize = 3;

/// How deeply a journal block may nest: a document at [`ION_DEPTH_MAX`] in its envelope. Import
/// and restore files, stored blocks and stored revisions are read with this limit.
pub const BLOCK_DEPTH_MAX: usize = ION_DEPTH_MAX + BLOCK_ENVELOPE_DEPTH;

/// How deeply a value a statement returns may nest: a stored revision (a document and its
/// envelope), wrapped by the statement's constructors and subqueries, each of which adds at most
/// one level per level of the statement's own nesting (bounded by the PartiQL parser). Clients
/// read answers with this limit (`sluice sql`).
pub const RESULT_DEPTH_MAX: usize =
    BLOCK_DEPTH_MAX + 2 * sluice_partiql::NESTING_DEPTH_MAX as usize;

/// Why Ion data was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IonReadError {
    /// Containers nest deeper than the limit; nothing was parsed.
    #[error("ion value nested deeper than {depth_max} levels")]
    TooDeep { depth_max: usize },
    /// An Ion 1.1 version marker: only Ion 1.0 is accepted, as in QLDB.
    #[error("only ion 1.0 is accepted")]
    UnsupportedVersion,
    /// Not Ion: the binary framing is broken, or ion-rs refused it.
    #[error("invalid ion: {0}")]
    Invalid(String),
}

impl From<IonReadError> for LedgerError {
    fn from(error: IonReadError) -> Self {
        LedgerError::BadRequest(error.to_string())
    }
}

/// Reads exactly one Ion value (text or binary) nested at most `depth_max` levels.
/// Ion binary is read by [`crate::ion_binary::decode_one`] when it can (journal blocks,
/// revisions, drivers' parameters), else, like text, by ion-rs.
pub fn read_one(bytes: &[u8], depth_max: usize) -> Result<Element, IonReadError> {
    nesting_depth(bytes, depth_max)?;
    if let Some(element) = crate::ion_binary::decode_one(bytes) {
        return Ok(element);
    }
    contain_panic(|| Element::read_one(bytes))
}

/// Reads every Ion value of a stream (text or binary), each nested at most `depth_max` levels.
pub fn read_all(bytes: &[u8], depth_max: usize) -> Result<Sequence, IonReadError> {
    nesting_depth(bytes, depth_max)?;
    contain_panic(|| Element::read_all(bytes))
}

/// Runs one step of an ion-rs reader (an iterator's `next`, say), turning a panic into `Invalid`
/// as [`contain_panic`] does for whole reads.
pub fn contain_panic_of<T>(step: impl FnOnce() -> T) -> Result<T, IonReadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).map_err(|_| {
        IonReadError::Invalid("malformed input the ion reader cannot handle".to_owned())
    })
}

/// Runs an ion-rs read, turning its panics into `Invalid`: fuzzing found ion-rs subtracting
/// lengths it had not checked on malformed binary (an annotation wrapper shorter than its
/// annotations), which panics in builds with overflow checks. The binary walk above refuses the
/// shapes found so far; this keeps any other one a bad request rather than a failed request.
fn contain_panic<T>(read: impl FnOnce() -> ion_rs::IonResult<T>) -> Result<T, IonReadError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(IonReadError::Invalid(error.to_string())),
        Err(_) => Err(IonReadError::Invalid(
            "malformed input the ion reader cannot handle".to_owned(),
        )),
    }
}

/// The deepest container nesting of the Ion data in `bytes`, text or binary (binary starts with
/// its version marker, as ion-rs decides), or `TooDeep` as soon as it passes `depth_max`. Never
/// recurses; memory is one byte or one frame per open container.
///
/// Malformed text is measured as far as it goes (ion-rs reports the syntax error later, and
/// stops there); malformed binary framing is `Invalid` here.
pub fn nesting_depth(bytes: &[u8], depth_max: usize) -> Result<usize, IonReadError> {
    if bytes.first() == Some(&0xE0) {
        binary_depth(bytes, depth_max)
    } else {
        text_depth(bytes, depth_max)
    }
}

/// The container nesting of an element: 0 for a scalar, 1 + the deepest child for a container.
/// Iterative, so it is safe on any element however it was built.
pub fn element_depth(element: &Element) -> usize {
    let mut deepest = 0;
    let mut pending: Vec<(&Element, usize)> = vec![(element, 0)];
    while let Some((element, above)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Element>> = match element.value() {
            Value::List(sequence) | Value::SExp(sequence) => Box::new(sequence.elements()),
            Value::Struct(fields) => Box::new(fields.fields().map(|(_, value)| value)),
            _ => continue,
        };
        let depth = above + 1;
        deepest = deepest.max(depth);
        pending.extend(children.map(|child| (child, depth)));
    }
    deepest
}

// ----- text -----

/// The bytes ion-rs reads as one operator symbol when they run together inside an s-expression.
fn is_operator_byte(byte: u8) -> bool {
    b"!#%&*+-./;<=>?@^`|~".contains(&byte)
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte == b'$'
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$'
}

/// The position just past the first unescaped `delimiter` at or after `start`, or the end. A
/// backslash hides the byte after it, as in ion-rs (a `\r\n` after it is one line break, but
/// neither byte is ever a delimiter).
fn skip_past_unescaped(bytes: &[u8], start: usize, delimiter: &[u8]) -> usize {
    let mut position = start;
    while let Some(&byte) = bytes.get(position) {
        if byte == b'\\' {
            position += 2;
        } else if bytes
            .get(position..)
            .is_some_and(|rest| rest.starts_with(delimiter))
        {
            return position + delimiter.len();
        } else {
            position += 1;
        }
    }
    bytes.len()
}

/// The position just past a lob's closing `}}`, given the position after its `{{`. A clob's
/// strings may hold `}}`; a blob's base64 holds neither quotes nor braces.
fn skip_lob(bytes: &[u8], start: usize) -> usize {
    let mut position = start;
    while let Some(&byte) = bytes.get(position) {
        let rest = bytes.get(position..).unwrap_or_default();
        position = if byte == b'"' {
            skip_past_unescaped(bytes, position + 1, b"\"")
        } else if rest.starts_with(b"'''") {
            skip_past_unescaped(bytes, position + 3, b"'''")
        } else if rest.starts_with(b"}}") {
            return position + 2;
        } else {
            position + 1
        };
    }
    bytes.len()
}

/// Whether a top-level identifier is a version marker other than Ion 1.0's (`$ion_1_1`).
fn is_other_version_marker(identifier: &[u8]) -> bool {
    let Some(version) = identifier.strip_prefix(b"$ion_") else {
        return false;
    };
    let mut parts = version.split(|byte| *byte == b'_');
    let is_number = |part: Option<&[u8]>| {
        part.is_some_and(|part| !part.is_empty() && part.iter().all(u8::is_ascii_digit))
    };
    let shaped_like_marker =
        is_number(parts.next()) && is_number(parts.next()) && parts.next().is_none();
    shaped_like_marker && version != b"1_0"
}

fn text_depth(bytes: &[u8], depth_max: usize) -> Result<usize, IonReadError> {
    // The open containers' opening bytes; bounded by `depth_max` since deeper stops the scan.
    let mut open: Vec<u8> = Vec::new();
    let mut deepest = 0;
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        let rest = bytes.get(position..).unwrap_or_default();
        let in_sexp = open.last() == Some(&b'(');
        position = match byte {
            b'"' => skip_past_unescaped(bytes, position + 1, b"\""),
            b'\'' if rest.starts_with(b"'''") => skip_past_unescaped(bytes, position + 3, b"'''"),
            b'\'' => skip_past_unescaped(bytes, position + 1, b"'"),
            // Comments are tried first wherever a value may start, also in s-expressions.
            b'/' if rest.starts_with(b"//") => rest
                .iter()
                .position(|byte| *byte == b'\n' || *byte == b'\r')
                .map_or(bytes.len(), |end| position + end),
            b'/' if rest.starts_with(b"/*") => {
                let body = rest.get(2..).unwrap_or_default();
                body.windows(2)
                    .position(|window| window == b"*/")
                    .map_or(bytes.len(), |end| position + 2 + end + 2)
            }
            b'{' if rest.starts_with(b"{{") => skip_lob(bytes, position + 2),
            b'{' | b'[' | b'(' => {
                open.push(byte);
                deepest = deepest.max(open.len());
                if open.len() > depth_max {
                    return Err(IonReadError::TooDeep { depth_max });
                }
                position + 1
            }
            b'}' | b']' | b')' => {
                open.pop();
                position + 1
            }
            // One operator symbol, however many `/` it holds: `(a +//[` opens a list.
            operator if in_sexp && is_operator_byte(operator) => {
                position
                    + rest
                        .iter()
                        .position(|byte| !is_operator_byte(*byte))
                        .unwrap_or(rest.len())
            }
            start if is_identifier_start(start) => {
                let length = rest
                    .iter()
                    .position(|byte| !is_identifier_byte(*byte))
                    .unwrap_or(rest.len());
                let identifier = rest.get(..length).unwrap_or_default();
                if open.is_empty() && is_other_version_marker(identifier) {
                    return Err(IonReadError::UnsupportedVersion);
                }
                position + length
            }
            _ => position + 1,
        };
    }
    Ok(deepest)
}

// ----- binary -----

/// Ion 1.0's binary version marker.
const IVM_1_0: [u8; 4] = [0xE0, 0x01, 0x00, 0xEA];
/// Most bytes of a VarUInt length or symbol id: 9 × 7 bits cover a `u64`.
const VAR_UINT_BYTES_MAX: usize = 9;

fn invalid_binary(position: usize, what: &str) -> IonReadError {
    IonReadError::Invalid(format!("ion binary {what} at byte {position}"))
}

/// Reads a VarUInt ending before `end`; returns (value, bytes used).
fn var_uint(bytes: &[u8], position: usize, end: usize) -> Result<(usize, usize), IonReadError> {
    let mut value: usize = 0;
    for used in 0..VAR_UINT_BYTES_MAX {
        let at = position + used;
        let byte = match bytes.get(at) {
            Some(byte) if at < end => *byte,
            _ => return Err(invalid_binary(position, "length runs past its container")),
        };
        value = value
            .checked_mul(128)
            .and_then(|value| value.checked_add(usize::from(byte & 0x7F)))
            .ok_or_else(|| invalid_binary(position, "length overflows"))?;
        if byte & 0x80 != 0 {
            return Ok((value, used + 1));
        }
    }
    Err(invalid_binary(position, "length is too long"))
}

/// What an open frame of the binary walk is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// A list or s-expression: its values follow one another.
    Sequence,
    /// A struct: each value is preceded by its field name's symbol id.
    Struct,
    /// An annotation wrapper: its annotations are skipped, one value follows; not a level.
    Annotations,
}

fn binary_depth(bytes: &[u8], depth_max: usize) -> Result<usize, IonReadError> {
    // Open frames with the position where each ends; only containers count as levels.
    let mut frames: Vec<(Frame, usize)> = Vec::new();
    let mut levels = 0;
    let mut deepest = 0;
    let mut position = 0;
    loop {
        let (frame, end) = frames
            .last()
            .copied()
            .unwrap_or((Frame::Sequence, bytes.len()));
        if position == end {
            match frames.pop() {
                Some((Frame::Annotations, _)) => {}
                Some(_) => levels -= 1,
                None => return Ok(deepest),
            }
            continue;
        }
        if position > end {
            return Err(invalid_binary(position, "value runs past its container"));
        }
        if frames.is_empty() && bytes.get(position) == Some(&0xE0) {
            match bytes.get(position..position + 4) {
                Some(marker) if marker == IVM_1_0 => {}
                Some([0xE0, 0x01, _, 0xEA]) => return Err(IonReadError::UnsupportedVersion),
                _ => return Err(invalid_binary(position, "version marker is broken")),
            }
            position += 4;
            continue;
        }
        if frame == Frame::Struct {
            let (_field_name, used) = var_uint(bytes, position, end)?;
            position += used;
        }
        let Some(&descriptor) = bytes.get(position).filter(|_| position < end) else {
            return Err(invalid_binary(position, "field has no value"));
        };
        let (kind, length_code) = (descriptor >> 4, descriptor & 0x0F);
        position += 1;
        let (length, used) = match (kind, length_code) {
            (0xF, _) => return Err(invalid_binary(position - 1, "type code 15 is reserved")),
            (0xE, 0x0F) => return Err(invalid_binary(position - 1, "annotations cannot be null")),
            (0x1, _) | (_, 0x0F) => (0, 0),
            (0xD, 0x01) | (_, 0x0E) => var_uint(bytes, position, end)?,
            (_, length) => (usize::from(length), 0),
        };
        position += used;
        let value_end = position
            .checked_add(length)
            .filter(|value_end| *value_end <= end)
            .ok_or_else(|| invalid_binary(position, "value runs past its container"))?;
        match kind {
            0xB..=0xD if length_code != 0x0F => {
                let frame = if kind == 0xD {
                    Frame::Struct
                } else {
                    Frame::Sequence
                };
                frames.push((frame, value_end));
                levels += 1;
                deepest = deepest.max(levels);
                if levels > depth_max {
                    return Err(IonReadError::TooDeep { depth_max });
                }
            }
            0xE => {
                if frame == Frame::Annotations {
                    return Err(invalid_binary(position, "annotations wrap annotations"));
                }
                let (annotations_length, used) = var_uint(bytes, position, value_end)?;
                position = position
                    .checked_add(used)
                    .and_then(|position| position.checked_add(annotations_length))
                    .filter(|wrapped| *wrapped < value_end)
                    .ok_or_else(|| invalid_binary(position, "annotations have no value"))?;
                frames.push((Frame::Annotations, value_end));
            }
            _ => position = value_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, depth: usize) -> String {
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn text_depth_counts_containers_and_nothing_hidden() {
        let cases: &[(&str, usize)] = &[
            ("1", 0),
            ("[]", 1),
            ("[[1], {a: (b c)}]", 3),
            (r#"["[[[", '[[[', '''[[[''', "\"[["]"#, 1),
            ("[// [[[\n 1]", 1),
            ("[/* [[[ */ 1]", 1),
            ("[{{ W1tb }}, {{ \"}}[[[\" }}, {{ '''}}[''' }}]", 1),
            ("(a +//[1]\n)", 2),
            ("(a //[1]\n)", 1),
            ("(/* ( */ a)", 1),
            ("$ion_1_0 [1] $ion_1_0 {a: [2]}", 2),
            ("a::b::[c::{d: 1}]", 2),
            ("{'x\\'[': \"\\\"[\"}", 1),
        ];
        for (text, depth) in cases {
            assert_eq!(nesting_depth(text.as_bytes(), 10), Ok(*depth), "{text}");
            // ion-rs reads each case to the same depth: nothing was hidden that it parses.
            let all = Element::read_all(text.as_bytes()).unwrap();
            let deepest = all.elements().map(element_depth).max().unwrap_or(0);
            assert_eq!(deepest, *depth, "{text}");
        }
    }

    #[test]
    fn deep_text_and_binary_are_refused_before_reading() {
        for (open, close) in [("[", "]"), ("{a:", "}"), ("(", ")"), ("x::[", "]")] {
            let text = nested(open, close, 50_000);
            assert_eq!(
                read_one(text.as_bytes(), ION_DEPTH_MAX),
                Err(IonReadError::TooDeep {
                    depth_max: ION_DEPTH_MAX
                })
            );
            let at_limit = nested(open, close, 8);
            let element = read_one(at_limit.as_bytes(), 8).unwrap();
            assert_eq!(element_depth(&element), 8);
            assert!(read_one(at_limit.as_bytes(), 7).is_err());
        }
        let binary =
            crate::model::encode_binary(&Element::read_one(nested("[", "]", 9)).unwrap()).unwrap();
        assert_eq!(nesting_depth(&binary, 9), Ok(9));
        assert_eq!(
            read_one(&binary, 8),
            Err(IonReadError::TooDeep { depth_max: 8 })
        );
    }

    #[test]
    fn ion_1_1_is_refused() {
        assert_eq!(
            read_one(b"$ion_1_1 (:values 1)", 10),
            Err(IonReadError::UnsupportedVersion)
        );
        assert_eq!(
            read_one(&[0xE0, 0x01, 0x01, 0xEA, 0x60], 10),
            Err(IonReadError::UnsupportedVersion)
        );
        // A symbol inside a container is only a symbol.
        assert!(read_one(b"[$ion_1_1]", 10).is_ok());
    }

    #[test]
    fn broken_binary_framing_is_invalid_not_a_panic() {
        for bytes in [
            &[0xE0, 0x01, 0x00][..],
            &[0xE0, 0x01, 0x00, 0xEA, 0xBE],
            &[0xE0, 0x01, 0x00, 0xEA, 0xBE, 0x8F, 0x21],
            &[0xE0, 0x01, 0x00, 0xEA, 0xB3, 0xB0],
            &[0xE0, 0x01, 0x00, 0xEA, 0xD2, 0x81],
            &[0xE0, 0x01, 0x00, 0xEA, 0xE4, 0x81, 0x84, 0xE3, 0x81],
            &[0xE0, 0x01, 0x00, 0xEA, 0xF0],
            &[
                0xE0, 0x01, 0x00, 0xEA, 0xBE, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F,
            ],
        ] {
            assert!(
                matches!(nesting_depth(bytes, 10), Err(IonReadError::Invalid(_))),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn element_depth_is_iterative() {
        let text = nested("[", "]", 3);
        assert_eq!(element_depth(&Element::read_one(text).unwrap()), 3);
        assert_eq!(element_depth(&Element::int(1)), 0);
    }
}
