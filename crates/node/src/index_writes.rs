//! How the built-in indexers (ledgers and tables into search) count the outcome of one batch of
//! index writes: written or already written (a version conflict on a replay) counts as indexed;
//! a document the index refuses for itself counts as failed and is logged, since retrying
//! cannot help; any other error stops the pass so its position does not move and it is redone.

use std::sync::atomic::{AtomicU64, Ordering};

use sluice_search::{SearchError, WriteOutcome};

/// Counts `outcomes` into `indexed` and `failed`; the first error that is not the document's
/// own is returned. `what` names the written thing in the log ("a revision", "a table change").
pub(crate) fn count_outcomes(
    outcomes: Vec<Result<WriteOutcome, SearchError>>,
    index_name: &str,
    what: &str,
    indexed: &AtomicU64,
    failed: &AtomicU64,
) -> Result<(), SearchError> {
    for outcome in outcomes {
        match outcome {
            Ok(_) | Err(SearchError::VersionConflict { .. }) => {
                indexed.fetch_add(1, Ordering::Relaxed);
            }
            Err(
                error @ (SearchError::DocumentParsing { .. }
                | SearchError::MapperParsing { .. }
                | SearchError::StrictDynamicMapping { .. }
                | SearchError::IllegalArgument { .. }
                | SearchError::Validation { .. }),
            ) => {
                failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(index = %index_name, %error, "{what} was refused by its index");
            }
            // The index cannot write now (I/O, poisoned, deleted meanwhile).
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
