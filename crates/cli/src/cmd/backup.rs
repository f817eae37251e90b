//! `lifeboat backup`.

use anyhow::Result;
use std::path::PathBuf;

use lifeboat_repo::archiver::{self, BackupOptions, BackupSource, Warning};
use lifeboat_repo::excludes::ExcludeOptions;
use serde::Serialize;

use crate::args::BackupArgs;
use crate::cmd::{parse_size, Ctx};
use crate::{exit, ui};

/// The backup summary, as `--json` prints it.
#[derive(Serialize)]
struct BackupJson<'a> {
    /// Nothing was written (`--dry-run`): the id is the one the snapshot
    /// would have had.
    dry_run: bool,
    snapshot_id: String,
    short_id: String,
    /// The snapshot's time: the point it recovers to.
    time: jiff::Timestamp,
    parent: Option<String>,
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    dirs: u64,
    bytes_read: u64,
    bytes_total: u64,
    bytes_added: u64,
    bytes_stored: u64,
    data_blobs: u64,
    tree_blobs: u64,
    duration_seconds: f64,
    warnings: &'a [Warning],
}

pub fn run(ctx: &Ctx, a: BackupArgs) -> Result<u8> {
    crate::interrupt::set_note(
        "interrupted; nothing was saved, the next backup reuses what was uploaded",
    );
    let mut repo = ctx.open_indexed()?;
    if a.dry_run {
        repo = repo.dry_run();
    }
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_files {
        patterns.extend(archiver::read_list_file(f, "exclude file")?);
    }
    let excludes = ExcludeOptions {
        patterns,
        ipatterns: a.iexcludes.clone(),
        if_present: a.exclude_if_present.clone(),
        caches: a.exclude_caches,
        larger_than: a
            .exclude_larger_than
            .as_deref()
            .map(parse_size)
            .transpose()?,
        one_file_system: a.one_file_system,
    };
    let mut paths = a.paths.clone();
    for f in &a.files_from {
        paths.extend(
            archiver::read_list_file(f, "files-from file")?
                .into_iter()
                .map(PathBuf::from),
        );
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p, &Default::default())?.0),
        None => None,
    };
    let opts = BackupOptions {
        host: a.host.clone(),
        // `--tag a,b` adds two tags, as `--tag a --tag b`.
        tags: crate::cmd::split_list(&a.tags),
        excludes,
        parent,
        no_parent: false,
        read_all: a.force,
        source_meta: None,
        with_atime: a.with_atime,
        allow_empty: a.allow_empty,
    };
    let stdin_name = || a.stdin_name.clone().unwrap_or_else(|| "stdin".into());
    let url = a.source.clone().or_else(|| {
        a.source_command
            .as_ref()
            .map(|c| format!("{}{c}", lifeboat_sources::command::PREFIX))
    });
    let is_command = url
        .as_deref()
        .is_some_and(|u| u.starts_with(lifeboat_sources::command::PREFIX));
    if a.restore_command.is_some() && !is_command {
        return Err(crate::UsageError(
            "--restore-command goes with a command source (--source-command CMD)".into(),
        )
        .into());
    }
    let source = if let Some(url) = &url {
        let source = lifeboat_sources::open(
            url,
            lifeboat_sources::SourceOptions {
                physical: a.physical,
                stream_name: a.stdin_name.clone(),
                restore_command: a.restore_command.clone(),
            },
        )?;
        BackupSource::Streams(source.backup()?)
    } else if a.stdin {
        // `pg_dump | lifeboat backup --stdin`: the pipe widened as for the
        // producers lifeboat runs itself.
        lifeboat_sources::producer::widen_pipe(&std::io::stdin());
        BackupSource::stream(stdin_name(), std::io::stdin())
    } else if a.stdin_from_command {
        BackupSource::stream(stdin_name(), command_output(&a.paths)?)
    } else {
        BackupSource::Paths(paths)
    };
    let bar = ctx.out.bar("backup");
    let outcome = archiver::backup(&mut repo, source, &opts, &bar)?;
    drop(bar);
    let s = outcome.snapshot.summary.clone().unwrap_or_default();
    let doc = BackupJson {
        dry_run: a.dry_run,
        snapshot_id: outcome.id.to_hex(),
        short_id: outcome.id.short(),
        time: outcome.snapshot.time,
        parent: outcome.snapshot.parent.map(|p| p.to_hex()),
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        dirs: s.dirs,
        bytes_read: s.bytes_read,
        bytes_total: s.bytes_total,
        bytes_added: s.bytes_added,
        bytes_stored: s.bytes_stored,
        data_blobs: s.data_blobs,
        tree_blobs: s.tree_blobs,
        duration_seconds: s.duration_seconds,
        warnings: &outcome.warnings,
    };
    let problems = ui::listed(
        outcome
            .warnings
            .iter()
            .map(|w| format!("warning: {}: {}", w.path.display(), w.message))
            .collect(),
        |n| {
            format!("{} could not be backed up whole (listed above); the snapshot was saved without what is missing", ui::count(n as u64, "entry"))
        },
    );
    ctx.out.outcome(&doc, &problems, || {
        let mut t = String::new();
        let rate = s.bytes_read as f64 / s.duration_seconds.max(1e-3);
        t += &format!(
            "Files:     {} new, {} changed, {} unmodified\nDirs:      {}\nAdded:     {} ({} stored)\nProcessed: {} in {:.1}s, read {} ({}/s)\n{}\n",
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            s.dirs,
            ui::bytes(s.bytes_added),
            ui::bytes(s.bytes_stored),
            ui::bytes(s.bytes_total),
            s.duration_seconds,
            ui::bytes(s.bytes_read),
            ui::bytes(rate as u64),
            if a.dry_run {
                "dry run: nothing was written; a backup now would add what is shown".to_string()
            } else {
                format!("snapshot {} saved", outcome.id.short())
            }
        );
        t
    })?;
    Ok(if outcome.warnings.is_empty() {
        exit::SUCCESS
    } else {
        exit::PARTIAL
    })
}

/// The producer `--stdin-from-command` runs: its stderr goes to ours; an
/// exit status other than 0, or a signal, fails the backup.
fn command_output(argv: &[PathBuf]) -> Result<lifeboat_sources::producer::Producer> {
    let (program, args) = argv.split_first().ok_or_else(|| {
        crate::UsageError("--stdin-from-command needs the command after `--`".into())
    })?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    // Only the program's name in errors: its arguments may hold secrets.
    let name = program.display().to_string();
    lifeboat_sources::producer::Producer::spawn(cmd, &name, "--stdin-from-command", false)
        .map_err(|e| crate::UsageError(e.to_string()).into())
}
