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
    let (file, command, var) = match &r.password {
        PasswordSource::File(f) => (Some(Path::new(f)), None, None),
        PasswordSource::Command(c) => (None, Some(c.as_str()), None),
        PasswordSource::Env(v) => (None, None, Some(v.as_str())),
    };
    secrets::from_source(secrets::Given { file, command }, var, &what)
}

/// Region `name`'s repository, unlocked.
pub fn open(plan: &Plan, name: &str) -> Result<Repository> {
    let store = store(plan, name)?;
    let pw = password(plan, name)?;
    Ok(Repository::open(store, pw.bytes())?)
}
