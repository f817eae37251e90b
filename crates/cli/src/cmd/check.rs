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
    ctx.out.print(&report, || {
        let mut t = String::new();
        for w in &report.warnings {
            t += &format!("warning: {w}\n");
        }
        for e in &report.errors {
            t += &format!("error: {e}\n");
        }
        t += &format!(
            "checked {} snapshots, {} trees, {} packs ({} blobs){}\n",
            report.snapshots,
            report.trees,
            report.packs,
            report.blobs,
            if read_data.is_some() {
                format!(
                    ", read {} packs ({})",
                    report.packs_read,
                    ui::bytes(report.bytes_read)
                )
            } else {
                String::new()
            }
        );
        t += if report.is_ok() {
            "no errors were found\n"
        } else {
            "the repository has errors (listed above)\n"
        };
        t
    })?;
    Ok(if report.is_ok() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
