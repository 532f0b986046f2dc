//! Test helpers: temporary directories, and a PostgreSQL schema per test.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("cove-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PostgreSQL URL for tests, if this run has one.
pub fn postgres_url() -> Option<String> {
    std::env::var("COVE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// A fresh schema name, so concurrent tests never share tables or
/// notification channels.
pub fn fresh_schema(name: &str) -> String {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    format!("test_{name}_{}", cove_shared::codec::to_hex(&random))
}

/// Drops a test schema.
pub async fn drop_schema(url: &str, schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(url).await {
        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
    }
}
