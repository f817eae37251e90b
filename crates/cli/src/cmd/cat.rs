//! `lifeboat cat`: one repository object, decrypted, for debugging.

use std::io::Write;

use anyhow::Result;
use lifeboat_repo::{Id, Repository};
use lifeboat_store::Kind;

use crate::args::CatKind;
use crate::cmd::Ctx;
use crate::{exit, UsageError};

/// The one object of `kind` whose name starts with `prefix`.
fn resolve(repo: &Repository, kind: Kind, prefix: &str) -> Result<(String, u64)> {
    let found: Vec<_> = repo
        .store()
        .list(kind)?
        .into_iter()
        .filter(|o| o.name.starts_with(prefix))
        .collect();
    match found.as_slice() {
        [one] => Ok((one.name.clone(), one.size)),
        [] => Err(UsageError(format!("no {kind} object matches {prefix:?}")).into()),
        _ => Err(UsageError(format!("{prefix:?} matches {} {kind} objects", found.len())).into()),
    }
}

fn blob_id(repo: &lifeboat_repo::IndexedRepository, prefix: &str) -> Result<Id> {
    if let Ok(id) = prefix.parse::<Id>() {
        return Ok(id);
    }
    let found: Vec<Id> = repo
        .index()
        .blobs()
        .map(|(id, _)| *id)
        .filter(|id| id.to_hex().starts_with(prefix))
        .take(2)
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(UsageError(format!("no blob in the index matches {prefix:?}")).into()),
        _ => Err(UsageError(format!("{prefix:?} matches several blobs")).into()),
    }
}

pub fn run(ctx: &Ctx, kind: CatKind, id: Option<&str>) -> Result<u8> {
    let need = || {
        id.ok_or_else(|| {
            UsageError(format!("cat {kind:?}: give an id (or a unique prefix)").to_lowercase())
        })
    };
    let repo = ctx.open()?;
    let doc: serde_json::Value = match kind {
        CatKind::Config => serde_json::to_value(repo.config())?,
        CatKind::Key => {
            let (name, _) = resolve(&repo, Kind::Key, need()?)?;
            serde_json::from_slice(&repo.store().get(Kind::Key, &name)?)
                .map_err(|e| anyhow::anyhow!("key {name} is damaged: {e}"))?
        }
        CatKind::Snapshot => {
            let (id, s) = repo.find_snapshot(need()?, &Default::default())?;
            serde_json::json!({ "id": id, "snapshot": s })
        }
        CatKind::Index => {
            let (name, _) = resolve(&repo, Kind::Index, need()?)?;
            repo.load_json(Kind::Index, &name)?
        }
        CatKind::Pack => {
            let (name, size) = resolve(&repo, Kind::Pack, need()?)?;
            serde_json::to_value(repo.read_pack_header(&name, size)?)?
        }
        CatKind::Tree | CatKind::Blob => {
            let repo = repo.load_index()?;
            let id = blob_id(&repo, need()?)?;
            if let CatKind::Tree = kind {
                serde_json::to_value(repo.load_tree(&id)?)?
            } else {
                let bytes = repo.read_blob(&id)?;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()?;
                return Ok(exit::SUCCESS);
            }
        }
    };
    ctx.out.print(&doc, || {
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    })?;
    Ok(exit::SUCCESS)
}
