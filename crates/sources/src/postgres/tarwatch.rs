//! Watching a tar stream as it flows past: the few small members a
//! physical backup's metadata comes from (`backup_label`, the end of
//! `backup_manifest`) are kept, everything else only counted.
//!
//! Hand-written: the `tar` crate reads an archive by pulling from it, and
//! here the bytes must flow on unchanged into the repository while the
//! headers are read on the way (ustar headers as `pg_basebackup` writes
//! them: 512-byte blocks, octal or base-256 sizes, a name prefix).

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// The watched members a [`TarWatch`] kept: (name, the end of its content).
pub type Kept = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

const BLOCK: usize = 512;

/// How much of a watched member is kept (its end).
const KEEP: usize = 256 * 1024;

/// A `Read` that passes a tar stream through and keeps watched members.
pub struct TarWatch<R> {
    inner: R,
    watched: &'static [&'static str],
    header: Vec<u8>,
    /// Bytes left in the current member's body, then its padding.
    body_left: u64,
    pad_left: u64,
    current: Option<(String, Vec<u8>)>,
    /// A GNU long-name entry's body: the name of the member after it.
    long_name: Option<Vec<u8>>,
    in_long_name: bool,
    /// Watched members seen, with (the end of) their content; shared, so
    /// the watcher's owner can read them after the stream was handed on.
    kept: Kept,
    /// Members seen.
    pub members: u64,
}

impl<R: Read> TarWatch<R> {
    /// Watches `inner` for members named in `watched`.
    pub fn new(inner: R, watched: &'static [&'static str]) -> TarWatch<R> {
        TarWatch {
            inner,
            watched,
            header: Vec::with_capacity(BLOCK),
            body_left: 0,
            pad_left: 0,
            current: None,
            long_name: None,
            in_long_name: false,
            kept: Kept::default(),
            members: 0,
        }
    }

    /// A handle on what is kept.
    pub fn kept(&self) -> Kept {
        self.kept.clone()
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = (self.body_left as usize).min(data.len());
                if self.in_long_name {
                    self.long_name
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&data[..n]);
                } else if let Some((_, buf)) = self.current.as_mut() {
                    buf.extend_from_slice(&data[..n]);
                    if buf.len() > 2 * KEEP {
                        let cut = buf.len() - KEEP;
                        buf.drain(..cut);
                    }
                }
                self.body_left -= n as u64;
                data = &data[n..];
                if self.body_left == 0 && !self.in_long_name {
                    if let Some(done) = self.current.take() {
                        self.keep(done);
                    }
                }
                continue;
            }
            if self.pad_left > 0 {
                let n = (self.pad_left as usize).min(data.len());
                self.pad_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == BLOCK {
                let h = std::mem::take(&mut self.header);
                self.start_member(&h);
            }
        }
    }

    fn start_member(&mut self, h: &[u8]) {
        if h.iter().all(|&b| b == 0) {
            return; // end-of-archive blocks
        }
        let size = lifeboat_repo::chunker::tar_number(&h[124..136]).unwrap_or(0);
        self.body_left = size;
        self.pad_left = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if h[156] == b'L' {
            self.in_long_name = true;
            self.long_name = Some(vec![]);
            return;
        }
        self.in_long_name = false;
        let long = self.long_name.take().map(|n| {
            String::from_utf8_lossy(&n[..n.iter().position(|&c| c == 0).unwrap_or(n.len())])
                .into_owned()
        });
        let name = if let Some(n) = long {
            n
        } else {
            let field = |b: &[u8]| {
                String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())])
                    .into_owned()
            };
            let (prefix, name) = (field(&h[345..500]), field(&h[..100]));
            if prefix.is_empty() || &h[257..262] != b"ustar" {
                name
            } else {
                format!("{prefix}/{name}")
            }
        };
        self.members += 1;
        if self.watched.contains(&name.as_str()) {
            self.current = Some((name, vec![]));
            if size == 0 {
                if let Some(done) = self.current.take() {
                    self.keep(done);
                }
            }
        }
    }
}

impl<R> TarWatch<R> {
    fn keep(&self, member: (String, Vec<u8>)) {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(member);
    }
}

/// The kept content of `name`, if it was seen.
pub fn member(kept: &Kept, name: &str) -> Option<Vec<u8>> {
    let k = kept.lock().unwrap_or_else(|e| e.into_inner());
    k.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
}

impl<R: Read> Read for TarWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    proptest! {
        /// However the stream is cut into reads, the bytes pass unchanged
        /// and the watched members are kept whole.
        #[test]
        fn passes_bytes_and_keeps_watched_members(
            sizes in proptest::collection::vec(0usize..3000, 1..6),
            cuts in proptest::collection::vec(1usize..1500, 1..50),
            label in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut members: Vec<(String, Vec<u8>)> = sizes.iter().enumerate()
                .map(|(i, &n)| (format!("base/{i}/{}", "x".repeat(i * 30)), vec![i as u8; n])).collect();
            members.insert(sizes.len() / 2, ("backup_label".into(), label.clone()));
            let refs: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
            let bytes = archive(&refs);
            let mut w = TarWatch::new(bytes.as_slice(), &["backup_label"]);
            let mut out = vec![];
            let mut buf = vec![0u8; 1500];
            let mut i = 0;
            loop {
                let want = cuts[i % cuts.len()];
                i += 1;
                let n = w.read(&mut buf[..want]).unwrap();
                if n == 0 { break; }
                out.extend_from_slice(&buf[..n]);
            }
            prop_assert!(out == bytes);
            prop_assert_eq!(member(&w.kept(), "backup_label"), Some(label));
            prop_assert_eq!(w.members, members.len() as u64);
        }
    }
}
