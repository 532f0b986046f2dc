//! The PostgreSQL backend, for several relay processes sharing one database.
//!
//! Each process tells the others about new envelopes, membership changes and
//! pairing messages with `NOTIFY cove_events`, and listens on the same
//! channel; see [`crate::events`].

use super::dialect::{self, Arg, Backend, Col, Placeholders, Row};
use super::{Events, StoreError};
use crate::events::{Event, Heard};
use crate::settings;
use cove_shared::random::Entropy;
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, Postgres};
use std::time::Duration;
use tokio::sync::mpsc;

/// The notification channel all relay processes share.
const CHANNEL: &str = "cove_events";

/// The relay's store in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    writer: PgPool,
    /// The same pool: PostgreSQL has no single-writer limit to work around.
    reader: PgPool,
    /// Identifies this process's notifications, so it skips its own.
    node: u64,
    /// The notification channel: one per schema, since notifications are
    /// database-wide.
    channel: String,
}

/// Every migration, in order; `migrations_are_all_registered` checks that
/// none in the folder is missing.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "write_probe", include_str!("../../migrations/postgres/0002_write_probe.sql")),
    (3, "identities", include_str!("../../migrations/postgres/0003_identities.sql")),
];

impl PostgresStore {
    /// Connects to `postgres://...` and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, None).await
    }

    /// Connects with every table in `schema` (created if missing), and a
    /// notification channel of its own. Lets tests, or several relays for
    /// unrelated users, share one database without seeing each other.
    pub async fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let mut options: PgConnectOptions =
            url.parse().map_err(|_| StoreError::UnsupportedUrl(settings::redact_url(url)))?;
        let mut channel = CHANNEL.to_owned();
        if let Some(schema) = schema {
            if !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(StoreError::UnsupportedUrl(format!("schema {schema:?}")));
            }
            let admin =
                PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
                .execute(&admin)
                .await?;
            admin.close().await;
            options = options.options([("search_path", schema)]);
            channel = format!("{CHANNEL}_{schema}");
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .after_release(|conn, _| Box::pin(super::still_usable(conn)))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        super::migrator(MIGRATIONS).run(&pool).await?;
        let node = u64::from_be_bytes(cove_shared::OsEntropy.array());
        Ok(Self { writer: pool.clone(), reader: pool, node, channel })
    }

    /// The pool, for tests that need to reset the database.
    pub fn pool(&self) -> &PgPool {
        &self.writer
    }
}

impl Backend for PostgresStore {
    type Db = Postgres;
    const PLACEHOLDERS: Placeholders = Placeholders::Numbered;

    fn writer(&self) -> &PgPool {
        &self.writer
    }

    fn reader(&self) -> &PgPool {
        &self.reader
    }

    async fn rows<'a>(
        conn: &'a mut PgConnection,
        sql: &'a str,
        args: &'a [Arg<'a>],
        cols: &'a [Col],
    ) -> Result<Vec<Row>, sqlx::Error> {
        let query = dialect::bind_all(sqlx::query(AssertSqlSafe(sql)), args);
        let rows = query.fetch_all(conn).await?;
        rows.iter().map(|row| dialect::read_row(row, cols)).collect()
    }

    async fn execute<'a>(
        conn: &'a mut PgConnection,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> Result<u64, sqlx::Error> {
        let query = dialect::bind_all(sqlx::query(AssertSqlSafe(sql)), args);
        Ok(query.execute(conn).await?.rows_affected())
    }
}

impl Events for PostgresStore {
    async fn publish(&self, event: &Event) {
        let payload = event.to_notification(self.node);
        if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(&self.writer)
            .await
        {
            // Devices on other processes then miss this live push, and catch
            // up at their next fetch.
            tracing::warn!(%error, "cannot notify other relay processes");
        }
    }

    fn listen(&self) -> Option<mpsc::Receiver<Heard>> {
        let (tx, rx) = mpsc::channel(1024);
        let pool = self.writer.clone();
        let node = self.node;
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                match listen_once(&pool, &channel, node, &tx, first).await {
                    Ok(()) => return, // the relay is shutting down
                    Err(error) => {
                        tracing::warn!(%error, "notification listener lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                first = false;
            }
        });
        Some(rx)
    }
}

/// Forwards notifications until the receiver is dropped (`Ok`) or the
/// connection cannot be made again (`Err`). Whenever the connection was
/// lost, what was published meanwhile is gone: that is passed on as a
/// [`Heard::Gap`], once the listener hears again, so that nothing
/// published after the gap is missed either.
async fn listen_once(
    pool: &PgPool,
    channel: &str,
    node: u64,
    tx: &mpsc::Sender<Heard>,
    first: bool,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    if !first && tx.send(Heard::Gap).await.is_err() {
        return Ok(());
    }
    loop {
        // `None`: the connection was lost and has been made again (sqlx
        // reconnects before it returns), and LISTEN is in force again.
        let Some(notification) = listener.try_recv().await? else {
            tracing::warn!("notification listener reconnected; notifications may have been missed");
            if tx.send(Heard::Gap).await.is_err() {
                return Ok(());
            }
            continue;
        };
        match Event::from_notification(notification.payload()) {
            Some((from, _)) if from == node => {}
            Some((_, event)) => {
                if tx.send(Heard::Event(event)).await.is_err() {
                    return Ok(());
                }
            }
            None => tracing::warn!("ignoring a malformed relay notification"),
        }
    }
}
