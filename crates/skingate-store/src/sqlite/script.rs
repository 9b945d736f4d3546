//! Several statements handed to SQLite's thread at once.
//!
//! sqlx runs each SQLite connection on a worker thread of its own, and every statement is a round trip to it:
//! a message there, a wake-up, the answer back, another wake-up. On the project's 2-core machine that hand-off
//! costs 5 µs when both threads are running and 50–70 µs when a core has to be woken, more than the row work
//! of a bulk statement over a whole batch. A [`Script`] sends its statements as one multi-statement query and
//! pays the hand-off once; SQLite runs them in order inside the caller's transaction, and the first failure
//! stops the script and fails the call (the caller's transaction is then rolled back whole).
//!
//! Statements use anonymous `?` parameters only: sqlx's SQLite driver binds a multi-statement query's
//! arguments in order, carrying on from one statement to the next, so each statement's values are bound
//! right after its text is pushed. sqlx marks multi-statement prepared queries as SQLite-only and deprecated
//! (launchbadge/sqlx#3108, for a later major version); the store tests run every script, so a driver that
//! stops running them fails the build's tests, not production.

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, Encode, Sqlite, SqliteConnection, Type};

use crate::{Result, StoreError};

/// Statements and their arguments, run together by [`Script::run`].
#[derive(Default)]
pub(crate) struct Script {
    sql: String,
    args: SqliteArguments,
    /// `?` placeholders pushed so far: sqlx binds a missing value as NULL and ignores an extra one, silently.
    placeholders: usize,
}

impl Script {
    /// Appends one statement; its `?` values must be bound next, in order.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        // The statements carry no `?` inside string literals, so every `?` is a placeholder.
        self.placeholders += sql.matches('?').count();
        self
    }

    /// Binds the next `?` of the statements pushed so far.
    pub(crate) fn bind<'t, T: Encode<'t, Sqlite> + Type<Sqlite> + 't>(&mut self, value: T) -> Result<&mut Self> {
        self.args.add(value).map_err(|e| StoreError::Corrupt(format!("binding a script value: {e}")))?;
        Ok(self)
    }

    /// Runs every statement, in order, in one hand-off; returns the rows they produced, in order (statements
    /// that should report something end with a `SELECT`).
    pub(crate) async fn run(self, conn: &mut SqliteConnection) -> Result<Vec<SqliteRow>> {
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        // sqlx would bind a missing value as NULL and shift every later one: a ledger write would go wrong
        // silently. Checked in every build, as an error, so a forgotten `bind` fails the transaction instead.
        if self.placeholders != self.args.len() {
            return Err(StoreError::Corrupt(format!(
                "a script has {} `?` placeholders but {} values bound",
                self.placeholders,
                self.args.len()
            )));
        }
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args).fetch_all(conn).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::Script;
    use sqlx::{Connection, Row, SqliteConnection};

    #[tokio::test]
    async fn statements_run_in_order_with_their_own_values_and_report_selected_rows() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)").execute(&mut conn).await.unwrap();
        let mut s = Script::default();
        s.push("INSERT INTO t (k, v) SELECT value->>0, value->>1 FROM jsonb_each(?)")
            .bind(r#"[[1,"a"],[2,"b"]]"#)
            .unwrap();
        s.push("UPDATE t SET v = ? WHERE k = ?").bind("B").unwrap().bind(2_i64).unwrap();
        s.push("SELECT changes()");
        s.push("INSERT INTO t (k, v) VALUES (?, ?)").bind(3_i64).unwrap().bind("c").unwrap();
        s.push("SELECT group_concat(v, '') FROM (SELECT v FROM t ORDER BY k)");
        let rows = s.run(&mut conn).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64, _>(0), 1);
        assert_eq!(rows[1].get::<String, _>(0), "aBc");
    }

    #[tokio::test]
    async fn a_failing_statement_stops_the_script_and_fails_the_call() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)").execute(&mut conn).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let mut s = Script::default();
        s.push("INSERT INTO t (k) VALUES (?)").bind(1_i64).unwrap();
        s.push("INSERT INTO t (k) VALUES (?)").bind(1_i64).unwrap();
        s.push("INSERT INTO t (k) VALUES (?)").bind(2_i64).unwrap();
        assert!(s.run(&mut tx).await.is_err());
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t WHERE k = 2").fetch_one(&mut *tx).await.unwrap();
        assert_eq!(count, 0, "nothing after the failure ran");
        tx.rollback().await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&mut conn).await.unwrap();
        assert_eq!(count, 0);
    }

    #[tokio::test]
    async fn a_missing_value_fails_the_script() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut s = Script::default();
        s.push("SELECT ?, ?").bind(1_i64).unwrap();
        let err = s.run(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("2 `?` placeholders but 1 values bound"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_script_does_nothing() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        assert!(Script::default().run(&mut conn).await.unwrap().is_empty());
    }
}
