//! Ion 1.0 binary written straight from an [`Element`] and read straight back into one, and the
//! scalar bodies the writer shares with the hasher ([`crate::ion_hash`], whose representations
//! are these same bodies).
//!
//! **Reading** ([`decode_one`]) serves every stored block and revision (the indexer, GetBlock,
//! proofs, recovery) and drivers' binary parameters, through [`crate::ion_read::read_one`],
//! which bounds the nesting first. It builds each value with the same `ion_rs` constructors
//! `ion_rs`'s reader uses (timestamps through the same builder calls), and leaves to `ion_rs`
//! whatever it does not read itself, malformed input included, so errors keep `ion_rs`'s
//! messages. Property tests read what both writers wrote, and damaged bytes, against `ion_rs`.
//!
//! **Writing:**
//! Every block a commit appends is encoded here, on the commit leader, as are the answers of
//! QLDBSession and the size checks of documents. `ion_rs`'s writer builds a general-purpose
//! writer, with its own symbol table and buffers, for each value; this writes the value's body
//! into one buffer, assigning local symbol IDs in first-seen order, then prefixes the version
//! marker and the local symbol table. A container is written before its length is known: one
//! byte is kept for its type descriptor, and when the body turns out to need a longer length
//! field the body moves up by those few bytes. What this module does not write itself (integers
//! and decimal coefficients beyond 128 bits, fractional seconds finer than nanoseconds, and
//! top-level symbols or annotations, which a reader could take for system values) it declines,
//! and the caller falls back to `ion_rs`. Readers see no difference: both are Ion 1.0 binary
//! with a local symbol table (the tests read every value back and compare). A decimal whose
//! exponent `ion_rs` would write but not read back is refused outright ([`Declined::Unreadable`]).

use std::sync::Arc;

use ion_rs::{
    Decimal, Element, Int, IonType, Struct, Symbol, Timestamp, TimestampPrecision, Value,
};

/// The Ion 1.0 binary version marker.
const VERSION_MARKER: [u8; 4] = [0xE0, 0x01, 0x00, 0xEA];

/// System symbol IDs: `$ion_symbol_table` and `symbols`.
const ION_SYMBOL_TABLE_SID: u64 = 3;
const SYMBOLS_SID: u64 = 7;

/// The first local symbol ID: the system table holds 1 to 9.
const LOCAL_SID_FIRST: u64 = 10;

/// Slots of the symbol table to start with: room for 64 symbols before it grows.
const SYMBOL_SLOTS_FIRST: usize = 128;

/// What a value's body buffer starts with: a block of one small document fits.
const BODY_CAPACITY_BYTES: usize = 2048;

/// A type descriptor's length nibble that says a `VarUInt` length follows.
const LENGTH_FOLLOWS: u8 = 14;

/// The most bytes a timestamp's or decimal's body takes here: offset, year, five components
/// and a fraction of at most nine digits; or a 64-bit exponent and a 128-bit coefficient.
const SCALAR_BODY_BYTES_MAX: usize = 48;

/// A scalar body this module leaves to `ion_rs`.
#[derive(Debug)]
pub(crate) struct Unsupported;

/// Why the writer did not write a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Declined {
    /// It holds a value this module leaves to `ion_rs`.
    LeftToIonRs,
    /// It holds a value no Ion binary reader here could read back: a decimal whose exponent
    /// needs a `VarInt` longer than 9 bytes. `ion_rs` writes those but refuses to read them,
    /// so a stored one would make its block unreadable.
    Unreadable(String),
}

impl From<Unsupported> for Declined {
    fn from(_: Unsupported) -> Self {
        Declined::LeftToIonRs
    }
}

/// The largest decimal exponent magnitude `ion_rs` reads back: a 9-byte `VarInt` carries 62
/// bits of magnitude.
pub(crate) const DECIMAL_EXPONENT_MAGNITUDE_MAX: u64 = (1 << 62) - 1;

/// The Ion 1.0 binary encoding of `element` (version marker, local symbol table, value).
pub(crate) fn encode(element: &Element) -> Result<Vec<u8>, Declined> {
    if !element.annotations().is_empty() || element.ion_type() == IonType::Symbol {
        return Err(Declined::LeftToIonRs);
    }
    let mut writer = Writer::new();
    writer.element(element)?;
    Ok(writer.finish())
}

/// Refuses a value [`encode`] leaves to `ion_rs` when it holds one that `ion_rs` would write but
/// not read back (see [`Declined::Unreadable`]).
pub(crate) fn check_readable(element: &Element) -> Result<(), Declined> {
    match element.value() {
        Value::Decimal(decimal)
            if decimal.exponent().unsigned_abs() > DECIMAL_EXPONENT_MAGNITUDE_MAX =>
        {
            Err(unreadable_exponent(decimal))
        }
        Value::List(sequence) | Value::SExp(sequence) => {
            sequence.elements().try_for_each(check_readable)
        }
        Value::Struct(fields) => fields
            .iter()
            .try_for_each(|(_, value)| check_readable(value)),
        _ => Ok(()),
    }
}

fn unreadable_exponent(decimal: &Decimal) -> Declined {
    Declined::Unreadable(format!(
        "decimal exponent {} beyond ±{DECIMAL_EXPONENT_MAGNITUDE_MAX}",
        decimal.exponent()
    ))
}

/// Ion 1.0 binary written part by part, for a value held as parts rather than as one element
/// (a journal block: its envelope, and the documents and transaction info it carries). The
/// caller opens and ends containers in order, and names each field of a struct before its
/// value.
pub(crate) struct Writer<'a> {
    body: Vec<u8>,
    symbols: Symbols<'a>,
    /// The containers open: where each one's descriptor byte is kept, and its type code.
    open: Vec<(usize, u8)>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new() -> Writer<'a> {
        Writer {
            body: Vec::with_capacity(BODY_CAPACITY_BYTES),
            symbols: Symbols::default(),
            open: Vec::new(),
        }
    }

    pub(crate) fn begin_struct(&mut self) {
        self.begin(0xD);
    }

    pub(crate) fn begin_list(&mut self) {
        self.begin(0xB);
    }

    fn begin(&mut self, code: u8) {
        self.open.push((self.body.len(), code));
        self.body.push(0);
    }

    /// Ends the innermost open container.
    pub(crate) fn end(&mut self) {
        if let Some((start, code)) = self.open.pop() {
            close_container(&mut self.body, start, code);
        }
    }

    /// The name of the struct field whose value comes next.
    pub(crate) fn field(&mut self, name: &'a str) {
        let id = self.symbols.id(Some(name));
        push_var_uint(&mut self.body, id);
    }

    pub(crate) fn string(&mut self, text: &str) {
        push_scalar(&mut self.body, 0x8, text.as_bytes());
    }

    pub(crate) fn blob(&mut self, bytes: &[u8]) {
        push_scalar(&mut self.body, 0xA, bytes);
    }

    pub(crate) fn int(&mut self, value: u64) {
        let bytes = value.to_be_bytes();
        push_scalar(&mut self.body, 0x2, significant(&bytes));
    }

    pub(crate) fn timestamp(&mut self, timestamp: &Timestamp) -> Result<(), Declined> {
        let mut body = Body::new();
        write_timestamp(&mut body, timestamp)?;
        push_scalar(&mut self.body, 0x6, body.bytes());
        Ok(())
    }

    /// A whole element, annotations included.
    pub(crate) fn element(&mut self, element: &'a Element) -> Result<(), Declined> {
        write_element(&mut self.body, &mut self.symbols, element)
    }

    /// The version marker, the local symbol table and the value written.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        while !self.open.is_empty() {
            self.end();
        }
        let mut out = Vec::with_capacity(self.body.len() + self.symbols.encoded_bytes_estimate());
        out.extend_from_slice(&VERSION_MARKER);
        if !self.symbols.texts.is_empty() {
            // $ion_symbol_table::{symbols: ["…", …]}
            let wrapper = out.len();
            out.push(0);
            push_var_uint(&mut out, 1);
            push_var_uint(&mut out, ION_SYMBOL_TABLE_SID);
            let table = out.len();
            out.push(0);
            push_var_uint(&mut out, SYMBOLS_SID);
            let list = out.len();
            out.push(0);
            for text in &self.symbols.texts {
                push_scalar(&mut out, 0x8, text.as_bytes());
            }
            close_container(&mut out, list, 0xB);
            close_container(&mut out, table, 0xD);
            close_container(&mut out, wrapper, 0xE);
        }
        out.extend_from_slice(&self.body);
        out
    }
}

/// The system symbols, `$1` to `$9`.
const SYSTEM_SYMBOLS: [Symbol; 9] = [
    Symbol::static_text("$ion"),
    Symbol::static_text("$ion_1_0"),
    Symbol::static_text("$ion_symbol_table"),
    Symbol::static_text("name"),
    Symbol::static_text("version"),
    Symbol::static_text("imports"),
    Symbol::static_text("symbols"),
    Symbol::static_text("max_id"),
    Symbol::static_text("$ion_shared_symbol_table"),
];

/// Reads exactly one value of Ion 1.0 binary (version marker, local symbol tables, one value),
/// as `Element::read_one` would, or `None` for anything it leaves to `ion_rs`: shared symbol
/// table imports, integers and decimal coefficients beyond 128 bits, sub-nanosecond or unusual
/// fractions, anything malformed (so that `ion_rs` reports it), and more than one value. The
/// caller bounds the nesting first ([`crate::ion_read`]): this recurses once per level.
pub(crate) fn decode_one(bytes: &[u8]) -> Option<Element> {
    let mut bytes = bytes.strip_prefix(&VERSION_MARKER)?;
    let mut symbols = system_symbols();
    let mut value = None;
    while !bytes.is_empty() {
        if let Some(rest) = bytes.strip_prefix(&VERSION_MARKER) {
            bytes = rest;
            symbols = system_symbols();
            continue;
        }
        let descriptor = *bytes.first()?;
        if descriptor >> 4 == 0xE {
            // A struct whose first annotation is `$ion_symbol_table` is a symbol table, not a
            // value; any other shape so annotated is left to ion_rs.
            match first_annotation(bytes) {
                Some(ION_SYMBOL_TABLE_SID) => {
                    read_symbol_table(&mut bytes, &mut symbols)?;
                    continue;
                }
                Some(id) => {
                    if symbol(&symbols, id)?.text() == Some("$ion_symbol_table") {
                        return None;
                    }
                }
                None => return None,
            }
        } else if descriptor >> 4 == 0x7 {
            return None; // a top-level symbol, which a reader may take for a system value
        }
        match read_value(&mut bytes, &symbols)? {
            Some(element) if value.is_none() => value = Some(element),
            Some(_) => return None,
            None => {} // a NOP pad
        }
    }
    value
}

/// The symbol table every stream starts with: `$0` (no text), then the system symbols.
fn system_symbols() -> Vec<Symbol> {
    std::iter::once(Symbol::unknown_text())
        .chain(SYSTEM_SYMBOLS)
        .collect()
}

fn symbol(symbols: &[Symbol], id: u64) -> Option<Symbol> {
    symbols.get(usize::try_from(id).ok()?).cloned()
}

/// The first annotation's symbol ID of the annotation wrapper at the start of `bytes`.
fn first_annotation(mut bytes: &[u8]) -> Option<u64> {
    let (_, length) = read_descriptor(&mut bytes)?;
    let mut body = take(&mut bytes, length)?;
    read_var_uint(&mut body)?;
    read_var_uint(&mut body)
}

/// The first `length` bytes of `bytes`, which move past them.
fn take<'a>(bytes: &mut &'a [u8], length: usize) -> Option<&'a [u8]> {
    let (taken, rest) = bytes.split_at_checked(length)?;
    *bytes = rest;
    Some(taken)
}

/// A type descriptor and its body's length (`LENGTH_FOLLOWS` read through; 15, a null, as a
/// length of zero, as a bool's, whose nibble is its value).
fn read_descriptor(bytes: &mut &[u8]) -> Option<(u8, usize)> {
    let (&descriptor, rest) = bytes.split_first()?;
    *bytes = rest;
    let nibble = descriptor & 0x0F;
    let length = match (descriptor >> 4, nibble) {
        (0x1, _) | (_, 15) => 0,
        (_, LENGTH_FOLLOWS) => usize::try_from(read_var_uint(bytes)?).ok()?,
        _ => usize::from(nibble),
    };
    Some((descriptor, length))
}

/// A local symbol table: `$ion_symbol_table::{imports: $ion_symbol_table, symbols: [...]}`
/// appends to `symbols`, without `imports` replaces them; shared imports are left to `ion_rs`.
fn read_symbol_table(bytes: &mut &[u8], symbols: &mut Vec<Symbol>) -> Option<()> {
    let (_, length) = read_descriptor(bytes)?;
    let mut wrapper = take(bytes, length)?;
    if read_var_uint(&mut wrapper)? != 1 {
        return None;
    }
    take(&mut wrapper, 1)?;
    let (descriptor, length) = read_descriptor(&mut wrapper)?;
    if descriptor >> 4 != 0xD || matches!(descriptor & 0x0F, 1 | 15) {
        return None;
    }
    let mut fields = take(&mut wrapper, length)?;
    if !wrapper.is_empty() {
        return None;
    }
    let mut append = false;
    let mut texts: Option<Vec<Symbol>> = None;
    while !fields.is_empty() {
        let field = read_var_uint(&mut fields)?;
        let (descriptor, length) = read_descriptor(&mut fields)?;
        let mut body = take(&mut fields, length)?;
        match field {
            6 => {
                // imports: only `$ion_symbol_table` (append) is read here.
                if descriptor != 0x71 || body != [ION_SYMBOL_TABLE_SID as u8] || append {
                    return None;
                }
                append = true;
            }
            7 => {
                if descriptor >> 4 != 0xB || descriptor & 0x0F == 15 || texts.is_some() {
                    return None;
                }
                let mut read = Vec::new();
                while !body.is_empty() {
                    let (descriptor, length) = read_descriptor(&mut body)?;
                    let text = take(&mut body, length)?;
                    if descriptor >> 4 != 0x8 || descriptor & 0x0F == 15 {
                        return None;
                    }
                    read.push(Symbol::shared(Arc::from(std::str::from_utf8(text).ok()?)));
                }
                texts = Some(read);
            }
            _ => {} // other fields (`max_id`, …) and NOP pads
        }
    }
    if !append {
        *symbols = system_symbols();
    }
    symbols.extend(texts.unwrap_or_default());
    Some(())
}

/// The next value, `None` inside for a NOP pad.
fn read_value(bytes: &mut &[u8], symbols: &[Symbol]) -> Option<Option<Element>> {
    let (descriptor, length) = read_descriptor(bytes)?;
    let body = take(bytes, length)?;
    let type_code = descriptor >> 4;
    let null = descriptor & 0x0F == 15;
    Some(Some(match type_code {
        0x0 if !null => return Some(None),
        0xE => read_annotated(body, symbols)?,
        _ if null => Element::null(ion_type(type_code)?),
        _ => read_body(type_code, descriptor & 0x0F, body, symbols)?,
    }))
}

/// The inside of an annotation wrapper: the annotations, then exactly one value.
fn read_annotated(mut body: &[u8], symbols: &[Symbol]) -> Option<Element> {
    let annotations_length = usize::try_from(read_var_uint(&mut body)?).ok()?;
    let mut ids = take(&mut body, annotations_length)?;
    let mut annotations = Vec::new();
    while !ids.is_empty() {
        annotations.push(symbol(symbols, read_var_uint(&mut ids)?)?);
    }
    if annotations.is_empty() {
        return None;
    }
    let descriptor = *body.first()?;
    if descriptor >> 4 == 0xE || (descriptor >> 4 == 0 && descriptor & 0x0F != 15) {
        return None;
    }
    let element = read_value(&mut body, symbols)??;
    if !body.is_empty() {
        return None;
    }
    Some(element.with_annotations(annotations))
}

fn read_body(type_code: u8, nibble: u8, body: &[u8], symbols: &[Symbol]) -> Option<Element> {
    Some(match type_code {
        0x1 => match (nibble, body.len()) {
            (0, 0) => Element::from(false),
            (1, 0) => Element::from(true),
            _ => return None,
        },
        0x2 | 0x3 => {
            let magnitude = read_uint(body)?;
            if type_code == 0x3 && magnitude == 0 {
                return None; // a negative zero integer is not Ion
            }
            let value = if type_code == 0x3 {
                0i128.checked_sub_unsigned(magnitude)?
            } else {
                i128::try_from(magnitude).ok()?
            };
            Element::from(Int::from(value))
        }
        0x4 => Element::from(match body.len() {
            0 => 0f64,
            4 => f64::from(f32::from_be_bytes(body.try_into().ok()?)),
            8 => f64::from_be_bytes(body.try_into().ok()?),
            _ => return None,
        }),
        0x5 => Element::from(read_decimal(body)?),
        0x6 => Element::from(read_timestamp(body)?),
        0x7 => Element::symbol(symbol(symbols, read_uint_u64(body)?)?),
        0x8 => Element::string(std::str::from_utf8(body).ok()?),
        0x9 => Element::clob(body),
        0xA => Element::blob(body),
        0xB => Element::from(ion_rs::List::from(read_sequence(body, symbols)?)),
        0xC => Element::from(ion_rs::SExp::from(read_sequence(body, symbols)?)),
        0xD if nibble != 1 => Element::from(read_fields(body, symbols)?),
        _ => return None, // the sorted struct form is left to ion_rs too
    })
}

fn read_sequence(mut body: &[u8], symbols: &[Symbol]) -> Option<Vec<Element>> {
    let mut items = Vec::new();
    while !body.is_empty() {
        if let Some(item) = read_value(&mut body, symbols)? {
            items.push(item);
        }
    }
    Some(items)
}

fn read_fields(mut body: &[u8], symbols: &[Symbol]) -> Option<Struct> {
    let mut fields = Vec::new();
    while !body.is_empty() {
        let name = symbol(symbols, read_var_uint(&mut body)?)?;
        if let Some(value) = read_value(&mut body, symbols)? {
            fields.push((name, value));
        }
    }
    Some(fields.into_iter().collect())
}

fn ion_type(type_code: u8) -> Option<IonType> {
    Some(match type_code {
        0x0 => IonType::Null,
        0x1 => IonType::Bool,
        0x2 | 0x3 => IonType::Int,
        0x4 => IonType::Float,
        0x5 => IonType::Decimal,
        0x6 => IonType::Timestamp,
        0x7 => IonType::Symbol,
        0x8 => IonType::String,
        0x9 => IonType::Clob,
        0xA => IonType::Blob,
        0xB => IonType::List,
        0xC => IonType::SExp,
        0xD => IonType::Struct,
        _ => return None,
    })
}

/// Ion 1.0 `VarUInt` from the front of `bytes`, at most 9 bytes (63 bits).
fn read_var_uint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for index in 0..9 {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value = (value << 7) | u64::from(byte & 0x7F);
        if byte & 0x80 != 0 {
            return Some(value);
        }
        if index == 8 {
            return None;
        }
    }
    None
}

/// Ion 1.0 `VarInt` from the front of `bytes`, at most 9 bytes: the value and whether it was a
/// negative zero.
fn read_var_int(bytes: &mut &[u8]) -> Option<(i64, bool)> {
    let (&first, rest) = bytes.split_first()?;
    *bytes = rest;
    let negative = first & 0x40 != 0;
    let mut magnitude = u64::from(first & 0x3F);
    let mut last = first & 0x80 != 0;
    let mut read = 1;
    while !last {
        if read == 9 {
            return None;
        }
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        magnitude = (magnitude << 7) | u64::from(byte & 0x7F);
        last = byte & 0x80 != 0;
        read += 1;
    }
    let value = i64::try_from(magnitude).ok()?;
    Some((
        if negative { -value } else { value },
        negative && magnitude == 0,
    ))
}

/// Ion 1.0 `UInt` of at most 16 bytes.
fn read_uint(bytes: &[u8]) -> Option<u128> {
    if bytes.len() > 16 {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0u128, |value, byte| (value << 8) | u128::from(*byte)),
    )
}

fn read_uint_u64(bytes: &[u8]) -> Option<u64> {
    u64::try_from(read_uint(bytes)?).ok()
}

/// Ion 1.0 `Int` (sign and magnitude) of at most 16 bytes: the value and whether it was a
/// negative zero. Empty is zero.
fn read_int(bytes: &[u8]) -> Option<(i128, bool)> {
    let Some((&first, rest)) = bytes.split_first() else {
        return Some((0, false));
    };
    let negative = first & 0x80 != 0;
    if rest.len() >= 16 {
        return None;
    }
    let magnitude = rest.iter().fold(u128::from(first & 0x7F), |value, byte| {
        (value << 8) | u128::from(*byte)
    });
    let value = if negative {
        0i128.checked_sub_unsigned(magnitude)?
    } else {
        i128::try_from(magnitude).ok()?
    };
    Some((value, negative && magnitude == 0))
}

fn read_decimal(body: &[u8]) -> Option<Decimal> {
    if body.is_empty() {
        return Some(Decimal::new(0i32, 0i64));
    }
    let mut rest = body;
    let (exponent, _) = read_var_int(&mut rest)?;
    let (coefficient, negative_zero) = read_int(rest)?;
    Some(if negative_zero {
        Decimal::negative_zero_with_exponent(exponent)
    } else {
        Decimal::new(coefficient, exponent)
    })
}

/// A timestamp's body, built as `ion_rs`'s reader builds it; fractions other than 1 to 9
/// digits are left to it.
fn read_timestamp(body: &[u8]) -> Option<Timestamp> {
    let mut rest = body;
    let (offset, unknown_offset) = read_var_int(&mut rest)?;
    let offset = i32::try_from(offset).ok()?;
    let year = u32::try_from(read_var_uint(&mut rest)?).ok()?;
    let builder = Timestamp::with_year(year);
    if rest.is_empty() {
        return builder.build().ok();
    }
    let builder = builder.with_month(u32::try_from(read_var_uint(&mut rest)?).ok()?);
    if rest.is_empty() {
        return builder.build().ok();
    }
    let builder = builder.with_day(u32::try_from(read_var_uint(&mut rest)?).ok()?);
    if rest.is_empty() {
        return builder.build().ok();
    }
    let hour = u32::try_from(read_var_uint(&mut rest)?).ok()?;
    let minute = u32::try_from(read_var_uint(&mut rest)?).ok()?;
    let builder = builder.with_hour_and_minute(hour, minute);
    if rest.is_empty() {
        return if unknown_offset {
            builder.build().ok()
        } else {
            builder.localize_to_offset(offset).build().ok()
        };
    }
    let builder = builder.with_second(u32::try_from(read_var_uint(&mut rest)?).ok()?);
    if rest.is_empty() {
        return if unknown_offset {
            builder.build().ok()
        } else {
            builder.localize_to_offset(offset).build().ok()
        };
    }
    let (exponent, _) = read_var_int(&mut rest)?;
    let (coefficient, negative_zero) = read_int(rest)?;
    if !(-9..=-1).contains(&exponent)
        || negative_zero
        || coefficient < 0
        || coefficient >= 10i128.pow(exponent.unsigned_abs() as u32)
    {
        return None;
    }
    let builder = builder.with_fractional_seconds(Decimal::new(coefficient, exponent));
    if unknown_offset {
        builder.build().ok()
    } else {
        builder.localize_to_offset(offset).build().ok()
    }
}

/// Local symbol IDs of the texts met so far, in first-seen order, found through an
/// open-addressing table of their hashes (a block has about 40 symbols; `HashMap` with SipHash
/// took most of this writer's time).
struct Symbols<'a> {
    texts: Vec<&'a str>,
    /// Slots of (hash, index into `texts` + 1), 0 for an empty slot; a power of two long, at
    /// most half full.
    slots: Vec<(u64, u32)>,
}

impl Default for Symbols<'_> {
    fn default() -> Self {
        Symbols {
            texts: Vec::with_capacity(SYMBOL_SLOTS_FIRST / 2),
            slots: vec![(0, 0); SYMBOL_SLOTS_FIRST],
        }
    }
}

impl<'a> Symbols<'a> {
    /// The symbol ID of `text` (`$0` for a symbol without text), assigned on first sight.
    fn id(&mut self, text: Option<&'a str>) -> u64 {
        let Some(text) = text else { return 0 };
        let hash = text_hash(text);
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots.get(slot) {
                Some(&(slot_hash, index)) if index != 0 => {
                    if slot_hash == hash && self.texts.get(index as usize - 1) == Some(&text) {
                        return LOCAL_SID_FIRST + u64::from(index) - 1;
                    }
                    slot = (slot + 1) & mask;
                }
                _ => break,
            }
        }
        let index = self.texts.len();
        self.texts.push(text);
        if let Some(free) = self.slots.get_mut(slot) {
            *free = (hash, index as u32 + 1);
        }
        if self.texts.len() * 2 > self.slots.len() {
            self.grow();
        }
        LOCAL_SID_FIRST + index as u64
    }

    /// Doubles the table, placing every text again by its stored hash.
    fn grow(&mut self) {
        let doubled = vec![(0, 0); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for (hash, index) in old.into_iter().filter(|(_, index)| *index != 0) {
            let mut slot = hash as usize & mask;
            while self.slots.get(slot).is_some_and(|(_, taken)| *taken != 0) {
                slot = (slot + 1) & mask;
            }
            if let Some(free) = self.slots.get_mut(slot) {
                *free = (hash, index);
            }
        }
    }

    /// About how many bytes the version marker and the symbol table take.
    fn encoded_bytes_estimate(&self) -> usize {
        16 + self.texts.iter().map(|text| text.len() + 3).sum::<usize>()
    }
}

/// A hash of a symbol's text, a word at a time (the multiply-rotate of rustc's `FxHasher`): the
/// texts are the value's own field names, so nothing here needs resistance to chosen collisions.
fn text_hash(text: &str) -> u64 {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let add = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    let bytes = text.as_bytes();
    let mut hash = add(0, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut buffer = [0u8; 8];
        buffer.copy_from_slice(word);
        hash = add(hash, u64::from_le_bytes(buffer));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut buffer = [0u8; 8];
        if let Some(head) = buffer.get_mut(..rest.len()) {
            head.copy_from_slice(rest);
        }
        hash = add(hash, u64::from_le_bytes(buffer));
    }
    hash
}

fn write_element<'a>(
    out: &mut Vec<u8>,
    symbols: &mut Symbols<'a>,
    element: &'a Element,
) -> Result<(), Declined> {
    let annotations = element.annotations();
    if annotations.is_empty() {
        return write_value(out, symbols, element);
    }
    let wrapper = out.len();
    out.push(0);
    let ids: Vec<u64> = annotations
        .iter()
        .map(|annotation| symbols.id(annotation.text()))
        .collect();
    let ids_length: usize = ids.iter().map(|id| var_uint_length(*id)).sum();
    push_var_uint(out, ids_length as u64);
    for id in ids {
        push_var_uint(out, id);
    }
    write_value(out, symbols, element)?;
    close_container(out, wrapper, 0xE);
    Ok(())
}

fn write_value<'a>(
    out: &mut Vec<u8>,
    symbols: &mut Symbols<'a>,
    element: &'a Element,
) -> Result<(), Declined> {
    match element.value() {
        Value::Null(ion_type) => out.push(type_code(*ion_type) << 4 | 0x0F),
        Value::Bool(value) => out.push(0x10 | u8::from(*value)),
        Value::Int(int) => {
            let value = int.as_i128().ok_or(Declined::LeftToIonRs)?;
            if value == 0 {
                out.push(0x20);
            } else {
                let magnitude = value.unsigned_abs().to_be_bytes();
                let digits = significant(&magnitude);
                push_header(out, if value < 0 { 0x3 } else { 0x2 }, digits.len());
                out.extend_from_slice(digits);
            }
        }
        Value::Float(value) => {
            if *value == 0.0 && value.is_sign_positive() {
                out.push(0x40);
            } else {
                out.push(0x48);
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        Value::Decimal(decimal) => {
            if decimal.exponent().unsigned_abs() > DECIMAL_EXPONENT_MAGNITUDE_MAX {
                return Err(unreadable_exponent(decimal));
            }
            let mut body = Body::new();
            write_decimal(&mut body, decimal)?;
            push_scalar(out, 0x5, body.bytes());
        }
        Value::Timestamp(timestamp) => {
            let mut body = Body::new();
            write_timestamp(&mut body, timestamp)?;
            push_scalar(out, 0x6, body.bytes());
        }
        Value::Symbol(symbol) => {
            let id = symbols.id(symbol.text());
            let bytes = id.to_be_bytes();
            push_scalar(out, 0x7, significant(&bytes));
        }
        Value::String(text) => push_scalar(out, 0x8, text.text().as_bytes()),
        Value::Clob(bytes) => push_scalar(out, 0x9, bytes.as_ref()),
        Value::Blob(bytes) => push_scalar(out, 0xA, bytes.as_ref()),
        Value::List(sequence) | Value::SExp(sequence) => {
            let code = if matches!(element.value(), Value::List(_)) {
                0xB
            } else {
                0xC
            };
            let start = out.len();
            out.push(0);
            for child in sequence.elements() {
                write_element(out, symbols, child)?;
            }
            close_container(out, start, code);
        }
        Value::Struct(fields) => {
            let start = out.len();
            out.push(0);
            for (name, value) in fields.iter() {
                push_var_uint(out, symbols.id(name.text()));
                write_element(out, symbols, value)?;
            }
            close_container(out, start, 0xD);
        }
    }
    Ok(())
}

/// A scalar: its type descriptor, length and body.
fn push_scalar(out: &mut Vec<u8>, code: u8, body: &[u8]) {
    push_header(out, code, body.len());
    out.extend_from_slice(body);
}

/// A type descriptor for a body of `length` bytes, with a `VarUInt` length when it needs one.
fn push_header(out: &mut Vec<u8>, code: u8, length: usize) {
    if length < usize::from(LENGTH_FOLLOWS) {
        out.push(code << 4 | length as u8);
    } else {
        out.push(code << 4 | LENGTH_FOLLOWS);
        push_var_uint(out, length as u64);
    }
}

/// Writes the type descriptor of the container whose body follows the byte kept for it at
/// `start`, moving the body up when its length needs a `VarUInt`. (A struct's body is never one
/// byte long, so its descriptor never reads as the sorted-struct form `0xD1`.)
fn close_container(out: &mut Vec<u8>, start: usize, code: u8) {
    let body_start = start + 1;
    let length = out.len() - body_start;
    if length < usize::from(LENGTH_FOLLOWS) {
        if let Some(descriptor) = out.get_mut(start) {
            *descriptor = code << 4 | length as u8;
        }
        return;
    }
    let extra = var_uint_length(length as u64);
    out.resize(out.len() + extra, 0);
    out.copy_within(body_start..body_start + length, body_start + extra);
    if let Some(descriptor) = out.get_mut(start) {
        *descriptor = code << 4 | LENGTH_FOLLOWS;
    }
    if let Some(field) = out.get_mut(body_start..body_start + extra) {
        write_var_uint(field, length as u64);
    }
}

/// The bytes of `value` as a `VarUInt`.
fn var_uint_length(value: u64) -> usize {
    (u64::BITS - value.leading_zeros()).div_ceil(7).max(1) as usize
}

/// Ion 1.0 `VarUInt` of `value`, appended to `out`.
fn push_var_uint(out: &mut Vec<u8>, value: u64) {
    let mut field = [0u8; 10];
    let length = var_uint_length(value);
    if let Some(field) = field.get_mut(..length) {
        write_var_uint(field, value);
        out.extend_from_slice(field);
    }
}

/// Ion 1.0 `VarUInt` of `value` into `field`, whose length is [`var_uint_length`]`(value)`: 7
/// bits a byte, most significant first, the last byte flagged.
fn write_var_uint(field: &mut [u8], value: u64) {
    let last = field.len().saturating_sub(1);
    for (index, byte) in field.iter_mut().enumerate() {
        let shift = 7 * (last - index);
        *byte = ((value >> shift) & 0x7F) as u8 | if index == last { 0x80 } else { 0 };
    }
}

/// The type code (the high nibble of the type descriptor) of values of `ion_type`.
pub(crate) fn type_code(ion_type: IonType) -> u8 {
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

/// Big-endian bytes without their leading zeros (none at all for zero).
pub(crate) fn significant(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|byte| **byte == 0).count();
    bytes.get(skip..).unwrap_or_default()
}

/// A decimal's binary body: nothing for `0d0`; else the exponent, then the coefficient (nothing
/// for +0, a lone sign byte for -0).
pub(crate) fn write_decimal(body: &mut Body, decimal: &Decimal) -> Result<(), Unsupported> {
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
pub(crate) fn write_timestamp(body: &mut Body, timestamp: &Timestamp) -> Result<(), Unsupported> {
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
pub(crate) struct Body {
    bytes: [u8; SCALAR_BODY_BYTES_MAX],
    length: usize,
}

impl Body {
    pub(crate) fn new() -> Body {
        Body {
            bytes: [0; SCALAR_BODY_BYTES_MAX],
            length: 0,
        }
    }

    pub(crate) fn push(&mut self, byte: u8) -> Result<(), Unsupported> {
        let slot = self.bytes.get_mut(self.length).ok_or(Unsupported)?;
        *slot = byte;
        self.length += 1;
        Ok(())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.length).unwrap_or_default()
    }

    /// Ion 1.0 `VarUInt`: 7 bits a byte, most significant first, the last byte flagged.
    pub(crate) fn var_uint(&mut self, value: u64) -> Result<(), Unsupported> {
        let groups = (u64::BITS - value.leading_zeros()).div_ceil(7).max(1);
        for index in (0..groups).rev() {
            let group = ((value >> (7 * index)) & 0x7F) as u8;
            self.push(group | if index == 0 { 0x80 } else { 0 })?;
        }
        Ok(())
    }

    /// Ion 1.0 `VarInt`: as `VarUInt`, with the sign in bit 6 of the first byte (which so
    /// carries 6 bits of the magnitude).
    pub(crate) fn var_int(&mut self, value: i64) -> Result<(), Unsupported> {
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
    pub(crate) fn int(&mut self, magnitude: u128, negative: bool) -> Result<(), Unsupported> {
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
    use crate::ion_values::{element, same};
    use proptest::prelude::*;

    fn read(bytes: &[u8]) -> Element {
        Element::read_one(bytes).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Every value written here reads back as itself, and as what `ion_rs`'s own encoding
        /// reads back as. Wrapped in a list so that annotations and symbols are written too.
        #[test]
        fn reads_back_as_the_value_written(inner in element()) {
            let element = Element::from(ion_rs::List::from(vec![inner]));
            let reference = Element::read_one(element.encode_as(ion_rs::v1_0::Binary).unwrap());
            match (encode(&element), reference) {
                (Ok(bytes), Ok(reference)) => {
                    let ours = read(&bytes);
                    prop_assert!(same(&ours, &element), "{} read back as {}", element, ours);
                    prop_assert!(same(&ours, &reference), "{} against {}", ours, reference);
                }
                (Ok(_), Err(error)) => {
                    prop_assert!(false, "wrote {} which ion_rs does not read back: {}", element, error);
                }
                (Err(Declined::Unreadable(reason)), Ok(_)) => {
                    prop_assert!(false, "refused {} which ion_rs reads back: {}", element, reason);
                }
                (Err(_), _) => {}
            }
        }
    }

    /// What `ion_rs` reads from `bytes`, if anything.
    fn ion_rs_reads(bytes: &[u8]) -> Option<Element> {
        std::panic::catch_unwind(|| Element::read_one(bytes).ok())
            .ok()
            .flatten()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The reader reads what either writer wrote as `ion_rs` reads it.
        #[test]
        fn reads_what_ion_rs_reads(inner in element()) {
            let element = Element::from(ion_rs::List::from(vec![inner]));
            let theirs = element.encode_as(ion_rs::v1_0::Binary).unwrap();
            for bytes in [Some(theirs), encode(&element).ok()].into_iter().flatten() {
                if let (Some(read), Some(reference)) = (decode_one(&bytes), ion_rs_reads(&bytes)) {
                    prop_assert!(same(&read, &reference), "{} against {}", read, reference);
                }
            }
        }

        /// Damaged bytes never panic the reader, and whatever it reads from them `ion_rs`
        /// reads the same (the rest it leaves to `ion_rs`, which then reports the damage).
        #[test]
        fn reads_damaged_bytes_as_ion_rs_does_or_not_at_all(
            inner in element(),
            damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        ) {
            let element = Element::from(ion_rs::List::from(vec![inner]));
            let mut bytes = encode(&element)
                .unwrap_or_else(|_| element.encode_as(ion_rs::v1_0::Binary).unwrap());
            for (at, byte, kind) in damage {
                let position = at.index(bytes.len());
                match kind {
                    0 => bytes[position] = byte,
                    1 => bytes.insert(position, byte),
                    _ => {
                        bytes.remove(position);
                    }
                }
                if bytes.is_empty() {
                    return Ok(());
                }
            }
            if crate::ion_read::nesting_depth(&bytes, crate::ion_read::BLOCK_DEPTH_MAX).is_err() {
                return Ok(());
            }
            if let Some(read) = decode_one(&bytes) {
                let reference = ion_rs_reads(&bytes);
                prop_assert!(
                    reference.as_ref().is_some_and(|reference| same(&read, reference)),
                    "read {} where ion_rs reads {:?}", read, reference.map(|r| r.to_string())
                );
            }
        }
    }

    #[test]
    fn reads_the_ledgers_own_values_itself() {
        for text in [
            "{VIN: \"1C4RJFAG0FC625797\", Year: 2019, Price: 123.45d0, From: 2019-04-05T, Owner: null.string, Tags: [a, 'b c'], Blob: {{aGVsbG8=}}, Sold: true, Stolen: false, Notes: null.bool}",
            "{id: \"3Qv67yjXEwB9SjmvkuG6Cp\", version: 0, txTime: 2026-12-04T15:28:32.123Z}",
            "{statements: [{statement: \"INSERT INTO T ?\", startTime: 2026-12-04T15:28:32.123456789-08:00}]}",
            "{a: x::y::[1, -1, 0, 1e0, -0e0, 0d0, -0d-3, 1.5d40, (x y), {}, 2026T, 2026-12T, 2026-12-04T01:02-00:00, 2026-12-04T01:02:03+05:30]}",
        ] {
            let element = read(text.as_bytes());
            for bytes in [
                encode(&element).unwrap(),
                element.encode_as(ion_rs::v1_0::Binary).unwrap(),
            ] {
                let decoded = decode_one(&bytes).expect(text);
                assert!(same(&decoded, &element), "{text}: {decoded}");
            }
        }
        // Two values, or a shared import, are left to ion_rs.
        let mut two = encode(&read(b"{a: 1}")).unwrap();
        two.extend_from_slice(&[0x21, 0x01]);
        assert!(decode_one(&two).is_none());
    }

    #[test]
    fn writes_the_version_marker_a_symbol_table_and_the_value() {
        let element = read(b"{a: 1, b: a}");
        assert_eq!(
            encode(&element).unwrap(),
            [
                0xE0, 0x01, 0x00, 0xEA, // version marker
                0xE9, 0x81, 0x83, // $ion_symbol_table::
                0xD6, 0x87, 0xB4, 0x81, b'a', 0x81, b'b', // {symbols: ["a", "b"]}
                0xD6, 0x8A, 0x21, 0x01, 0x8B, 0x71, 0x0A, // {$10: 1, $11: $10}
            ]
        );
        assert_eq!(
            encode(&Element::int(-1)).unwrap(),
            [0xE0, 0x01, 0x00, 0xEA, 0x31, 0x01]
        );
    }

    #[test]
    fn writes_long_containers_with_a_length_field() {
        // Bodies of 13, 14, 127, 128 and 16,384 bytes: the edges of the descriptor's nibble
        // and of a one- and two-byte VarUInt length.
        for length in [13, 14, 127, 128, 16_384, 70_000] {
            let text = "x".repeat(length - 1);
            let element =
                read(format!("[[\"{text}\"], {{a: \"{text}\"}}, (\"{text}\")]").as_bytes());
            let bytes = encode(&element).unwrap();
            assert!(same(&read(&bytes), &element), "length {length}");
        }
    }

    #[test]
    fn leaves_what_it_does_not_write_to_ion_rs() {
        for text in [
            "340282366920938463463374607431768211456",
            "[2026-12-04T01:02:03.123456789012Z]",
            "a::1",
            "symbol",
        ] {
            let element = read(text.as_bytes());
            assert_eq!(encode(&element), Err(Declined::LeftToIonRs), "{text}");
            // The ledger still encodes them, through ion_rs.
            let bytes = crate::model::encode_binary(&element).unwrap();
            assert!(same(&read(&bytes), &element), "{text}");
        }
    }

    #[test]
    fn refuses_decimals_whose_exponent_ion_rs_writes_but_does_not_read() {
        for text in ["1d4611686018427387904", "-1d-4611686018427387904"] {
            let element = read(format!("[{text}]").as_bytes());
            assert!(
                matches!(encode(&element), Err(Declined::Unreadable(_))),
                "{text}"
            );
            // Also beside a value left to ion_rs, and through the ledger's one entry point.
            let beside = read(format!("[{text}, 2026-12-04T01:02:03.123456789012Z]").as_bytes());
            assert!(matches!(
                check_readable(&beside),
                Err(Declined::Unreadable(_))
            ));
            assert!(matches!(
                crate::model::encode_binary(&beside),
                Err(crate::LedgerError::BadRequest(_))
            ));
        }
        let largest = read(b"[1d4611686018427387903, 1d-4611686018427387903]");
        assert!(same(&read(&encode(&largest).unwrap()), &largest));
    }

    #[test]
    fn finds_symbols_after_the_table_grew() {
        let fields: Vec<String> = (0..100)
            .map(|index| format!("f{index}: s{}", index % 40))
            .collect();
        let element = read(format!("{{{}}}", fields.join(", ")).as_bytes());
        let bytes = encode(&element).unwrap();
        assert!(same(&read(&bytes), &element));
    }
}
