//! Pack files: many encrypted blobs in one store object.
//!
//! ```text
//! pack   := blob* ‖ header ‖ header_len:u32le
//! header := seal(version:u8=1 ‖ entry*)
//! entry  := kind:u8 ‖ length:u32le ‖ raw_length:u32le ‖ id:[32]
//! ```
//! Blob offsets follow from the lengths, in order. The header makes a pack
//! self-describing, so an index can be rebuilt from packs alone.

use crate::blob::BlobKind;
use crate::crypto::{MasterKey, SEAL_OVERHEAD};
use crate::id::Id;

const HEADER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 1 + 4 + 4 + 32;
/// Largest header we accept when reading a pack (a hostile pack cannot make
/// us allocate more).
pub const MAX_HEADER_LEN: u32 = 16 << 20;

/// One blob inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Blob kind.
    pub kind: BlobKind,
    /// Blob id.
    pub id: Id,
    /// Offset of the stored blob in the pack.
    pub offset: u32,
    /// Stored (encrypted) length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// Builds one pack in memory.
#[derive(Debug, Default)]
pub struct PackWriter {
    data: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to upload.
#[derive(Debug)]
pub struct FinishedPack {
    /// The pack's id (BLAKE3 of `bytes`).
    pub id: Id,
    /// The whole pack.
    pub bytes: Vec<u8>,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        PackWriter {
            data: Vec::with_capacity(capacity),
            entries: vec![],
        }
    }

    /// Appends an already encoded blob.
    pub fn add(&mut self, kind: BlobKind, id: Id, stored: &[u8], raw_length: u32) {
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(stored);
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            length: stored.len() as u32,
            raw_length,
        });
    }

    /// Bytes of blob data so far.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// Number of blobs so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the header and names the pack.
    pub fn finish(mut self, key: &MasterKey) -> FinishedPack {
        let mut header = Vec::with_capacity(1 + self.entries.len() * ENTRY_LEN);
        header.push(HEADER_VERSION);
        for e in &self.entries {
            header.push(e.kind.to_byte());
            header.extend_from_slice(&e.length.to_le_bytes());
            header.extend_from_slice(&e.raw_length.to_le_bytes());
            header.extend_from_slice(&e.id.0);
        }
        let sealed = key.seal(&header);
        self.data.extend_from_slice(&sealed);
        self.data
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        FinishedPack {
            id: Id::hash_of(&self.data),
            bytes: self.data,
            entries: self.entries,
        }
    }
}

/// Why a pack header could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    /// Shorter than its trailer says.
    #[error("pack is truncated")]
    Truncated,
    /// Header fails to decrypt.
    #[error("pack header fails authentication")]
    Auth,
    /// Header decrypts but is malformed.
    #[error("pack header is malformed: {0}")]
    Malformed(String),
}

/// Reads the header length from a pack's last 4 bytes, given the pack size.
/// Returns the length of the sealed header.
pub fn header_len(trailer: [u8; 4], pack_size: u64) -> Result<u32, PackError> {
    let len = u32::from_le_bytes(trailer);
    if len < SEAL_OVERHEAD as u32 + 1 || len > MAX_HEADER_LEN || u64::from(len) + 4 > pack_size {
        return Err(PackError::Truncated);
    }
    Ok(len)
}

/// Decodes a sealed header. `data_len` is the pack size minus header and
/// trailer; every entry must lie inside it.
pub fn parse_header(
    key: &MasterKey,
    sealed: &[u8],
    data_len: u64,
) -> Result<Vec<PackEntry>, PackError> {
    let plain = key.open(sealed).map_err(|_| PackError::Auth)?;
    let (&version, body) = plain
        .split_first()
        .ok_or_else(|| PackError::Malformed("empty header".into()))?;
    if version != HEADER_VERSION {
        return Err(PackError::Malformed(format!(
            "unknown header version {version}"
        )));
    }
    if body.len() % ENTRY_LEN != 0 {
        return Err(PackError::Malformed(
            "header length is not a whole number of entries".into(),
        ));
    }
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(body.len() / ENTRY_LEN);
    for e in body.chunks_exact(ENTRY_LEN) {
        let kind = BlobKind::from_byte(e[0])
            .ok_or_else(|| PackError::Malformed(format!("unknown blob kind {}", e[0])))?;
        let length = u32::from_le_bytes([e[1], e[2], e[3], e[4]]);
        let raw_length = u32::from_le_bytes([e[5], e[6], e[7], e[8]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[9..41]);
        if offset + u64::from(length) > data_len {
            return Err(PackError::Malformed(
                "entry extends past the blob area".into(),
            ));
        }
        out.push(PackEntry {
            kind,
            id: Id(id),
            offset: offset as u32,
            length,
            raw_length,
        });
        offset += u64::from(length);
    }
    Ok(out)
}

/// Parses the header of a whole pack held in memory.
pub fn parse_pack(key: &MasterKey, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    let size = pack.len() as u64;
    if pack.len() < 4 {
        return Err(PackError::Truncated);
    }
    let mut trailer = [0u8; 4];
    trailer.copy_from_slice(&pack[pack.len() - 4..]);
    let hlen = header_len(trailer, size)? as usize;
    let data_len = pack.len() - 4 - hlen;
    parse_header(key, &pack[data_len..pack.len() - 4], data_len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let key = MasterKey::generate();
            let mut w = PackWriter::with_capacity(1024);
            for (i, b) in blobs.iter().enumerate() {
                let kind = if i % 2 == 0 { BlobKind::Data } else { BlobKind::Tree };
                w.add(kind, key.blob_id(b), &crate::blob::encode(&key, b, 1), b.len() as u32);
            }
            let p = w.finish(&key);
            prop_assert_eq!(Id::hash_of(&p.bytes), p.id);
            let entries = parse_pack(&key, &p.bytes).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, b) in entries.iter().zip(&blobs) {
                let stored = &p.bytes[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&crate::blob::decode(&key, stored, &e.id, e.raw_length).unwrap(), b);
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let key = MasterKey::generate();
            let _ = parse_pack(&key, &data);
        }
    }

    #[test]
    fn truncated_pack_is_reported() {
        let key = MasterKey::generate();
        let mut w = PackWriter::default();
        w.add(
            BlobKind::Data,
            key.blob_id(b"x"),
            &crate::blob::encode(&key, b"x", 0),
            1,
        );
        let p = w.finish(&key);
        assert!(parse_pack(&key, &p.bytes[..p.bytes.len() - 10]).is_err());
        assert!(parse_pack(&key, &p.bytes[10..]).is_err());
    }
}
