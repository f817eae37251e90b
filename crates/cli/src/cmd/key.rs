//! `lifeboat key list|add|remove|passwd`.

use anyhow::Result;
use serde_json::json;

use lifeboat_repo::crypto::KdfParams;
use lifeboat_repo::Id;

use crate::args::{KeyCommand, NewPasswordArgs};
use crate::cmd::{kdf_params, Ctx};
use crate::{exit, secrets};

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<u8> {
    let repo = ctx.open()?;
    match cmd {
        KeyCommand::List => {
            let (keys, bad) = repo.keys()?;
            for e in &bad {
                tracing::warn!("{e}");
            }
            ctx.out.print(&keys, || {
                let rows: Vec<[String; 5]> = keys
                    .iter()
                    .map(|k| {
                        [
                            if k.current { "*" } else { "" }.to_string(),
                            k.id.short(),
                            k.created.clone(),
                            k.created_by.clone(),
                            format!(
                                "argon2id {} KiB × {}",
                                k.params.memory_kib, k.params.iterations
                            ),
                        ]
                    })
                    .collect();
                crate::ui::table(["", "ID", "CREATED", "BY", "KDF"], &rows, &[])
            })?;
            if !bad.is_empty() {
                return Ok(exit::FAILURE);
            }
        }
        KeyCommand::Add(a) => {
            let id = new_key(&a, |secret, kdf| repo.add_key(secret, kdf))?;
            ctx.out.outcome(
                &json!({ "added": id, "secret_file": a.generate }),
                &[],
                || {
                    let to = a.generate.as_ref().map_or(String::new(), |f| {
                        format!(" for the secret in {}", f.display())
                    });
                    format!("added key {}{to}\n", id.short())
                },
            )?;
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            ctx.out.outcome(&json!({ "removed": removed }), &[], || {
                format!("removed key {}\n", removed.short())
            })?;
        }
        KeyCommand::Passwd(a) => {
            let id = new_key(&a, |secret, kdf| repo.change_password(secret, kdf))?;
            ctx.out.outcome(&json!({ "new_key": id }), &[], || {
                format!("password changed; the key is now {}\n", id.short())
            })?;
        }
    }
    Ok(exit::SUCCESS)
}

/// Makes a key with `make` for the new password `a` names, or for a
/// generated secret (`--generate FILE`, minimal KDF cost).
fn new_key(
    a: &NewPasswordArgs,
    make: impl FnOnce(&[u8], KdfParams) -> lifeboat_repo::Result<Id>,
) -> Result<Id> {
    if let Some(file) = &a.generate {
        return with_generated(file, |secret| make(secret, KdfParams::GENERATED_SECRET));
    }
    let given = secrets::Given {
        file: a.new_password_file.as_deref(),
        command: None,
    };
    let pw = secrets::read("LIFEBOAT_NEW_PASSWORD", given, "new password", true)?;
    Ok(make(pw.bytes(), kdf_params())?)
}

/// Writes a new random secret (64 hex digits) to `file`, created 0600 and
/// synced, then hands it to `add`, which makes the key; if that fails, the
/// file is removed again (a secret no key knows is only confusing).
fn with_generated(
    file: &std::path::Path,
    add: impl FnOnce(&[u8]) -> lifeboat_repo::Result<Id>,
) -> Result<Id> {
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = secrets::Secret::new(hex::encode(raw).into_bytes());
    raw.fill(0);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
                "it exists (a generated secret never replaces a file)".to_string()
            } else {
                e.to_string()
            };
            crate::UsageError(format!("cannot create {}: {why}", file.display()))
        })?;
    let written = f
        .write_all(secret.bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all());
    drop(f);
    let added = written
        .map_err(|e| anyhow::anyhow!("write {}: {e}", file.display()))
        .and_then(|()| Ok(add(secret.bytes())?));
    if added.is_err() {
        let _ = std::fs::remove_file(file);
    }
    added
}
