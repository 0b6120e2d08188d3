//! Cancellation of long ledger operations (journal export, restore, import): a shared flag that
//! the owner of the operations (the node, at shutdown) sets and the operations check between
//! files and blocks, so a stop request never waits for a whole export or import to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::LedgerError;

/// A flag shared by everyone who may cancel and every operation that must stop when it is set.
/// Cloning shares the flag; once set it stays set.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks every operation holding a clone of this token to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled: the check long operations make between units of work.
    pub(crate) fn check(&self) -> Result<(), LedgerError> {
        if self.is_cancelled() {
            Err(LedgerError::Cancelled(
                "the operation was cancelled because the server is stopping".to_owned(),
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(clone.check().is_ok());
        token.cancel();
        assert!(clone.is_cancelled());
        assert!(matches!(clone.check(), Err(LedgerError::Cancelled(_))));
    }
}
