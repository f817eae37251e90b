//! Helpers: a repository in a temp dir, the binary with a test password,
//! and a full-metadata manifest of a directory tree.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
}

impl Env {
    /// A fresh directory with an initialised repository.
    pub fn new() -> Env {
        let env = Env::empty();
        env.ok(&["init"]);
        env
    }

    /// A fresh directory, no repository yet.
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary with repository and password set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("lifeboat").unwrap();
        c.env("LIFEBOAT_REPOSITORY", &self.repo)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("LIFEBOAT_INSECURE_FAST_KDF", "1")
            .env_remove("LIFEBOAT_PASSWORD_FILE")
            .env_remove("LIFEBOAT_CRASH_AT")
            .env("TZ", "UTC");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and asserts exit code 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(code(&out), 0, "lifeboat {args:?} failed:\n{}", text(&out));
        out
    }

    /// Runs with --json, asserts the exit code, returns the document.
    pub fn json(&self, args: &[&str], want: i32) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        assert_eq!(code(&out), want, "lifeboat {a:?}:\n{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of {a:?} is not one JSON document ({e}):\n{}",
                text(&out)
            )
        })
    }

    /// Backs up `paths` and returns the snapshot id.
    pub fn backup(&self, paths: &[&Path]) -> String {
        let mut a = vec!["backup".to_string()];
        a.extend(paths.iter().map(|p| p.display().to_string()));
        let v = self.json(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0);
        v["snapshot_id"].as_str().unwrap().to_string()
    }

    pub fn snapshot_ids(&self) -> Vec<String> {
        let v = self.json(&["snapshots"], 0);
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Files of the repository of one kind (`data`, `index`, `snapshots` …).
    pub fn objects(&self, kind: &str) -> Vec<PathBuf> {
        let mut out = vec![];
        walk_files(&self.repo.join(kind), &mut out);
        out.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
        out.sort();
        out
    }
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything restore must bring back about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub size: u64,
    pub content: String,
    /// For a hard-linked file: the first path (in sorted order) sharing its inode.
    pub link_group: Option<PathBuf>,
    /// Extended attributes (name, value), sorted.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub type Manifest = BTreeMap<PathBuf, Entry>;

/// Describes every entry under `root` (relative paths), including root's children only.
pub fn manifest(root: &Path) -> Manifest {
    let mut m = Manifest::new();
    let mut inodes: HashMap<u64, PathBuf> = HashMap::new();
    let mut paths = vec![];
    collect(root, root, &mut paths);
    paths.sort();
    for rel in paths {
        let p = root.join(&rel);
        let meta = fs::symlink_metadata(&p).unwrap();
        let ft = meta.file_type();
        let (kind, content) = if ft.is_dir() {
            ('d', String::new())
        } else if ft.is_symlink() {
            ('l', fs::read_link(&p).unwrap().display().to_string())
        } else if !ft.is_file() {
            ('s', String::new()) // fifo, socket, device: never opened
        } else {
            (
                'f',
                blake3::hash(&fs::read(&p).unwrap()).to_hex().to_string(),
            )
        };
        let link_group = (kind == 'f' && meta.nlink() > 1).then(|| {
            inodes
                .entry(meta.ino())
                .or_insert_with(|| rel.clone())
                .clone()
        });
        m.insert(
            rel,
            Entry {
                kind,
                mode: if kind == 'l' { 0 } else { meta.mode() & 0o7777 },
                uid: meta.uid(),
                gid: meta.gid(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                size: if kind == 'f' { meta.len() } else { 0 },
                content,
                link_group,
                xattrs: xattrs(&p),
            },
        );
    }
    m
}

/// The extended attributes of the entry at `p` (a symlink's own), sorted.
pub fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 64 << 10];
    // SAFETY: valid path, buffer valid for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {}", p.display());
    names.truncate(n as usize);
    let mut out = vec![];
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 64 << 10];
        // SAFETY: as above.
        let n = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(n >= 0, "lgetxattr {}", p.display());
        v.truncate(n as usize);
        out.push((name.to_vec(), v));
    }
    out.sort();
    out
}

/// Sets an extended attribute on `p` (following symlinks).
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid path and name, value valid for its length.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        out.push(p.strip_prefix(root).unwrap().to_path_buf());
        if e.file_type().unwrap().is_dir() {
            collect(root, &p, out);
        }
    }
}

/// Asserts two manifests are equal, naming the first difference.
pub fn assert_same(expected: &Manifest, got: &Manifest) {
    for (p, e) in expected {
        match got.get(p) {
            None => panic!("{} is missing after restore", p.display()),
            Some(g) => assert_eq!(e, g, "{} differs after restore", p.display()),
        }
    }
    for p in got.keys() {
        assert!(
            expected.contains_key(p),
            "{} appeared after restore",
            p.display()
        );
    }
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Sets a file's mtime (ns precision) without following symlinks.
pub fn set_mtime(p: &Path, ns: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64);
    let f = fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| fs::File::open(p))
        .unwrap();
    f.set_modified(t).unwrap();
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Where a restore of a whole snapshot into `target` puts the backed-up
/// path `src`: paths keep their absolute place below the target.
pub fn under(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
