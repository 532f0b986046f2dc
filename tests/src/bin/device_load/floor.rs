//! The disk's floor under the latency phase: how long syncing one small
//! write takes on the disk that holds the state directories, alone, paced
//! as the latency phase paces its edits. An edit reaches the partner
//! through two synced commits in a row (the edit on A, the relay's store),
//! so twice this is the least the disk allows.

use super::{Args, report};
use cove_tests::harness::TempDir;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Sizes as a small commit writes them: a few pages of a write-ahead log,
/// over again from its start, as SQLite reuses its log.
const PAGE: usize = 4096;
const PAGES: u64 = 16;

/// Writes one page and syncs it, `--edits` times, `--pace-ms` apart.
pub(super) async fn run(args: &Args, dir: &TempDir) -> anyhow::Result<()> {
    let path = dir.path().join("floor");
    let mut file = std::fs::File::create(&path)?;
    file.write_all(&vec![0; PAGE * PAGES as usize])?;
    file.sync_all()?;
    let page = [7u8; PAGE];
    let pace = Duration::from_millis(args.pace_ms);
    let mut synced = Vec::with_capacity(args.edits);
    for i in 0..args.edits as u64 {
        tokio::time::sleep(pace).await;
        file.write_all_at(&page, (i % PAGES) * PAGE as u64)?;
        let start = Instant::now();
        file.sync_data()?;
        synced.push(start.elapsed());
    }
    report("one page written and synced (fdatasync)", synced);
    Ok(())
}
