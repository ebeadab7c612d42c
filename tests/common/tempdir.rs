//! A per-test temporary directory, unique per process, removed on drop, unless the test panicked or
//! `CGWD_KEEP_TEST_FILES` is set: then it is kept for a post-mortem and its path printed.

use std::path::PathBuf;

pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/cgwd-<tag>-<pid>`, emptied first.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cgwd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CGWD_KEEP_TEST_FILES").is_some() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
