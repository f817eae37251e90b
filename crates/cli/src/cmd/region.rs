//! The plan's regions opened in this process: a region's store and its
//! password from the source the plan names (`password_file`,
//! `password_command`, `password_env`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use lifeboat_plan::{PasswordSource, Plan};
use lifeboat_repo::Repository;
use lifeboat_store::WriteStore;

use crate::secrets::{self, Secret};
use crate::UsageError;

/// The store of region `name`.
pub fn store(plan: &Plan, name: &str) -> Result<Arc<dyn WriteStore>> {
    let r = plan
        .regions
        .get(name)
        .ok_or_else(|| UsageError(format!("region {name:?} is not in the plan")))?;
    Ok(Arc::from(lifeboat_store::open(&r.repository)?))
}

/// The password of region `name`, from where the plan says it is.
pub fn password(plan: &Plan, name: &str) -> Result<Secret> {
    let r = plan
        .regions
        .get(name)
        .ok_or_else(|| UsageError(format!("region {name:?} is not in the plan")))?;
    let what = format!("password of region {name}");
    match &r.password {
        PasswordSource::File(f) => secrets::read(
            "LIFEBOAT_UNUSED_PASSWORD",
            secrets::Given {
                file: Some(Path::new(f)),
                command: None,
            },
            &what,
            false,
        ),
        PasswordSource::Command(c) => secrets::read(
            "LIFEBOAT_UNUSED_PASSWORD",
            secrets::Given {
                file: None,
                command: Some(c),
            },
            &what,
            false,
        ),
        PasswordSource::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v.into_bytes())),
            Ok(_) => Err(UsageError(format!("${var} ({what}) is empty")).into()),
            Err(_) => Err(UsageError(format!("${var} ({what}) is not set")).into()),
        },
    }
}

/// Region `name`'s repository, unlocked.
pub fn open(plan: &Plan, name: &str) -> Result<Repository> {
    let store = store(plan, name)?;
    let pw = password(plan, name)?;
    Ok(Repository::open(store, pw.bytes())?)
}
