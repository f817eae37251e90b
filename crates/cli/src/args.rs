//! Command-line arguments. Only this crate knows clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Passwords come from --password-file, --password-command, LIFEBOAT_PASSWORD,
LIFEBOAT_PASSWORD_FILE, LIFEBOAT_PASSWORD_COMMAND or a prompt on the terminal, in
that order. They are never taken from a command-line flag value; empty ones are refused.

Exit codes: 0 success, 1 failure, 2 bad usage or configuration,
3 finished but some source files could not be read (they are listed).

Examples:
  export LIFEBOAT_REPOSITORY=/srv/backup/repo LIFEBOAT_PASSWORD_FILE=/etc/lifeboat/password
  lifeboat init
  lifeboat backup /var/lib/app --tag nightly --exclude '*.tmp'
  lifeboat backup --stdin-from-command --stdin-name app.dump -- pg_dump -Fc app
  lifeboat snapshots
  lifeboat restore latest --target /srv/restore --include '/var/lib/app/uploads' --verify
  lifeboat find '*.sql' --host db1
  lifeboat dump latest /etc/app > etc-app.tar
  lifeboat forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --prune
  lifeboat check --read-data-subset 5%
  lifeboat repair index            # when check reports a damaged index object";

/// lifeboat: disaster recovery you can prove.
///
/// Backs up files and streams into an encrypted, deduplicated repository,
/// restores them, and proves the repository whole.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Repository location: a directory path.
    #[arg(
        short = 'r',
        long = "repo",
        env = "LIFEBOAT_REPOSITORY",
        global = true,
        value_name = "PATH"
    )]
    pub repo: Option<String>,
    /// Read the password from this file (its one trailing newline is not
    /// part of it). Beats the LIFEBOAT_PASSWORD* variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and take its output as the password (a
    /// password manager: `pass show backup/app`). Beats the variables.
    #[arg(
        long,
        global = true,
        value_name = "COMMAND",
        conflicts_with = "password_file"
    )]
    pub password_command: Option<String>,
    /// The plan file (`lifeboat.toml`: regions, components, objectives)
    /// for the plan commands.
    #[arg(
        short = 'c',
        long = "config",
        env = "LIFEBOAT_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Quiet: no progress bars, and actions (backup, restore, check, forget,
    /// prune, init, key changes) print nothing but problems, on stderr.
    /// Listings still print.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log more (repeat for debug logs) to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files and directories, or a stream from stdin, into a new snapshot.
    ///
    /// Files whose size, mtime, ctime and inode match the parent snapshot
    /// (the latest one of the same host and paths) are not read again.
    /// Unreadable files are skipped and listed; the snapshot is still
    /// written and the exit code is 3.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the files in a snapshot.
    Ls(LsArgs),
    /// Find entries matching patterns across snapshots (every snapshot the
    /// filters admit, newest first).
    ///
    /// Patterns are the gitignore-style ones of --exclude: `*.sql` matches a
    /// name at any depth, `/var/lib/app/**/*.db` is anchored.
    Find(FindArgs),
    /// Sizes: what snapshots restore to, the raw data they reference
    /// (each blob once), and what deduplication and compression save.
    Stats(StatsArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Restore a snapshot (or selected paths) into a directory.
    ///
    /// Never writes outside the target and never replaces existing files
    /// unless --overwrite is given. Damaged data does not stop the restore:
    /// every affected file is listed and the exit code is 1.
    Restore(RestoreArgs),
    /// Write one file (or a stdin backup) from a snapshot to stdout; a
    /// directory (or `/`, the whole snapshot) as a tar stream.
    ///
    /// Tar entries are named by their absolute path without the leading
    /// `/`, so `dump latest /srv/app | tar -x -C /restore` gives the layout
    /// a restore into /restore gives.
    Dump(DumpArgs),
    /// Verify the repository: structure, and with --read-data every byte.
    Check(CheckArgs),
    /// Remove snapshots by keep rules (or by id), grouped by host and paths.
    Forget(ForgetArgs),
    /// Delete data no snapshot needs and repack partly used packs.
    ///
    /// Unneeded packs are first marked and deleted by a later prune once the
    /// mark is older than --delete-delay (default 24h), so backups running at
    /// the same time are never harmed.
    Prune(PruneArgs),
    /// Add, remove or replace the tags of snapshots (all that the filters
    /// admit, or those named). Each changed snapshot is written anew (its
    /// `original` names the old one) and the old one is removed.
    Tag(TagArgs),
    /// Print a repository object, decrypted, for debugging: `config`,
    /// `key ID`, `snapshot ID`, `index ID`, `tree ID`, `pack ID` (its
    /// header) as JSON, or `blob ID` as raw bytes. IDs may be prefixes.
    Cat {
        /// What kind of object.
        #[arg(value_enum)]
        kind: CatKind,
        /// Its id or a unique prefix (`latest` for a snapshot).
        #[arg(value_name = "ID")]
        id: Option<String>,
    },
    /// Manage the passwords (keys) that open the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Recover from damage that `check` found: rebuild the index from the
    /// packs, or rewrite snapshots that reference lost data.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// PostgreSQL WAL archiving: `archive_command = 'lifeboat wal push %p'`,
    /// `restore_command = 'lifeboat wal fetch %f %p'`, and `wal verify`.
    #[command(subcommand)]
    Wal(WalCommand),
    /// MariaDB/MySQL binary-log archiving for point-in-time restores:
    /// `binlog stream` receives a server's binary logs as a replica does,
    /// `binlog verify` shows what is archived and where it has gaps.
    #[command(subcommand)]
    Binlog(BinlogCommand),
    /// The DR plan as code (`lifeboat.toml`, or -c FILE): `plan check`
    /// validates it and names every objective it cannot meet.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Run the plan's backups now: the components named, or those due by
    /// their schedules (never run, or not since their last scheduled time).
    /// Each runs as `lifeboat backup` into its region's repository, tagged
    /// component=NAME, and is recorded in the ledger. Exit 1 if any failed.
    Run(RunArgs),
    /// Copy snapshots, and the WAL or binary logs that continue them, into
    /// another region's repository: `copy --to dr` copies each component
    /// whose replicate_to names dr (or those named) and records each copy
    /// in the ledger; `copy --to-repo LOCATION` copies this repository's
    /// snapshots (all, or those the filters or ids choose) into any other.
    /// Re-encrypted for the destination's key, deduplicated against what
    /// it holds, verified before a snapshot is written; a killed copy
    /// leaves no partial snapshot and the next goes on where it stopped.
    /// Regions made by `init --plan` share blob ids and copy blob for
    /// blob; others are re-identified (every blob read and hashed again).
    Copy(CopyArgs),
    /// The plan's posture at a glance: per component its tier, RPO and RTO,
    /// the data-loss window now (the age of its newest backup) against the
    /// RPO, and its last run. Exit 1 when a component is outside its RPO.
    Status,
    /// The plan's compliance report: each component's objectives and
    /// posture (as `status`), with its history from the ledger — the last
    /// verifications and restore times, the sizes and durations of its
    /// last backups, its copies — as Markdown, JSON or a self-contained
    /// HTML page.
    Report(ReportArgs),
    /// Prove each component's newest backup against the plan: its age
    /// against the RPO, its size against the one before (a sudden drop
    /// warns), and its restore test — restored into the verify target (a
    /// scratch directory), checked (counts, integrity, a command with
    /// $LIFEBOAT_RESTORED), timed against the RTO, removed. Prints Total
    /// components / Passed / Warnings / Failed, records each in the
    /// ledger; exit 1 when anything failed.
    Verify(VerifyArgs),
    /// The daemon: runs the plan's schedules (due backups, due restore
    /// tests; one at a time, failures retried with backoff, each recorded
    /// in the ledger) and serves /metrics (Prometheus), /healthz and
    /// /api/status on one port. SIGTERM stops it cleanly.
    Serve(ServeArgs),
    /// Print lifeboat's version and the repository format versions it reads.
    Version,
    /// Print a shell completion script (`lifeboat completions bash >
    /// /etc/bash_completion.d/lifeboat`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages generated from these definitions: `lifeboat.1` and
    /// one `lifeboat-COMMAND.1` per command, into DIR.
    Man {
        /// Where to write them (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run the whole story on generated data in ./lifeboat-demo: back up,
    /// change, back up, restore, prove identical, check every byte.
    Demo(DemoArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// zstd compression level for new data (0 = off, 1 fastest … 22 smallest).
    #[arg(long, default_value_t = 3)]
    pub compression: i32,
    /// Target pack size in MiB (packs are the objects stored).
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub pack_size: u32,
    /// Create every region of the plan (-c lifeboat.toml) that has no
    /// repository yet, each with its password source. They name blobs as
    /// the first existing one does (components' home regions first), so
    /// `copy` between them is blob for blob and deduplicates.
    #[arg(long)]
    pub plan: bool,
}

/// `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and directories to back up (with --stdin-from-command: the
    /// command and its arguments, after `--`).
    #[arg(value_name = "PATH", required_unless_present_any = ["stdin", "files_from", "source", "source_command"])]
    pub paths: Vec<PathBuf>,
    /// Back up a database instead of paths: `postgres://USER@HOST:PORT/DBNAME`
    /// (libpq conventions: `PGPASSWORD`, `~/.pgpass`, `?host=/run/postgresql`
    /// for a socket, `?sslmode=require`). A logical dump (`pg_dump`, custom
    /// format) at an exported snapshot, with every table's row count at that
    /// snapshot recorded for validating restores.
    /// `sqlite:///PATH/app.db`: a consistent copy of a SQLite database that
    /// other processes may be writing (SQLite's online backup API, spooled
    /// under TMPDIR), checked with `PRAGMA integrity_check` and its rows
    /// per table recorded.
    /// `command:CMD` is the same as --source-command CMD.
    #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "stdin", "stdin_from_command", "files_from", "source_command"])]
    pub source: Option<String>,
    /// Back up the standard output of this shell command, an exporter
    /// (`kubectl get all,cm,secret -A -o yaml`, `etcdctl snapshot save
    /// /dev/stdout`). Its stderr is shown and its last lines are kept in
    /// the snapshot; when it exits non-zero or is killed, no snapshot is
    /// written. The command is recorded: keep secrets in the environment or
    /// in files, never in it.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["paths", "stdin", "stdin_from_command", "files_from"])]
    pub source_command: Option<String>,
    /// With a command source: the shell command that restores its output
    /// (reading it on stdin), recorded so `restore` runs it.
    #[arg(long, value_name = "CMD")]
    pub restore_command: Option<String>,
    /// With --source postgres://…: a physical base backup of the whole
    /// cluster (`pg_basebackup`, page checksums verified as it reads)
    /// instead of a logical dump; with archived WAL (`wal push`) it restores
    /// to any point in time.
    #[arg(long, requires = "source")]
    pub physical: bool,
    /// Read the data from standard input instead of paths.
    #[arg(long, conflicts_with = "paths")]
    pub stdin: bool,
    /// Run the command given after `--` and back up its standard output
    /// (`backup --stdin-from-command --stdin-name app.dump -- pg_dump -Fc app`).
    /// When it exits non-zero or is killed, no snapshot is written.
    #[arg(long, conflicts_with = "stdin")]
    pub stdin_from_command: bool,
    /// File name for the stream in the snapshot (default `stdin`; `stdout`
    /// for a command source).
    #[arg(long, value_name = "NAME")]
    pub stdin_name: Option<String>,
    /// Save a stream even when it is empty (refused by default: an empty
    /// dump is nearly always a producer that failed).
    #[arg(long)]
    pub allow_empty: bool,
    /// Exclude paths matching a pattern (gitignore-style: `*.tmp` at any depth, `/srv/cache` anchored, `*` within one component, `**` across, `logs/` directories only). Repeatable.
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Read exclude globs from a file, one per line (`#` comments).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Like --exclude, ignoring case (`--iexclude '*.jpg'` also leaves out
    /// `IMG.JPG`). Repeatable.
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Leave out directories that hold a file of this name (`.nobackup`).
    /// Repeatable.
    #[arg(long = "exclude-if-present", value_name = "FILENAME")]
    pub exclude_if_present: Vec<String>,
    /// Leave out cache directories tagged with a CACHEDIR.TAG file
    /// (bford.info/cachedir: browsers, build tools, package managers).
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out files larger than this (`500M`, `2G`, `4096`; K, M, G, T
    /// are powers of 1024).
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Stay on the file systems the given paths are on: mount points below
    /// them (other disks, /proc, network shares) are left out.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Back up the paths listed in this file too, one per line (`#`
    /// comments and blank lines ignored). Repeatable.
    #[arg(long = "files-from", value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Do everything but write: read and chunk the data, and say how much
    /// would be added and stored. The repository is not changed.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Add tags to the snapshot (`--tag a,b` adds two). Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Record this host name instead of the machine's.
    #[arg(long)]
    pub host: Option<String>,
    /// Use this snapshot as parent for change detection.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file, even unchanged ones.
    #[arg(long, conflicts_with = "parent")]
    pub force: bool,
    /// Record access times too. Off by default: reading a directory
    /// changes its atime, so every backup would store every directory
    /// listing again; without them a restore sets atime to mtime.
    #[arg(long)]
    pub with_atime: bool,
}

/// Which snapshots a command considers; `latest` is the newest of them.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host. Repeatable (any of them).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags: `--tag a,b` needs both, a second
    /// `--tag c` also admits those with c.
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Only snapshots that include this absolute path. Repeatable (all of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

/// `snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the N newest snapshots of each group.
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// Group by these snapshot fields: any of `host`, `paths`, `tags`,
    /// comma-separated; empty for no grouping.
    #[arg(long, value_name = "FIELDS", default_value = "")]
    pub group_by: String,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Only this absolute path and entries below it (`/var/lib/app`).
    pub path: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Long format: type, mode, size, mtime.
    #[arg(short, long)]
    pub long: bool,
}

/// `find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    /// Patterns to look for (any of them).
    #[arg(value_name = "PATTERN", required = true)]
    pub patterns: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Look only in these snapshots (ids, prefixes or `latest`). Repeatable.
    #[arg(short, long = "snapshot", value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Snapshots to measure (ids, prefixes or `latest`; default: every
    /// snapshot the filters admit, together).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot.
    pub first: String,
    /// The newer snapshot.
    pub second: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (prefix) or `latest`; `SNAPSHOT:/dir` restores what is
    /// inside /dir directly into the target (without its parents).
    pub snapshot: String,
    /// Directory to restore into (created if missing). Paths keep their
    /// absolute place below it: /var/lib/app lands in TARGET/var/lib/app.
    /// For a PostgreSQL backup: the new database, `postgres://USER@HOST/NEWDB`
    /// (built under a staging name, its row counts compared with the
    /// backup's, then renamed into place). For a SQLite backup: the new
    /// file, `sqlite:///PATH/new.db` (written beside it, checked, renamed
    /// into place).
    /// Needed but for --validate-only and a command backup with a restore
    /// command.
    #[arg(short, long)]
    pub target: Option<PathBuf>,
    /// A command backup: give its stream to this shell command on stdin
    /// (instead of the one recorded at backup; without --target, the
    /// recorded one runs). Its output goes to stderr; it must exit 0.
    #[arg(long, value_name = "CMD", conflicts_with = "target")]
    pub restore_command: Option<String>,
    /// Database backups: prove the archive readable and complete, and its
    /// row counts equal to the recorded ones, without restoring anything.
    #[arg(long, conflicts_with = "target")]
    pub validate_only: bool,
    /// Of a backup of every database: restore (or validate) only this one
    /// (into the database the target names).
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Database backups: restore (or validate) only this table (`name` or
    /// `schema.name`).
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// PostgreSQL: leave the restored objects owned by the connecting user
    /// (for a server that lacks the original roles).
    #[arg(long)]
    pub no_owner: bool,
    /// Physical backups: recover to this instant (`2026-12-02 14:05:00+00`,
    /// RFC 3339 also): every transaction committed at or before it, none
    /// after. MariaDB backups: replay the archived binary logs onto the dump
    /// up to this instant, every transaction committed before it (binary
    /// logs keep whole seconds). With `latest`, the newest backup that can
    /// reach it is chosen.
    #[arg(long, value_name = "TIME", group = "recovery")]
    pub time: Option<String>,
    /// MariaDB backups: replay the archived binary logs up to and
    /// including this transaction (`0-1-4242`).
    #[arg(long, value_name = "GTID", group = "recovery")]
    pub gtid: Option<String>,
    /// Physical backups: recover to this WAL position (`0/3000060`).
    #[arg(long, value_name = "LSN", group = "recovery")]
    pub lsn: Option<String>,
    /// Physical backups: recover through this transaction id.
    #[arg(long, value_name = "XID", group = "recovery")]
    pub xid: Option<String>,
    /// Physical backups: recover to this restore point
    /// (`SELECT pg_create_restore_point('before-migration')`).
    #[arg(long = "name", value_name = "RESTORE_POINT", group = "recovery")]
    pub restore_point: Option<String>,
    /// Physical backups: recover only until the backup is consistent.
    #[arg(long, group = "recovery")]
    pub immediate: bool,
    /// Physical backups: replay all archived WAL (the default). MariaDB
    /// backups: replay every archived binary log onto the dump.
    #[arg(long, group = "recovery")]
    pub latest: bool,
    /// Physical backups: the timeline to follow (`latest`, the default;
    /// `current`, the backup's; or a number).
    #[arg(long, value_name = "TIMELINE")]
    pub timeline: Option<String>,
    /// Physical backups: rewrite an existing, stopped data directory of the
    /// same cluster in place — only the 64 KiB blocks that differ from the
    /// backup are fetched and written, and what the backup lacks is
    /// removed: the fast rebuild of a failed primary or a lagging standby.
    #[arg(long)]
    pub delta: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Restore only paths matching a pattern (`/var/lib/app/uploads`, `*.conf`), with everything below them. Repeatable.
    #[arg(short, long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Leave out paths matching a pattern, with everything below them
    /// (wins over --include). Repeatable.
    #[arg(short, long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Replace files that already exist in the target.
    #[arg(long)]
    pub overwrite: bool,
    /// Say what would be restored and what is in the way; write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// After restoring, read every file back and compare it with the
    /// snapshot; a difference is an error naming the file.
    #[arg(long)]
    pub verify: bool,
}

/// `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// Absolute path of the file or directory inside the snapshot (for a
    /// stdin backup: its --stdin-name, with or without a leading `/`).
    pub path: String,
    /// Write a file as a one-member tar too (a directory always is).
    #[arg(long, value_name = "FORMAT", value_parser = ["tar"])]
    pub archive: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also read and verify every byte of every pack.
    #[arg(long)]
    pub read_data: bool,
    /// Read only a subset of packs: `5%` (random) or `2/7` (part 2 of 7).
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
}

/// `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Apply each component's retention from the plan (`-c FILE`) in its
    /// region, instead of keep rules given here (--dry-run and --prune
    /// apply to every component).
    #[arg(long, conflicts_with_all = ["snapshots", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    pub plan: bool,
    /// Remove these snapshots (ids or prefixes) instead of applying keep rules.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every snapshot within this duration of the newest (30d, 2w, 1y6m, 12h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every snapshot with this tag. Repeatable.
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Apply the keep rules to each group of snapshots sharing these
    /// fields: any of `host`, `paths`, `tags`, comma-separated (empty: all
    /// snapshots as one group).
    #[arg(long, value_name = "FIELDS", default_value = "host,paths")]
    pub group_by: String,
    /// Show what would be removed and which rule keeps each snapshot;
    /// remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run prune afterwards.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_opts: PruneOpts,
}

/// Options shared by `prune` and `forget --prune`.
#[derive(Debug, Args, Clone)]
pub struct PruneOpts {
    /// How long unneeded packs stay marked before deletion (`24h`, `30m`, `0` = now; 0 is safe only when no backup runs).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub delete_delay: String,
    /// Repack packs with more than this percentage of unused bytes.
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub max_unused: String,
}

/// `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub opts: PruneOpts,
    /// Show what would be done; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// What `cat` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CatKind {
    /// The repository configuration.
    Config,
    /// A key object (the wrapped master key and its KDF parameters).
    Key,
    /// A snapshot.
    Snapshot,
    /// An index object.
    Index,
    /// A tree blob (a directory listing).
    Tree,
    /// A data blob's plaintext, raw, to stdout.
    Blob,
    /// A pack's header: the blobs it holds.
    Pack,
}

/// `tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Snapshots to change (ids, prefixes or `latest`; default: every
    /// snapshot the filters admit).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Add a tag (`--add a,b` adds two). Repeatable.
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove a tag. Repeatable.
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
    /// Replace every tag with these (`--set ''` removes all). Repeatable.
    #[arg(long, value_name = "TAG")]
    pub set: Vec<String>,
}

/// `key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys.
    List,
    /// Add a key for a new password (from LIFEBOAT_NEW_PASSWORD_FILE, LIFEBOAT_NEW_PASSWORD or a prompt).
    Add(NewPasswordArgs),
    /// Remove a key by id (prefix). The key in use cannot be removed.
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password of the key in use.
    Passwd(NewPasswordArgs),
}

/// `repair …`.
#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers (after a damaged or lost
    /// index object). Entries of intact index objects are reused for packs
    /// whose size matches; the old index objects are then replaced.
    Index {
        /// Read every pack's header, trusting no index object.
        #[arg(long)]
        read_all_packs: bool,
        /// Show what would be done; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Rewrite snapshots that reference lost data: files with a missing
    /// blob are left out and directories whose tree is lost become empty.
    /// Each new snapshot is tagged `repaired` and lists what it lost; the
    /// original is kept unless --forget is given. Run `repair index` first
    /// when the index is damaged.
    Snapshots {
        /// Snapshots to repair (id prefixes; default: every snapshot).
        #[arg(value_name = "SNAPSHOT")]
        snapshots: Vec<String>,
        /// Delete each original once its repaired snapshot is written.
        #[arg(long)]
        forget: bool,
        /// Show what would be done; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

/// `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The plan's region to copy into (-c lifeboat.toml).
    #[arg(long, value_name = "REGION", conflicts_with = "to_repo")]
    pub to: Option<String>,
    /// With --to: the components to copy (default: every one whose
    /// replicate_to names the region). With --to-repo: snapshot ids or
    /// `latest` (default: every snapshot the filters admit).
    #[arg(value_name = "COMPONENT|SNAPSHOT")]
    pub components: Vec<String>,
    /// Without a plan: the repository to copy into (from --repo).
    #[arg(long, value_name = "LOCATION")]
    pub to_repo: Option<String>,
    /// The destination's password file (else LIFEBOAT_TO_PASSWORD,
    /// LIFEBOAT_TO_PASSWORD_FILE or LIFEBOAT_TO_PASSWORD_COMMAND).
    #[arg(long, value_name = "FILE", requires = "to_repo")]
    pub to_password_file: Option<PathBuf>,
    /// A command that prints the destination's password.
    #[arg(long, value_name = "COMMAND", requires = "to_repo")]
    pub to_password_command: Option<String>,
    /// With --to-repo: which snapshots.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Components to back up (default: those due).
    pub components: Vec<String>,
    /// Every component, due or not.
    #[arg(long, conflicts_with = "components")]
    pub all: bool,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to serve /metrics, /healthz and /api/status.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9987")]
    pub listen: String,
    /// How often to look for due work.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub tick: String,
    /// Start each component's scheduled work up to this long after its
    /// time (a fixed offset per component, at most a tenth of its
    /// schedule's interval), so backups due at the same minute do not all
    /// hit the sources and the repository at once. 0 for none.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub jitter: String,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Components to verify (default: all).
    pub components: Vec<String>,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// md (Markdown), json or html.
    #[arg(long, value_name = "FORMAT", default_value = "md", value_parser = ["md", "json", "html"])]
    pub format: String,
    /// How many verifications and backups of each component to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub last: usize,
    /// Write the report to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `plan …`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Validate the plan — every problem at its line and column, unknown
    /// keys with the nearest known one — then hold each component against
    /// its objectives: the worst data loss its schedule or log stream
    /// allows against its RPO. Exit 2 on a problem in the plan, 1 when an
    /// objective cannot be met.
    Check,
}

/// `binlog …`.
#[derive(Debug, Subcommand)]
pub enum BinlogCommand {
    /// Receive a server's binary logs as it writes them (`mariadb-binlog
    /// --read-from-remote-server --raw --stop-never`, as a replica) and
    /// make them durable in the repository at least every second: a logical
    /// backup of that server then restores to any time or GTID after it
    /// (`restore --time`, `--gtid`, `--latest`). Needs a user with
    /// REPLICATION SLAVE (and REPLICA MONITOR / BINLOG MONITOR). Runs until
    /// interrupted; reconnects by itself and resumes where it stopped.
    Stream {
        /// The server: `mariadb://USER@HOST:PORT/` (password as for
        /// backups: `MYSQL_PWD` or `?defaults-file=`).
        #[arg(long, value_name = "URL")]
        source: String,
        /// Where logs are received before they are uploaded (default:
        /// ~/.local/state/lifeboat/binlog-stream/HOST-PORT).
        #[arg(long, value_name = "DIR")]
        spool: Option<PathBuf>,
        /// The replica server id to connect with: distinct from every
        /// server's and every other replica's (default: mariadb-binlog's).
        #[arg(long, value_name = "ID")]
        server_id: Option<u32>,
    },
    /// List the binary logs archived per server, with the transactions and
    /// times they span, and find gaps (a log never archived). Exit 1 on a
    /// gap or a damaged log.
    Verify {
        /// Only this server (its `@@server_id`).
        #[arg(long, value_name = "ID")]
        server_id: Option<u32>,
    },
}

/// `wal …`.
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Archive one WAL file (PostgreSQL's `archive_command`, run in the data
    /// directory): compressed, encrypted, durable before it returns 0.
    /// Pushing the same file again succeeds; a different file under an
    /// archived name fails. Then it starts `wal push-ahead` for the files
    /// waiting behind it, so the server's next pushes return at once
    /// (`LIFEBOAT_WAL_PUSH_AHEAD`: how many, default 8; 0 turns it off).
    Push {
        /// The file (`%p`).
        path: PathBuf,
        /// The cluster's data directory (default: the current directory).
        #[arg(long, env = "PGDATA", value_name = "DIR")]
        pgdata: Option<PathBuf>,
    },
    /// Archive the WAL files waiting in `pg_wal/archive_status` (`.ready`)
    /// before the server asks, and record each in `pg_wal/lifeboat-pushed`
    /// once durable: `wal push` acknowledges a recorded file (same bytes,
    /// same repository) without opening the repository. `wal push` starts
    /// this by itself.
    PushAhead {
        /// The cluster's data directory (default: the current directory).
        #[arg(long, env = "PGDATA", value_name = "DIR")]
        pgdata: Option<PathBuf>,
        /// A file not to archive (the one `wal push` just did). Repeatable.
        #[arg(long, value_name = "NAME")]
        skip: Vec<String>,
        /// At most this many files.
        #[arg(long, default_value_t = 8)]
        max: usize,
    },
    /// Write one archived WAL file where PostgreSQL asks (its
    /// `restore_command`). Exit 1 when the archive does not have it.
    Fetch {
        /// The WAL file's name (`%f`).
        name: String,
        /// Where to write it (`%p`).
        dest: PathBuf,
        /// The cluster's data directory (default: the current directory).
        #[arg(long, env = "PGDATA", value_name = "DIR")]
        pgdata: Option<PathBuf>,
    },
    /// Fetch WAL segments ahead into the data directory's prefetch spool
    /// (`pg_wal/lifeboat-prefetch`), where `wal fetch` takes them: `wal
    /// fetch` starts this for the segments after the one it serves, so
    /// replay is not bound by one fetch at a time.
    Prefetch {
        /// WAL file names.
        #[arg(required = true)]
        names: Vec<String>,
        /// The cluster's data directory (default: the current directory).
        #[arg(long, env = "PGDATA", value_name = "DIR")]
        pgdata: Option<PathBuf>,
    },
    /// Receive WAL as the server writes it (`pg_receivewal` through a
    /// replication slot) and make it durable in the repository at least
    /// every second: a primary crash loses about a second of commits (none
    /// with --synchronous, once `synchronous_standby_names` includes
    /// `lifeboat`). Runs until interrupted; reconnects by itself.
    Stream {
        /// The server: `postgres://USER@HOST:PORT/` (a replication connection).
        #[arg(long, value_name = "URL")]
        source: String,
        /// The physical replication slot to use (created if missing).
        #[arg(long, default_value = "lifeboat")]
        slot: String,
        /// Act as a synchronous standby: flush and report every write at once.
        #[arg(long)]
        synchronous: bool,
        /// Where WAL is received before it is uploaded (default:
        /// ~/.local/state/lifeboat/wal-stream/SLOT).
        #[arg(long, value_name = "DIR")]
        spool: Option<PathBuf>,
    },
    /// Find gaps and missing timeline history in the WAL archive, and print
    /// the contiguous ranges per timeline. Exit 1 on any gap.
    Verify {
        /// Only this cluster's archive (its data directory).
        #[arg(long, value_name = "DIR")]
        pgdata: Option<PathBuf>,
    },
}

/// Where a new password comes from.
#[derive(Debug, Args)]
pub struct NewPasswordArgs {
    /// Read the new password from this file (instead of LIFEBOAT_NEW_PASSWORD_FILE).
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Instead of a password, generate a random 256-bit secret into FILE
    /// (created 0600; an existing file is refused). Such a key opens in
    /// microseconds rather than Argon2's ~0.25 s, as `archive_command`
    /// and `restore_command` (one process per WAL file) want: give FILE as
    /// their LIFEBOAT_PASSWORD_FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "new_password_file")]
    pub generate: Option<PathBuf>,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to work (created; a previous demo there is replaced).
    #[arg(long, default_value = "lifeboat-demo")]
    pub dir: PathBuf,
    /// Size of the generated data in MiB.
    #[arg(long, default_value_t = 300, value_name = "MIB")]
    pub size: u64,
}
