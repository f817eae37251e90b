//! `lifeboat version`, `completions` and `man`: what the program says about
//! itself, generated from the clap definitions so it never drifts.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use serde_json::json;

use crate::args::Cli;
use crate::cmd::Ctx;
use crate::exit;

pub fn version(ctx: &Ctx) -> Result<u8> {
    let doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "repository_format": lifeboat_repo::repository::FORMAT_VERSION,
        "index_version": lifeboat_repo::index::INDEX_VERSION,
        "snapshot_version": lifeboat_repo::snapshot::SNAPSHOT_VERSION,
        "tree_version": lifeboat_repo::tree::TREE_VERSION,
    });
    ctx.out.print(&doc, || {
        format!(
            "lifeboat {} (repository format {}, index {}, snapshot {}, tree {})\n",
            env!("CARGO_PKG_VERSION"),
            doc["repository_format"],
            doc["index_version"],
            doc["snapshot_version"],
            doc["tree_version"],
        )
    })?;
    Ok(exit::SUCCESS)
}

pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "lifeboat", &mut std::io::stdout());
    Ok(exit::SUCCESS)
}

pub fn man(ctx: &Ctx, dir: &Path) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cmd = Cli::command();
    let mut written = vec![];
    let mut page = |c: &clap::Command, name: String| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        let spoken = name.replace('-', " ");
        clap_mangen::Man::new(c.clone().display_name(name.clone()).bin_name(spoken))
            .title(name.clone())
            .render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    page(&cmd, "lifeboat".into())?;
    for sub in cmd.get_subcommands() {
        page(sub, format!("lifeboat-{}", sub.get_name()))?;
        for subsub in sub.get_subcommands() {
            page(
                subsub,
                format!("lifeboat-{}-{}", sub.get_name(), subsub.get_name()),
            )?;
        }
    }
    ctx.out.print(&json!({ "written": written }), || {
        format!("wrote {} man pages to {}\n", written.len(), dir.display())
    })?;
    Ok(exit::SUCCESS)
}
