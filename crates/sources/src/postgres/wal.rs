//! WAL archiving: `wal push` (PostgreSQL's `archive_command`), `wal fetch`
//! (its `restore_command`) and `wal verify` (gaps and recoverable ranges).
//!
//! Each WAL file is one log object of the repository (see
//! `lifeboat_repo::logs`), named `pg-SYSTEMID-FILE` (the `.` of history and
//! backup-label files as `-`): the system identifier, read from the data
//! directory's `global/pg_control`, keeps the archives of two clusters in
//! one repository apart, and a segment whose own header names another
//! cluster is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use lifeboat_repo::logs::{LogPiece, LogPut};
use lifeboat_repo::{RepoError, Repository};
use serde::Serialize;

use crate::error::{Result, SourceError};

/// A WAL file's name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalFile {
    /// A segment: timeline, and the segment number's high and low parts.
    Segment {
        /// Timeline.
        timeline: u32,
        /// High 32 bits of the segment's position (`log`).
        log: u32,
        /// Segment within `log`.
        seg: u32,
    },
    /// `TTTTTTTT.history`: how a timeline branched off its parent.
    History(u32),
    /// `<segment>.<offset>.backup`, or a `.partial` segment: kept, not replayed.
    Other,
}

fn hex8(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())?
}

impl WalFile {
    /// Parses a WAL file name as PostgreSQL passes it (`%f`), or refuses it.
    pub fn parse(name: &str) -> Result<WalFile> {
        let bad = || SourceError::Usage(format!("{name:?} is not the name of a WAL file"));
        if let Some(t) = name.strip_suffix(".history") {
            return hex8(t).map(WalFile::History).ok_or_else(bad);
        }
        let seg_part = name.get(..24).ok_or_else(bad)?;
        let (t, l, s) = (
            hex8(&seg_part[..8]).ok_or_else(bad)?,
            hex8(&seg_part[8..16]).ok_or_else(bad)?,
            hex8(&seg_part[16..24]).ok_or_else(bad)?,
        );
        match &name[24..] {
            "" => Ok(WalFile::Segment {
                timeline: t,
                log: l,
                seg: s,
            }),
            ".partial" => Ok(WalFile::Other),
            rest if rest.len() == 16
                && rest.ends_with(".backup")
                && hex8(&rest[1..9]).is_some() =>
            {
                Ok(WalFile::Other)
            }
            _ => Err(bad()),
        }
    }
}

/// The object name of WAL file `name` of cluster `system_id`.
pub fn object_name(system_id: u64, name: &str) -> String {
    format!("pg-{system_id}-{}", name.replace('.', "-"))
}

/// The WAL file name of an object name, and its cluster.
fn file_of(object: &str) -> Option<(u64, String)> {
    let rest = object.strip_prefix("pg-")?;
    let (sys, file) = rest.split_once('-')?;
    let file = match file.len() {
        24 => file.to_string(),
        _ => {
            // 00000002-history, <24>-<8>-backup, <24>-partial
            let mut f = file.to_string();
            if let Some(i) = f.rfind('-') {
                f.replace_range(i..i + 1, ".");
            }
            if f.ends_with(".backup") && f.len() == 40 {
                f.replace_range(24..25, ".");
            }
            f
        }
    };
    Some((sys.parse().ok()?, file))
}

/// The system identifier of the cluster whose data directory is `pgdata`
/// (the first field of `global/pg_control`).
pub fn system_id(pgdata: &Path) -> Result<u64> {
    let path = pgdata.join("global/pg_control");
    let bytes = std::fs::read(&path).map_err(|e| {
        SourceError::Usage(format!(
            "cannot read {} ({}): run from the data directory (as archive_command and restore_command are) or give --pgdata",
            path.display(),
            lifeboat_repo::error::io_words(&e)
        ))
    })?;
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            SourceError::Usage(format!("{} is not a pg_control file", path.display()))
        })?;
    Ok(u64::from_le_bytes(first))
}

/// The cluster a segment's first page names, and its segment size (the
/// long page header: magic, info, timeline, address, remaining length,
/// then the system identifier at byte 24 and the segment size at 32).
fn segment_header(bytes: &[u8]) -> Option<(u64, u32)> {
    let sys = u64::from_le_bytes(bytes.get(24..32)?.try_into().ok()?);
    let size = u32::from_le_bytes(bytes.get(32..36)?.try_into().ok()?);
    Some((sys, size))
}

/// Archives the WAL file at `path` of the cluster at `pgdata`; returns
/// once it is durable in the repository.
pub fn push(repo: &Repository, path: &Path, pgdata: &Path) -> Result<LogPut> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SourceError::Usage(format!("{} has no WAL file name", path.display())))?;
    let kind = WalFile::parse(name)?;
    let sys = system_id(pgdata)?;
    let piece = LogPiece::read(&object_name(sys, name), path)?;
    let bytes = piece.data();
    if let WalFile::Segment { .. } = kind {
        match segment_header(bytes) {
            Some((seg_sys, size)) if seg_sys == sys && size as usize == bytes.len() => {}
            Some((seg_sys, _)) if seg_sys != sys => {
                return Err(SourceError::Usage(format!(
                    "{} belongs to cluster {seg_sys}, not to the cluster at {} ({sys})",
                    path.display(),
                    pgdata.display()
                )))
            }
            _ => {
                return Err(SourceError::Usage(format!(
                    "{} is not a whole WAL segment ({} bytes)",
                    path.display(),
                    bytes.len()
                )))
            }
        }
    }
    Ok(repo.put_log_piece(&piece)?)
}

/// Whether a fetch found the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Written to the destination.
    Written,
    /// The archive does not have it (PostgreSQL asks for files past the
    /// end of the archive, and for history files that never existed).
    NotArchived,
}

/// Where `wal prefetch` leaves segments for the `wal fetch` that will ask
/// for them: inside `pg_wal`, so handing one over is a rename.
pub fn spool_dir(pgdata: &Path) -> PathBuf {
    pgdata.join("pg_wal").join("lifeboat-prefetch")
}

/// Writes WAL file `name` of the cluster at `pgdata` to `dest`
/// (PostgreSQL's `%f` and `%p`): from the prefetch spool when a prefetch
/// got it already, else from the repository; to a temporary name first,
/// then renamed, so PostgreSQL never sees half a file. Spooled segments
/// older than `name` are dropped (replay has passed them).
pub fn fetch(repo: &Repository, name: &str, dest: &Path, pgdata: &Path) -> Result<Fetched> {
    WalFile::parse(name)?;
    let spool = spool_dir(pgdata);
    if let Ok(entries) = std::fs::read_dir(&spool) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.len() == 24 && n[..8] == name[..8.min(name.len())] && n.as_str() < name {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if std::fs::rename(spool.join(name), dest).is_ok() {
        return Ok(Fetched::Written);
    }
    let sys = system_id(pgdata)?;
    let bytes = match repo.get_log(&object_name(sys, name)) {
        Ok(b) => b,
        Err(RepoError::Store(e)) if e.is_not_found() => {
            // A segment `wal stream` was still receiving when it last
            // uploaded: its newest partial holds every streamed record.
            match crate::partial::newest(repo, &object_name(sys, name))? {
                Some(p) if name.len() == 24 => repo.get_log(&p)?,
                _ => return Ok(Fetched::NotArchived),
            }
        }
        Err(e) => return Err(e.into()),
    };
    write_whole(dest, &bytes)?;
    Ok(Fetched::Written)
}

fn write_whole(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!(
        "{}.lifeboat-tmp-{}",
        dest.display(),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(RepoError::io("write", dest, e).into());
    }
    Ok(())
}

/// The `count` segments after segment `name` on its timeline (none for
/// other WAL files), for a segment size of `segment_size` bytes.
pub fn following(name: &str, count: usize, segment_size: u64) -> Vec<String> {
    let Ok(WalFile::Segment { timeline, log, seg }) = WalFile::parse(name) else {
        return vec![];
    };
    let per_log = segments_per_log(segment_size);
    let n = u64::from(log) * per_log + u64::from(seg);
    (1..=count as u64)
        .map(|i| seg_name(timeline, n + i, per_log))
        .collect()
}

/// The segment size a WAL segment file's header gives (16 MiB if unreadable).
pub fn segment_size_of(path: &Path) -> u64 {
    let mut head = [0u8; 40];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .ok()
        .and_then(|()| segment_header(&head))
        .map(|(_, s)| u64::from(s))
        .filter(|s| s.is_power_of_two())
        .unwrap_or(16 << 20)
}

/// Fetches `names` into the spool, on parallel threads, skipping those
/// spooled already and those not archived (yet). Returns how many it got.
pub fn prefetch(repo: &Repository, names: &[String], pgdata: &Path) -> Result<usize> {
    let spool = spool_dir(pgdata);
    std::fs::create_dir_all(&spool).map_err(|e| RepoError::io("create", &spool, e))?;
    let sys = system_id(pgdata)?;
    let got = std::sync::atomic::AtomicUsize::new(0);
    // Popped from the end: the nearest segment, which replay wants first,
    // goes last in the list.
    let queue = std::sync::Mutex::new(
        names
            .iter()
            .rev()
            .filter(|n| !spool.join(n).exists())
            .cloned()
            .collect::<Vec<_>>(),
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let Some(name) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                    break;
                };
                if let Ok(bytes) = repo.get_log(&object_name(sys, &name)) {
                    if write_whole(&spool.join(&name), &bytes).is_ok() {
                        got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    Ok(got.into_inner())
}

/// One contiguous run of archived segments on a timeline.
#[derive(Debug, Clone, Serialize)]
pub struct WalRange {
    /// First segment.
    pub first: String,
    /// Last segment.
    pub last: String,
    /// Its first LSN.
    pub start_lsn: String,
    /// The LSN just past its end.
    pub end_lsn: String,
    /// Segments in it.
    pub segments: u64,
}

/// One timeline's archive.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineArchive {
    /// Timeline.
    pub timeline: u32,
    /// Contiguous runs, oldest first; more than one means gaps.
    pub ranges: Vec<WalRange>,
    /// Segments missing between the runs (the first few of each gap).
    pub missing: Vec<String>,
    /// Whether its `.history` file is archived (needed for timelines > 1).
    pub history: bool,
}

/// What `wal verify` found for one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct WalReport {
    /// The cluster's system identifier.
    pub system_id: u64,
    /// WAL segment size in bytes.
    pub segment_size: u64,
    /// Per timeline, lowest first.
    pub timelines: Vec<TimelineArchive>,
    /// Problems (gaps, missing history files, unreadable segments).
    pub problems: Vec<String>,
}

/// One timeline's archived segments (`log`, `seg`) and whether its history
/// file is archived.
type Archived = (Vec<(u32, u32)>, bool);

/// Segments per 4 GiB "log" of WAL positions, for a segment size in bytes.
pub fn segments_per_log(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size.max(1)
}

/// The segment number a WAL file name (a segment, or a `.backup`/`.partial`
/// file named after one) starts with; the timeline is not part of it.
pub fn segment_number(name: &str, per_log: u64) -> Option<u64> {
    let log = u32::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u32::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some(u64::from(log) * per_log + u64::from(seg))
}

/// The name of segment number `segno` on `timeline`.
pub fn seg_name(timeline: u32, segno: u64, per_log: u64) -> String {
    format!(
        "{timeline:08X}{:08X}{:08X}",
        segno / per_log,
        segno % per_log
    )
}

fn lsn(pos: u64) -> String {
    format!("{:X}/{:X}", pos >> 32, pos & 0xffff_ffff)
}

/// Finds the gaps and recoverable ranges of every cluster's archive (or
/// only `only`'s).
pub fn verify(repo: &Repository, only: Option<u64>) -> Result<Vec<WalReport>> {
    let mut by_sys: BTreeMap<u64, BTreeMap<u32, Archived>> = BTreeMap::new();
    let mut first_object: BTreeMap<u64, String> = BTreeMap::new();
    for o in repo.list_logs()? {
        let Some((sys, file)) = file_of(&o.name) else {
            continue;
        };
        if only.is_some_and(|s| s != sys) {
            continue;
        }
        match WalFile::parse(&file) {
            Ok(WalFile::Segment { timeline, log, seg }) => {
                by_sys
                    .entry(sys)
                    .or_default()
                    .entry(timeline)
                    .or_default()
                    .0
                    .push((log, seg));
                first_object.entry(sys).or_insert(o.name);
            }
            Ok(WalFile::History(t)) => {
                by_sys.entry(sys).or_default().entry(t).or_default().1 = true
            }
            _ => {}
        }
    }
    let mut reports = vec![];
    for (sys, timelines) in by_sys {
        let mut problems = vec![];
        // The segment size, from one archived segment's own header.
        let size = match first_object.get(&sys) {
            Some(o) => match repo.get_log(o) {
                Ok(b) => segment_header(&b)
                    .map(|(_, s)| u64::from(s))
                    .unwrap_or(16 << 20),
                Err(e) => {
                    problems.push(e.to_string());
                    16 << 20
                }
            },
            None => 16 << 20,
        };
        let per_log = segments_per_log(size);
        let mut out = vec![];
        for (timeline, (mut segs, history)) in timelines {
            segs.sort();
            let mut ranges: Vec<WalRange> = vec![];
            let mut missing = vec![];
            let mut run: Option<(u64, u64)> = None;
            let close = |run: (u64, u64), ranges: &mut Vec<WalRange>| {
                ranges.push(WalRange {
                    first: seg_name(timeline, run.0, per_log),
                    last: seg_name(timeline, run.1, per_log),
                    start_lsn: lsn(run.0 * size),
                    end_lsn: lsn((run.1 + 1) * size),
                    segments: run.1 - run.0 + 1,
                })
            };
            for (log, seg) in segs {
                let n = u64::from(log) * per_log + u64::from(seg);
                run = match run {
                    Some((a, b)) if n == b + 1 => Some((a, n)),
                    Some((a, b)) => {
                        for m in (b + 1..n).take(5) {
                            missing.push(seg_name(timeline, m, per_log));
                        }
                        problems.push(format!(
                            "timeline {timeline}: {} segment(s) missing after {} (from {})",
                            n - b - 1,
                            seg_name(timeline, b, per_log),
                            seg_name(timeline, b + 1, per_log)
                        ));
                        close((a, b), &mut ranges);
                        Some((n, n))
                    }
                    None => Some((n, n)),
                };
            }
            if let Some(r) = run {
                close(r, &mut ranges);
            }
            if timeline > 1 && !history {
                problems.push(format!(
                    "timeline {timeline}: its history file {timeline:08X}.history is not archived"
                ));
            }
            out.push(TimelineArchive {
                timeline,
                ranges,
                missing,
                history,
            });
        }
        reports.push(WalReport {
            system_id: sys,
            segment_size: size,
            timelines: out,
            problems,
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wal_file_names() {
        assert_eq!(
            WalFile::parse("0000000200000001000000FE").unwrap(),
            WalFile::Segment {
                timeline: 2,
                log: 1,
                seg: 0xFE
            }
        );
        assert_eq!(
            WalFile::parse("00000003.history").unwrap(),
            WalFile::History(3)
        );
        assert_eq!(
            WalFile::parse("000000010000000000000002.00000028.backup").unwrap(),
            WalFile::Other
        );
        assert_eq!(
            WalFile::parse("000000010000000000000002.partial").unwrap(),
            WalFile::Other
        );
        for bad in [
            "",
            "x",
            "00000001000000000000000",
            "0000000100000000000000ZZ",
            "../../etc/passwd",
            "000000010000000000000002.x",
            "0000000g.history",
        ] {
            assert!(WalFile::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Every WAL file name maps to an object name and back.
        #[test]
        fn object_names_round_trip(sys in any::<u64>(), t in any::<u32>(), l in any::<u32>(), s in any::<u32>(), off in any::<u32>(), which in 0..4u8) {
            let seg = format!("{t:08X}{l:08X}{s:08X}");
            let name = match which {
                0 => seg,
                1 => format!("{t:08X}.history"),
                2 => format!("{seg}.{off:08X}.backup"),
                _ => format!("{seg}.partial"),
            };
            WalFile::parse(&name).unwrap();
            let object = object_name(sys, &name);
            lifeboat_store::validate_name(&object).unwrap();
            prop_assert_eq!(file_of(&object), Some((sys, name)));
        }

        #[test]
        fn any_name_parses_or_errs(s in "[0-9A-Fa-z./]{0,48}") {
            let _ = WalFile::parse(&s);
            let _ = file_of(&s);
        }
    }
}

/// What [`expire`] did for one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterExpiry {
    /// The cluster's system identifier.
    pub system_id: u64,
    /// The oldest WAL file a kept base backup needs (older ones go).
    pub keep_from: String,
    /// WAL files deleted (or, in a dry run, that would be).
    pub deleted: u64,
    /// Their bytes in the repository.
    pub bytes: u64,
}

/// Deletes the archived WAL that no kept base backup needs: per cluster
/// with at least one physical backup among `snapshots`, every segment
/// (and `.backup`, `.partial` file) before the oldest backup's start
/// segment, whatever its timeline (a timeline branches off after its
/// parent's start). History files stay (they are tiny, and replay reads
/// them to follow timelines). A cluster with no physical backup keeps all
/// of its WAL.
pub fn expire(
    repo: &Repository,
    snapshots: &[(lifeboat_repo::Id, lifeboat_repo::Snapshot)],
    dry_run: bool,
) -> Result<Vec<ClusterExpiry>> {
    let mut oldest: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    let logs = repo.list_logs()?;
    // Segment sizes per cluster, from one archived segment each.
    let size_of = |sys: u64, sizes: &mut BTreeMap<u64, u64>| -> u64 {
        *sizes.entry(sys).or_insert_with(|| {
            logs.iter()
                .find(|o| file_of(&o.name).is_some_and(|(s, f)| s == sys && f.len() == 24))
                .and_then(|o| repo.get_log(&o.name).ok())
                .and_then(|b| segment_header(&b).map(|(_, size)| u64::from(size)))
                .unwrap_or(16 << 20)
        })
    };
    for (_, s) in snapshots {
        let Some(m) = super::physical::PhysicalMeta::of(s) else {
            continue;
        };
        let Ok(sys) = m.system_id.parse::<u64>() else {
            continue;
        };
        let Ok(WalFile::Segment { log, seg, .. }) = WalFile::parse(&m.start_wal) else {
            continue;
        };
        let per_log = segments_per_log(size_of(sys, &mut sizes));
        let no = u64::from(log) * per_log + u64::from(seg);
        let e = oldest.entry(sys).or_insert((no, m.start_wal.clone()));
        if no < e.0 {
            *e = (no, m.start_wal.clone());
        }
    }
    let mut out = vec![];
    for (sys, (keep_no, keep_from)) in oldest {
        let per_log = segments_per_log(sizes.get(&sys).copied().unwrap_or(16 << 20));
        let (mut deleted, mut bytes) = (0, 0);
        for o in &logs {
            let Some((s, file)) = file_of(&o.name) else {
                continue;
            };
            if s != sys || file.len() < 24 || file.ends_with(".history") {
                continue;
            }
            if segment_number(&file, per_log).is_none_or(|n| n >= keep_no) {
                continue;
            }
            if !dry_run {
                match repo.delete_log(&o.name) {
                    Ok(()) => {}
                    Err(RepoError::Store(e)) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            deleted += 1;
            bytes += o.size;
        }
        out.push(ClusterExpiry {
            system_id: sys,
            keep_from,
            deleted,
            bytes,
        });
    }
    Ok(out)
}
