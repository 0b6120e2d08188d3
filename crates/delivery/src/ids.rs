//! Document ids derived from log positions: the same record always gets the same `_id`, so a
//! redelivery after a crash overwrites instead of duplicating.

use sluice_log::SequenceNumber;

/// `<56-digit sequence number>`; the sequence number holds the shard index and the record's
/// offset, so it is unique in its source stream. It is also the Lambda `recordId`.
pub fn document_id(sequence_number: SequenceNumber) -> String {
    sequence_number.to_string()
}
