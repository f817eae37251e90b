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
            let keys = repo.keys()?;
            ctx.out.print(&keys, || {
                let mut s = format!("{:<3}{:<10} {:<26} {}\n", "", "ID", "CREATED", "BY");
                for k in &keys {
                    s += &format!(
                        "{:<3}{:<10} {:<26} {}\n",
                        if k.current { "*" } else { "" },
                        &k.id[..8],
                        k.created,
                        k.created_by
                    );
                }
                s
            })?;
        }
        KeyCommand::Add(a) => {
            let pw = new_pw(a.new_password_file.as_deref())?;
            let id = repo.add_key(pw.bytes(), kdf_params())?;
            ctx.out.outcome(&json!({ "added": id }), &[], || {
                format!("added key {}\n", &id[..8])
            })?;
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            ctx.out.outcome(&json!({ "removed": removed }), &[], || {
                format!("removed key {}\n", &removed[..8])
            })?;
        }
        KeyCommand::Passwd(a) => {
            let pw = new_pw(a.new_password_file.as_deref())?;
            let id = repo.change_password(pw.bytes(), kdf_params())?;
            ctx.out.outcome(&json!({ "new_key": id }), &[], || {
                format!("password changed; the key is now {}\n", &id[..8])
            })?;
        }
    }
    Ok(exit::SUCCESS)
}
