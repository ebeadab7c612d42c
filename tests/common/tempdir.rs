//! A per-test temporary directory, unique per process, removed on drop (also when the test fails,
//! unless it panicked: then it is kept for a post-mortem and its path printed).

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
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
