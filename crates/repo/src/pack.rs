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
use lifeboat_store::{StagedObject, StoreError};

const HEADER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 1 + 4 + 4 + 32;
/// Largest header we accept when reading a pack (a hostile pack cannot make
/// us allocate more).
pub const MAX_HEADER_LEN: u32 = 16 << 20;

/// One blob inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// Builds one pack, streaming it into a staged store object so no pack is
/// ever held in memory; only its header entries are.
pub struct PackWriter {
    out: Box<dyn StagedObject>,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
}

/// A finished pack, written but not yet published under its name.
pub struct FinishedPack {
    /// The pack's id (BLAKE3 of the whole pack).
    pub id: Id,
    /// Its size in bytes.
    pub size: u64,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
    /// The staged object; `finish(&id.to_hex())` publishes it.
    pub object: Box<dyn StagedObject>,
}

impl PackWriter {
    /// An empty pack writing into `out`.
    pub fn new(out: Box<dyn StagedObject>) -> Self {
        PackWriter {
            out,
            hasher: blake3::Hasher::new(),
            entries: vec![],
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.out.write(data)?;
        self.hasher.update(data);
        Ok(())
    }

    /// Appends an already encoded blob.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        stored: &[u8],
        raw_length: u32,
    ) -> Result<(), StoreError> {
        let offset = self.out.size() as u32;
        self.write(stored)?;
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            length: stored.len() as u32,
            raw_length,
        });
        Ok(())
    }

    /// Bytes of blob data so far.
    pub fn size(&self) -> u64 {
        self.out.size()
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
    pub fn finish(mut self, key: &MasterKey) -> Result<FinishedPack, StoreError> {
        let mut header = Vec::with_capacity(1 + self.entries.len() * ENTRY_LEN);
        header.push(HEADER_VERSION);
        for e in &self.entries {
            header.push(e.kind.to_byte());
            header.extend_from_slice(&e.length.to_le_bytes());
            header.extend_from_slice(&e.raw_length.to_le_bytes());
            header.extend_from_slice(&e.id.0);
        }
        let mut sealed = key.seal(&header);
        let len = sealed.len() as u32;
        sealed.extend_from_slice(&len.to_le_bytes());
        self.write(&sealed)?;
        Ok(FinishedPack {
            id: Id(*self.hasher.finalize().as_bytes()),
            size: self.out.size(),
            entries: self.entries,
            object: self.out,
        })
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
    use lifeboat_store::{Kind, LocalStore, ReadStore, WriteStore};
    use proptest::prelude::*;

    /// Writes `blobs` as one pack into a real local store; returns the
    /// finished pack's id and entries and the bytes read back.
    fn write_pack(key: &MasterKey, blobs: &[Vec<u8>]) -> (Id, Vec<PackEntry>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        store.create().unwrap();
        let mut w = PackWriter::new(store.stage(Kind::Pack).unwrap());
        for (i, b) in blobs.iter().enumerate() {
            let kind = if i % 2 == 0 {
                BlobKind::Data
            } else {
                BlobKind::Tree
            };
            w.add(
                kind,
                key.blob_id(b),
                &crate::blob::encode(key, b, 1),
                b.len() as u32,
            )
            .unwrap();
        }
        let p = w.finish(key).unwrap();
        let size = p.size;
        p.object.finish(&p.id.to_hex()).unwrap();
        let bytes = store.get(Kind::Pack, &p.id.to_hex()).unwrap();
        assert_eq!(bytes.len() as u64, size);
        (p.id, p.entries, bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let key = MasterKey::generate();
            let (id, written, bytes) = write_pack(&key, &blobs);
            prop_assert_eq!(Id::hash_of(&bytes), id);
            let entries = parse_pack(&key, &bytes).unwrap();
            prop_assert_eq!(&entries, &written);
            for (e, b) in entries.iter().zip(&blobs) {
                let stored = &bytes[e.offset as usize..(e.offset + e.length) as usize];
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
        let (_, _, bytes) = write_pack(&key, &[b"x".to_vec()]);
        assert!(parse_pack(&key, &bytes[..bytes.len() - 10]).is_err());
        assert!(parse_pack(&key, &bytes[10..]).is_err());
    }
}
