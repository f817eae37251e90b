//! Reading MariaDB binary logs as far as point-in-time recovery needs:
//! the event framing (magic, 19-byte headers, CRC32 checksums when the
//! format description says so), and the event groups — one transaction
//! each, from its GTID event to its commit — with their GTIDs, their byte
//! range and their time (the newest event timestamp inside them).
//!
//! A group's range is where replay may be cut: a restore to a time stops
//! before the first group of that time or later, a restore to a GTID right
//! after its group, and a file still being written is replayed only up to
//! its last complete group.
//!
//! Written by hand: no maintained crate reads MariaDB's binlog framing and
//! its GTID events without a whole client library around it, and only the
//! framing and the group boundaries matter here (`mariadb-binlog` itself
//! decodes the events when they are replayed).

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

/// The first four bytes of every binary log.
pub const MAGIC: &[u8; 4] = b"\xfebin";

const HEADER: usize = 19;
const QUERY: u8 = 2;
const STOP: u8 = 3;
const ROTATE: u8 = 4;
const FORMAT_DESCRIPTION: u8 = 15;
const XID: u8 = 16;
const XA_PREPARE: u8 = 38;
const GTID: u8 = 162;
const START_ENCRYPTION: u8 = 164;

static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A binary log that cannot be read: what is wrong, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {what}")]
pub struct BinlogError {
    /// Where the bad event starts.
    pub offset: u64,
    /// What is wrong with it.
    pub what: String,
}

/// A MariaDB global transaction id, `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    /// The replication domain.
    pub domain: u32,
    /// The server that wrote the transaction first.
    pub server: u32,
    /// The sequence number within the domain.
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for Gtid {
    type Err = String;

    /// Parses `0-1-42`.
    fn from_str(s: &str) -> Result<Gtid, String> {
        let bad = || format!("{s:?} is not a GTID (DOMAIN-SERVER-SEQUENCE, like 0-1-42)");
        let mut parts = s.trim().split('-');
        let mut next = || parts.next().ok_or_else(bad);
        let g = Gtid {
            domain: next()?.parse().map_err(|_| bad())?,
            server: next()?.parse().map_err(|_| bad())?,
            seq: next()?.parse().map_err(|_| bad())?,
        };
        match parts.next() {
            None => Ok(g),
            Some(_) => Err(bad()),
        }
    }
}

/// Parses a GTID position, `0-1-42,1-2-7` (one GTID per domain; empty: none).
pub fn parse_position(s: &str) -> Result<Vec<Gtid>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

/// One event: where it starts, its header fields, its body (without the
/// header and the checksum).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Byte offset of the event in its file.
    pub offset: u64,
    /// Its end (the offset of the next event).
    pub end: u64,
    /// Seconds since the epoch.
    pub time: u32,
    /// The event type.
    pub kind: u8,
    /// The server that wrote it.
    pub server_id: u32,
    /// The event's body.
    pub body: &'a [u8],
}

/// The events of one binary log, in order, each checked against its
/// checksum; the walk ends quietly at a truncated last event (a file still
/// being written) and [`Events::truncated`] says so.
pub struct Events<'a> {
    data: &'a [u8],
    at: usize,
    checksums: bool,
    query_post_header: usize,
    truncated: bool,
}

impl<'a> Events<'a> {
    /// The events of `data`, which must start with [`MAGIC`].
    pub fn new(data: &'a [u8]) -> Result<Events<'a>, BinlogError> {
        if data.len() < MAGIC.len() || &data[..4] != MAGIC {
            return Err(BinlogError {
                offset: 0,
                what: "not a binary log (no \\xfebin magic)".into(),
            });
        }
        Ok(Events {
            data,
            at: 4,
            checksums: false,
            query_post_header: 13,
            truncated: false,
        })
    }

    /// Whether the walk stopped at an incomplete event.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The next event; `None` at the end (or at an incomplete last event).
    pub fn next_event(&mut self) -> Result<Option<Event<'a>>, BinlogError> {
        let rest = &self.data[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < HEADER {
            self.truncated = true;
            return Ok(None);
        }
        let offset = self.at as u64;
        let bad = |what: String| BinlogError { offset, what };
        let u32_at =
            |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let time = u32_at(0);
        let kind = rest[4];
        let server_id = u32_at(5);
        let size = u32_at(9) as usize;
        let log_pos = u32_at(13) as u64;
        if size < HEADER {
            return Err(bad(format!(
                "event of {size} bytes, shorter than its header"
            )));
        }
        if size > rest.len() {
            self.truncated = true;
            return Ok(None);
        }
        let end = offset + size as u64;
        // An event's log_pos is where it ends in the server's file (0 for
        // artificial events).
        if log_pos != 0 && log_pos != end && log_pos < (1 << 32) - 1 && end < (1 << 32) {
            return Err(bad(format!(
                "event of type {kind} says it ends at {log_pos}, its size says {end}"
            )));
        }
        let event = &rest[..size];
        if kind == FORMAT_DESCRIPTION {
            self.read_format(event).map_err(bad)?;
        } else if kind == START_ENCRYPTION {
            return Err(bad(
                "the binary log is encrypted (encrypt_binlog): lifeboat cannot read it".into(),
            ));
        }
        let body_end = if self.checksums {
            if size < HEADER + 4 {
                return Err(bad(format!(
                    "event of {size} bytes has no room for its checksum"
                )));
            }
            let stored = u32::from_le_bytes(event[size - 4..].try_into().unwrap_or([0; 4]));
            if CRC32.checksum(&event[..size - 4]) != stored {
                return Err(bad(format!(
                    "event of type {kind} fails its CRC32 checksum"
                )));
            }
            size - 4
        } else {
            size
        };
        self.at += size;
        Ok(Some(Event {
            offset,
            end,
            time,
            kind,
            server_id,
            body: &event[HEADER..body_end],
        }))
    }

    /// A format description: whether events carry checksums from here on,
    /// and the post-header length of query events.
    fn read_format(&mut self, event: &[u8]) -> Result<(), String> {
        let body = &event[HEADER..];
        // binlog_version u16 | server_version [50] | created u32 |
        // header_length u8 | post-header lengths … | checksum_alg u8 | crc u32
        if body.len() < 2 + 50 + 4 + 1 + 5 {
            return Err("format description too short".into());
        }
        let version = u16::from_le_bytes([body[0], body[1]]);
        if version != 4 {
            return Err(format!(
                "binlog format version {version}; only version 4 is read"
            ));
        }
        if body[56] as usize != HEADER {
            return Err(format!(
                "event header of {} bytes; expected {HEADER}",
                body[56]
            ));
        }
        let alg = body[body.len() - 5];
        self.checksums = match alg {
            0 => false,
            1 => true,
            other => return Err(format!("unknown binlog checksum algorithm {other}")),
        };
        if self.checksums
            && CRC32.checksum(&event[..event.len() - 4])
                != u32::from_le_bytes(event[event.len() - 4..].try_into().unwrap_or([0; 4]))
        {
            return Err("the format description fails its CRC32 checksum".into());
        }
        let lengths = &body[57..body.len() - 5];
        if let Some(&q) = lengths.get(QUERY as usize - 1) {
            self.query_post_header = q as usize;
        }
        Ok(())
    }

    /// The statement text of a query event.
    fn query_text(&self, body: &'a [u8]) -> Option<&'a [u8]> {
        let ph = self.query_post_header;
        let db_len = *body.get(8)? as usize;
        let vars = u16::from_le_bytes([*body.get(11)?, *body.get(12)?]) as usize;
        body.get(ph + vars + db_len + 1..)
    }
}

/// One transaction: its GTID, its bytes `[start, end)`, and the newest
/// event time inside it (its commit's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The transaction's GTID.
    pub gtid: Gtid,
    /// Offset of its GTID event.
    pub start: u64,
    /// Offset just past its commit.
    pub end: u64,
    /// Seconds since the epoch, of its newest event.
    pub time: u32,
}

/// What one binary log holds, as [`scan`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bytes walked (the whole file but an incomplete last event).
    pub len: u64,
    /// The end of the last complete group or of the last event outside any
    /// group: replay of this file may go this far and no further.
    pub complete_to: u64,
    /// Complete groups.
    pub groups: u64,
    /// The first complete group.
    pub first: Option<Group>,
    /// The last complete group.
    pub last: Option<Group>,
    /// The file a closing rotate event names: the log continues there.
    pub rotate_to: Option<String>,
    /// Whether the log ends with a stop event (the server shut down).
    pub stopped: bool,
    /// Whether the file ends in the middle of an event.
    pub truncated: bool,
}

/// Walks the groups of a binary log in order; `each` may stop the walk
/// early (the summary then covers what was walked).
pub fn scan(
    data: &[u8],
    mut each: impl FnMut(&Group) -> ControlFlow<()>,
) -> Result<Summary, BinlogError> {
    let mut events = Events::new(data)?;
    let mut s = Summary {
        len: 4,
        complete_to: 4,
        ..Summary::default()
    };
    // The open group and whether it is a standalone statement (DDL): it
    // ends with its one query event.
    let mut open: Option<(Group, bool)> = None;
    while let Some(ev) = events.next_event()? {
        s.len = ev.end;
        if ev.kind == GTID {
            let b = ev.body;
            if b.len() < 13 {
                return Err(BinlogError {
                    offset: ev.offset,
                    what: "GTID event too short".into(),
                });
            }
            let gtid = Gtid {
                seq: u64::from_le_bytes(b[0..8].try_into().unwrap_or([0; 8])),
                domain: u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4])),
                server: ev.server_id,
            };
            open = Some((
                Group {
                    gtid,
                    start: ev.offset,
                    end: ev.end,
                    time: ev.time,
                },
                b[12] & 1 != 0,
            ));
            continue;
        }
        let Some((mut g, standalone)) = open.take() else {
            // Outside any group: format description, GTID list, checkpoint,
            // rotate, stop.
            match ev.kind {
                ROTATE => {
                    let name = ev.body.get(8..).unwrap_or_default();
                    s.rotate_to = Some(String::from_utf8_lossy(name).into_owned());
                }
                STOP => s.stopped = true,
                _ => {}
            }
            s.complete_to = ev.end;
            continue;
        };
        g.time = g.time.max(ev.time);
        g.end = ev.end;
        let closes = match ev.kind {
            XID | XA_PREPARE => true,
            QUERY if standalone => true,
            QUERY => events.query_text(ev.body).is_some_and(|q| {
                let q = q.trim_ascii();
                q.eq_ignore_ascii_case(b"COMMIT") || q.eq_ignore_ascii_case(b"ROLLBACK")
            }),
            _ => false,
        };
        if !closes {
            open = Some((g, standalone));
            continue;
        }
        s.complete_to = g.end;
        s.groups += 1;
        s.first.get_or_insert(g);
        s.last = Some(g);
        if each(&g).is_break() {
            return Ok(s);
        }
    }
    s.truncated = events.truncated();
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event with a correct size, end position and checksum.
    pub(crate) fn event(time: u32, kind: u8, server: u32, at: u64, body: &[u8]) -> Vec<u8> {
        let size = (HEADER + body.len() + 4) as u32;
        let mut e = vec![];
        e.extend_from_slice(&time.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&server.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&(at as u32 + size).to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(body);
        let crc = CRC32.checksum(&e);
        e.extend_from_slice(&crc.to_le_bytes());
        e
    }

    /// A binary log: a format description, then per (time, seq, committed)
    /// a GTID event, a query and (if committed) an XID.
    pub(crate) fn binlog(groups: &[(u32, u64, bool)]) -> Vec<u8> {
        let mut f = MAGIC.to_vec();
        let mut fde = vec![4, 0];
        fde.extend_from_slice(&[b'x'; 50]);
        fde.extend_from_slice(&0u32.to_le_bytes());
        fde.push(HEADER as u8);
        fde.extend_from_slice(&[0, 13, 0, 8]);
        fde.push(1);
        // The checksum's 4 bytes are the event's own (added by `event`).
        f.extend(event(1, FORMAT_DESCRIPTION, 1, 4, &fde));
        for &(time, seq, committed) in groups {
            let mut g = seq.to_le_bytes().to_vec();
            g.extend_from_slice(&0u32.to_le_bytes());
            g.push(0);
            let at = f.len() as u64;
            f.extend(event(time, GTID, 1, at, &g));
            let mut q = vec![0; 13];
            q.extend_from_slice(b"\0INSERT INTO t VALUES (1)");
            let at = f.len() as u64;
            f.extend(event(time, QUERY, 1, at, &q));
            if committed {
                let at = f.len() as u64;
                f.extend(event(time, XID, 1, at, &7u64.to_le_bytes()));
            }
        }
        f
    }

    #[test]
    fn groups_their_ranges_times_and_the_incomplete_tail() {
        let f = binlog(&[(10, 1, true), (11, 2, true), (12, 3, false)]);
        let mut seen = vec![];
        let s = scan(&f, |g| {
            seen.push((g.gtid.seq, g.time));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, 10), (2, 11)]);
        assert_eq!(s.groups, 2);
        assert_eq!(s.len, f.len() as u64);
        // The open third group is not replayable: it ends where it starts.
        assert_eq!(s.complete_to, s.last.unwrap().end);
        assert!(s.complete_to < s.len);
        // Cut anywhere inside the last event: the walk ends quietly.
        let cut = &f[..f.len() - 3];
        let t = scan(cut, |_| ControlFlow::Continue(())).unwrap();
        assert!(t.truncated);
        assert_eq!(t.complete_to, s.complete_to);
    }

    #[test]
    fn a_flipped_byte_bad_magic_or_a_lying_size_is_an_error_naming_the_offset() {
        let f = binlog(&[(10, 1, true)]);
        for at in [30, f.len() - 10] {
            let mut bad = f.clone();
            bad[at] ^= 0x40;
            let e = scan(&bad, |_| ControlFlow::Continue(())).unwrap_err();
            assert!(
                e.what.contains("checksum") || e.what.contains("ends at"),
                "{e}"
            );
        }
        let e = scan(b"\xfebix", |_| ControlFlow::Continue(())).unwrap_err();
        assert!(e.what.contains("magic"), "{e}");
        let mut short = f.clone();
        short[4 + 9..4 + 13].copy_from_slice(&5u32.to_le_bytes());
        let e = scan(&short, |_| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(e.offset, 4);
    }

    #[test]
    fn gtid_text_forms() {
        let g: Gtid = "0-1-42".parse().unwrap();
        assert_eq!((g.domain, g.server, g.seq), (0, 1, 42));
        assert_eq!(g.to_string(), "0-1-42");
        assert_eq!(parse_position("0-1-5, 1-2-7").unwrap().len(), 2);
        assert!(parse_position("").unwrap().is_empty());
        for bad in ["0-1", "0-1-2-3", "a-1-2", ""] {
            assert!(bad.parse::<Gtid>().is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_walked_without_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&data);
            let _ = scan(&with_magic, |_| ControlFlow::Continue(()));
        }

        #[test]
        fn every_prefix_of_a_log_scans_to_a_prefix_of_its_groups(
            n in 1usize..6, cut in 0usize..2000,
        ) {
            let groups: Vec<(u32, u64, bool)> = (0..n).map(|i| (100 + i as u32, i as u64 + 1, true)).collect();
            let f = binlog(&groups);
            let cut = 4 + cut % (f.len() - 3);
            let s = scan(&f[..cut], |_| ControlFlow::Continue(())).unwrap();
            let whole = scan(&f, |_| ControlFlow::Continue(())).unwrap();
            proptest::prop_assert!(s.groups <= whole.groups);
            proptest::prop_assert!(s.complete_to as usize <= cut);
            if cut == f.len() {
                proptest::prop_assert_eq!(s.groups, n as u64);
            }
        }
    }
}
