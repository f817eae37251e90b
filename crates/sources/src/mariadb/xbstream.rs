//! Reading the `xbstream` archive `mariadb-backup --backup --stream`
//! writes, as it streams: every chunk's framing and CRC32, the files it
//! holds and their bytes, and the small metadata files mariadb-backup adds
//! (`xtrabackup_binlog_info`: the binary-log file, position and GTID of
//! the backup's consistent point; `xtrabackup_checkpoints`: its InnoDB
//! LSNs). A chunk:
//!
//! ```text
//! "XBSTCK01" | flags u8 | type u8 ('P' payload, 'E' end of a file) |
//! path_len u32 LE | path | (payload only:) length u64 LE | offset u64 LE |
//! crc32 u32 LE | payload
//! ```
//!
//! Written by hand: no crate reads xbstream, and its framing is this small.

use std::collections::BTreeMap;
use std::io::{self, Read};

const MAGIC: &[u8; 8] = b"XBSTCK01";
/// Metadata files are kept whole up to this size.
const META_MAX: u64 = 1 << 20;

static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What an xbstream archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XbScan {
    /// Files (each ended by its end chunk).
    pub files: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// The metadata files, by name (`xtrabackup_binlog_info`, …).
    pub meta: BTreeMap<String, String>,
    /// Files begun but never ended.
    pub open: Vec<String>,
}

impl XbScan {
    /// `xtrabackup_binlog_info`: file, position and GTID (tab-separated).
    pub fn binlog(&self) -> (Option<String>, Option<u64>, Option<String>) {
        let Some(line) = self.meta.get("xtrabackup_binlog_info") else {
            return (None, None, None);
        };
        let mut f = line.split('\t').map(str::trim);
        let file = f.next().filter(|s| !s.is_empty()).map(str::to_string);
        let pos = f.next().and_then(|p| p.parse().ok());
        let gtid = f.next().filter(|s| !s.is_empty()).map(str::to_string);
        (file, pos, gtid)
    }

    /// A value of `xtrabackup_checkpoints` (`to_lsn`, …).
    pub fn checkpoint(&self, key: &str) -> Option<String> {
        self.meta
            .get("xtrabackup_checkpoints")?
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads `n` bytes exactly; `Ok(false)` at a clean end before the first.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(bad("the stream ends inside a chunk".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads a whole archive, checking every chunk.
pub fn scan(mut r: impl Read) -> io::Result<XbScan> {
    let mut s = XbScan::default();
    let mut open: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut at: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut head = [0u8; 14];
        if !fill(&mut r, &mut head)? {
            break;
        }
        if &head[..8] != MAGIC {
            return Err(bad(format!(
                "no chunk magic at byte {at}: not an xbstream archive"
            )));
        }
        let kind = head[9];
        let path_len = u32::from_le_bytes([head[10], head[11], head[12], head[13]]) as usize;
        if path_len == 0 || path_len > 4096 {
            return Err(bad(format!(
                "chunk at byte {at} has a path of {path_len} bytes"
            )));
        }
        let mut path = vec![0u8; path_len];
        fill(&mut r, &mut path)?
            .then_some(())
            .ok_or_else(|| bad("the stream ends inside a chunk".into()))?;
        let path = String::from_utf8_lossy(&path).into_owned();
        at += 14 + path_len as u64;
        match kind {
            b'E' => {
                // An empty file has no payload chunk, only its end.
                s.files += 1;
                if let Some(data) = open.remove(&path) {
                    if is_meta(&path) {
                        s.meta
                            .insert(path, String::from_utf8_lossy(&data).into_owned());
                    }
                }
            }
            b'P' => {
                let mut p = [0u8; 20];
                fill(&mut r, &mut p)?
                    .then_some(())
                    .ok_or_else(|| bad("the stream ends inside a chunk".into()))?;
                let len = u64::from_le_bytes(p[0..8].try_into().unwrap_or([0; 8]));
                let stored = u32::from_le_bytes(p[16..20].try_into().unwrap_or([0; 4]));
                let keep = is_meta(&path);
                let entry = open.entry(path.clone()).or_default();
                let mut digest = CRC32.digest();
                let mut left = len;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    fill(&mut r, &mut buf[..n])?
                        .then_some(())
                        .ok_or_else(|| bad("the stream ends inside a chunk".into()))?;
                    digest.update(&buf[..n]);
                    if keep && (entry.len() as u64) < META_MAX {
                        entry.extend_from_slice(&buf[..n]);
                    }
                    left -= n as u64;
                }
                if digest.finalize() != stored {
                    return Err(bad(format!(
                        "chunk of {path} at byte {at} fails its CRC32 checksum"
                    )));
                }
                s.bytes += len;
                at += 20 + len;
            }
            // Even an ignorable chunk of an unknown type cannot be
            // skipped: its length is in a layout only its type defines.
            _ => {
                return Err(bad(format!(
                    "chunk of unknown type {kind} at byte {at}: a mariadb-backup format lifeboat cannot read"
                )))
            }
        }
    }
    s.open = open.into_keys().collect();
    Ok(s)
}

fn is_meta(path: &str) -> bool {
    path.starts_with("xtrabackup_") || path.starts_with("mariadb_backup_")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An archive of `files`, each in one payload chunk and its end.
    pub(crate) fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut a = vec![];
        for (path, data) in files {
            for kind in [b'P', b'E'] {
                a.extend_from_slice(MAGIC);
                a.push(0);
                a.push(kind);
                a.extend_from_slice(&(path.len() as u32).to_le_bytes());
                a.extend_from_slice(path.as_bytes());
                if kind == b'P' {
                    a.extend_from_slice(&(data.len() as u64).to_le_bytes());
                    a.extend_from_slice(&0u64.to_le_bytes());
                    a.extend_from_slice(&CRC32.checksum(data).to_le_bytes());
                    a.extend_from_slice(data);
                }
            }
        }
        a
    }

    #[test]
    fn files_bytes_and_the_binlog_point() {
        let a = archive(&[
            ("ibdata1", &[7u8; 100_000]),
            ("xtrabackup_binlog_info", b"binlog.000004\t6801\t0-1-35\n"),
            (
                "xtrabackup_checkpoints",
                b"backup_type = full-backuped\nto_lsn = 44404\n",
            ),
        ]);
        let s = scan(&a[..]).unwrap();
        assert_eq!(s.files, 3);
        assert!(s.open.is_empty());
        assert_eq!(s.bytes, 100_000 + 26 + 43);
        assert_eq!(
            s.binlog(),
            (
                Some("binlog.000004".into()),
                Some(6801),
                Some("0-1-35".into())
            )
        );
        assert_eq!(s.checkpoint("to_lsn").as_deref(), Some("44404"));
    }

    #[test]
    fn a_flipped_byte_a_cut_or_garbage_is_an_error() {
        let a = archive(&[("ibdata1", &[7u8; 1000]), ("xtrabackup_info", b"x = y\n")]);
        let mut flipped = a.clone();
        flipped[500] ^= 1;
        assert!(scan(&flipped[..])
            .unwrap_err()
            .to_string()
            .contains("CRC32"));
        assert!(scan(&a[..a.len() - 3]).is_err());
        assert!(scan(&b"not an archive at all"[..]).is_err());
        // A file whose end chunk is missing is reported open.
        let cut = &a[..a.len() - (14 + "xtrabackup_info".len())];
        assert_eq!(scan(cut).unwrap().open, vec!["xtrabackup_info".to_string()]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut a = MAGIC.to_vec();
            a.extend_from_slice(&data);
            let _ = scan(&a[..]);
        }
    }
}
