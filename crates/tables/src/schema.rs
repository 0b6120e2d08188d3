//! What a table is: its name, primary key, attribute definitions, billing mode and stream
//! specification, as created and as described. Stored in the catalog as JSON (the `tables`
//! redb table), so fields only grow and new ones carry `#[serde(default)]`.

use serde::{Deserialize, Serialize};

use crate::error::TablesError;
use crate::index::{IndexRequest, SecondaryIndex, validate_indexes};
use crate::value::{AttributeValue, Item, ScalarType};

/// Shortest and longest table name, as DynamoDB allows.
pub const TABLE_NAME_BYTES_MIN: usize = 3;
pub const TABLE_NAME_BYTES_MAX: usize = 255;
/// Largest partition key value, in bytes (DynamoDB's 2048).
pub const PARTITION_KEY_BYTES_MAX: usize = 2048;
/// Largest sort key value, in bytes (DynamoDB's 1024).
pub const SORT_KEY_BYTES_MAX: usize = 1024;

/// One key attribute: its name and scalar type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    pub name: String,
    pub scalar_type: ScalarType,
}

/// A primary key: the partition (HASH) key and an optional sort (RANGE) key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub partition: KeyAttribute,
    pub sort: Option<KeyAttribute>,
}

/// What a stream record carries, as `StreamViewType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamViewType {
    KeysOnly,
    NewImage,
    OldImage,
    NewAndOldImages,
}

impl StreamViewType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamViewType::KeysOnly => "KEYS_ONLY",
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::OldImage => "OLD_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }

    pub fn parse(text: &str) -> Option<StreamViewType> {
        match text {
            "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
            "NEW_IMAGE" => Some(StreamViewType::NewImage),
            "OLD_IMAGE" => Some(StreamViewType::OldImage),
            "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
            _ => None,
        }
    }

    pub fn keeps_new(self) -> bool {
        matches!(
            self,
            StreamViewType::NewImage | StreamViewType::NewAndOldImages
        )
    }

    pub fn keeps_old(self) -> bool {
        matches!(
            self,
            StreamViewType::OldImage | StreamViewType::NewAndOldImages
        )
    }
}

/// A table's stream while it is enabled. A stream disabled and enabled again is a new stream
/// with a new id and label; the records of the old one stay readable until retention ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Unique in the store, never reused: stream records are keyed by it.
    pub stream_id: u64,
    pub view_type: StreamViewType,
    /// When the stream was enabled, ms since the epoch: its label and ARN suffix.
    pub created_ms: u64,
}

/// What CreateTable asks for, already validated in shape by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTable {
    pub name: String,
    pub key_schema: KeySchema,
    /// Every attribute definition given (DynamoDB refuses definitions no key uses).
    pub attribute_definitions: Vec<KeyAttribute>,
    /// `PROVISIONED` or `PAY_PER_REQUEST`, kept only to describe it back.
    pub billing_mode: String,
    /// Provisioned read and write capacity, kept only to describe it back.
    pub provisioned_throughput: Option<(u64, u64)>,
    pub stream_view_type: Option<StreamViewType>,
    /// Local and global secondary indexes.
    pub indexes: Vec<IndexRequest>,
}

/// A table as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    pub name: String,
    /// Unique in the store, never reused: items are keyed by it.
    pub table_id: u64,
    pub key_schema: KeySchema,
    pub attribute_definitions: Vec<KeyAttribute>,
    pub billing_mode: String,
    pub provisioned_throughput: Option<(u64, u64)>,
    pub created_ms: u64,
    pub stream: Option<StreamInfo>,
    /// The attribute Time to Live reads expiry times from, while TTL is enabled. Absent in
    /// catalog entries written before TTL existed, which read as disabled.
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    /// Its secondary indexes, local ones first as created. Absent in catalog entries written
    /// before indexes existed, which have none.
    #[serde(default)]
    pub indexes: Vec<SecondaryIndex>,
}

impl TableDefinition {
    /// The index named `name`, or DynamoDB's refusal of a request naming an unknown one.
    pub fn index(&self, name: &str) -> Result<&SecondaryIndex, TablesError> {
        self.indexes
            .iter()
            .find(|index| index.name == name)
            .ok_or_else(|| {
                TablesError::Validation(format!(
                    "The table does not have the specified index: {name}"
                ))
            })
    }
}

/// Longest TTL attribute name (DynamoDB's 255 bytes); a longer one is a `ValidationException`.
pub const TTL_ATTRIBUTE_BYTES_MAX: usize = 255;

/// How far in the past an expiry time may lie and still expire the item: DynamoDB's five
/// years. An older time (a value in milliseconds or microseconds read as seconds lands far in
/// the future, but one mistaken for seconds from a smaller unit may land this far back) keeps
/// the item, as in DynamoDB.
pub const TTL_PAST_SECONDS_MAX: u64 = 5 * 365 * 24 * 60 * 60;

/// Whether `item` has expired at `now_seconds` under the TTL attribute `attribute`: its value
/// is a number (epoch seconds) in the past and no more than [`TTL_PAST_SECONDS_MAX`] before
/// now. A missing attribute, another type, or a time too far back never expires.
pub fn ttl_expired(item: &Item, attribute: &str, now_seconds: u64) -> bool {
    let Some(AttributeValue::N(expiry)) = item.get(attribute) else {
        return false;
    };
    // A u64's decimal text always parses (20 digits at most); failing that, nothing expires.
    let parse = |seconds: u64| crate::number::Number::parse(&seconds.to_string()).ok();
    let (Some(now), Some(oldest)) = (
        parse(now_seconds),
        parse(now_seconds.saturating_sub(TTL_PAST_SECONDS_MAX)),
    ) else {
        return false;
    };
    *expiry < now && *expiry >= oldest
}

/// A table as DescribeTable answers: its definition and its live counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescription {
    pub definition: TableDefinition,
    pub item_count: u64,
    /// Sum of the items' sizes as DynamoDB counts them.
    pub size_bytes: u64,
    /// Per index, in the definition's order: its entries and their projected bytes.
    pub index_counts: Vec<(u64, u64)>,
}

/// Checks a table name against DynamoDB's pattern `[a-zA-Z0-9_.-]{3,255}`.
pub fn validate_table_name(name: &str) -> Result<(), TablesError> {
    if name.len() < TABLE_NAME_BYTES_MIN || name.len() > TABLE_NAME_BYTES_MAX {
        return Err(TablesError::Validation(
            "TableName must be at least 3 characters long and at most 255 characters long"
                .to_owned(),
        ));
    }
    validate_name_pattern(name, "tableName")
}

/// Checks a table or index name (the request member `member`) against `[a-zA-Z0-9_.-]{3,255}`.
pub(crate) fn validate_name_pattern(name: &str, member: &str) -> Result<(), TablesError> {
    if name.len() < TABLE_NAME_BYTES_MIN || name.len() > TABLE_NAME_BYTES_MAX {
        return Err(TablesError::Validation(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to {TABLE_NAME_BYTES_MAX} and greater than or equal to {TABLE_NAME_BYTES_MIN}"
        )));
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
    {
        return Err(TablesError::Validation(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )));
    }
    Ok(())
}

impl CreateTable {
    /// DynamoDB's checks of a key schema against the attribute definitions.
    pub fn validate(&self) -> Result<(), TablesError> {
        validate_table_name(&self.name)?;
        let invalid = |message: String| {
            Err(TablesError::Validation(format!(
                "One or more parameter values were invalid: {message}"
            )))
        };
        validate_indexes(&self.key_schema, &self.indexes)?;
        let mut keys = vec![&self.key_schema.partition];
        keys.extend(self.key_schema.sort.as_ref());
        for index in &self.indexes {
            for key in std::iter::once(&index.key_schema.partition).chain(&index.key_schema.sort) {
                if !keys.iter().any(|known| known.name == key.name) {
                    keys.push(key);
                }
            }
        }
        if let Some(sort) = &self.key_schema.sort
            && sort.name == self.key_schema.partition.name
        {
            return invalid(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name"
                    .to_owned(),
            );
        }
        for key in &keys {
            match self
                .attribute_definitions
                .iter()
                .find(|definition| definition.name == key.name)
            {
                None => {
                    return invalid(format!(
                        "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
                        keys.iter()
                            .map(|key| key.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        self.attribute_definitions
                            .iter()
                            .map(|definition| definition.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Some(definition) if definition.scalar_type != key.scalar_type => {
                    return invalid(format!("Type mismatch for key {}", key.name));
                }
                Some(_) => {}
            }
        }
        if self.attribute_definitions.len() != keys.len() {
            if self.indexes.is_empty() {
                return invalid("Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions".to_owned());
            }
            let names = |names: Vec<&str>| names.join(", ");
            return invalid(format!(
                "Some AttributeDefinitions are not used. AttributeDefinitions: [{}], keys used: [{}]",
                names(
                    self.attribute_definitions
                        .iter()
                        .map(|definition| definition.name.as_str())
                        .collect()
                ),
                names(keys.iter().map(|key| key.name.as_str()).collect())
            ));
        }
        Ok(())
    }
}

impl KeySchema {
    /// The key attributes of an item, checked as PutItem checks them; the message names the
    /// first problem as DynamoDB does.
    pub fn key_of_item<'a>(
        &self,
        item: &'a Item,
    ) -> Result<(&'a AttributeValue, Option<&'a AttributeValue>), TablesError> {
        let get = |key: &KeyAttribute| -> Result<&'a AttributeValue, TablesError> {
            let value = item.get(&key.name).ok_or_else(|| {
                TablesError::Validation(format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    key.name
                ))
            })?;
            check_key_value(key, value)?;
            Ok(value)
        };
        let partition = get(&self.partition)?;
        let sort = self.sort.as_ref().map(get).transpose()?;
        Ok((partition, sort))
    }

    /// The key of GetItem or DeleteItem: exactly the key attributes, of the right types.
    pub fn exact_key<'a>(
        &self,
        key: &'a Item,
    ) -> Result<(&'a AttributeValue, Option<&'a AttributeValue>), TablesError> {
        let mismatch = || {
            TablesError::Validation("The provided key element does not match the schema".to_owned())
        };
        let expected = 1 + usize::from(self.sort.is_some());
        if key.len() != expected {
            return Err(mismatch());
        }
        let get = |attribute: &KeyAttribute| -> Result<&'a AttributeValue, TablesError> {
            let value = key.get(&attribute.name).ok_or_else(mismatch)?;
            if value.scalar_type() != Some(attribute.scalar_type) {
                return Err(mismatch());
            }
            check_key_value(attribute, value)?;
            Ok(value)
        };
        let partition = get(&self.partition)?;
        let sort = self.sort.as_ref().map(get).transpose()?;
        Ok((partition, sort))
    }

    /// The key attributes of an item, as an item (stream records' `Keys`).
    pub fn project_key(&self, item: &Item) -> Item {
        let mut key = Item::new();
        for attribute in std::iter::once(&self.partition).chain(self.sort.as_ref()) {
            if let Some(value) = item.get(&attribute.name) {
                key.insert(attribute.name.clone(), value.clone());
            }
        }
        key
    }
}

fn check_key_value(key: &KeyAttribute, value: &AttributeValue) -> Result<(), TablesError> {
    let actual = value.type_name();
    if value.scalar_type() != Some(key.scalar_type) {
        return Err(TablesError::Validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {} expected: {} actual: {actual}",
            key.name,
            key.scalar_type.as_str()
        )));
    }
    let empty = match value {
        AttributeValue::S(text) => text.is_empty(),
        AttributeValue::B(bytes) => bytes.is_empty(),
        _ => false,
    };
    if empty {
        return Err(TablesError::Validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
            if actual == "S" { "string" } else { "binary" },
            key.name
        )));
    }
    Ok(())
}

/// Checks key sizes, which apply to both partition and sort key.
pub(crate) fn check_key_sizes(
    schema: &KeySchema,
    partition: &AttributeValue,
    sort: Option<&AttributeValue>,
) -> Result<(), TablesError> {
    if partition.size_bytes() > PARTITION_KEY_BYTES_MAX {
        return Err(TablesError::Validation("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of 2048 bytes".to_owned()));
    }
    if let (Some(sort), Some(_)) = (sort, &schema.sort)
        && sort.size_bytes() > SORT_KEY_BYTES_MAX
    {
        return Err(TablesError::Validation(
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
                .to_owned(),
        ));
    }
    Ok(())
}
