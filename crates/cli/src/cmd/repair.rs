//! `lifeboat repair index` and `lifeboat repair snapshots`.

use anyhow::Result;
use lifeboat_repo::repair::{self, RepairIndexOptions, RepairSnapshotsOptions};

use crate::args::RepairCommand;
use crate::cmd::Ctx;
use crate::exit;

pub fn run(ctx: &Ctx, c: RepairCommand) -> Result<u8> {
    match c {
        RepairCommand::Index {
            read_all_packs,
            dry_run,
        } => index(
            ctx,
            RepairIndexOptions {
                read_all_packs,
                dry_run,
            },
        ),
        RepairCommand::Snapshots {
            snapshots,
            forget,
            dry_run,
        } => snapshots_cmd(ctx, &snapshots, RepairSnapshotsOptions { forget, dry_run }),
    }
}

fn index(ctx: &Ctx, opts: RepairIndexOptions) -> Result<u8> {
    let repo = ctx.open()?;
    let bar = ctx.out.bar("repair index");
    let r = repair::repair_index(&repo, opts, &bar)?;
    drop(bar);
    let problems: Vec<String> = r
        .packs_damaged
        .iter()
        .map(|p| format!("error: pack {p} is damaged: its header cannot be read, so its blobs stay unindexed (run `lifeboat repair snapshots`)"))
        .collect();
    ctx.out.outcome(&r, &problems, || {
        let verb = if r.dry_run { "would write" } else { "wrote" };
        format!(
            "repair index{}: {} packs ({} headers read, {} damaged); {} intact and {} damaged index objects; {verb} {} index object(s) naming {} blobs, replacing {}\n",
            if r.dry_run { " (dry run)" } else { "" },
            r.packs,
            r.headers_read,
            r.packs_damaged.len(),
            r.index_objects_intact,
            r.index_objects_damaged.len(),
            r.index_objects_written,
            r.blobs,
            r.index_objects_removed,
        )
    })?;
    Ok(if r.packs_damaged.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

fn snapshots_cmd(ctx: &Ctx, args: &[String], opts: RepairSnapshotsOptions) -> Result<u8> {
    let repo = ctx.open_indexed()?;
    let mut only = vec![];
    for a in args {
        only.push(repo.find_snapshot(a, &Default::default())?.0);
    }
    let bar = ctx.out.bar("repair snapshots");
    let r = repair::repair_snapshots(&repo, &only, &opts, &bar)?;
    drop(bar);
    let problems: Vec<String> = r
        .unreadable
        .iter()
        .map(|e| format!("error: {e} (nothing to repair from: `lifeboat forget` it by id)"))
        .collect();
    ctx.out.outcome(&r, &problems, || {
        let mut t = String::new();
        for s in &r.repaired {
            let into = match s.repaired {
                Some(id) => format!("repaired as {}", id.short()),
                None => "would be repaired".into(),
            };
            t += &format!(
                "snapshot {} {into}; lost {} path(s):\n",
                s.original.short(),
                s.lost.len()
            );
            for l in s.lost.iter().take(20) {
                t += &format!("  {l}\n");
            }
            if s.lost.len() > 20 {
                t += &format!("  … and {} more (see --json)\n", s.lost.len() - 20);
            }
        }
        t += &format!(
            "repair snapshots{}: {} snapshots looked at, {} referenced lost data{}\n",
            if r.dry_run { " (dry run)" } else { "" },
            r.snapshots,
            r.repaired.len(),
            if r.forgotten > 0 {
                format!(", {} originals forgotten", r.forgotten)
            } else {
                String::new()
            }
        );
        t
    })?;
    Ok(if r.unreadable.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
