//! A store that reads from another and writes nowhere: what `--dry-run`
//! runs on, so a dry run takes exactly the code path of the real run and
//! cannot change the repository by construction.

use std::fmt;
use std::sync::Arc;

use crate::{Kind, ObjectInfo, ReadStore, Result, StagedObject, WriteStore};

/// Reads pass through to the inner store; writes and deletions are
/// accepted and dropped.
pub struct DryRunStore {
    inner: Arc<dyn WriteStore>,
}

impl DryRunStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn WriteStore>) -> DryRunStore {
        DryRunStore { inner }
    }
}

impl fmt::Debug for DryRunStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DryRunStore({})", self.inner.location())
    }
}

impl ReadStore for DryRunStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.inner.get_range(kind, name, offset, length)
    }
    fn get_range_into(
        &self,
        kind: Kind,
        name: &str,
        offset: u64,
        length: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.get_range_into(kind, name, offset, length, buf)
    }
    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        self.inner.list(kind)
    }
    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        self.inner.exists(kind, name)
    }
    fn size(&self, kind: Kind, name: &str) -> Result<u64> {
        self.inner.size(kind, name)
    }
}

/// A staged object that only counts what it was given.
struct Discard(u64);

impl StagedObject for Discard {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.0 += data.len() as u64;
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0
    }
    fn finish(self: Box<Self>, name: &str) -> Result<()> {
        crate::validate_name(name)
    }
}

impl WriteStore for DryRunStore {
    fn put(&self, _kind: Kind, name: &str, _data: &[u8]) -> Result<()> {
        crate::validate_name(name)
    }
    fn stage(&self, _kind: Kind) -> Result<Box<dyn StagedObject>> {
        Ok(Box::new(Discard(0)))
    }
    fn delete(&self, _kind: Kind, _name: &str) -> Result<()> {
        Ok(())
    }
    fn create(&self) -> Result<()> {
        Ok(())
    }
    fn as_read(&self) -> &dyn ReadStore {
        self
    }
    fn temporaries(&self, older_than: std::time::Duration) -> Result<crate::Temporaries> {
        self.inner.temporaries(older_than)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalStore;

    #[test]
    fn reads_pass_through_and_writes_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = Arc::new(LocalStore::new(dir.path().to_path_buf()));
        local.create().expect("create");
        local.put(Kind::Index, "aa", b"real").expect("put");
        let dry = DryRunStore::new(local.clone());
        assert_eq!(dry.get(Kind::Index, "aa").expect("get"), b"real");
        dry.put(Kind::Index, "bb", b"x").expect("put");
        dry.delete(Kind::Index, "aa").expect("delete");
        let mut staged = dry.stage(Kind::Pack).expect("stage");
        staged.write(b"12345").expect("write");
        assert_eq!(staged.size(), 5);
        staged.finish("cc").expect("finish");
        let names: Vec<String> = local
            .list(Kind::Index)
            .expect("list")
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, vec!["aa".to_string()]);
        assert!(local.list(Kind::Pack).expect("list").is_empty());
    }
}
