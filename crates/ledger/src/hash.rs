//! QLDB hashing: Ion Hash 1.0 over SHA-256, the `dot` combiner, Merkle roots and proofs,
//! revision hashes, block hashes and proof folding, exactly as `vectors/qldb-hashing.md` states.

use ion_rs::Element;
use sha2::{Digest, Sha256};

use crate::error::LedgerError;

/// Length of every hash in the ledger, in bytes (SHA-256).
pub const HASH_LENGTH_BYTES: usize = 32;

/// A SHA-256 hash as QLDB uses it everywhere: revision hashes, block hashes, digests, proof nodes.
pub type Hash = [u8; HASH_LENGTH_BYTES];

/// SHA-256 of raw bytes.
pub fn sha256_bytes(bytes: &[u8]) -> Hash {
    let output = Sha256::digest(bytes);
    let mut hash = [0u8; HASH_LENGTH_BYTES];
    hash.copy_from_slice(&output);
    hash
}

/// The Ion Hash 1.0 (SHA-256) of an Ion value. Struct field order does not matter; list order does.
pub fn ion_hash(element: &Element) -> Result<Hash, LedgerError> {
    if let Some(hash) = crate::ion_hash::sha256(element) {
        return Ok(hash);
    }
    let output = ion_rs::ion_hash::sha256(element)
        .map_err(|error| LedgerError::Internal(format!("ion hash failed: {error}")))?;
    let mut hash = [0u8; HASH_LENGTH_BYTES];
    if output.len() != HASH_LENGTH_BYTES {
        return Err(LedgerError::Internal(
            "ion hash has the wrong length".to_owned(),
        ));
    }
    hash.copy_from_slice(&output);
    Ok(hash)
}

/// Orders two hashes as QLDB does: as signed bytes, from the last byte towards the first.
pub fn compare_hashes(left: &[u8], right: &[u8]) -> std::cmp::Ordering {
    for (left_byte, right_byte) in left.iter().rev().zip(right.iter().rev()) {
        let ordering = (*left_byte as i8).cmp(&(*right_byte as i8));
        if ordering != std::cmp::Ordering::Equal {
            return ordering;
        }
    }
    left.len().cmp(&right.len())
}

/// QLDB's `dot`: if either side is empty the other is returned; otherwise the smaller (by
/// [`compare_hashes`]) is concatenated with the larger and the result is hashed with SHA-256.
pub fn dot(left: Option<&Hash>, right: Option<&Hash>) -> Option<Hash> {
    match (left, right) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(*only),
        (Some(left), Some(right)) => Some(dot_hashes(left, right)),
    }
}

/// `dot` of two present hashes.
pub fn dot_hashes(left: &Hash, right: &Hash) -> Hash {
    let (smaller, larger) = if compare_hashes(left, right) == std::cmp::Ordering::Greater {
        (right, left)
    } else {
        (left, right)
    };
    let mut concatenated = [0u8; HASH_LENGTH_BYTES * 2];
    concatenated[..HASH_LENGTH_BYTES].copy_from_slice(smaller);
    concatenated[HASH_LENGTH_BYTES..].copy_from_slice(larger);
    sha256_bytes(&concatenated)
}

/// Merkle root of a list: adjacent pairs combine left to right with `dot`, an odd last hash
/// moves up unchanged, until one remains. An empty list has no root.
pub fn merkle_root(leaves: &[Hash]) -> Option<Hash> {
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => dot_hashes(left, right),
                [single] => *single,
                _ => unreachable_pair(),
            })
            .collect();
    }
    level.first().copied()
}

/// `chunks(2)` never yields an empty or longer slice; this keeps the match total without a panic.
fn unreachable_pair() -> Hash {
    [0u8; HASH_LENGTH_BYTES]
}

/// The proof of the leaf at `leaf_index` in the Merkle tree of `leaves`: the sibling hashes from
/// the leaf to the root. A node that moved up unchanged contributes nothing. Folding the leaf with
/// the proof ([`fold_proof`]) gives [`merkle_root`]. Returns `None` when the index is out of range.
pub fn merkle_proof(leaves: &[Hash], leaf_index: usize) -> Option<Vec<Hash>> {
    if leaf_index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    let mut level: Vec<Hash> = leaves.to_vec();
    let mut index = leaf_index;
    while level.len() > 1 {
        let sibling_index = if index.is_multiple_of(2) {
            index + 1
        } else {
            index - 1
        };
        if let Some(sibling) = level.get(sibling_index) {
            proof.push(*sibling);
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => dot_hashes(left, right),
                [single] => *single,
                _ => unreachable_pair(),
            })
            .collect();
        index /= 2;
    }
    Some(proof)
}

/// Folds a proof from a leaf with `dot`; the result must equal the digest.
pub fn fold_proof(leaf: &Hash, proof: &[Hash]) -> Hash {
    proof
        .iter()
        .fold(*leaf, |accumulated, node| dot_hashes(&accumulated, node))
}

/// Revision hash = `dot(IonHash(metadata), IonHash(data))`; a deleted document's final revision
/// has no data, so its hash is the metadata hash alone.
pub fn revision_hash(metadata: &Element, data: Option<&Element>) -> Result<Hash, LedgerError> {
    let data_hash = match data {
        Some(data) => Some(ion_hash(data)?),
        None => None,
    };
    Ok(revision_hash_of(&ion_hash(metadata)?, data_hash.as_ref()))
}

/// [`revision_hash`] from the Ion hashes of the metadata and of the data.
pub fn revision_hash_of(metadata_hash: &Hash, data_hash: Option<&Hash>) -> Hash {
    dot(Some(metadata_hash), data_hash).unwrap_or(*metadata_hash)
}

/// The hashes of a block, computed from its transaction info and its revision hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHashes {
    /// `[IonHash(transactionInfo), MerkleRoot(revision hashes)]`; the second is absent when the
    /// block has no revisions.
    pub entries_hash_list: Vec<Hash>,
    /// Merkle root of `entries_hash_list`.
    pub entries_hash: Hash,
    /// `dot(entries_hash, previous_block_hash)`.
    pub block_hash: Hash,
}

/// Computes a block's `entriesHashList`, `entriesHash` and `blockHash`.
pub fn block_hashes(
    transaction_info: &Element,
    revision_hashes: &[Hash],
    previous_block_hash: Option<&Hash>,
) -> Result<BlockHashes, LedgerError> {
    let mut entries_hash_list = vec![ion_hash(transaction_info)?];
    if let Some(revisions_root) = merkle_root(revision_hashes) {
        entries_hash_list.push(revisions_root);
    }
    let entries_hash = merkle_root(&entries_hash_list)
        .ok_or_else(|| LedgerError::Internal("empty entries hash list".to_owned()))?;
    let block_hash = dot(Some(&entries_hash), previous_block_hash).unwrap_or(entries_hash);
    Ok(BlockHashes {
        entries_hash_list,
        entries_hash,
        block_hash,
    })
}

/// Lowercase hex of a hash (for logs and error messages).
pub fn to_hex(hash: &[u8]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Standard base64 of a hash, as QLDB's APIs print hashes.
pub fn to_base64(hash: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// A proof as the Ion text QLDB's GetBlock and GetRevision return: `[{{base64}},{{base64}}]`.
pub fn proof_to_ion_text(proof: &[Hash]) -> String {
    let items: Vec<String> = proof
        .iter()
        .map(|node| format!("{{{{{}}}}}", to_base64(node)))
        .collect();
    format!("[{}]", items.join(","))
}

/// Parses the Ion text of a proof (a list of 32-byte blobs).
pub fn proof_from_ion_text(text: &str) -> Result<Vec<Hash>, LedgerError> {
    let element = crate::ion_read::read_one(text.as_bytes(), crate::ion_read::ION_DEPTH_MAX)
        .map_err(|error| LedgerError::BadRequest(format!("invalid proof: {error}")))?;
    let items = element
        .as_sequence()
        .ok_or_else(|| LedgerError::BadRequest("a proof is a list of blobs".to_owned()))?;
    items
        .elements()
        .map(|item| {
            item.as_lob()
                .ok_or_else(|| LedgerError::BadRequest("a proof is a list of blobs".to_owned()))
                .and_then(hash_from_slice)
        })
        .collect()
}

/// Parses a standard base64 hash.
pub fn from_base64(text: &str) -> Result<Hash, LedgerError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|error| LedgerError::BadRequest(format!("invalid base64 hash: {error}")))?;
    hash_from_slice(&bytes)
}

/// Converts a byte slice into a hash, refusing any other length.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, LedgerError> {
    <Hash>::try_from(bytes).map_err(|_| {
        LedgerError::BadRequest(format!(
            "a hash has {HASH_LENGTH_BYTES} bytes, got {}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_to_hash(text: &str) -> Hash {
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
            .collect();
        hash_from_slice(&bytes).unwrap()
    }

    #[test]
    fn dot_matches_vector() {
        let one = sha256_bytes(b"1");
        let two = sha256_bytes(b"2");
        let expected =
            hex_to_hash("940ed9abddfb5ef28004408546bc5043cda391232b6afe07267f9f8ed2b500c9");
        assert_eq!(dot_hashes(&one, &two), expected);
        assert_eq!(dot_hashes(&two, &one), expected);
        assert_eq!(dot(Some(&one), None), Some(one));
        assert_eq!(dot(None, Some(&two)), Some(two));
    }

    #[test]
    fn ion_hash_matches_vector() {
        let element = Element::read_one("{e:5}").unwrap();
        assert_eq!(
            to_hex(&ion_hash(&element).unwrap()),
            "51db1ae986743b6143a837436799b09e73f10b2ba8299de28c1937736fbb63b8"
        );
    }

    #[test]
    fn revision_hash_matches_real_qldb_revision() {
        let data =
            Element::read_one(r#"{ OrderId: "12345", Item: "ABC12345", Quantity: 1 }"#).unwrap();
        let metadata = Element::read_one(
            r#"{ id: "3Ax1in3Mt7L0YvVb6XhYyn", version: 0,
                 txTime: 2020-07-05T18:22:14.019Z, txId: "84MQSpihZfxFzpQ4fGyXtX" }"#,
        )
        .unwrap();
        assert_eq!(
            to_base64(&revision_hash(&metadata, Some(&data)).unwrap()),
            "hrhsCwsNPzLjCsOBHRtSkMCh2JGrB6q0eOGFswyQBPU="
        );
    }

    #[test]
    fn proof_ion_text_round_trips() {
        let proof = vec![sha256_bytes(b"a"), sha256_bytes(b"b")];
        let text = proof_to_ion_text(&proof);
        assert!(text.starts_with("[{{") && text.ends_with("}}]"), "{text}");
        assert_eq!(proof_from_ion_text(&text).unwrap(), proof);
        assert_eq!(proof_from_ion_text("[]").unwrap(), Vec::<Hash>::new());
        assert!(proof_from_ion_text("[1]").is_err());
    }

    #[test]
    fn signed_comparison_differs_from_unsigned() {
        let mut small = [0u8; 32];
        let mut large = [0u8; 32];
        small[31] = 0x80; // -128 as i8
        large[31] = 0x01;
        assert_eq!(compare_hashes(&small, &large), std::cmp::Ordering::Less);
    }

    #[test]
    fn merkle_proofs_fold_to_root_for_every_size() {
        for size in 1..20usize {
            let leaves: Vec<Hash> = (0..size)
                .map(|index| sha256_bytes(index.to_string().as_bytes()))
                .collect();
            let root = merkle_root(&leaves).unwrap();
            for (index, leaf) in leaves.iter().enumerate() {
                let proof = merkle_proof(&leaves, index).unwrap();
                assert_eq!(fold_proof(leaf, &proof), root, "size {size} index {index}");
            }
        }
        assert_eq!(merkle_root(&[]), None);
        assert_eq!(merkle_proof(&[], 0), None);
    }
}
