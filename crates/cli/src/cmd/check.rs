//! `lifeboat check`.

use anyhow::Result;
use lifeboat_repo::check::{self, CheckOptions, Subset};

use crate::args::CheckArgs;
use crate::cmd::Ctx;
use crate::{exit, ui, UsageError};

pub fn run(ctx: &Ctx, a: CheckArgs) -> Result<u8> {
    let read_data = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => Some(s.parse::<Subset>().map_err(UsageError)?),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    let repo = ctx.open()?;
    let bar = ctx.out.bar("check");
    let report = check::check(repo, CheckOptions { read_data }, &bar)?;
    drop(bar);
    let mut problems: Vec<String> = report
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .chain(report.errors.iter().map(|e| format!("error: {e}")))
        .collect();
    if !report.is_ok() {
        problems.push("the repository has errors (listed above)".into());
    }
    ctx.out.outcome(&report, &problems, || {
        let mut t = format!(
            "checked {}, {}, {} ({}){}\n",
            ui::count(report.snapshots as u64, "snapshot"),
            ui::count(report.trees as u64, "tree"),
            ui::count(report.packs as u64, "pack"),
            ui::count(report.blobs as u64, "blob"),
            if read_data.is_some() {
                format!(
                    ", read {} ({})",
                    ui::count(report.packs_read as u64, "pack"),
                    ui::bytes(report.bytes_read)
                )
            } else {
                String::new()
            }
        );
        if report.is_ok() {
            t += "no errors were found\n";
        }
        t
    })?;
    Ok(if report.is_ok() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
