//! `lifeboat restore`.

use anyhow::Result;
use lifeboat_repo::browse;
use lifeboat_repo::restorer::{self, RestoreOptions};
use serde_json::json;

use crate::args::RestoreArgs;
use crate::cmd::Ctx;
use crate::{exit, ui};
use lifeboat_sources::mariadb::{self, pitr::BinlogTarget};
use lifeboat_sources::postgres::physical::{self, RecoveryTarget};

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<u8> {
    crate::interrupt::set_note(
        "interrupted; the restore is incomplete: run it again with --overwrite into the same target, or into an empty one",
    );
    let repo = ctx.open_indexed()?;
    if let Some((id, snap, goal)) = binlog_recovery(&repo, &a)? {
        return database(ctx, &repo, &id, &snap, &a, Some(goal));
    }
    if let Some(goal) = recovery_target(&a)? {
        return physical(ctx, &repo, &a, goal);
    }
    // `SNAPSHOT:/dir`: the directory's content straight into the target.
    let (spec, inside) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (a.snapshot.as_str(), None),
    };
    let (id, mut snap) = repo.find_snapshot(spec, &a.filter.filter())?;
    if let Some(p) = inside.filter(|p| !p.trim_matches('/').is_empty()) {
        let node = browse::find_node(&repo, &snap, &id.short(), p)?;
        snap.tree = node.subtree.ok_or_else(|| {
            crate::UsageError(format!(
                "{p:?} in snapshot {} is not a directory; restore it with --include {p}",
                id.short()
            ))
        })?;
    }
    if lifeboat_sources::postgres::physical::PhysicalMeta::of(&snap).is_some() {
        return physical(ctx, &repo, &a, RecoveryTarget::Latest);
    }
    let command = lifeboat_sources::command::CommandMeta::of(&snap);
    if a.restore_command.is_some() || (a.target.is_none() && command.is_some()) {
        return command_restore(ctx, &repo, &id, &snap, &a);
    }
    if a.delta {
        return Err(crate::UsageError(format!(
            "--delta rewrites a PostgreSQL data directory; snapshot {} is not a physical backup (for files, --overwrite replaces what differs)",
            id.short()
        ))
        .into());
    }
    let physical_mariadb = mariadb::MariadbMeta::of(&snap).is_some_and(|m| m.mode == "physical");
    if a.validate_only
        || physical_mariadb
        || a.target
            .as_deref()
            .and_then(|t| t.to_str())
            .is_some_and(lifeboat_sources::is_url)
    {
        return database(ctx, &repo, &id, &snap, &a, None);
    }
    let target = a.target.clone().ok_or_else(|| {
        crate::UsageError(
            "give --target DIR (or, for a database backup, --target URL or --validate-only)".into(),
        )
    })?;
    let opts = RestoreOptions {
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        overwrite: a.overwrite,
        dry_run: a.dry_run,
        verify: a.verify,
    };
    let bar = ctx.out.bar("restore");
    let start = std::time::Instant::now();
    let summary = restorer::restore(&repo, &snap, &target, &opts, &bar)?;
    drop(bar);
    let secs = start.elapsed().as_secs_f64();
    let doc = json!({ "snapshot_id": id, "target": target, "duration_seconds": secs, "summary": summary });
    let problems = ui::listed(
        summary
            .problems
            .iter()
            // Under the target, so the target itself is never an empty name.
            .map(|p| format!("error: {}: {}", target.join(&p.path).display(), p.message))
            .collect(),
        |n| format!("{n} path(s) could not be restored whole (listed above)"),
    );
    ctx.out.outcome(&doc, &problems, || {
        let what = format!(
            "{}, {}, {}, {}",
            ui::count(summary.files, "file"),
            ui::count(summary.dirs, "dir"),
            ui::count(summary.symlinks, "symlink"),
            ui::bytes(summary.bytes),
        );
        if summary.dry_run {
            let in_way = match (summary.conflicts, a.overwrite) {
                (0, _) => "nothing in the target is in the way".to_string(),
                (n, true) => format!(
                    "{} would be replaced",
                    ui::count(n as u64, "existing entry")
                ),
                (n, false) => format!(
                    "{} in the way: the restore would refuse without --overwrite",
                    ui::count(n as u64, "existing entry")
                ),
            };
            return format!(
                "dry run: restoring snapshot {} to {} would write {what}; {in_way}\n",
                id.short(),
                target.display(),
            );
        }
        let verified = if a.verify {
            format!(
                "; {} read back and identical",
                ui::count(summary.verified, "file")
            )
        } else {
            String::new()
        };
        format!(
            "restored snapshot {} to {}: {what} in {secs:.1}s{verified}\n",
            id.short(),
            target.display(),
        )
    })?;
    Ok(if summary.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// A command backup's stream given to its restore command.
fn command_restore(
    ctx: &Ctx,
    repo: &lifeboat_repo::IndexedRepository,
    id: &lifeboat_repo::Id,
    snap: &lifeboat_repo::Snapshot,
    a: &RestoreArgs,
) -> Result<u8> {
    let start = std::time::Instant::now();
    let done =
        lifeboat_sources::command::restore(repo, snap, &id.short(), a.restore_command.as_deref())?;
    let secs = start.elapsed().as_secs_f64();
    let doc = json!({
        "snapshot_id": id,
        "restore_command": done.restore_command,
        "bytes": done.bytes,
        "duration_seconds": secs,
    });
    ctx.out.outcome(&doc, &[], || {
        format!(
            "gave {} of snapshot {} to the restore command; it exited 0 ({secs:.1}s)\n",
            ui::bytes(done.bytes),
            id.short()
        )
    })?;
    Ok(exit::SUCCESS)
}

/// A database backup restored into a server (`--target URL`) or validated
/// (`--validate-only`); both end by comparing row counts with the backup's.
fn database(
    ctx: &Ctx,
    repo: &lifeboat_repo::IndexedRepository,
    id: &lifeboat_repo::Id,
    snap: &lifeboat_repo::Snapshot,
    a: &RestoreArgs,
    goal: Option<BinlogTarget>,
) -> Result<u8> {
    use lifeboat_sources::postgres;
    let start = std::time::Instant::now();
    let short = id.short();
    let target = a.target.as_deref().and_then(|t| t.to_str());
    let restored = if let Some((what, restore)) = lifeboat_sources::restorer_of(snap) {
        let is_mariadb = mariadb::MariadbMeta::of(snap).is_some();
        if a.database.is_some() || (a.table.is_some() && !is_mariadb) {
            return Err(crate::UsageError(format!(
                "snapshot {short} is {what}: it is restored whole (--database is for PostgreSQL dumps, --table for PostgreSQL and MariaDB dumps)"
            ))
            .into());
        }
        if is_mariadb {
            mariadb::restore_to(
                repo,
                snap,
                &short,
                target,
                a.overwrite,
                goal,
                a.table.as_deref(),
            )?
        } else {
            restore(repo, snap, &short, target, a.overwrite)?
        }
    } else {
        match target {
            None => postgres::validate(
                repo,
                snap,
                &short,
                a.database.as_deref(),
                a.table.as_deref(),
            )?,
            Some(url) => {
                crate::interrupt::set_note(
                "interrupted; the target database was not touched (a staging database lifeboat_restore_… may be left: the next restore into the same name drops it)",
            );
                let target = lifeboat_sources::ConnUrl::parse(url, postgres::SCHEMES)?;
                let opts = postgres::RestoreOptions {
                    overwrite: a.overwrite,
                    database: a.database.clone(),
                    table: a.table.clone(),
                    no_owner: a.no_owner,
                };
                if target.dbname.is_none() && a.database.is_none() {
                    return cluster(ctx, repo, id, snap, &target, &opts);
                }
                postgres::restore(repo, snap, &short, &target, &opts)?
            }
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let bad = restored.mismatches();
    let ok = bad.is_empty();
    // A Redis snapshot is counted in keys per database.
    let (part, unit) = if lifeboat_sources::redis::RedisMeta::of(snap).is_some() {
        ("database", "keys")
    } else {
        ("table", "rows")
    };
    let doc = json!({
        "snapshot_id": id,
        "validate_only": a.validate_only,
        "target": restored.target,
        "counts_match": ok,
        "tables": restored.tables,
        "rows": restored.rows,
        "replaced": restored.replaced,
        "replayed": restored.replayed,
        "duration_seconds": secs,
    });
    let problems: Vec<String> = bad
        .iter()
        .map(|t| match t.found {
            Some(n) => format!(
                "error: {}: {n} {unit}, the backup recorded {}",
                t.table, t.recorded
            ),
            None => format!(
                "error: {}: missing, the backup recorded {} {unit}",
                t.table, t.recorded
            ),
        })
        .collect();
    ctx.out.outcome(&doc, &problems, || {
        let counts = format!(
            "{} of {} match the counts recorded at backup ({} {unit})",
            ui::count((restored.tables.len() - bad.len()) as u64, part),
            restored.tables.len(),
            restored.rows
        );
        let physical = mariadb::MariadbMeta::of(snap).is_some_and(|m| m.mode == "physical");
        match &restored.target {
            None if physical => format!(
                "snapshot {short} is readable and complete (every chunk of the mariadb-backup archive checked); nothing was restored\n"
            ),
            Some(t) if physical => format!(
                "restored snapshot {short} into {t} and prepared it (mariadb-backup --prepare) in {secs:.1}s: it is consistent at the backup's point; start the server on it (mariadbd --datadir={t}, owned by the server's user)\n"
            ),
            None => format!(
                "snapshot {short} is readable and complete: {counts}; nothing was restored\n"
            ),
            Some(t) => format!(
                "restored snapshot {short} into {t}{} in {secs:.1}s: {counts}\n{}",
                if restored.replaced {
                    ", replacing the database that was there"
                } else {
                    ""
                },
                match &restored.replayed {
                    Some(r) => match (&r.last, &r.last_time) {
                        (Some(g), Some(at)) => format!(
                            "then replayed the archived binary logs through {}, up to GTID {g} (committed {at})\n",
                            ui::count(r.transactions, "transaction")
                        ),
                        _ => "the archived binary logs hold no transaction to replay after the backup\n".into(),
                    },
                    None => String::new(),
                }
            ),
        }
    })?;
    Ok(if ok { exit::SUCCESS } else { exit::FAILURE })
}

/// A point-in-time restore of a MariaDB backup (`--time`, `--gtid` or
/// `--latest` with a `mariadb://` target): the snapshot (with `latest`,
/// the newest whose consistent point precedes the goal) and the goal.
fn binlog_recovery(
    repo: &lifeboat_repo::IndexedRepository,
    a: &RestoreArgs,
) -> Result<Option<(lifeboat_repo::Id, lifeboat_repo::Snapshot, BinlogTarget)>> {
    let usage = |m: String| anyhow::Error::from(crate::UsageError(m));
    let to_mariadb = a
        .target
        .as_deref()
        .and_then(|t| t.to_str())
        .is_some_and(|t| {
            mariadb::SCHEMES
                .iter()
                .any(|s| t.starts_with(&format!("{s}://")))
        });
    let goal = if let Some(g) = &a.gtid {
        BinlogTarget::Gtid(g.parse().map_err(usage)?)
    } else if let Some(t) = a.time.as_deref().filter(|_| to_mariadb) {
        let ts = parse_time(t).ok_or_else(|| {
            usage(format!("--time {t:?}: use an instant with its zone, like 2026-12-02 14:05:00+00 or 2026-12-02T14:05:00Z"))
        })?;
        if ts.subsec_nanosecond() != 0 {
            return Err(usage(format!(
                "--time {t:?}: binary logs keep whole seconds; give a time without a fraction (or --gtid for one exact transaction)"
            )));
        }
        BinlogTarget::Time(ts.as_second())
    } else if a.latest && to_mariadb {
        BinlogTarget::Latest
    } else {
        return Ok(None);
    };
    if !to_mariadb {
        return Err(usage(
            "--gtid replays MariaDB binary logs: give the new database as --target mariadb://USER@HOST:PORT/NEWDB".into(),
        ));
    }
    if a.lsn.is_some()
        || a.xid.is_some()
        || a.restore_point.is_some()
        || a.immediate
        || a.timeline.is_some()
        || a.delta
    {
        return Err(usage(
            "--lsn, --xid, --name, --immediate, --timeline and --delta are for PostgreSQL physical backups".into(),
        ));
    }
    let filter = a.filter.filter();
    let (id, snap) = if a.snapshot == "latest" {
        let (all, _) = repo.snapshots()?;
        let candidates = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
        mariadb::pitr::choose(candidates, goal)?
    } else {
        repo.find_snapshot(&a.snapshot, &filter)?
    };
    Ok(Some((id, snap, goal)))
}

/// The recovery target the options ask for, if any.
fn recovery_target(a: &RestoreArgs) -> Result<Option<RecoveryTarget>> {
    let usage = |m: String| anyhow::Error::from(crate::UsageError(m));
    Ok(Some(if let Some(t) = &a.time {
        RecoveryTarget::Time(parse_time(t).ok_or_else(|| {
            usage(format!("--time {t:?}: use an instant with its zone, like 2026-12-02 14:05:00+00 or 2026-12-02T14:05:00Z"))
        })?)
    } else if let Some(l) = &a.lsn {
        RecoveryTarget::Lsn(
            physical::parse_lsn(l)
                .ok_or_else(|| usage(format!("--lsn {l:?}: use the X/Y form, like 0/3000060")))?,
        )
    } else if let Some(x) = &a.xid {
        RecoveryTarget::Xid(x.clone())
    } else if let Some(n) = &a.restore_point {
        RecoveryTarget::Name(n.clone())
    } else if a.immediate {
        RecoveryTarget::Immediate
    } else if a.latest {
        RecoveryTarget::Latest
    } else {
        return Ok(None);
    }))
}

/// An instant with its zone: RFC 3339, or PostgreSQL's `YYYY-MM-DD HH:MM:SS[.f]+ZZ`.
fn parse_time(t: &str) -> Option<jiff::Timestamp> {
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    let t = t.trim();
    let t = if t.len() > 3
        && (t.as_bytes()[t.len() - 3] == b'+' || t.as_bytes()[t.len() - 3] == b'-')
    {
        format!("{t}:00")
    } else {
        t.to_string()
    };
    t.replacen(' ', "T", 1).parse::<jiff::Timestamp>().ok()
}

/// A physical backup restored into a new data directory, with recovery to
/// `goal` configured; with `latest` and a target, the base backup is chosen.
fn physical(
    ctx: &Ctx,
    repo: &lifeboat_repo::IndexedRepository,
    a: &RestoreArgs,
    goal: RecoveryTarget,
) -> Result<u8> {
    let target = a
        .target
        .clone()
        .ok_or_else(|| crate::UsageError("give --target DIR, the new data directory".into()))?;
    let (id, snap) = if a.snapshot == "latest" {
        let (all, _) = repo.snapshots()?;
        let filter = a.filter.filter();
        physical::choose(
            all.into_iter().filter(|(_, s)| filter.matches(s)).collect(),
            &goal,
        )?
    } else {
        let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
        // The one named must reach the goal too.
        physical::choose(vec![(id, snap)], &goal)?
    };
    let meta = physical::PhysicalMeta::of(&snap).ok_or_else(|| {
        crate::UsageError(format!(
            "snapshot {} is not a PostgreSQL physical backup",
            id.short()
        ))
    })?;
    physical::check_reachable(repo, &meta, &goal, a.timeline.as_deref())?;
    let password_file = ctx
        .global
        .password_file
        .clone()
        .or_else(|| std::env::var_os("LIFEBOAT_PASSWORD_FILE").map(Into::into))
        .ok_or_else(|| {
            crate::UsageError(
                "a point-in-time restore writes a restore_command that runs `lifeboat wal fetch`: give the repository's password as --password-file (or LIFEBOAT_PASSWORD_FILE), a file the server's user can read".into(),
            )
        })?;
    let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let repository = ctx.global.repo.clone().unwrap_or_default();
    let fetch = physical::FetchCommand {
        program: std::env::current_exe()?,
        repository: abs(std::path::Path::new(&repository)).display().to_string(),
        password_file: abs(&password_file),
    };
    crate::interrupt::set_note(if a.delta {
        "interrupted; the data directory is partly rewritten: run the same restore with --delta again"
    } else {
        "interrupted; the data directory is incomplete: remove it and restore again"
    });
    let start = std::time::Instant::now();
    let done = physical::restore(
        repo,
        &snap,
        &id.short(),
        &target,
        &goal,
        a.timeline.as_deref(),
        &fetch,
        a.delta,
    )?;
    let secs = start.elapsed().as_secs_f64();
    let doc = json!({
        "snapshot_id": id,
        "target": done.target,
        "start_lsn": meta.start_lsn,
        "stop_lsn": meta.stop_lsn,
        "timeline": meta.timeline,
        "recovery_settings": done.settings,
        "bytes": done.bytes,
        "delta": done.delta,
        "duration_seconds": secs,
    });
    ctx.out.outcome(&doc, &[], || {
        let how = match &done.delta {
            Some(d) => format!(
                " in place ({} of {} rewritten, {} already right, {} removed)",
                ui::bytes(d.bytes_written),
                ui::bytes(d.bytes),
                ui::bytes(d.bytes_unchanged),
                ui::count(d.removed, "stray path")
            ),
            None => String::new(),
        };
        format!(
            "restored base backup {} (consistent at {}, timeline {}) into {}{how} in {secs:.1}s; recovery is configured:\n{}\nstart the server on it to recover\n",
            id.short(),
            meta.stop_lsn,
            meta.timeline,
            done.target.display(),
            done.settings.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n")
        )
    })?;
    Ok(exit::SUCCESS)
}

/// A backup of every database restored onto a server: the globals, then
/// each database under its own name, each validated.
fn cluster(
    ctx: &Ctx,
    repo: &lifeboat_repo::IndexedRepository,
    id: &lifeboat_repo::Id,
    snap: &lifeboat_repo::Snapshot,
    server: &lifeboat_sources::ConnUrl,
    opts: &lifeboat_sources::postgres::RestoreOptions,
) -> Result<u8> {
    let start = std::time::Instant::now();
    let (done, notes) =
        lifeboat_sources::postgres::restore_cluster(repo, snap, &id.short(), server, opts)?;
    let secs = start.elapsed().as_secs_f64();
    let doc = json!({ "snapshot_id": id, "server": server.to_string(), "databases": done, "globals_errors": notes, "duration_seconds": secs });
    let problems: Vec<String> = notes.iter().map(|n| format!("warning: {n}")).collect();
    ctx.out.outcome(&doc, &problems, || {
        let mut t = String::new();
        for r in &done {
            t += &format!(
                "restored {}: {} tables, {} rows, counts match the backup\n",
                r.target.as_deref().unwrap_or(""),
                r.tables.len(),
                r.rows
            );
        }
        t += &format!(
            "restored snapshot {} ({} databases and the globals) in {secs:.1}s\n",
            id.short(),
            done.len()
        );
        t
    })?;
    Ok(exit::SUCCESS)
}
