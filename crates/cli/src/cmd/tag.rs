//! `lifeboat tag`.

use anyhow::Result;
use lifeboat_repo::tag::{self, TagChange};

use crate::args::TagArgs;
use crate::cmd::{split_list, Ctx};
use crate::{exit, UsageError};

pub fn run(ctx: &Ctx, a: TagArgs) -> Result<u8> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        return Err(UsageError("nothing to do: give --add, --remove or --set".into()).into());
    }
    let change = TagChange {
        set: (!a.set.is_empty()).then(|| split_list(&a.set)),
        add: split_list(&a.add),
        remove: split_list(&a.remove),
    };
    let repo = ctx.open()?;
    let filter = a.filter.filter();
    let chosen = if a.snapshots.is_empty() {
        let (all, bad) = repo.snapshots()?;
        if let Some(e) = bad.into_iter().next() {
            return Err(e.into());
        }
        all.into_iter().filter(|(_, s)| filter.matches(s)).collect()
    } else {
        let mut v = vec![];
        for s in &a.snapshots {
            v.push(repo.find_snapshot(s, &filter)?);
        }
        v
    };
    let changed = tag::retag(&repo, &chosen, &change)?;
    ctx.out.outcome(&changed, &[], || {
        let mut t = String::new();
        for c in &changed {
            t += &format!(
                "snapshot {} is now {} with tags [{}]\n",
                c.old.short(),
                c.new.short(),
                c.tags.join(", ")
            );
        }
        t + &format!(
            "{} of {} changed\n",
            crate::ui::count(changed.len() as u64, "snapshot"),
            chosen.len()
        )
    })?;
    Ok(exit::SUCCESS)
}
