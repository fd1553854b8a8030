//! The API key, read again from its file when the file changes. The kubelet replaces a mounted
//! Secret's files when the Secret changes, so rotating the key in the Secret reaches the operator
//! within the kubelet's sync period, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::SystemTime;

use crate::ivy::redacted::ApiKey;

/// The key to send, and where to read a newer one.
pub(crate) struct KeyCell {
    file: Option<PathBuf>,
    current: RwLock<(Option<FileStamp>, ApiKey)>,
}

/// What tells a changed file from the same one: a replaced file has a new inode, and
/// modification times alone can repeat within the clock's granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl KeyCell {
    pub(crate) fn new(key: ApiKey, file: Option<PathBuf>) -> Self {
        let stamp = file.as_deref().and_then(file_stamp);
        Self {
            file,
            current: RwLock::new((stamp, key)),
        }
    }

    /// The key to send now. A file that cannot be read, or reads empty, keeps the last key.
    pub(crate) fn current(&self) -> ApiKey {
        if let Some(path) = &self.file {
            let modified = file_stamp(path);
            let stale = modified.is_some() && self.read().0 != modified;
            if stale
                && let Ok(text) = std::fs::read_to_string(path)
                && !text.trim().is_empty()
            {
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                *current = (modified, ApiKey::new(text.trim()));
                tracing::info!(file = %path.display(), "read the changed Ivy API key file");
            }
        }
        self.read().1.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, (Option<FileStamp>, ApiKey)> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(dir: &Path, file: &Path, content: &str) {
        let tmp = dir.join(".key.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, file).unwrap();
    }

    #[test]
    fn a_replaced_file_is_read_and_an_empty_one_keeps_the_last_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api-key");
        std::fs::write(&file, "first\n").unwrap();
        let cell = KeyCell::new(ApiKey::new("first"), Some(file.clone()));
        assert_eq!(cell.current().expose(), "first");
        replace(dir.path(), &file, "second\n");
        assert_eq!(cell.current().expose(), "second");
        replace(dir.path(), &file, "  \n");
        assert_eq!(cell.current().expose(), "second");
    }

    #[test]
    fn without_a_file_the_configured_key_is_used() {
        let cell = KeyCell::new(ApiKey::new("only"), None);
        assert_eq!(cell.current().expose(), "only");
    }
}
