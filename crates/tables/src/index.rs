//! Secondary indexes, local and global, as DynamoDB defines them: another key schema over a
//! table's items and the attributes each entry carries (its projection). An index entry is
//! kept for every item that has all of the index's key attributes (indexes are sparse), in the
//! same commit as the item, under a key that orders entries by the index's partition, then its
//! sort key, then the table's primary key (two items may share index keys).

use serde::{Deserialize, Serialize};

use crate::codec::{encode_key, partition_prefix, put_escaped, put_ordered_number};
use crate::error::TablesError;
use crate::schema::{KeyAttribute, KeySchema, validate_name_pattern};
use crate::value::{AttributeValue, Item};

/// Most local secondary indexes of one table (DynamoDB's quota).
pub const LOCAL_INDEXES_MAX: usize = 5;
/// Most global secondary indexes of one table (DynamoDB's default quota).
pub const GLOBAL_INDEXES_MAX: usize = 20;
/// Most `NonKeyAttributes` over all of a table's indexes (DynamoDB's quota).
pub const PROJECTED_ATTRIBUTES_MAX: usize = 100;

/// Which attributes an index entry carries besides the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProjectionType {
    All,
    KeysOnly,
    Include,
}

impl ProjectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectionType::All => "ALL",
            ProjectionType::KeysOnly => "KEYS_ONLY",
            ProjectionType::Include => "INCLUDE",
        }
    }

    pub fn parse(text: &str) -> Option<ProjectionType> {
        match text {
            "ALL" => Some(ProjectionType::All),
            "KEYS_ONLY" => Some(ProjectionType::KeysOnly),
            "INCLUDE" => Some(ProjectionType::Include),
            _ => None,
        }
    }
}

/// An index's projection: its type and, for `INCLUDE`, the other attributes it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    pub kind: ProjectionType,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// What CreateTable or UpdateTable asks of one index, checked in shape by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRequest {
    pub name: String,
    pub global: bool,
    pub key_schema: KeySchema,
    pub projection: Projection,
    /// A global index's own provisioned capacity, kept only to describe it back.
    pub provisioned_throughput: Option<(u64, u64)>,
}

/// One index as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryIndex {
    pub name: String,
    /// Unique in the store (drawn with table ids), never reused: entries are keyed by it.
    pub index_id: u64,
    pub global: bool,
    pub key_schema: KeySchema,
    pub projection: Projection,
    pub provisioned_throughput: Option<(u64, u64)>,
}

fn invalid(message: String) -> TablesError {
    TablesError::Validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// The order-preserving, self-delimiting bytes of an index key: the partition prefix, then the
/// sort key escaped (numbers are self-delimiting already), so that the table's key can follow.
fn encode_index_key(partition: &AttributeValue, sort: Option<&AttributeValue>) -> Vec<u8> {
    let mut out = partition_prefix(partition);
    match sort {
        None => {}
        Some(AttributeValue::N(number)) => put_ordered_number(&mut out, number),
        Some(AttributeValue::S(text)) => put_escaped(&mut out, text.as_bytes()),
        Some(AttributeValue::B(bytes)) => put_escaped(&mut out, bytes),
        Some(_) => {}
    }
    out
}

impl SecondaryIndex {
    pub fn from_request(request: IndexRequest, index_id: u64) -> SecondaryIndex {
        SecondaryIndex {
            name: request.name,
            index_id,
            global: request.global,
            key_schema: request.key_schema,
            projection: request.projection,
            provisioned_throughput: request.provisioned_throughput,
        }
    }

    fn key_attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        std::iter::once(&self.key_schema.partition).chain(self.key_schema.sort.as_ref())
    }

    /// Refuses an item whose index key attributes are there but of the wrong type or empty, as
    /// DynamoDB refuses the write; an item without them is simply not in the index.
    pub fn check_item(&self, item: &Item) -> Result<(), TablesError> {
        for key in self.key_attributes() {
            let Some(value) = item.get(&key.name) else {
                continue;
            };
            if value.scalar_type() != Some(key.scalar_type) {
                return Err(invalid(format!(
                    "Type mismatch for Index Key {} Expected: {} Actual: {} IndexName: {}",
                    key.name,
                    key.scalar_type.as_str(),
                    value.type_name(),
                    self.name
                )));
            }
            let empty = match value {
                AttributeValue::S(text) => text.is_empty(),
                AttributeValue::B(bytes) => bytes.is_empty(),
                _ => false,
            };
            if empty {
                return Err(TablesError::Validation(format!(
                    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty {} value. IndexName: {}, IndexKey: {}",
                    if value.type_name() == "S" {
                        "string"
                    } else {
                        "binary"
                    },
                    self.name,
                    key.name
                )));
            }
        }
        Ok(())
    }

    /// The entry key of `item` (whose primary key encodes as `table_key`), or `None` when the
    /// item lacks an index key attribute (or has one of another type, or an empty one) and is
    /// not indexed.
    pub fn entry_key(&self, item: &Item, table_key: &[u8]) -> Option<Vec<u8>> {
        let usable = |key: &KeyAttribute| {
            item.get(&key.name).filter(|value| {
                value.scalar_type() == Some(key.scalar_type)
                    && !matches!(value, AttributeValue::S(text) if text.is_empty())
                    && !matches!(value, AttributeValue::B(bytes) if bytes.is_empty())
            })
        };
        let partition = usable(&self.key_schema.partition)?;
        let sort = match &self.key_schema.sort {
            Some(sort) => Some(usable(sort)?),
            None => None,
        };
        let mut key = encode_index_key(partition, sort);
        key.extend_from_slice(table_key);
        Some(key)
    }

    /// The entry key an `ExclusiveStartKey` names: the index's keys and the table's.
    pub fn start_key(&self, start: &Item, table: &KeySchema) -> Result<Vec<u8>, TablesError> {
        let mismatch = || {
            TablesError::Validation("The provided starting key is invalid: The provided key element does not match the schema".to_owned())
        };
        let table_key = table.project_key(start);
        let (partition, sort) = table.exact_key(&table_key).map_err(|_| mismatch())?;
        let expected: std::collections::BTreeSet<&str> = self
            .key_attributes()
            .chain(std::iter::once(&table.partition))
            .chain(table.sort.as_ref())
            .map(|key| key.name.as_str())
            .collect();
        if start.len() != expected.len()
            || !start.keys().all(|name| expected.contains(name.as_str()))
        {
            return Err(mismatch());
        }
        self.entry_key(start, &encode_key(partition, sort))
            .ok_or_else(mismatch)
    }

    /// The entry's attributes: the table's and the index's keys, and what the projection adds.
    pub fn project(&self, item: &Item, table: &KeySchema) -> Item {
        if self.projection.kind == ProjectionType::All {
            return item.clone();
        }
        let mut projected = self.last_key(item, table);
        for name in &self.projection.non_key_attributes {
            if let Some(value) = item.get(name) {
                projected.insert(name.clone(), value.clone());
            }
        }
        projected
    }

    /// `LastEvaluatedKey` of a page of this index: the index's keys and the table's.
    pub fn last_key(&self, item: &Item, table: &KeySchema) -> Item {
        let mut key = table.project_key(item);
        key.extend(self.key_schema.project_key(item));
        key
    }
}

/// DynamoDB's checks of a table's indexes, against the table's key schema; the attributes the
/// indexes' keys use are added to `used`.
pub(crate) fn validate_indexes(
    table: &KeySchema,
    indexes: &[IndexRequest],
) -> Result<(), TablesError> {
    let locals = indexes.iter().filter(|index| !index.global).count();
    let globals = indexes.len() - locals;
    if locals > LOCAL_INDEXES_MAX {
        return Err(invalid(format!(
            "Cannot have more than {LOCAL_INDEXES_MAX} local secondary indexes per table"
        )));
    }
    if globals > GLOBAL_INDEXES_MAX {
        return Err(TablesError::LimitExceeded(format!(
            "Subscriber limit exceeded: at most {GLOBAL_INDEXES_MAX} global secondary indexes per table"
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut projected = 0;
    for index in indexes {
        validate_name_pattern(&index.name, "indexName")?;
        if !names.insert(index.name.as_str()) {
            return Err(invalid(format!("Duplicate index name: {}", index.name)));
        }
        if let Some(sort) = &index.key_schema.sort
            && sort.name == index.key_schema.partition.name
        {
            return Err(invalid(format!(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name for index: {}",
                index.name
            )));
        }
        if !index.global {
            if table.sort.is_none() {
                return Err(invalid(
                    "Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex".to_owned(),
                ));
            }
            if index.key_schema.partition.name != table.partition.name {
                return Err(invalid(format!(
                    "Index KeySchema does not have the same leading hash key as table KeySchema for index: {}. index hash key: {}, table hash key: {}",
                    index.name, index.key_schema.partition.name, table.partition.name
                )));
            }
            if index.key_schema.sort.is_none() {
                return Err(invalid(format!(
                    "Index KeySchema does not have a range key for index: {}",
                    index.name
                )));
            }
        }
        match index.projection.kind {
            ProjectionType::Include if index.projection.non_key_attributes.is_empty() => {
                return Err(invalid(
                    "ProjectionType is INCLUDE, but NonKeyAttributes is not specified".to_owned(),
                ));
            }
            kind @ (ProjectionType::All | ProjectionType::KeysOnly)
                if !index.projection.non_key_attributes.is_empty() =>
            {
                return Err(invalid(format!(
                    "ProjectionType is {}, but NonKeyAttributes is specified",
                    kind.as_str()
                )));
            }
            _ => {}
        }
        projected += index.projection.non_key_attributes.len();
    }
    if projected > PROJECTED_ATTRIBUTES_MAX {
        return Err(invalid(format!(
            "The sum of NonKeyAttributes across all secondary indexes ({projected}) exceeds the limit of {PROJECTED_ATTRIBUTES_MAX}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::Number;
    use crate::value::ScalarType;

    fn key(name: &str, scalar_type: ScalarType) -> KeyAttribute {
        KeyAttribute {
            name: name.to_owned(),
            scalar_type,
        }
    }

    fn index(projection: ProjectionType, include: &[&str]) -> SecondaryIndex {
        SecondaryIndex {
            name: "by_city".to_owned(),
            index_id: 9,
            global: true,
            key_schema: KeySchema {
                partition: key("city", ScalarType::S),
                sort: Some(key("age", ScalarType::N)),
            },
            projection: Projection {
                kind: projection,
                non_key_attributes: include.iter().map(|name| (*name).to_owned()).collect(),
            },
            provisioned_throughput: None,
        }
    }

    fn table() -> KeySchema {
        KeySchema {
            partition: key("id", ScalarType::S),
            sort: None,
        }
    }

    fn item(id: &str, city: Option<&str>, age: Option<&str>) -> Item {
        let mut item = Item::new();
        item.insert("id".into(), AttributeValue::S(id.into()));
        item.insert("name".into(), AttributeValue::S(format!("name of {id}")));
        item.insert("other".into(), AttributeValue::Bool(true));
        if let Some(city) = city {
            item.insert("city".into(), AttributeValue::S(city.into()));
        }
        if let Some(age) = age {
            item.insert("age".into(), AttributeValue::N(Number::parse(age).unwrap()));
        }
        item
    }

    fn entry(index: &SecondaryIndex, item: &Item) -> Option<Vec<u8>> {
        let (partition, sort) = table().key_of_item(item).unwrap();
        index.entry_key(item, &encode_key(partition, sort))
    }

    #[test]
    fn entries_order_by_index_partition_then_sort_key_then_table_key() {
        let index = index(ProjectionType::All, &[]);
        let mut keys = vec![
            entry(&index, &item("b", Some("Leeds"), Some("30"))).unwrap(),
            entry(&index, &item("a", Some("Leeds"), Some("30"))).unwrap(),
            entry(&index, &item("c", Some("Leeds"), Some("-4"))).unwrap(),
            entry(&index, &item("d", Some("Leeds"), Some("100"))).unwrap(),
        ];
        keys.sort();
        let order: Vec<Vec<u8>> = ["c", "a", "b", "d"]
            .iter()
            .map(|id| {
                let age = match *id {
                    "c" => "-4",
                    "d" => "100",
                    _ => "30",
                };
                entry(&index, &item(id, Some("Leeds"), Some(age))).unwrap()
            })
            .collect();
        assert_eq!(keys, order);
        // A string sort key that is a prefix of another still sorts first, whatever follows.
        let text_index = SecondaryIndex {
            key_schema: KeySchema {
                partition: key("city", ScalarType::S),
                sort: Some(key("name", ScalarType::S)),
            },
            ..index.clone()
        };
        let mut short = item("zzz", Some("Leeds"), None);
        short.insert("name".into(), AttributeValue::S("ab".into()));
        let mut long = item("aaa", Some("Leeds"), None);
        long.insert("name".into(), AttributeValue::S("abc".into()));
        assert!(entry(&text_index, &short).unwrap() < entry(&text_index, &long).unwrap());
    }

    #[test]
    fn items_without_the_index_keys_are_not_indexed() {
        let index = index(ProjectionType::All, &[]);
        assert!(entry(&index, &item("a", None, Some("3"))).is_none());
        assert!(entry(&index, &item("a", Some("Leeds"), None)).is_none());
        let mut wrong = item("a", Some("Leeds"), None);
        wrong.insert("age".into(), AttributeValue::S("3".into()));
        assert!(entry(&index, &wrong).is_none());
        let refused = index.check_item(&wrong).unwrap_err().to_string();
        assert!(
            refused.contains(
                "Type mismatch for Index Key age Expected: N Actual: S IndexName: by_city"
            ),
            "{refused}"
        );
    }

    #[test]
    fn projections_keep_the_keys_and_what_they_include() {
        let full = item("a", Some("Leeds"), Some("3"));
        assert_eq!(
            index(ProjectionType::All, &[]).project(&full, &table()),
            full
        );
        let keys_only = index(ProjectionType::KeysOnly, &[]).project(&full, &table());
        assert_eq!(
            keys_only.keys().cloned().collect::<Vec<_>>(),
            vec!["age", "city", "id"]
        );
        let include = index(ProjectionType::Include, &["name", "missing"]).project(&full, &table());
        assert_eq!(
            include.keys().cloned().collect::<Vec<_>>(),
            vec!["age", "city", "id", "name"]
        );
    }

    #[test]
    fn local_indexes_need_the_tables_partition_key_and_a_sort_key() {
        let table_with_sort = KeySchema {
            partition: key("id", ScalarType::S),
            sort: Some(key("at", ScalarType::N)),
        };
        let request = |partition: &str, sort: Option<&str>| IndexRequest {
            name: "local".to_owned(),
            global: false,
            key_schema: KeySchema {
                partition: key(partition, ScalarType::S),
                sort: sort.map(|name| key(name, ScalarType::N)),
            },
            projection: Projection {
                kind: ProjectionType::KeysOnly,
                non_key_attributes: Vec::new(),
            },
            provisioned_throughput: None,
        };
        assert!(validate_indexes(&table_with_sort, &[request("id", Some("age"))]).is_ok());
        let message = |result: Result<(), TablesError>| result.unwrap_err().to_string();
        assert!(
            message(validate_indexes(
                &table_with_sort,
                &[request("city", Some("age"))]
            ))
            .contains("does not have the same leading hash key")
        );
        assert!(
            message(validate_indexes(&table_with_sort, &[request("id", None)]))
                .contains("does not have a range key for index: local")
        );
        assert!(
            message(validate_indexes(&table(), &[request("id", Some("age"))]))
                .contains("Table KeySchema does not have a range key")
        );
        let twice = vec![request("id", Some("age")), request("id", Some("age"))];
        assert!(
            message(validate_indexes(&table_with_sort, &twice))
                .contains("Duplicate index name: local")
        );
    }
}
