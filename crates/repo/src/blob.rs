//! Blobs: the unit of deduplication (a file chunk or a directory tree).
//!
//! Stored form: `seal(flag ‖ payload)` where flag 0 means the payload is the
//! plaintext and flag 1 means it is a zstd frame of the plaintext. Compression
//! is kept only when it saves at least 1/32 of the size.

use serde::{Deserialize, Serialize};

use crate::crypto::{MasterKey, OpenError, NONCE_LEN, TAG_LEN};
use crate::id::Id;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A chunk of file or stream content.
    Data,
    /// A serialized directory tree.
    Tree,
}

impl BlobKind {
    /// Byte used in pack headers.
    pub fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    /// Inverse of [`BlobKind::to_byte`].
    pub fn from_byte(b: u8) -> Option<BlobKind> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;

/// Compresses (when it pays) and encrypts blobs. Holds one zstd context and
/// one buffer for its lifetime: a context per blob cost a tenth of a
/// backup's CPU time, and a fresh (zeroed, page-faulted) buffer per blob
/// several percent more. The blob is compressed straight into its place in
/// the buffer and sealed there.
pub struct Encoder {
    level: i32,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// nonce ‖ flag ‖ payload ‖ tag; its capacity grows as needed and is
    /// never zeroed.
    buf: Vec<u8>,
}

impl Encoder {
    /// An encoder for zstd `level` (0 disables compression).
    pub fn new(level: i32) -> Encoder {
        let zstd = if level == 0 {
            None
        } else {
            zstd::bulk::Compressor::new(level).ok()
        };
        Encoder {
            level,
            zstd,
            buf: Vec::new(),
        }
    }

    /// The stored form of `plain`, valid until the next call.
    pub fn encode(&mut self, key: &MasterKey, plain: &[u8]) -> &[u8] {
        let head = NONCE_LEN + 1;
        let bound = zstd::zstd_safe::compress_bound(plain.len()).max(plain.len());
        // Only the header is ever initialized ahead: the payload goes into
        // the spare capacity, so a one-off large blob (a 16 MiB WAL
        // segment) pays no page faults for a zeroed buffer it never fills.
        self.buf.clear();
        self.buf.resize(head, 0);
        self.buf.reserve(bound + TAG_LEN);
        let mut flag = FLAG_RAW;
        if let (Some(z), true) = (self.zstd.as_mut(), plain.len() >= 64) {
            let mut at = std::io::Cursor::new(&mut self.buf);
            at.set_position(head as u64);
            match z.compress_to_buffer(plain, &mut at) {
                Ok(n) if n < plain.len() - plain.len() / 32 => flag = FLAG_ZSTD,
                _ => self.buf.truncate(head),
            }
        }
        if flag == FLAG_RAW {
            self.buf.extend_from_slice(plain);
        }
        self.buf[NONCE_LEN] = flag;
        let len = self.buf.len() - NONCE_LEN;
        self.buf.resize(self.buf.len() + TAG_LEN, 0);
        // The buffer was sized for the nonce and the tag just above.
        let sealed = key.seal_in_place(&mut self.buf, len).unwrap_or(0);
        &self.buf[..sealed]
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

/// Compresses (when it pays) and encrypts one blob's plaintext.
/// `level` 0 disables compression. For many blobs, keep an [`Encoder`].
pub fn encode(key: &MasterKey, plain: &[u8], level: i32) -> Vec<u8> {
    Encoder::new(level).encode(key, plain).to_vec()
}

/// Why a stored blob could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// AEAD failure.
    #[error("authentication failed")]
    Auth,
    /// Unknown flag or bad zstd frame.
    #[error("bad encoding: {0}")]
    Encoding(String),
    /// Plaintext hashes to another id.
    #[error("content does not match its id")]
    IdMismatch,
}

impl From<OpenError> for DecodeError {
    fn from(_: OpenError) -> Self {
        DecodeError::Auth
    }
}

/// Decrypts, decompresses and verifies blobs, keeping one zstd context and
/// two buffers for its lifetime (a context per blob cost several percent of
/// a restore; fresh buffers per blob cost page faults).
#[derive(Default)]
pub struct Decoder {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    framed: Vec<u8>,
    plain: Vec<u8>,
}

impl Decoder {
    /// A decoder; the zstd context is created on first use.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decrypts, decompresses and checks a stored blob against its id.
    /// `raw_len` bounds the decompressed size (a hostile frame cannot balloon).
    /// The plaintext borrows the decoder's buffer until the next call.
    pub fn decode(
        &mut self,
        key: &MasterKey,
        stored: &[u8],
        id: &Id,
        raw_len: u32,
    ) -> Result<&[u8], DecodeError> {
        key.open_into(stored, &mut self.framed)?;
        unframe(
            &self.framed,
            &mut self.plain,
            &mut self.zstd,
            key,
            id,
            raw_len,
        )
    }

    /// Like [`Decoder::decode`], decrypting in place in `stored` (which is
    /// left scrambled): no copy of the sealed bytes, and no buffer of the
    /// decoder's for them. A stored-raw blob's plaintext is part of
    /// `stored`; a compressed one's is in the decoder's buffer.
    pub fn decode_in_place<'s>(
        &'s mut self,
        key: &MasterKey,
        stored: &'s mut [u8],
        id: &Id,
        raw_len: u32,
    ) -> Result<&'s [u8], DecodeError> {
        let framed = key.open_in_place(stored)?;
        unframe(framed, &mut self.plain, &mut self.zstd, key, id, raw_len)
    }
}

/// Re-encrypts a stored blob in place for another key that names blobs
/// alike ([`MasterKey::same_ids`]): opens `stored` with `from` — which
/// authenticates every byte as what `from`'s holder sealed — and seals the
/// same flag and payload with `to` under a fresh nonce, in the same bytes
/// (a sealed blob's length does not depend on the key). Nothing is
/// decompressed or hashed: the blob is carried, not re-read.
pub fn reseal(from: &MasterKey, to: &MasterKey, stored: &mut [u8]) -> Result<(), DecodeError> {
    let len = from.open_in_place(stored)?.len();
    to.seal_in_place(stored, len)
        .ok_or_else(|| DecodeError::Encoding("no room to seal".into()))?;
    Ok(())
}

/// A decrypted blob's flag byte and payload to its verified plaintext.
fn unframe<'s>(
    framed: &'s [u8],
    plain_buf: &'s mut Vec<u8>,
    zstd: &mut Option<zstd::bulk::Decompressor<'static>>,
    key: &MasterKey,
    id: &Id,
    raw_len: u32,
) -> Result<&'s [u8], DecodeError> {
    let (&flag, payload) = framed
        .split_first()
        .ok_or_else(|| DecodeError::Encoding("empty".into()))?;
    let plain: &[u8] = match flag {
        FLAG_RAW => payload,
        FLAG_ZSTD => {
            let z = match zstd {
                Some(z) => z,
                None => zstd.insert(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| DecodeError::Encoding(e.to_string()))?,
                ),
            };
            // The frame may not write more than the recorded length.
            plain_buf.clear();
            plain_buf.reserve_exact(raw_len as usize);
            z.decompress_to_buffer(payload, plain_buf)
                .map_err(|e| DecodeError::Encoding(e.to_string()))?;
            plain_buf
        }
        f => return Err(DecodeError::Encoding(format!("unknown flag {f}"))),
    };
    if plain.len() != raw_len as usize {
        return Err(DecodeError::Encoding(format!(
            "{} bytes where {raw_len} were recorded",
            plain.len()
        )));
    }
    if key.blob_id(plain) != *id {
        return Err(DecodeError::IdMismatch);
    }
    Ok(plain)
}

thread_local! {
    /// One decoder per thread for [`decode`]: tree walks decode thousands of
    /// small blobs, and a zstd context per blob showed in profiles.
    static DECODER: std::cell::RefCell<Decoder> = std::cell::RefCell::new(Decoder::new());
}

/// Decodes one blob into a new buffer, with this thread's [`Decoder`].
pub fn decode(
    key: &MasterKey,
    stored: &[u8],
    id: &Id,
    raw_len: u32,
) -> Result<Vec<u8>, DecodeError> {
    DECODER.with(|d| match d.try_borrow_mut() {
        Ok(mut d) => d.decode(key, stored, id, raw_len).map(<[u8]>::to_vec),
        // Re-entered on this thread (cannot happen today): use a fresh one.
        Err(_) => Decoder::new()
            .decode(key, stored, id, raw_len)
            .map(<[u8]>::to_vec),
    })
}

/// Decodes one large blob, decrypting in place in `stored` (left
/// scrambled), into a buffer of its own: no copy of a compressed blob's
/// plaintext, and no zeroed buffer for it (a 16 MiB WAL segment fetched on
/// `restore_command`'s critical path).
pub fn decode_owned(
    key: &MasterKey,
    stored: &mut [u8],
    id: &Id,
    raw_len: u32,
) -> Result<Vec<u8>, DecodeError> {
    let mut plain = Vec::new();
    if raw_len as usize >= 4 << 20 {
        plain.reserve_exact(raw_len as usize);
        crate::sys::advise_huge_pages(&mut plain);
    }
    let framed = key.open_in_place(stored)?;
    let raw = framed.first() == Some(&FLAG_RAW);
    let got = unframe(framed, &mut plain, &mut None, key, id, raw_len)?;
    if raw {
        return Ok(got.to_vec());
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_decode_round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000), repeat in 1usize..4, level in 0i32..4) {
            let key = MasterKey::generate();
            let plain: Vec<u8> = data.iter().copied().cycle().take(data.len() * repeat).collect();
            let id = key.blob_id(&plain);
            let stored = encode(&key, &plain, level);
            prop_assert_eq!(decode(&key, &stored, &id, plain.len() as u32).unwrap(), plain);
        }
    }

    #[test]
    fn compressible_data_shrinks_and_random_stays_raw() {
        let key = MasterKey::generate();
        let text = b"lifeboat ".repeat(10_000);
        assert!(encode(&key, &text, 3).len() < text.len() / 10);
        let random: Vec<u8> = (0..10_000).map(|_| rand::random::<u8>()).collect();
        assert_eq!(
            encode(&key, &random, 3).len(),
            random.len() + 1 + crate::crypto::SEAL_OVERHEAD
        );
    }

    /// Regression: a reused encoder once wrote the zstd frame over the
    /// flag byte, making every compressed blob undecodable.
    #[test]
    fn a_reused_decoder_returns_each_blob_exactly() {
        let key = MasterKey::generate();
        let pseudo: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // Long then short, compressed and raw, so stale bytes of a larger
        // earlier blob would show.
        let blobs = [b"abc".repeat(40_000), b"x".to_vec(), pseudo, vec![9; 10]];
        let mut dec = Decoder::new();
        for level in [3, 0] {
            for b in &blobs {
                let stored = encode(&key, b, level);
                let got = dec.decode(&key, &stored, &key.blob_id(b), b.len() as u32);
                assert_eq!(got.unwrap(), &b[..]);
            }
        }
        // A damaged blob fails, and the decoder still works afterwards.
        let mut bad = encode(&key, &blobs[0], 3);
        bad[30] ^= 1;
        let id = key.blob_id(&blobs[0]);
        assert_eq!(
            dec.decode(&key, &bad, &id, blobs[0].len() as u32),
            Err(DecodeError::Auth)
        );
        let good = encode(&key, &blobs[1], 3);
        let got = dec.decode(&key, &good, &key.blob_id(&blobs[1]), 1);
        assert_eq!(got.unwrap(), b"x");
        // A frame that decompresses to more than the recorded length fails.
        let got = dec.decode(&key, &encode(&key, &blobs[0], 3), &id, 100);
        assert!(matches!(got, Err(DecodeError::Encoding(_))), "{got:?}");
    }

    #[test]
    fn a_reused_encoder_round_trips_every_blob() {
        let key = MasterKey::generate();
        let mut enc = Encoder::new(3);
        let pseudo: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
            .collect();
        let blobs = vec![
            b"text ".repeat(5000),
            pseudo,
            vec![0; 100_000],
            b"tiny".to_vec(),
        ];
        for _ in 0..2 {
            for b in &blobs {
                let stored = enc.encode(&key, b);
                assert_eq!(
                    decode(&key, stored, &key.blob_id(b), b.len() as u32).unwrap(),
                    *b
                );
            }
        }
        let stored = enc.encode(&key, &blobs[0]);
        assert!(
            stored.len() < blobs[0].len() / 10,
            "compressible data is compressed"
        );
    }

    #[test]
    fn wrong_id_is_detected() {
        let key = MasterKey::generate();
        let stored = encode(&key, b"hello", 1);
        let err = decode(&key, &stored, &key.blob_id(b"other"), 5).unwrap_err();
        assert_eq!(err, DecodeError::IdMismatch);
    }
}
