//! `lifeboat key list|add|remove|passwd`.

use anyhow::Result;
use serde_json::json;

use crate::args::KeyCommand;
use crate::cmd::{kdf_params, Ctx};
use crate::{exit, secrets};

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<u8> {
    let repo = ctx.open()?;
    let new_pw = |file: Option<&std::path::Path>| {
        let given = secrets::Given {
            file,
            command: None,
        };
        secrets::read("LIFEBOAT_NEW_PASSWORD", given, "new password", true)
    };
    match cmd {
        KeyCommand::List => {
            let (keys, bad) = repo.keys()?;
            for e in &bad {
                tracing::warn!("{e}");
            }
            ctx.out.print(&keys, || {
                let rows: Vec<[String; 4]> = keys
                    .iter()
                    .map(|k| {
                        [
                            if k.current { "*" } else { "" }.to_string(),
                            k.id.short(),
                            k.created.clone(),
                            k.created_by.clone(),
                        ]
                    })
                    .collect();
                crate::ui::table(["", "ID", "CREATED", "BY"], &rows, &[])
            })?;
            if !bad.is_empty() {
                return Ok(exit::FAILURE);
            }
        }
        KeyCommand::Add(a) => {
            let pw = new_pw(a.new_password_file.as_deref())?;
            let id = repo.add_key(pw.bytes(), kdf_params())?;
            ctx.out.outcome(&json!({ "added": id }), &[], || {
                format!("added key {}\n", id.short())
            })?;
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            ctx.out.outcome(&json!({ "removed": removed }), &[], || {
                format!("removed key {}\n", removed.short())
            })?;
        }
        KeyCommand::Passwd(a) => {
            let pw = new_pw(a.new_password_file.as_deref())?;
            let id = repo.change_password(pw.bytes(), kdf_params())?;
            ctx.out.outcome(&json!({ "new_key": id }), &[], || {
                format!("password changed; the key is now {}\n", id.short())
            })?;
        }
    }
    Ok(exit::SUCCESS)
}
