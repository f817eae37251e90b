//! Keys, authenticated encryption and keyed hashing.
//!
//! Every encrypted thing in a repository is `nonce (24) ‖ ciphertext ‖ tag (16)`
//! under XChaCha20-Poly1305 with a random nonce: 192-bit nonces make random
//! nonces safe for any number of objects, which 96-bit AES-GCM nonces are not
//! past 2^32 messages per key (see docs/FORMAT.md for the measurement).
//!
//! The master key holds three secrets: the encryption key, the key of the
//! keyed BLAKE3 that names blobs (so blob ids leak nothing across
//! repositories), and the seed of the chunker's gear table (so chunk
//! boundaries do not fingerprint known files).

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::RepoError;
use crate::id::Id;

/// Bytes added to every encrypted object: nonce plus tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Bytes of the random nonce that starts every sealed object.
pub const NONCE_LEN: usize = 24;
/// Bytes of the authentication tag that ends every sealed object.
pub const TAG_LEN: usize = 16;

/// The repository's secrets. Never printed: `Debug` is redacted.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKey {
    #[serde(with = "hex_bytes")]
    encrypt: [u8; 32],
    #[serde(with = "hex_bytes")]
    id_key: [u8; 32],
    chunker_seed: u64,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// An AEAD open that failed: the key is wrong or the bytes were changed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("decryption failed (wrong key, or the data was modified)")]
pub struct OpenError;

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut rng = rand::rngs::OsRng;
        let mut k = MasterKey {
            encrypt: [0; 32],
            id_key: [0; 32],
            chunker_seed: 0,
        };
        rng.fill_bytes(&mut k.encrypt);
        rng.fill_bytes(&mut k.id_key);
        k.chunker_seed = rng.next_u64();
        k
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.encrypt).into())
    }

    /// Encrypts `plain` with a random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher(), plain)
    }

    /// Seals in place: `buf` holds [`NONCE_LEN`] free bytes, then `len`
    /// bytes of plaintext, then at least [`TAG_LEN`] free bytes. Writes a
    /// random nonce before and the tag after the encrypted bytes and returns
    /// the sealed length: `buf[..n]` is then what [`MasterKey::seal`] would
    /// have returned. `None` only if `buf` is too short.
    pub fn seal_in_place(&self, buf: &mut [u8], len: usize) -> Option<usize> {
        let total = NONCE_LEN + len + TAG_LEN;
        if buf.len() < total {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let tag = self
            .cipher()
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                b"",
                &mut buf[NONCE_LEN..NONCE_LEN + len],
            )
            .ok()?;
        buf[NONCE_LEN + len..total].copy_from_slice(&tag);
        Some(total)
    }

    /// Decrypts and authenticates `sealed`.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        open_with(&self.cipher(), sealed)
    }

    /// Like [`MasterKey::open`], decrypting into `out` (replacing its
    /// contents) so a caller decoding many blobs reuses one buffer.
    pub fn open_into(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - (SEAL_OVERHEAD - NONCE_LEN));
        out.clear();
        out.extend_from_slice(ct);
        self.cipher()
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                b"",
                out,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| {
                out.clear();
                OpenError
            })
    }

    /// Like [`MasterKey::open`], decrypting in place: the plaintext is the
    /// middle of `sealed` (between the nonce and the tag), no copy made.
    pub fn open_in_place<'a>(&self, sealed: &'a mut [u8]) -> Result<&'a [u8], OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let tag_at = rest.len() - (SEAL_OVERHEAD - NONCE_LEN);
        let (ct, tag) = rest.split_at_mut(tag_at);
        self.cipher()
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                b"",
                ct,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| OpenError)?;
        Ok(ct)
    }

    /// The id of a blob: BLAKE3 keyed with the repository's id key.
    pub fn blob_id(&self, plain: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plain).as_bytes())
    }

    /// The seed of the chunker's gear table.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// A fresh key that names blobs and cuts chunks as `self` does (the same
    /// id key and chunker seed) but encrypts with a new random key: the
    /// key of a second region's repository, to which snapshots are copied
    /// blob for blob — resealed, never re-chunked or re-hashed — and in
    /// which the same data deduplicates against what the first holds.
    pub fn with_same_ids(&self) -> MasterKey {
        let mut k = MasterKey::generate();
        k.id_key = self.id_key;
        k.chunker_seed = self.chunker_seed;
        k
    }

    /// Whether `other` names blobs as `self` does (the same id key and
    /// chunker seed): blob ids, and so trees, mean the same in both.
    pub fn same_ids(&self, other: &MasterKey) -> bool {
        // Not a secret comparison an attacker can time: both keys are ours.
        self.id_key == other.id_key && self.chunker_seed == other.chunker_seed
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encrypting into a Vec cannot fail for in-memory buffers below 2^38 bytes.
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), plain)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(OpenError);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), ct)
        .map_err(|_| OpenError)
}

/// Argon2id cost parameters, stored in each key file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The default for new keys: 64 MiB, 3 passes, 1 lane (about 0.2 s here;
    /// OWASP's 2023 floor is 19 MiB/2 passes).
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    /// For a generated secret (`key add --generate`): 256 random bits need
    /// no stretching, a guess costs 2^255 tries either way, so the key opens
    /// in well under a millisecond (what `wal push` and `wal fetch`, one
    /// process per WAL file, want).
    pub const GENERATED_SECRET: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    /// Cheap parameters for tests (`LIFEBOAT_INSECURE_FAST_KDF=1`).
    pub const INSECURE_FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

impl KdfParams {
    /// The relative cost of one derivation (memory × passes): keys are
    /// tried cheapest first.
    pub fn cost(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }
}

/// A key object: the master key wrapped by a key derived from a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file format version (1).
    pub version: u32,
    /// When the key was created (RFC 3339).
    pub created: String,
    /// Who created it (`user@host`).
    pub created_by: String,
    /// Always `"argon2id"` in version 1.
    pub kdf: String,
    /// Argon2id parameters.
    pub params: KdfParams,
    /// Salt, hex.
    pub salt: String,
    /// `seal(kek, json(MasterKey))`, hex.
    pub data: String,
}

impl KeyFile {
    /// Wraps `master` with `password`.
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        created_by: String,
    ) -> Result<KeyFile, RepoError> {
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let kek = derive(password, &salt, params)?;
        let plain = serde_json::to_vec(master).map_err(|e| RepoError::Internal(e.to_string()))?;
        let data = seal_with(&XChaCha20Poly1305::new((&kek).into()), &plain);
        Ok(KeyFile {
            version: 1,
            created: jiff::Timestamp::now().to_string(),
            created_by,
            kdf: "argon2id".into(),
            params,
            salt: hex::encode(salt),
            data: hex::encode(data),
        })
    }

    /// Unwraps the master key; `Ok(None)` when the password does not fit.
    pub fn unwrap_with(&self, password: &[u8]) -> Result<Option<MasterKey>, RepoError> {
        if self.version != 1 || self.kdf != "argon2id" {
            return Err(RepoError::Format(format!(
                "unsupported key file version {} / kdf {}",
                self.version, self.kdf
            )));
        }
        let salt = hex::decode(&self.salt)
            .map_err(|_| RepoError::Format("key file salt is not hex".into()))?;
        let data = hex::decode(&self.data)
            .map_err(|_| RepoError::Format("key file data is not hex".into()))?;
        let kek = derive(password, &salt, self.params)?;
        match open_with(&XChaCha20Poly1305::new((&kek).into()), &data) {
            Ok(plain) => serde_json::from_slice(&plain)
                .map(Some)
                .map_err(|e| RepoError::Format(format!("key file content: {e}"))),
            Err(OpenError) => Ok(None),
        }
    }
}

fn derive(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32], RepoError> {
    // Refuse absurd parameters from a hostile key file before allocating.
    if p.memory_kib > 4 * 1024 * 1024
        || p.iterations > 100
        || p.parallelism == 0
        || p.parallelism > 64
    {
        return Err(RepoError::Format(format!(
            "key file has out-of-range KDF parameters {p:?}"
        )));
    }
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| RepoError::Format(format!("key file KDF parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| RepoError::Format(format!("key derivation: {e}")))?;
    Ok(out)
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let k = MasterKey::generate();
            let sealed = k.seal(&data);
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(&sealed).unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_is_detected(data in proptest::collection::vec(any::<u8>(), 1..512), pos in any::<usize>(), bit in 0u8..8) {
            let k = MasterKey::generate();
            let mut sealed = k.seal(&data);
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(k.open(&sealed).is_err());
        }
    }

    #[test]
    fn key_file_wraps_and_rejects_wrong_password() {
        let k = MasterKey::generate();
        let kf = KeyFile::wrap(&k, b"right", KdfParams::INSECURE_FAST, "t@h".into()).unwrap();
        let back = kf.unwrap_with(b"right").unwrap().unwrap();
        assert_eq!(back.blob_id(b"x"), k.blob_id(b"x"));
        assert!(kf.unwrap_with(b"wrong").unwrap().is_none());
    }

    #[test]
    fn blob_ids_depend_on_the_repository_key() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_eq!(a.blob_id(b"same"), a.blob_id(b"same"));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = MasterKey::generate();
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
