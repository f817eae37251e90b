//! `lifeboat init`.

use anyhow::Result;
use lifeboat_repo::{InitOptions, RepoError, Repository};
use serde_json::json;

use crate::args::InitArgs;
use crate::cmd::{region, Ctx};
use crate::exit;

pub fn run(ctx: &Ctx, a: InitArgs) -> Result<u8> {
    let opts = InitOptions {
        compression: a.compression,
        pack_size: a.pack_size.saturating_mul(1 << 20),
        kdf: super::kdf_params(),
        ..InitOptions::default()
    };
    if a.plan {
        return init_plan(ctx, opts);
    }
    let store = ctx.store()?;
    let pw = ctx.password(true)?;
    let repo = Repository::init(store, pw.bytes(), opts)?;
    let doc = json!({ "id": repo.config().id, "location": repo.location(), "version": repo.config().version });
    ctx.out.outcome(&doc, &[], || {
        format!(
            "created lifeboat repository {} at {}\n\nKeep the password safe: without it the data cannot be recovered.\n",
            repo.config().id,
            repo.location()
        )
    })?;
    Ok(exit::SUCCESS)
}

/// `init --plan`: each region without a repository created, naming blobs
/// as the first region that has one.
fn init_plan(ctx: &Ctx, opts: InitOptions) -> Result<u8> {
    let (plan, _) = crate::cmd::plan::load(ctx)?;
    let mut order: Vec<&str> = vec![];
    let homes = plan.components.iter().map(|c| c.region.as_str());
    for name in homes.chain(plan.regions.keys().map(String::as_str)) {
        if !order.contains(&name) {
            order.push(name);
        }
    }
    let mut first: Option<(String, Repository)> = None;
    let mut rows = vec![];
    let mut lines = String::new();
    for name in order {
        let store = region::store(&plan, name)?;
        let pw = region::password(&plan, name)?;
        let (repo, created) = match Repository::open(store.clone(), pw.bytes()) {
            Ok(r) => (r, false),
            Err(RepoError::NotARepository { .. }) => {
                let r = match &first {
                    Some((_, like)) => {
                        Repository::init_like(store, pw.bytes(), opts.clone(), like)?
                    }
                    None => Repository::init(store, pw.bytes(), opts.clone())?,
                };
                (r, true)
            }
            Err(e) => return Err(anyhow::anyhow!("region {name}: {e}")),
        };
        let same = first
            .as_ref()
            .is_none_or(|(_, f)| f.key().same_ids(repo.key()));
        lines += &match (created, &first) {
            (true, Some((f, _))) => format!("region {name}: created at {} (blob ids as in {f})\n", repo.location()),
            (true, None) => format!("region {name}: created at {}\n", repo.location()),
            (false, Some((f, _))) if !same => format!(
                "region {name}: exists at {}; it names blobs differently from {f}, so copies between them re-identify every blob\n",
                repo.location()
            ),
            (false, _) => format!("region {name}: exists at {}\n", repo.location()),
        };
        rows.push(json!({
            "region": name,
            "location": repo.location(),
            "id": repo.config().id,
            "created": created,
            "same_ids_as_first": same,
        }));
        if first.is_none() {
            first = Some((name.to_string(), repo));
        }
    }
    ctx.out.outcome(&json!({ "regions": rows }), &[], || {
        lines + "\nKeep each region's password safe: without it its data cannot be recovered.\n"
    })?;
    Ok(exit::SUCCESS)
}
