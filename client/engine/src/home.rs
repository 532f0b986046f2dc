//! The state directory: `$COVE_HOME`, or the platform's data directory.
//!
//! It holds two files: `keystore.cove` (secret keys, sealed with the
//! passphrase) and `device.db` (documents, outbox and sync state, every value
//! sealed with the storage key from the keystore), and, while `cove ui`
//! waits for a browser, `ui-open.html`. It is created readable by its owner
//! only.

use std::path::{Path, PathBuf};

/// File name of the keystore.
pub const KEYSTORE: &str = "keystore.cove";
/// File name of the local database.
pub const DATABASE: &str = "device.db";
/// File name of the page that opens `cove ui` in a browser (owner-only; it
/// holds a one-time token while `cove ui` waits for the browser).
pub const UI_LAUNCHER: &str = "ui-open.html";

/// Where a device keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$COVE_HOME` if set, else `<platform data directory>/cove`.
    pub fn from_env() -> Option<Self> {
        if let Some(dir) = std::env::var_os("COVE_HOME").filter(|d| !d.is_empty()) {
            return Some(Self::at(dir));
        }
        platform_data_dir().map(|d| Self::at(d.join("cove")))
    }

    /// A state directory at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The keystore file.
    pub fn keystore(&self) -> PathBuf {
        self.root.join(KEYSTORE)
    }

    /// The local database file.
    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE)
    }

    /// Whether a device lives here.
    pub fn exists(&self) -> bool {
        self.keystore().exists()
    }

    /// Creates the directory, readable by its owner only.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// Removes the device's files (not the directory itself, which may be
    /// shared with other things), and returns what was removed. The
    /// keystore is overwritten first: on most file systems that replaces
    /// its blocks, though a copy-on-write file system or a flash drive may
    /// keep the old ones, which the passphrase still protects.
    pub fn wipe(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut names: Vec<String> =
            [KEYSTORE, DATABASE, "device.db-wal", "device.db-shm", UI_LAUNCHER]
                .map(String::from)
                .to_vec();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("keystore.tmp") {
                    names.push(name);
                }
            }
        }
        let mut removed = Vec::new();
        for name in names {
            let path = self.root.join(&name);
            if name.starts_with("keystore") {
                overwrite(&path);
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

/// Overwrites a file with zeros, in place, and syncs it (best effort).
fn overwrite(path: &Path) {
    use std::io::Write;
    let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else { return };
    if let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(path) {
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
        if file.write_all(&zeros).is_ok() {
            let _ = file.sync_all();
        }
    }
}

fn platform_data_dir() -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        return std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join("Library/Application Support"));
    }
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(PathBuf::from);
    }
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
}
