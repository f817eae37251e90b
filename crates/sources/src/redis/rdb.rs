//! Reading Redis's RDB format (versions 1 to 11, Redis up to 7.2) as it
//! streams: every key is found and counted per database, the file's
//! CRC-64 is checked, and on request each key's value is handed out as a
//! `DUMP` payload (type, value, RDB version, CRC-64) for `RESTORE`.
//!
//! Written by hand: the RDB crates on crates.io are unmaintained and stop
//! at Redis 5's encodings. Only the framing is parsed: values are skipped
//! by their length prefixes (listpacks, ziplists and intsets are opaque
//! strings), so the input's bytes are never interpreted beyond that and
//! nothing is allocated from a length the input claims.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// The newest RDB version understood.
pub const MAX_VERSION: u32 = 11;

static CRC: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// One database's keys in an RDB file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbKeys {
    /// Keys.
    pub keys: u64,
    /// Of them, keys with an expiry.
    pub expires: u64,
}

/// What reading a whole RDB file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The RDB format version.
    pub version: u32,
    /// `redis-ver`, the server that wrote it.
    pub redis_version: String,
    /// Keys per database number.
    pub dbs: BTreeMap<u64, DbKeys>,
    /// Function libraries (Redis 7).
    pub functions: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Whether a checksum was present and matched (a server with
    /// `rdbchecksum no` writes none).
    pub checksum_verified: bool,
}

/// One thing an RDB file holds, as [`read`] hands it out.
pub enum Item<'a> {
    /// A key and its value as a `DUMP` payload.
    Key {
        /// Database number.
        db: u64,
        /// The key.
        key: &'a [u8],
        /// Absolute expiry in Unix milliseconds.
        expire_ms: Option<i64>,
        /// The `DUMP` payload `RESTORE` takes.
        payload: &'a [u8],
    },
    /// A function library's code (`FUNCTION LOAD`).
    Function(&'a [u8]),
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The input: every byte read is counted and checksummed, and recorded
/// while a payload is being captured.
struct Input<R> {
    r: R,
    crc: crc::Digest<'static, u64, crc::Table<16>>,
    pos: u64,
    recording: Option<Vec<u8>>,
    scratch: Vec<u8>,
}

impl<R: Read> Input<R> {
    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => bad(format!("truncated at byte {}", self.pos)),
            _ => e,
        })?;
        self.seen(buf.len());
        self.crc.update(buf);
        if let Some(rec) = &mut self.recording {
            rec.extend_from_slice(buf);
        }
        Ok(())
    }

    fn seen(&mut self, n: usize) {
        self.pos += n as u64;
    }

    fn u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn fixed<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.exact(&mut b)?;
        Ok(b)
    }

    /// Reads `n` bytes into `out` (`None`: discards them), in pieces, so a
    /// huge claimed length costs no memory before the bytes arrive.
    fn bytes(&mut self, n: u64, mut out: Option<&mut Vec<u8>>) -> io::Result<()> {
        let mut left = n;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(64 * 1024, 0);
        while left > 0 {
            let k = left.min(scratch.len() as u64) as usize;
            self.exact(&mut scratch[..k])?;
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&scratch[..k]);
            }
            left -= k as u64;
        }
        self.scratch = scratch;
        Ok(())
    }

    /// A length, or a string's special encoding (`Err(kind)`).
    fn len_or_special(&mut self) -> io::Result<Result<u64, u8>> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Ok(u64::from(b & 0x3f)),
            1 => Ok((u64::from(b & 0x3f) << 8) | u64::from(self.u8()?)),
            2 => match b {
                0x80 => Ok(u64::from(u32::from_be_bytes(self.fixed()?))),
                0x81 => Ok(u64::from_be_bytes(self.fixed()?)),
                _ => {
                    return Err(bad(format!(
                        "bad length byte {b:#04x} at byte {}",
                        self.pos - 1
                    )))
                }
            },
            _ => Err(b & 0x3f),
        })
    }

    fn len(&mut self) -> io::Result<u64> {
        match self.len_or_special()? {
            Ok(n) => Ok(n),
            Err(_) => Err(bad(format!(
                "a string encoding where a length belongs, at byte {}",
                self.pos - 1
            ))),
        }
    }

    /// A string: into `out` (decoded: integers as decimal, LZF
    /// decompressed) or skipped.
    fn string(&mut self, out: Option<&mut Vec<u8>>) -> io::Result<()> {
        match self.len_or_special()? {
            Ok(n) => self.bytes(n, out),
            Err(kind @ 0..=2) => {
                let v: i64 = match kind {
                    0 => i64::from(i8::from_le_bytes(self.fixed()?)),
                    1 => i64::from(i16::from_le_bytes(self.fixed()?)),
                    _ => i64::from(i32::from_le_bytes(self.fixed()?)),
                };
                if let Some(o) = out {
                    o.extend_from_slice(v.to_string().as_bytes());
                }
                Ok(())
            }
            Err(3) => {
                let compressed = self.len()?;
                let plain = self.len()?;
                match out {
                    None => self.bytes(compressed, None),
                    Some(o) => {
                        let mut c = Vec::new();
                        self.bytes(compressed, Some(&mut c))?;
                        lzf_decompress(&c, plain, o)
                            .map_err(|e| bad(format!("{e} at byte {}", self.pos)))
                    }
                }
            }
            Err(k) => Err(bad(format!(
                "unknown string encoding {k} at byte {}",
                self.pos - 1
            ))),
        }
    }

    fn skip_strings(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            self.string(None)?;
        }
        Ok(())
    }

    /// Skips one value of `kind`.
    fn skip_value(&mut self, kind: u8) -> io::Result<()> {
        match kind {
            // string; and the single-string encodings: zipmap, ziplist,
            // intset, listpack.
            0 | 9..=13 | 16 | 17 | 20 => self.string(None),
            // list, set; quicklist (of ziplists)
            1 | 2 | 14 => {
                let n = self.len()?;
                self.skip_strings(n)
            }
            // zset: member and score as a string
            3 => {
                for _ in 0..self.len()? {
                    self.string(None)?;
                    let l = self.u8()?;
                    if l < 253 {
                        self.bytes(u64::from(l), None)?;
                    }
                }
                Ok(())
            }
            // hash
            4 => {
                let n = self.len()?;
                for _ in 0..n {
                    self.skip_strings(2)?;
                }
                Ok(())
            }
            // zset 2: member and a binary double
            5 => {
                for _ in 0..self.len()? {
                    self.string(None)?;
                    self.bytes(8, None)?;
                }
                Ok(())
            }
            7 => {
                self.len()?; // module id
                self.skip_module_fields()
            }
            // quicklist 2: container kind and its listpack
            18 => {
                for _ in 0..self.len()? {
                    self.len()?;
                    self.string(None)?;
                }
                Ok(())
            }
            15 | 19 | 21 => self.skip_stream(kind),
            6 => Err(bad("a module value of the pre-release format (Redis 4.0 RC)")),
            k => Err(bad(format!(
                "value type {k} at byte {} is newer than lifeboat knows (RDB up to version {MAX_VERSION}, Redis 7.2)",
                self.pos - 1
            ))),
        }
    }

    /// A module's serialized fields, up to their end marker.
    fn skip_module_fields(&mut self) -> io::Result<()> {
        loop {
            match self.len()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.len()?;
                }
                3 => self.bytes(4, None)?,
                4 => self.bytes(8, None)?,
                5 => self.string(None)?,
                op => {
                    return Err(bad(format!(
                        "unknown module field {op} at byte {}",
                        self.pos
                    )))
                }
            }
        }
    }

    fn skip_stream(&mut self, kind: u8) -> io::Result<()> {
        let nodes = self.len()?;
        self.skip_strings(nodes.saturating_mul(2))?;
        // length, last id
        for _ in 0..3 {
            self.len()?;
        }
        if kind >= 19 {
            // first id, max deleted id, entries added
            for _ in 0..5 {
                self.len()?;
            }
        }
        for _ in 0..self.len()? {
            self.string(None)?; // group name
            self.len()?;
            self.len()?; // last id
            if kind >= 19 {
                self.len()?; // entries read
            }
            for _ in 0..self.len()? {
                self.bytes(16 + 8, None)?; // id, delivery time
                self.len()?; // delivery count
            }
            for _ in 0..self.len()? {
                self.string(None)?; // consumer name
                self.bytes(if kind >= 21 { 16 } else { 8 }, None)?; // seen (and active) time
                let pel = self.len()?;
                self.bytes(pel.saturating_mul(16), None)?;
            }
        }
        Ok(())
    }
}

/// Reads a whole RDB file from `r`, handing each key (with `payloads`: its
/// `DUMP` payload too; without, an empty one) and function to `each`.
/// Fails on anything malformed, truncated, trailing, or a wrong checksum.
pub fn read<R: Read>(
    r: R,
    payloads: bool,
    mut each: impl FnMut(Item<'_>) -> io::Result<()>,
) -> io::Result<Summary> {
    let mut input = Input {
        r,
        crc: CRC.digest(),
        pos: 0,
        recording: None,
        scratch: Vec::new(),
    };
    let header: [u8; 9] = input.fixed()?;
    if &header[..5] != b"REDIS" {
        return Err(bad("not an RDB file (no REDIS header)"));
    }
    let version: u32 = std::str::from_utf8(&header[5..])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("not an RDB file (bad version in the header)"))?;
    if version == 0 || version > MAX_VERSION {
        return Err(bad(format!(
            "RDB version {version} is newer than lifeboat knows (up to {MAX_VERSION}, Redis 7.2)"
        )));
    }
    let mut s = Summary {
        version,
        ..Default::default()
    };
    let mut db = 0u64;
    let mut expire: Option<i64> = None;
    let mut key = Vec::new();
    loop {
        let op = input.u8()?;
        match op {
            0xFA => {
                let (mut k, mut v) = (Vec::new(), Vec::new());
                input.string(Some(&mut k))?;
                input.string(Some(&mut v))?;
                if k == b"redis-ver" {
                    s.redis_version = String::from_utf8_lossy(&v).into_owned();
                }
            }
            0xFB => {
                input.len()?;
                input.len()?;
            }
            0xFC => expire = Some(i64::from_le_bytes(input.fixed()?)),
            0xFD => expire = Some(i64::from(u32::from_le_bytes(input.fixed()?)) * 1000),
            0xFE => db = input.len()?,
            0xF9 => {
                input.u8()?;
            }
            0xF8 => {
                input.len()?;
            }
            0xF7 => {
                for _ in 0..3 {
                    input.len()?; // module id, "when" opcode and value
                }
                input.skip_module_fields()?;
            }
            0xF6 => return Err(bad("functions of the pre-release format (Redis 7.0 RC)")),
            0xF5 => {
                let mut code = Vec::new();
                input.string(Some(&mut code))?;
                s.functions += 1;
                each(Item::Function(&code))?;
            }
            0xFF => break,
            kind => {
                key.clear();
                input.string(Some(&mut key))?;
                if payloads {
                    input.recording = Some(vec![kind]);
                }
                input.skip_value(kind)?;
                let d = s.dbs.entry(db).or_default();
                d.keys += 1;
                d.expires += u64::from(expire.is_some());
                let mut payload = input.recording.take().unwrap_or_default();
                if payloads {
                    payload.extend_from_slice(&(version as u16).to_le_bytes());
                    let crc = CRC.checksum(&payload);
                    payload.extend_from_slice(&crc.to_le_bytes());
                }
                each(Item::Key {
                    db,
                    key: &key,
                    expire_ms: expire.take(),
                    payload: &payload,
                })?;
            }
        }
    }
    if version >= 5 {
        let computed = input.crc.clone().finalize();
        let mut stored = [0u8; 8];
        input.r.read_exact(&mut stored).map_err(|_| {
            bad(format!(
                "truncated: the checksum after byte {} is missing",
                input.pos
            ))
        })?;
        input.seen(8);
        let stored = u64::from_le_bytes(stored);
        if stored != 0 {
            if stored != computed {
                return Err(bad(format!(
                    "checksum mismatch: the file says {stored:016x}, its bytes give {computed:016x}"
                )));
            }
            s.checksum_verified = true;
        }
    }
    let mut more = [0u8; 1];
    if input.r.read(&mut more)? != 0 {
        return Err(bad(format!("bytes after the end, at byte {}", input.pos)));
    }
    s.bytes = input.pos;
    Ok(s)
}

/// LZF decompression (liblzf's format, as Redis writes it): literal runs
/// and back references. `plain` is the expected size.
fn lzf_decompress(input: &[u8], plain: u64, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    let want = usize::try_from(plain).map_err(|_| "an LZF string too long")?;
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n).ok_or("a truncated LZF literal")?;
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i).ok_or("a truncated LZF reference")?);
                i += 1;
            }
            let low = usize::from(*input.get(i).ok_or("a truncated LZF reference")?);
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let from = (out.len() - start)
                .checked_sub(back)
                .ok_or("an LZF reference before the start")?
                + start;
            for k in 0..n + 2 {
                let b = out[from + k];
                out.push(b);
            }
        }
        if out.len() - start > want {
            return Err("an LZF string longer than it says".into());
        }
    }
    if out.len() - start != want {
        return Err("an LZF string shorter than it says".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small RDB written by hand: two databases, an expiry, an integer
    /// and an LZF-compressed key, a hash and a zset.
    fn sample() -> Vec<u8> {
        let mut b = b"REDIS0010".to_vec();
        b.extend([0xFA, 9]);
        b.extend(b"redis-ver");
        b.extend([6]);
        b.extend(b"7.0.15");
        b.extend([0xFE, 0, 0xFB, 2, 1]);
        b.extend([0, 0xC0, 42, 1, b'v']); // key 42 (an int8), value "v"
        b.extend([0xFC]);
        b.extend(1_900_000_000_000i64.to_le_bytes());
        b.extend([4, 1, b'h', 1, 1, b'f', 1, b'v']); // hash h {f: v}
        b.extend([0xFE, 3]);
        // key "aaaaaaaaaa" as LZF: literal 'a', then a back reference of 9.
        b.extend([0, 0xC3, 5, 10, 0x00, b'a', 0xE0, 0, 0]);
        b.extend([1, b'x']);
        b.extend([5, 1, b'z', 1, 1, b'm']); // zset2 z {m: 1.5}
        b.extend(1.5f64.to_le_bytes());
        b.push(0xFF);
        let crc = CRC.checksum(&b);
        b.extend(crc.to_le_bytes());
        b
    }

    #[test]
    fn keys_are_counted_per_database_and_the_checksum_checked() {
        let mut keys = vec![];
        let s = read(&sample()[..], true, |item| {
            if let Item::Key {
                db,
                key,
                expire_ms,
                payload,
            } = item
            {
                keys.push((db, key.to_vec(), expire_ms, payload.len()));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(s.version, 10);
        assert_eq!(s.redis_version, "7.0.15");
        assert!(s.checksum_verified);
        assert_eq!(
            s.dbs[&0],
            DbKeys {
                keys: 2,
                expires: 1
            }
        );
        assert_eq!(
            s.dbs[&3],
            DbKeys {
                keys: 2,
                expires: 0
            }
        );
        assert_eq!(keys[0].1, b"42", "{keys:?}");
        assert_eq!(
            keys[1],
            (0, b"h".to_vec(), Some(1_900_000_000_000), 1 + 5 + 10)
        );
        assert_eq!(keys[2].1, b"aaaaaaaaaa");
        // A DUMP payload: type, value, version, checksum of the rest.
        let mut payload = vec![];
        read(&sample()[..], true, |item| {
            if let Item::Key {
                key: b"aaaaaaaaaa",
                payload: p,
                ..
            } = item
            {
                payload = p.to_vec();
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(&payload[..3], &[0, 1, b'x']);
        let (body, crc) = payload.split_at(payload.len() - 8);
        assert_eq!(&body[body.len() - 2..], &10u16.to_le_bytes());
        assert_eq!(CRC.checksum(body).to_le_bytes(), crc);
    }

    #[test]
    fn damage_truncation_and_trailing_bytes_are_errors() {
        let good = sample();
        let mut flipped = good.clone();
        flipped[30] ^= 1;
        let e = read(&flipped[..], false, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        for cut in [0, 5, 9, 20, good.len() - 9, good.len() - 1] {
            assert!(
                read(&good[..cut], false, |_| Ok(())).is_err(),
                "cut at {cut}"
            );
        }
        let mut trailing = good.clone();
        trailing.extend(b"75bd94ef");
        let e = read(&trailing[..], false, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("after the end"), "{e}");
        let e = read(&b"REDIS0012\xff"[..], false, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    proptest! {
        /// No input panics the reader or makes it allocate what it claims.
        #[test]
        fn any_bytes_read_or_err(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b"REDIS0010".to_vec();
            b.extend(tail);
            let _ = read(&b[..], true, |_| Ok(()));
        }

        /// Any literal-only LZF input round trips.
        #[test]
        fn lzf_literals(data in proptest::collection::vec(any::<u8>(), 1..100)) {
            let mut enc = vec![];
            for run in data.chunks(32) {
                enc.push((run.len() - 1) as u8);
                enc.extend(run);
            }
            let mut out = vec![];
            lzf_decompress(&enc, data.len() as u64, &mut out).unwrap();
            prop_assert_eq!(out, data);
        }
    }
}
