//! Typed attribute values (`S`, `N`, `B`, `BOOL`, `NULL`, `M`, `L`, `SS`, `NS`, `BS`), items,
//! and DynamoDB's rules on them: the item size as DynamoDB counts it toward its 400 KB limit
//! and the nesting depth of documents. Wire shapes (JSON, base64) are the API's business.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::TablesError;
use crate::number::Number;

/// Largest item, counted as DynamoDB counts (names plus values); larger writes are refused
/// with DynamoDB's "Item size has exceeded the maximum allowed size".
pub const ITEM_BYTES_MAX: usize = 400 * 1024;
/// Deepest nesting of `M` and `L` inside an item (DynamoDB's 32 levels); deeper items are
/// refused before they are stored, so every reader of stored items recurses at most this far.
pub const NESTING_DEPTH_MAX: usize = 32;

/// An item: attribute names to values.
pub type Item = BTreeMap<String, AttributeValue>;

/// One DynamoDB attribute value. Sets are kept sorted and free of duplicates; the API refuses
/// duplicate and empty sets before building one, as DynamoDB does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(BTreeMap<String, AttributeValue>),
    L(Vec<AttributeValue>),
    Ss(BTreeSet<String>),
    Ns(BTreeSet<Number>),
    Bs(BTreeSet<Vec<u8>>),
}

/// The three types a key attribute may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScalarType {
    S,
    N,
    B,
}

impl ScalarType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalarType::S => "S",
            ScalarType::N => "N",
            ScalarType::B => "B",
        }
    }

    pub fn parse(text: &str) -> Option<ScalarType> {
        match text {
            "S" => Some(ScalarType::S),
            "N" => Some(ScalarType::N),
            "B" => Some(ScalarType::B),
            _ => None,
        }
    }
}

impl AttributeValue {
    /// The type's name as DynamoDB writes it: `S`, `N`, `BOOL`, `SS`, …
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::Ss(_) => "SS",
            AttributeValue::Ns(_) => "NS",
            AttributeValue::Bs(_) => "BS",
        }
    }

    /// The scalar type, for values that may be keys.
    pub fn scalar_type(&self) -> Option<ScalarType> {
        match self {
            AttributeValue::S(_) => Some(ScalarType::S),
            AttributeValue::N(_) => Some(ScalarType::N),
            AttributeValue::B(_) => Some(ScalarType::B),
            _ => None,
        }
    }

    /// The bytes DynamoDB counts for this value (without its attribute name).
    pub fn size_bytes(&self) -> usize {
        match self {
            AttributeValue::S(text) => text.len(),
            AttributeValue::N(number) => number_size(number),
            AttributeValue::B(bytes) => bytes.len(),
            AttributeValue::Bool(_) | AttributeValue::Null => 1,
            AttributeValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(name, value)| name.len() + value.size_bytes() + 1)
                    .sum::<usize>()
            }
            AttributeValue::L(list) => {
                3 + list
                    .iter()
                    .map(|value| value.size_bytes() + 1)
                    .sum::<usize>()
            }
            AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
            AttributeValue::Ns(set) => set.iter().map(number_size).sum(),
            AttributeValue::Bs(set) => set.iter().map(Vec::len).sum(),
        }
    }

    /// How deep `M` and `L` nest in this value: 0 for a scalar or set, 1 for a flat map.
    pub fn depth(&self) -> usize {
        // Iterative, so a value deeper than any limit is measured without deep recursion.
        let mut deepest = 0;
        let mut pending: Vec<(&AttributeValue, usize)> = vec![(self, 0)];
        while let Some((value, depth)) = pending.pop() {
            deepest = deepest.max(depth);
            match value {
                AttributeValue::M(map) => {
                    pending.extend(map.values().map(|child| (child, depth + 1)))
                }
                AttributeValue::L(list) => {
                    pending.extend(list.iter().map(|child| (child, depth + 1)))
                }
                _ => {}
            }
        }
        deepest
    }
}

/// DynamoDB counts a number as about one byte per two significant digits, plus one.
fn number_size(number: &Number) -> usize {
    number.significant_digits().div_ceil(2) + 1
}

/// The bytes DynamoDB counts for an item: each attribute's name and value.
pub fn item_size_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value.size_bytes())
        .sum()
}

/// Checks an item against the size and nesting limits, with DynamoDB's messages.
pub fn check_item_limits(item: &Item) -> Result<(), TablesError> {
    if item.values().any(|value| value.depth() > NESTING_DEPTH_MAX) {
        return Err(TablesError::Validation(
            "Nesting Levels have exceeded supported limits: Nesting Levels have exceeded the maximum allowed depth of 32"
                .to_owned(),
        ));
    }
    if item_size_bytes(item) > ITEM_BYTES_MAX {
        return Err(TablesError::Validation(
            "Item size has exceeded the maximum allowed size".to_owned(),
        ));
    }
    Ok(())
}
