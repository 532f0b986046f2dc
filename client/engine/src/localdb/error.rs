//! What can go wrong with the local database.

/// The local database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The disk that holds the state directory is full.
    #[error(
        "there is no room left on the disk that holds this device's state directory: this change was not saved, and everything saved before is intact; free some space and try again"
    )]
    NoSpace,
    /// The state directory cannot be written.
    #[error(
        "this device's state directory is read-only: this change was not saved, and everything saved before is intact; make the directory writable and try again"
    )]
    ReadOnly,
    /// Writing to the state directory failed.
    #[error(
        "this device's state directory could not be written (the disk may be full or failing): this change was not saved, and everything saved before is intact; free some space or check the disk, and try again"
    )]
    WriteFailed,
    /// SQLite failed otherwise.
    #[error("the local database failed: {0}")]
    Database(sqlx::Error),
    /// Migrations failed.
    #[error("the local database could not be prepared: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A sealed value did not open: the database was altered, damaged, or
    /// belongs to another keystore.
    #[error("the local database is damaged or does not belong to this keystore")]
    Corrupt,
    /// Syncing the database to disk failed.
    #[error("the local database could not be written to disk: {0}")]
    Io(std::io::Error),
}

impl From<sqlx::Error> for LocalError {
    /// A full disk or a read-only directory is said as such: those are
    /// things a person can fix.
    fn from(error: sqlx::Error) -> Self {
        let code = error.as_database_error().and_then(|e| e.code()).and_then(|c| c.parse().ok());
        // SQLite's primary result code is the low byte of the extended one.
        match code.map(|c: i32| c & 0xff) {
            Some(13) => Self::NoSpace,     // SQLITE_FULL
            Some(8) => Self::ReadOnly,     // SQLITE_READONLY
            Some(10) => Self::WriteFailed, // SQLITE_IOERR
            _ => match &error {
                sqlx::Error::Io(io) => Self::from(std::io::Error::new(io.kind(), io.to_string())),
                _ => Self::Database(error),
            },
        }
    }
}

impl From<std::io::Error> for LocalError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded => {
                Self::NoSpace
            }
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => Self::ReadOnly,
            _ => Self::Io(error),
        }
    }
}
