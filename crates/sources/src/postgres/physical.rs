//! Physical base backups: `pg_basebackup` (tar format, WAL fetched into it,
//! page checksums verified by the server as it reads) streamed into the
//! repository as one archive, with the backup's start and stop LSN,
//! timeline, system identifier and version recorded; and their restore
//! into a new data directory, ready to recover to a target with the WAL
//! archive (`wal fetch` as its `restore_command`).

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_repo::archiver::{NamedStream, StreamSet};
use lifeboat_repo::chunker::Chunking;
use lifeboat_repo::{browse, IndexedRepository, RepoError, Snapshot};
use serde::{Deserialize, Serialize};

use super::program;
use super::psql::Session;
use super::tarwatch::{member, Kept, TarWatch};
use crate::error::{Result, SourceError};
use crate::producer::Producer;
use crate::url::ConnUrl;
use lifeboat_repo::archiver::SourceFailed;

/// The stream a physical backup is stored as.
pub const ARCHIVE: &str = "pgdata.tar";

/// The block a base backup's files are cut in (see FORMAT.md, "Chunking
/// base backups"): a changed 8 KiB page costs one block.
pub const BLOCK: u32 = 64 << 10;

/// What a physical backup records in its snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalMeta {
    /// Always `postgres`.
    pub kind: String,
    /// Always `physical`.
    pub mode: String,
    /// The source, as shown.
    pub url: String,
    /// The cluster's system identifier.
    pub system_id: String,
    /// `server_version`.
    pub server_version: String,
    /// Taken from a standby.
    pub from_standby: bool,
    /// Whether the cluster has page checksums (then every page was verified).
    pub data_checksums: bool,
    /// Timeline the backup started on.
    pub timeline: u32,
    /// WAL position where replay must start.
    pub start_lsn: String,
    /// WAL position where the backup becomes consistent.
    pub stop_lsn: String,
    /// The WAL file `start_lsn` is in.
    pub start_wal: String,
    /// When the backup started.
    pub start_time: String,
    /// When `pg_basebackup` had finished: every recovery target at or after
    /// this instant can be reached from this backup.
    pub end_time: jiff::Timestamp,
    /// The stream holding the tar archive of the data directory.
    pub archive: String,
}

impl PhysicalMeta {
    /// The metadata of a snapshot, if it is a PostgreSQL physical backup.
    pub fn of(snapshot: &Snapshot) -> Option<PhysicalMeta> {
        let m: PhysicalMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == "postgres" && m.mode == "physical").then_some(m)
    }
}

/// A physical backup in progress.
pub struct PhysicalBackup {
    meta: PhysicalMeta,
    dump: Option<Producer>,
    kept: Kept,
}

impl PhysicalBackup {
    /// Starts `pg_basebackup` against the cluster `url` names.
    pub fn start(url: &ConnUrl) -> Result<PhysicalBackup> {
        let shown = url.to_string();
        let control = url.with_dbname(url.dbname.as_deref().unwrap_or("postgres"));
        let mut s = Session::connect(&control)?;
        let row = s.query(
            "SELECT system_identifier, current_setting('server_version'), pg_is_in_recovery(), current_setting('data_checksums'), current_setting('wal_level') FROM pg_control_system()",
        )?;
        s.close()?;
        let [sys, version, standby, checksums, wal_level] =
            row.first().map(Vec::as_slice).unwrap_or(&[])
        else {
            return Err(SourceError::Tool {
                program: "psql".into(),
                target: shown,
                message: "unexpected answer about the cluster".into(),
            });
        };
        if wal_level == "minimal" {
            return Err(SourceError::Usage(format!(
                "{shown}: wal_level is minimal, which allows no base backup; set wal_level = replica and restart"
            )));
        }
        let mut cmd = Command::new(program("pg_basebackup"));
        cmd.args([
            "--pgdata=-",
            "--format=tar",
            "--wal-method=fetch",
            "--checkpoint=fast",
            "--no-password",
            "--label=lifeboat",
        ])
        .envs(url.env())
        .env("PGAPPNAME", "lifeboat");
        let dump = Producer::spawn(cmd, "pg_basebackup", &shown, true)?;
        Ok(PhysicalBackup {
            meta: PhysicalMeta {
                kind: "postgres".into(),
                mode: "physical".into(),
                url: shown,
                system_id: sys.clone(),
                server_version: version.clone(),
                from_standby: standby == "t",
                data_checksums: checksums == "on",
                timeline: 0,
                start_lsn: String::new(),
                stop_lsn: String::new(),
                start_wal: String::new(),
                start_time: String::new(),
                end_time: jiff::Timestamp::now(),
                archive: ARCHIVE.into(),
            },
            dump: Some(dump),
            kept: Kept::default(),
        })
    }
}

impl StreamSet<'static> for PhysicalBackup {
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'static>>> {
        Ok(self.dump.take().map(|d| {
            let watch = TarWatch::new(d, &["backup_label", "backup_manifest"]);
            self.kept = watch.kept();
            NamedStream {
                name: ARCHIVE.into(),
                reader: Box::new(watch),
                // Relation files change in place, 8 KiB page by page.
                chunking: Chunking::TarBlocks(BLOCK),
            }
        }))
    }

    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        let bad = |what: &str| SourceFailed::io(format!("pg_basebackup's archive lacks {what}"));
        let label = member(&self.kept, "backup_label").ok_or_else(|| bad("backup_label"))?;
        let label = String::from_utf8_lossy(&label).into_owned();
        let field = |k: &str| {
            label
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .map(str::to_string)
        };
        let start = field("START WAL LOCATION:").ok_or_else(|| bad("a start location"))?;
        // "0/2000028 (file 000000010000000000000002)"
        let mut parts = start.split_whitespace();
        self.meta.start_lsn = parts.next().unwrap_or_default().to_string();
        self.meta.start_wal = parts
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(')')
            .to_string();
        self.meta.timeline = field("START TIMELINE:")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("a timeline"))?;
        self.meta.start_time = field("START TIME:").unwrap_or_default();
        let manifest =
            member(&self.kept, "backup_manifest").ok_or_else(|| bad("backup_manifest"))?;
        let manifest = String::from_utf8_lossy(&manifest).into_owned();
        let end = manifest
            .rfind("\"End-LSN\"")
            .ok_or_else(|| bad("an end location"))?;
        self.meta.stop_lsn = manifest[end..]
            .split('"')
            .nth(3)
            .ok_or_else(|| bad("an end location"))?
            .to_string();
        self.meta.end_time = jiff::Timestamp::now();
        serde_json::to_value(&self.meta)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveryTarget {
    /// Replay everything archived.
    Latest,
    /// Stop as soon as the backup is consistent.
    Immediate,
    /// After the last transaction committed at or before this instant.
    Time(jiff::Timestamp),
    /// At this WAL position.
    Lsn(u64),
    /// After this transaction.
    Xid(String),
    /// At this named restore point (`pg_create_restore_point`).
    Name(String),
}

/// A WAL position from its `X/Y` form.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// How `restore_command` reaches the repository.
#[derive(Debug, Clone)]
pub struct FetchCommand {
    /// The lifeboat binary.
    pub program: PathBuf,
    /// The repository.
    pub repository: String,
    /// A file holding its password, readable by the server's user.
    pub password_file: PathBuf,
}

/// What a physical restore wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PhysicalRestored {
    /// The data directory.
    pub target: PathBuf,
    /// The recovery settings written to `postgresql.auto.conf`.
    pub settings: Vec<String>,
    /// Bytes of the archive.
    pub bytes: u64,
    /// With `--delta`: what was compared, written and removed.
    pub delta: Option<super::delta::DeltaStats>,
}

/// Restores the base backup in `snapshot` into the data directory `target`
/// and configures recovery to `goal` through `fetch`. Without `delta` the
/// directory must not exist or be empty; with it, an existing data
/// directory of the same cluster (stopped) is rewritten in place, only what
/// differs (see [`super::delta`]). Everything is made durable.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    target: &Path,
    goal: &RecoveryTarget,
    timeline: Option<&str>,
    fetch: &FetchCommand,
    delta: bool,
) -> Result<PhysicalRestored> {
    let meta = PhysicalMeta::of(snapshot).ok_or_else(|| {
        SourceError::WrongSnapshot(format!("snapshot {id} is not a PostgreSQL physical backup"))
    })?;
    let occupied = match std::fs::read_dir(target) {
        Ok(mut d) => d.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(RepoError::io("open", target, e).into()),
    };
    if occupied && !delta {
        return Err(SourceError::Usage(format!(
            "{} is not empty: restore into a new or empty directory, or give --delta to rewrite an existing data directory of this cluster in place; nothing was changed",
            target.display()
        )));
    }
    let node = browse::find_node(repo, snapshot, id, &format!("/{}", meta.archive))?;
    let given_owner = owner_of(target).ok();
    let (bytes, delta) = if occupied {
        let sys = meta
            .system_id
            .parse()
            .map_err(|_| SourceError::WrongSnapshot("bad system identifier".into()))?;
        super::delta::check_target(target, sys)?;
        let stats = super::delta::apply(repo, &node, BLOCK, target)?;
        (node.size, Some(stats))
    } else {
        std::fs::create_dir_all(target).map_err(|e| RepoError::io("create", target, e))?;
        (unpack(repo, &node, target)?, None)
    };
    if as_root() {
        // One owner for the whole directory: that of a directory prepared
        // for the server (not root's, or the failed primary's under
        // --delta), else the server's user on the backed-up host
        // (PG_VERSION's owner in the archive). pg_basebackup gives the files
        // it adds itself (backup_manifest) a made-up 2048:1024.
        let owner = match given_owner {
            Some(o) if o.0 != 0 => o,
            _ => owner_of(&target.join("PG_VERSION"))?,
        };
        chown_tree(target, owner)?;
    }
    let mut settings = vec![format!(
        "restore_command = '{}'",
        format!(
            "LIFEBOAT_REPOSITORY={} LIFEBOAT_PASSWORD_FILE={} {} -q wal fetch %f %p",
            shell_word(&fetch.repository),
            shell_word(&fetch.password_file.display().to_string()),
            shell_word(&fetch.program.display().to_string())
        )
        .replace('\'', "''")
    )];
    match goal {
        RecoveryTarget::Latest => {}
        RecoveryTarget::Immediate => settings.push("recovery_target = 'immediate'".into()),
        RecoveryTarget::Time(t) => settings.push(format!(
            "recovery_target_time = '{}'",
            t.strftime("%Y-%m-%d %H:%M:%S%.6f+00")
        )),
        RecoveryTarget::Lsn(l) => settings.push(format!(
            "recovery_target_lsn = '{:X}/{:X}'",
            l >> 32,
            l & 0xffff_ffff
        )),
        RecoveryTarget::Xid(x) => {
            settings.push(format!("recovery_target_xid = '{}'", x.replace('\'', "''")))
        }
        RecoveryTarget::Name(n) => settings.push(format!(
            "recovery_target_name = '{}'",
            n.replace('\'', "''")
        )),
    }
    if *goal != RecoveryTarget::Latest {
        settings.push("recovery_target_action = 'promote'".into());
    }
    settings.push(format!(
        "recovery_target_timeline = '{}'",
        timeline.unwrap_or("latest").replace('\'', "''")
    ));
    let owner = std::fs::metadata(target.join("PG_VERSION"))
        .map_err(|e| RepoError::io("read", target.join("PG_VERSION"), e))?;
    let auto = target.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
    conf += &format!(
        "\n# Added by `lifeboat restore` of snapshot {id}: recovery from the WAL archive.\n"
    );
    for l in &settings {
        conf += l;
        conf.push('\n');
    }
    let signal = target.join("recovery.signal");
    for (path, text) in [(&auto, conf.as_str()), (&signal, "")] {
        std::fs::write(path, text).map_err(|e| RepoError::io("write", path, e))?;
        chown_like(path, &owner)?;
    }
    // The server refuses a data directory others can enter.
    chmod(target, 0o700)?;
    chown_like(target, &owner)?;
    syncfs(target)?;
    Ok(PhysicalRestored {
        target: target.to_path_buf(),
        settings,
        bytes,
        delta,
    })
}

/// Unpacks the archive `node` into the empty directory `target`.
fn unpack(
    repo: &IndexedRepository,
    node: &lifeboat_repo::tree::Node,
    target: &Path,
) -> Result<u64> {
    let (reader, mut writer) = std::io::pipe().map_err(|e| RepoError::io("pipe", target, e))?;
    std::thread::scope(|s| -> Result<u64> {
        let feeder = s.spawn(move || browse::dump(repo, node, &mut writer));
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        // As another user every file is ours (and chown would fail).
        archive.set_preserve_ownerships(as_root());
        archive.set_overwrite(false);
        let unpacked = archive.unpack(target);
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(RepoError::Internal("the archive feeder panicked".into())));
        let n = fed?;
        unpacked.map_err(|e| RepoError::io("unpack into", target, e))?;
        Ok(n)
    })
}

fn shell_word(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn chmod(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| RepoError::io("chmod", p, e).into())
}

/// Whether this process runs as root (and so sets owners).
fn as_root() -> bool {
    // SAFETY: plain syscall; no memory is passed.
    unsafe { libc::geteuid() == 0 }
}

fn owner_of(p: &Path) -> Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).map_err(|e| RepoError::io("read", p, e))?;
    Ok((m.uid(), m.gid()))
}

/// Gives `dir` and everything under it (links themselves, not followed)
/// to `owner`.
fn chown_tree(dir: &Path, owner: (u32, u32)) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| RepoError::io("read", dir, e))?;
    if (m.uid(), m.gid()) != owner {
        std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1))
            .map_err(|e| RepoError::io("chown", dir, e))?;
    }
    if m.is_dir() {
        for e in std::fs::read_dir(dir).map_err(|e| RepoError::io("read", dir, e))? {
            let e = e.map_err(|e| RepoError::io("read", dir, e))?;
            chown_tree(&e.path(), owner)?;
        }
    }
    Ok(())
}

fn chown_like(p: &Path, like: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::os::unix::fs::chown(p, Some(like.uid()), Some(like.gid())) {
        Ok(()) => Ok(()),
        // Not root: the files are ours already.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(RepoError::io("chown", p, e).into()),
    }
}

/// Makes everything written under `dir` durable (one `syncfs`).
fn syncfs(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir).map_err(|e| RepoError::io("open", dir, e))?;
    // SAFETY: syncfs takes an open descriptor, which `f` keeps open.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(RepoError::io("sync", dir, std::io::Error::last_os_error()).into());
    }
    Ok(())
}

/// The base backup to restore for `goal`: the newest of `snapshots` from
/// which `goal` can be reached (for a time, one that ended at or before
/// it; for an LSN, one consistent at or before it). Refuses, naming the
/// oldest backup, when the goal lies before every one.
pub fn choose(
    snapshots: Vec<(lifeboat_repo::Id, Snapshot)>,
    goal: &RecoveryTarget,
) -> Result<(lifeboat_repo::Id, Snapshot)> {
    let physical: Vec<_> = snapshots
        .into_iter()
        .filter_map(|(id, s)| PhysicalMeta::of(&s).map(|m| (id, s, m)))
        .collect();
    let Some(oldest) = physical
        .iter()
        .map(|(_, _, m)| m.clone())
        .min_by_key(|m| m.end_time)
    else {
        return Err(SourceError::WrongSnapshot(
            "the repository has no PostgreSQL physical backup (the filters admit none)".into(),
        ));
    };
    let usable = |m: &PhysicalMeta| match goal {
        RecoveryTarget::Time(t) => m.end_time <= *t,
        RecoveryTarget::Lsn(l) => parse_lsn(&m.stop_lsn).is_some_and(|s| s <= *l),
        _ => true,
    };
    physical
        .into_iter()
        .filter(|(_, _, m)| usable(m))
        .max_by_key(|(_, _, m)| m.end_time)
        .map(|(id, s, _)| (id, s))
        .ok_or_else(|| {
            SourceError::Unreachable(match goal {
                RecoveryTarget::Time(t) => format!(
                    "the target time {t} lies before the oldest usable base backup (it became consistent at {}); nothing was restored",
                    oldest.end_time
                ),
                _ => format!(
                    "the target lies before the oldest usable base backup (consistent at LSN {}); nothing was restored",
                    oldest.stop_lsn
                ),
            })
        })
}

/// Proves, before anything is written, that the archive holds the WAL from
/// `meta`'s start through `goal` on the timeline `timeline` asks for
/// (`latest`, `current` or a number; default latest): that timeline
/// exists, no segment is missing after the backup's stop position, and (for
/// a time or an LSN) the goal is not beyond the last archived commit or
/// position. A gap is named by its first missing segment.
pub fn check_reachable(
    repo: &lifeboat_repo::Repository,
    meta: &PhysicalMeta,
    goal: &RecoveryTarget,
    timeline: Option<&str>,
) -> Result<()> {
    let sys: u64 = meta
        .system_id
        .parse()
        .map_err(|_| SourceError::WrongSnapshot("bad system identifier".into()))?;
    let reports = super::wal::verify(repo, Some(sys))?;
    let unreachable = |why: String| {
        Err(SourceError::Unreachable(format!(
            "{why}; nothing was restored"
        )))
    };
    let Some(report) = reports.into_iter().next() else {
        return unreachable(format!(
            "no WAL of cluster {sys} is archived (set archive_command = 'lifeboat wal push %p')"
        ));
    };
    let base = meta.timeline;
    let newest = report
        .timelines
        .iter()
        .filter(|t| t.timeline == base || t.history)
        .map(|t| t.timeline)
        .max()
        .unwrap_or(base)
        .max(base);
    let wanted = match timeline.unwrap_or("latest") {
        "latest" => newest,
        "current" => base,
        n => {
            let n: u32 = n.parse().map_err(|_| {
                SourceError::Usage(format!(
                    "--timeline {n:?}: give latest, current or a timeline number"
                ))
            })?;
            if n < base {
                return unreachable(format!(
                    "the base backup is on timeline {base}, after timeline {n}: choose a backup taken on timeline {n}"
                ));
            }
            if n > base
                && !report
                    .timelines
                    .iter()
                    .any(|t| t.timeline == n && t.history)
            {
                return unreachable(format!(
                    "timeline {n} does not exist in the archive (its history file {n:08X}.history is not archived; archived timelines: {})",
                    report
                        .timelines
                        .iter()
                        .map(|t| t.timeline.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            n
        }
    };
    // The backup carries the WAL up to its stop position (fetched into its
    // pg_wal); replay needs the archive only from the segment holding the
    // stop position, and only to go beyond it.
    if *goal == RecoveryTarget::Immediate {
        return Ok(());
    }
    let stop = parse_lsn(&meta.stop_lsn)
        .ok_or_else(|| SourceError::WrongSnapshot(format!("bad stop LSN {:?}", meta.stop_lsn)))?;
    let per_log = super::wal::segments_per_log(report.segment_size);
    let stop_no = stop / report.segment_size.max(1);
    let goes_beyond = matches!(goal, RecoveryTarget::Time(_) | RecoveryTarget::Lsn(_));
    let Some(tl) = report.timelines.iter().find(|t| t.timeline == base) else {
        return if goes_beyond {
            unreachable(format!("no WAL of timeline {base} is archived"))
        } else {
            Ok(())
        };
    };
    let seg_no = |name: &str| super::wal::segment_number(name, per_log).unwrap_or(0);
    let Some(range) = tl
        .ranges
        .iter()
        .find(|r| seg_no(&r.first) <= stop_no && stop_no <= seg_no(&r.last))
    else {
        return if goes_beyond {
            unreachable(format!(
                "the WAL after the backup ({}) is not archived (yet)",
                super::wal::seg_name(base, stop_no, per_log)
            ))
        } else {
            Ok(())
        };
    };
    if wanted > base {
        // Replay follows the timeline history; the end checks below are
        // for a single timeline.
        return Ok(());
    }
    // A gap after the stop position: replay would end at it.
    let gap = tl
        .ranges
        .iter()
        .any(|r| seg_no(&r.first) > seg_no(&range.last))
        .then(|| {
            format!(
                "the archive lacks WAL segment {} (a gap after {}), so replay ends at {}",
                super::wal::seg_name(base, seg_no(&range.last) + 1, per_log),
                range.last,
                range.end_lsn
            )
        });
    let end_lsn = parse_lsn(&range.end_lsn).unwrap_or(0);
    match goal {
        RecoveryTarget::Latest => match gap {
            Some(gap) => unreachable(format!(
                "{gap}, not at the latest archived WAL: push the missing segments, or restore to a target before the gap (--lsn {} or earlier)",
                range.end_lsn
            )),
            None => Ok(()),
        },
        RecoveryTarget::Lsn(l) if *l > end_lsn => unreachable(match gap {
            Some(gap) => format!("the target LSN lies beyond the gap: {gap}"),
            None => format!(
                "the target LSN lies beyond the archived WAL, which ends at {} (timeline {base})",
                range.end_lsn
            ),
        }),
        RecoveryTarget::Time(t) => {
            let first = super::wal::seg_name(base, stop_no, per_log);
            let last = last_commit(repo, sys, &first, &range.last, base, per_log)?;
            match (last, gap) {
                // Replay stops at the first commit after the target: one
                // must be archived, or recovery ends before the target.
                (Some(last), Some(gap)) if *t >= last => unreachable(format!(
                    "the target time {t} lies beyond the gap: {gap}, whose last commit is at {last}"
                )),
                (Some(last), None) if *t >= last => unreachable(format!(
                    "the target time {t} is not before the last commit in the archived WAL ({last}): recovery stops only on seeing a later commit; restore with --latest for everything archived"
                )),
                (None, _) => unreachable(format!("the archived WAL from {first} on holds no commit to stop at")),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The time of the last commit in the archived segments `first`..=`last`
/// (read with `pg_waldump`, newest segments first).
fn last_commit(
    repo: &lifeboat_repo::Repository,
    sys: u64,
    first: &str,
    last: &str,
    timeline: u32,
    per_log: u64,
) -> Result<Option<jiff::Timestamp>> {
    let no = |name: &str| super::wal::segment_number(name, per_log).unwrap_or(0);
    let dir = tempfile_dir()?;
    let (a, b) = (no(first), no(last));
    let mut n = b;
    loop {
        let name = super::wal::seg_name(timeline, n, per_log);
        let bytes = repo.get_log(&super::wal::object_name(sys, &name))?;
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).map_err(|e| RepoError::io("write", &path, e))?;
        let out = Command::new(program("pg_waldump"))
            .arg(format!("--path={}", dir.display()))
            .args(["--rmgr=Transaction", &name, &name])
            .output()
            .map_err(|e| SourceError::Tool {
                program: "pg_waldump".into(),
                target: name.clone(),
                message: lifeboat_repo::error::io_words(&e),
            })?;
        let _ = std::fs::remove_file(&path);
        // It ends with an error at the segment's end; what it printed holds.
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text.lines().rev().find_map(|l| {
            let desc = l.split("desc: ").nth(1)?;
            let ts = desc.strip_prefix("COMMIT ")?;
            // "2026-12-02 19:53:01.123456 UTC; …"
            let ts = ts.split(';').next()?.trim().strip_suffix(" UTC")?;
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S%.f", ts)
                .ok()?
                .to_zoned(jiff::tz::TimeZone::UTC)
                .ok()
                .map(|z| z.timestamp())
        });
        if found.is_some() || n == a {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(found);
        }
        n -= 1;
    }
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "lifeboat-waldump-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| RepoError::io("create", &dir, e))?;
    Ok(dir)
}
