//! Version rules of writes, exactly as Elasticsearch applies them: internal versions, external
//! versions (`external`, `external_gte`), `if_seq_no` + `if_primary_term`, and `create`.
//!
//! The functions here are pure: given what the index holds for an id (a live document, a
//! tombstone, or nothing) and the condition of a write, they decide the new version or the
//! conflict, with Elasticsearch's reason text. Tombstones never expire in Sluice, so a stale write
//! after a delete is refused however late it comes.

/// The largest version an external version may carry (Lucene's and Elasticsearch's limit).
pub const VERSION_MAX: u64 = i64::MAX as u64;
/// Every index in Sluice has one primary, which never changes term.
pub const PRIMARY_TERM: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionType {
    Internal,
    External,
    ExternalGte,
}

impl VersionType {
    pub fn parse(name: &str) -> Option<VersionType> {
        match name {
            "internal" => Some(VersionType::Internal),
            // Elasticsearch still accepts `external_gt`, the old name of `external`.
            "external" | "external_gt" => Some(VersionType::External),
            "external_gte" => Some(VersionType::ExternalGte),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VersionType::Internal => "INTERNAL",
            VersionType::External => "EXTERNAL",
            VersionType::ExternalGte => "EXTERNAL_GTE",
        }
    }
}

/// What the index holds for an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub version: u64,
    pub seq_no: u64,
    pub deleted: bool,
}

/// The condition a write carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// Internal versioning: the next version, whatever is there.
    #[default]
    None,
    /// `op_type=create`: only if no live document exists.
    Create,
    /// `if_seq_no` + `if_primary_term`.
    IfSeqNo { seq_no: u64, primary_term: u64 },
    /// An external version.
    External { version: u64, gte: bool },
}

impl Condition {
    /// Builds a condition from request parameters, validating them as Elasticsearch does.
    pub fn from_parameters(
        version: Option<u64>,
        version_type: Option<VersionType>,
        if_seq_no: Option<u64>,
        if_primary_term: Option<u64>,
        create: bool,
    ) -> Result<Condition, String> {
        let version_type = version_type.unwrap_or(VersionType::Internal);
        if if_seq_no.is_some() != if_primary_term.is_some() {
            return Err(if if_seq_no.is_some() {
                "ifSeqNo is set, but primary term is [0]".into()
            } else {
                "ifSeqNo is unassigned, but primary term is [1]".into()
            });
        }
        if let (Some(seq_no), Some(primary_term)) = (if_seq_no, if_primary_term) {
            if version.is_some() || version_type != VersionType::Internal {
                return Err("compare and write operations can not use versioning".into());
            }
            if create {
                return Err(
                    "create operations do not support compare and set. use index instead".into(),
                );
            }
            return Ok(Condition::IfSeqNo {
                seq_no,
                primary_term,
            });
        }
        match (version_type, version) {
            (VersionType::Internal, Some(_)) => Err(
                "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead"
                    .into(),
            ),
            (VersionType::Internal, None) if create => Ok(Condition::Create),
            (VersionType::Internal, None) => Ok(Condition::None),
            (_, _) if create => Err("create operations only support internal versioning. use index instead".into()),
            (other, None) => Err(format!("illegal version value [-3] for version type [{}]", other.name())),
            (other, Some(v)) if v > VERSION_MAX => Err(format!("illegal version value [{v}] for version type [{}]", other.name())),
            (VersionType::External, Some(v)) => Ok(Condition::External { version: v, gte: false }),
            (VersionType::ExternalGte, Some(v)) => Ok(Condition::External { version: v, gte: true }),
        }
    }
}

/// Decides the version of a write (an index or a delete) of document `id`, or the conflict
/// reason Elasticsearch gives.
pub fn resolve(id: &str, current: Option<Current>, condition: Condition) -> Result<u64, String> {
    let live = current.filter(|c| !c.deleted);
    let next_internal = current.map_or(1, |c| c.version + 1);
    match condition {
        Condition::None => Ok(next_internal),
        Condition::Create => match live {
            Some(c) => Err(format!(
                "[{id}]: version conflict, document already exists (current version [{}])",
                c.version
            )),
            None => Ok(next_internal),
        },
        Condition::IfSeqNo {
            seq_no,
            primary_term,
        } => match live {
            None => Err(format!(
                "[{id}]: version conflict, required seqNo [{seq_no}], primary term [{primary_term}]. but no document was found"
            )),
            Some(c) if c.seq_no != seq_no || primary_term != PRIMARY_TERM => Err(format!(
                "[{id}]: version conflict, required seqNo [{seq_no}], primary term [{primary_term}]. current document has seqNo [{}] and primary term [{PRIMARY_TERM}]",
                c.seq_no
            )),
            Some(c) => Ok(c.version + 1),
        },
        Condition::External { version, gte } => match current {
            Some(c) if !gte && version <= c.version => Err(format!(
                "[{id}]: version conflict, current version [{}] is higher or equal to the one provided [{version}]",
                c.version
            )),
            Some(c) if gte && version < c.version => Err(format!(
                "[{id}]: version conflict, current version [{}] is higher than the one provided [{version}]",
                c.version
            )),
            _ => Ok(version),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE4: Current = Current {
        version: 4,
        seq_no: 7,
        deleted: false,
    };
    const DELETED4: Current = Current {
        version: 4,
        seq_no: 7,
        deleted: true,
    };

    #[test]
    fn internal_versions_count_on_across_deletes() {
        assert_eq!(resolve("1", None, Condition::None), Ok(1));
        assert_eq!(resolve("1", Some(LIVE4), Condition::None), Ok(5));
        assert_eq!(resolve("1", Some(DELETED4), Condition::None), Ok(5));
    }

    #[test]
    fn external_versions() {
        let stale = Condition::External {
            version: 2,
            gte: false,
        };
        assert_eq!(
            resolve("1", Some(LIVE4), stale),
            Err("[1]: version conflict, current version [4] is higher or equal to the one provided [2]".into())
        );
        assert!(
            resolve(
                "1",
                Some(LIVE4),
                Condition::External {
                    version: 4,
                    gte: false
                }
            )
            .is_err()
        );
        assert_eq!(
            resolve(
                "1",
                Some(LIVE4),
                Condition::External {
                    version: 4,
                    gte: true
                }
            ),
            Ok(4)
        );
        assert_eq!(
            resolve(
                "1",
                None,
                Condition::External {
                    version: 0,
                    gte: false
                }
            ),
            Ok(0)
        );
        // A tombstone refuses older versions, however late they come.
        assert!(
            resolve(
                "1",
                Some(DELETED4),
                Condition::External {
                    version: 3,
                    gte: false
                }
            )
            .is_err()
        );
        assert_eq!(
            resolve(
                "1",
                Some(DELETED4),
                Condition::External {
                    version: 5,
                    gte: false
                }
            ),
            Ok(5)
        );
    }

    #[test]
    fn create_and_seq_no() {
        assert!(
            resolve("1", Some(LIVE4), Condition::Create)
                .unwrap_err()
                .contains("document already exists (current version [4])")
        );
        assert_eq!(resolve("1", Some(DELETED4), Condition::Create), Ok(5));
        assert_eq!(
            resolve(
                "1",
                Some(LIVE4),
                Condition::IfSeqNo {
                    seq_no: 7,
                    primary_term: 1
                }
            ),
            Ok(5)
        );
        assert_eq!(
            resolve("1", Some(LIVE4), Condition::IfSeqNo { seq_no: 6, primary_term: 1 }),
            Err("[1]: version conflict, required seqNo [6], primary term [1]. current document has seqNo [7] and primary term [1]".into())
        );
        assert!(
            resolve(
                "1",
                None,
                Condition::IfSeqNo {
                    seq_no: 6,
                    primary_term: 1
                }
            )
            .unwrap_err()
            .ends_with("but no document was found")
        );
    }

    #[test]
    fn parameter_validation() {
        assert!(
            Condition::from_parameters(Some(3), None, None, None, false)
                .unwrap_err()
                .starts_with("internal versioning can not be used")
        );
        assert_eq!(
            Condition::from_parameters(Some(3), Some(VersionType::External), None, None, false),
            Ok(Condition::External {
                version: 3,
                gte: false
            })
        );
        assert!(
            Condition::from_parameters(
                Some(VERSION_MAX + 1),
                Some(VersionType::External),
                None,
                None,
                false
            )
            .is_err()
        );
        assert!(
            Condition::from_parameters(Some(3), Some(VersionType::External), None, None, true)
                .is_err()
        );
        assert_eq!(
            Condition::from_parameters(None, None, Some(2), Some(1), false),
            Ok(Condition::IfSeqNo {
                seq_no: 2,
                primary_term: 1
            })
        );
    }
}
