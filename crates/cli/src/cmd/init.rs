//! `lifeboat init`.

use anyhow::Result;
use lifeboat_repo::{InitOptions, Repository};
use serde_json::json;

use crate::args::InitArgs;
use crate::cmd::Ctx;
use crate::exit;

pub fn run(ctx: &Ctx, a: InitArgs) -> Result<u8> {
    let store = ctx.store()?;
    let pw = ctx.password(true)?;
    let opts = InitOptions {
        compression: a.compression,
        pack_size: a.pack_size.saturating_mul(1 << 20),
        kdf: super::kdf_params(),
        ..InitOptions::default()
    };
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
