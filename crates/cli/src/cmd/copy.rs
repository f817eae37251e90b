//! `lifeboat copy`: snapshots, and the WAL or binary logs that continue
//! them, copied into another repository — the plan's region (`--to dr`,
//! each component that replicates there, each copy recorded in the ledger
//! with the point it leaves there) or any repository (`--to-repo`).
//! The engine is `lifeboat_repo::copy`: re-encrypted for the destination,
//! deduplicated against it, resumable after a kill, verified.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use lifeboat_ledger::Outcome;
use lifeboat_plan::{Component, Plan};
use lifeboat_repo::copy::{self, CopyReport, LogCopy};
use lifeboat_repo::progress::Progress;
use lifeboat_repo::{Id, IndexedRepository, Snapshot, SnapshotFilter};
use serde_json::json;

use crate::args::CopyArgs;
use crate::cmd::plan::{ledger, load};
use crate::cmd::{region, Ctx};
use crate::exit;
use crate::UsageError;

pub fn run(ctx: &Ctx, a: CopyArgs) -> Result<u8> {
    crate::interrupt::set_note(
        "interrupted; no partial snapshot was written, the next copy goes on from what was sent",
    );
    match (&a.to, &a.to_repo) {
        (Some(to), _) => plan_copy(ctx, to, &a.components),
        (None, Some(loc)) => repo_copy(ctx, loc, &a),
        (None, None) => Err(UsageError(
            "say where to copy: --to REGION (a region of the plan) or --to-repo LOCATION".into(),
        )
        .into()),
    }
}

/// One component's (or one repository's) copy: snapshots, then logs.
struct Copied {
    snapshots: CopyReport,
    logs: LogCopy,
    /// The newest snapshot now in the destination, and its time.
    newest: Option<(Id, jiff::Timestamp)>,
}

/// Copies `chosen` (oldest first) and the logs that continue them.
fn copy_all(
    ctx: &Ctx,
    src: &IndexedRepository,
    dst: &mut IndexedRepository,
    chosen: &[(Id, Snapshot)],
) -> Result<Copied> {
    let bar = ctx.out.bar("copy");
    let snapshots = copy::copy_snapshots(src, dst, chosen, &bar)?;
    let prefixes: BTreeSet<String> = chosen
        .iter()
        .filter_map(|(_, s)| lifeboat_sources::log_prefix(s))
        .collect();
    let mut logs = LogCopy::default();
    if !prefixes.is_empty() {
        bar.phase("logs");
        let wanted = |name: &str| prefixes.iter().any(|p| name.starts_with(p.as_str()));
        logs = copy::copy_logs(src, dst, &wanted, &bar)?;
        if logs.copied > 0 {
            lifeboat_sources::partial::tidy(dst)?;
        }
    }
    drop(bar);
    Ok(Copied {
        snapshots,
        logs,
        newest: chosen.last().map(|(id, s)| (*id, s.time)),
    })
}

/// The document of one copy.
fn doc_of(c: &Copied) -> serde_json::Value {
    let r = &c.snapshots;
    json!({
        "snapshots_copied": r.copied.len(),
        "snapshots_present": r.present.len(),
        "copied": r.copied.iter().map(|(s, d)| json!({"source": s, "copy": d})).collect::<Vec<_>>(),
        "blobs_copied": r.blobs_copied,
        "bytes_copied": r.bytes_copied,
        "blobs_present": r.blobs_present,
        "reidentified": r.reidentified,
        "logs_copied": c.logs.copied,
        "log_bytes_copied": c.logs.bytes,
        "logs_present": c.logs.present,
        "newest_snapshot": c.newest.map(|(id, _)| id),
        "newest_time": c.newest.map(|(_, t)| t),
    })
}

/// One line for a human.
fn words(what: &str, to: &str, c: &Copied) -> String {
    let r = &c.snapshots;
    let mut s = format!(
        "{what}: {} copied to {to} ({} sent, {} already there)",
        crate::ui::count(r.copied.len() as u64, "snapshot"),
        crate::ui::bytes(r.bytes_copied),
        crate::ui::count(r.blobs_present, "blob"),
    );
    if !r.present.is_empty() {
        s += &format!(", {} there before", r.present.len());
    }
    if c.logs.copied + c.logs.present > 0 {
        s += &format!(
            "; {} copied, {} there before",
            crate::ui::count(c.logs.copied, "log piece"),
            c.logs.present
        );
    }
    if r.reidentified {
        s += " (re-identified: the destination names blobs differently; `init --plan` creates regions that copy blob for blob)";
    }
    s
}

fn plan_copy(ctx: &Ctx, to: &str, names: &[String]) -> Result<u8> {
    let (plan, path) = load(ctx)?;
    let ledger = ledger(&plan, &path)?;
    if !plan.regions.contains_key(to) {
        let known: Vec<&str> = plan.regions.keys().map(String::as_str).collect();
        return Err(UsageError(format!(
            "the plan has no region {to:?} (it has {})",
            known.join(", ")
        ))
        .into());
    }
    let components = chosen(&plan, to, names)?;
    let results = into_region(ctx, &plan, &ledger, to, &components)?;
    let problems = crate::cmd::failures(&results, "component", "error: ");
    let failed = problems.len();
    ctx.out
        .outcome(&json!({ "copies": results }), &problems, || {
            if results.is_empty() {
                format!("no component replicates to {to} (replicate_to)\n")
            } else {
                format!(
                    "{} to {to}, {failed} failed; recorded in the ledger\n",
                    crate::ui::count(results.len() as u64, "component copied")
                )
            }
        })?;
    Ok(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

/// Copies `components` from their regions into region `to`, each copy
/// recorded in the ledger (with the point it leaves in `to`) and told on
/// stdout unless --json or --quiet; each one's document, with `ok`.
pub fn into_region(
    ctx: &Ctx,
    plan: &Plan,
    ledger: &lifeboat_ledger::Ledger,
    to: &str,
    components: &[&Component],
) -> Result<Vec<serde_json::Value>> {
    if components.is_empty() {
        return Ok(vec![]);
    }
    // The destination opens once; if it cannot, every copy fails with why.
    let mut dst = region::open(plan, to).and_then(|r| Ok(r.load_index()?));
    if let Ok(d) = &dst {
        crate::interrupt::watch_store(d.store());
    }
    let mut sources: HashMap<String, IndexedRepository> = HashMap::new();
    let mut results = vec![];
    for c in components {
        let id = ledger.start(&c.name, "copy", to)?;
        let done = match &mut dst {
            Ok(dst) => copy_component(ctx, plan, c, &mut sources, dst),
            Err(e) => Err(anyhow::anyhow!("region {to}: {e:#}")),
        };
        let (outcome, mut doc) = match &done {
            Ok(copied) => (
                Outcome {
                    ok: true,
                    bytes: Some(copied.snapshots.bytes_copied + copied.logs.bytes),
                    snapshot: copied.newest.map(|(id, _)| id.to_hex()),
                    error: None,
                    point: copied.newest.map(|(_, t)| t.as_microsecond() as f64 / 1e6),
                },
                doc_of(copied),
            ),
            Err(e) => (
                Outcome {
                    ok: false,
                    error: Some(format!("{e:#}")),
                    ..Outcome::default()
                },
                json!({ "error": format!("{e:#}") }),
            ),
        };
        ledger.finish(id, &outcome)?;
        doc["component"] = json!(c.name);
        doc["from"] = json!(c.region);
        doc["to"] = json!(to);
        doc["ok"] = json!(outcome.ok);
        doc["run_id"] = json!(id);
        if let (Ok(copied), false) = (&done, ctx.global.json || ctx.global.quiet) {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", words(&c.name, to, copied));
            }
        }
        results.push(doc);
    }
    Ok(results)
}

/// The components `names` names (each must replicate to `to`), or every
/// one that does.
fn chosen<'p>(plan: &'p Plan, to: &str, names: &[String]) -> Result<Vec<&'p Component>> {
    if names.is_empty() {
        return Ok(plan
            .components
            .iter()
            .filter(|c| c.replicate_to.iter().any(|r| r == to))
            .collect());
    }
    names
        .iter()
        .map(|n| {
            let c = crate::cmd::plan::component(plan, n)?;
            if c.region == to {
                return Err(UsageError(format!(
                    "{n} is backed up into {to}: copy it to another region"
                ))
                .into());
            }
            Ok(c)
        })
        .collect()
}

/// One component's snapshots (tagged `component=NAME`) from its region
/// into `dst`.
fn copy_component(
    ctx: &Ctx,
    plan: &Plan,
    c: &Component,
    sources: &mut HashMap<String, IndexedRepository>,
    dst: &mut IndexedRepository,
) -> Result<Copied> {
    if !sources.contains_key(&c.region) {
        let repo = region::open(plan, &c.region)
            .and_then(|r| Ok(r.load_index()?))
            .map_err(|e| anyhow::anyhow!("region {}: {e:#}", c.region))?;
        sources.insert(c.region.clone(), repo);
    }
    let src = &sources[&c.region];
    let filter = SnapshotFilter {
        tags: vec![vec![format!("component={}", c.name)]],
        ..SnapshotFilter::default()
    };
    let chosen = matching(src, &filter)?;
    copy_all(ctx, src, dst, &chosen)
}

/// The snapshots of `repo` that `filter` admits, oldest first.
fn matching(repo: &IndexedRepository, filter: &SnapshotFilter) -> Result<Vec<(Id, Snapshot)>> {
    let (mut all, damaged) = repo.snapshots()?;
    for e in damaged {
        tracing::warn!("{e}");
    }
    all.retain(|(_, s)| filter.matches(s));
    all.sort_by_key(|(_, s)| s.time);
    Ok(all)
}

fn repo_copy(ctx: &Ctx, to: &str, a: &CopyArgs) -> Result<u8> {
    let dst_store: std::sync::Arc<dyn lifeboat_store::WriteStore> =
        std::sync::Arc::from(lifeboat_store::open(to)?);
    crate::interrupt::watch_store(&dst_store);
    let pw = crate::secrets::read(
        "LIFEBOAT_TO_PASSWORD",
        crate::secrets::Given {
            file: a.to_password_file.as_deref(),
            command: a.to_password_command.as_deref(),
        },
        "destination repository password",
        false,
    )?;
    let mut dst = lifeboat_repo::Repository::open(dst_store, pw.bytes())?.load_index()?;
    let src = ctx.open_indexed()?;
    if src.config().id == dst.config().id {
        return Err(UsageError(format!(
            "{} and {} are the same repository",
            src.location(),
            dst.location()
        ))
        .into());
    }
    let mut chosen = matching(&src, &a.filter.filter())?;
    if !a.components.is_empty() {
        let wanted: Vec<Id> = a
            .components
            .iter()
            .map(|s| Ok(src.find_snapshot(s, &a.filter.filter())?.0))
            .collect::<Result<_>>()?;
        chosen.retain(|(id, _)| wanted.contains(id));
    }
    let copied = copy_all(ctx, &src, &mut dst, &chosen)?;
    let mut doc = doc_of(&copied);
    doc["from"] = json!(src.location());
    doc["to"] = json!(dst.location());
    ctx.out.print(&doc, || {
        words(&src.location(), &dst.location(), &copied) + "\n"
    })?;
    Ok(exit::SUCCESS)
}
