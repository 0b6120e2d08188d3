//! Stream records: what one acknowledged change of an item leaves in its table's stream, and
//! their stored encoding. A record is written in the same redb transaction as the change it
//! describes, so a change and its record exist together or not at all.

use crate::codec::{ENCODING_VERSION, Reader, put_item};
use crate::error::TablesError;
use crate::schema::StreamViewType;
use crate::value::{Item, item_size_bytes};

/// How long stream records are kept after they were written (DynamoDB's 24 hours); older ones
/// are removed by [`crate::Tables::trim_streams`] and reading from before them starts after.
pub const STREAM_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Insert,
    Modify,
    Remove,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Insert => "INSERT",
            EventName::Modify => "MODIFY",
            EventName::Remove => "REMOVE",
        }
    }
}

/// One change in a table's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Position in its stream: 1 for the first record, then consecutive.
    pub sequence: u64,
    pub event_name: EventName,
    /// When the change was committed, ms since the epoch.
    pub created_ms: u64,
    pub keys: Item,
    /// The item after the change, when the view type keeps it and the item exists.
    pub new_image: Option<Item>,
    /// The item before the change, when the view type keeps it and the item existed.
    pub old_image: Option<Item>,
    /// Keys and images as DynamoDB counts item sizes.
    pub size_bytes: u64,
    /// Whether the service removed the item (TTL expiry) rather than a client.
    pub by_service: bool,
}

const FLAG_NEW: u8 = 1;
const FLAG_OLD: u8 = 2;
const FLAG_SERVICE: u8 = 4;

impl StreamRecord {
    /// The record for one change under `view_type`; `sequence` is set by the commit.
    pub(crate) fn for_change(
        view_type: StreamViewType,
        keys: Item,
        old: Option<&Item>,
        new: Option<&Item>,
        created_ms: u64,
    ) -> Option<StreamRecord> {
        let event_name = match (old, new) {
            (None, Some(_)) => EventName::Insert,
            (Some(_), Some(_)) => EventName::Modify,
            (Some(_), None) => EventName::Remove,
            (None, None) => return None,
        };
        let new_image = new.filter(|_| view_type.keeps_new()).cloned();
        let old_image = old.filter(|_| view_type.keeps_old()).cloned();
        let size_bytes = (item_size_bytes(&keys)
            + new_image.as_ref().map_or(0, item_size_bytes)
            + old_image.as_ref().map_or(0, item_size_bytes)) as u64;
        Some(StreamRecord {
            sequence: 0,
            event_name,
            created_ms,
            keys,
            new_image,
            old_image,
            size_bytes,
            by_service: false,
        })
    }

    /// Stored bytes (without the sequence number, which is the key).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENCODING_VERSION];
        out.push(match self.event_name {
            EventName::Insert => 1,
            EventName::Modify => 2,
            EventName::Remove => 3,
        });
        let mut flags = 0;
        if self.new_image.is_some() {
            flags |= FLAG_NEW;
        }
        if self.old_image.is_some() {
            flags |= FLAG_OLD;
        }
        if self.by_service {
            flags |= FLAG_SERVICE;
        }
        out.push(flags);
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.size_bytes.to_be_bytes());
        put_item(&mut out, &self.keys);
        for image in [&self.new_image, &self.old_image].into_iter().flatten() {
            put_item(&mut out, image);
        }
        out
    }

    pub(crate) fn decode(sequence: u64, bytes: &[u8]) -> Result<StreamRecord, TablesError> {
        let corrupt =
            |what: &str| TablesError::Corrupt(format!("stream record {sequence}: {what}"));
        let mut reader = Reader::new(bytes);
        if reader.byte()? != ENCODING_VERSION {
            return Err(corrupt("unknown encoding version"));
        }
        let event_name = match reader.byte()? {
            1 => EventName::Insert,
            2 => EventName::Modify,
            3 => EventName::Remove,
            _ => return Err(corrupt("unknown event")),
        };
        let flags = reader.byte()?;
        let created_ms = reader.u64_be()?;
        let size_bytes = reader.u64_be()?;
        let keys = reader.item()?;
        let new_image = (flags & FLAG_NEW != 0).then(|| reader.item()).transpose()?;
        let old_image = (flags & FLAG_OLD != 0).then(|| reader.item()).transpose()?;
        if !reader.is_empty() {
            return Err(corrupt("bytes after the record"));
        }
        Ok(StreamRecord {
            sequence,
            event_name,
            created_ms,
            keys,
            new_image,
            old_image,
            size_bytes,
            by_service: flags & FLAG_SERVICE != 0,
        })
    }
}

/// A stream as ListStreams and DescribeStream see it, also after its table was deleted or its
/// stream disabled, while records remain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamSummary {
    pub stream_id: u64,
    pub table_name: String,
    pub view_type: StreamViewType,
    pub created_ms: u64,
    /// When the stream stopped taking records (disabled, or its table deleted).
    pub disabled_ms: Option<u64>,
    /// The table's key schema, which DescribeStream answers even after the table is gone.
    #[serde(default)]
    pub key_schema: Option<crate::schema::KeySchema>,
}
