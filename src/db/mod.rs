//! The PostgreSQL edge: where credentials are resolved (flags, variables, Secrets Manager),
//! how TLS is set up, and how connections are opened.

pub mod connect;
pub mod credentials;
pub mod guard;
pub mod secret;
pub mod target;
pub mod tls;

pub use connect::{ConnectSpec, connect};
pub use credentials::Credentials;
pub use target::DbTarget;

/// A database error as an operator should read it: the server's message and SQLSTATE.
/// (sqlx's `Display` appends PostgreSQL's internal source line, "at line 3655", which reads
/// like a line of the migration file.)
pub fn error_text(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().unwrap_or_default()),
        None => e.to_string(),
    }
}

/// A database error as a failure (exit 1): `what` went wrong, then PostgreSQL's reason.
pub fn failed(what: &str) -> impl Fn(sqlx::Error) -> crate::error::Error + '_ {
    move |e| crate::error::Error::failed(format!("{what}: {}", error_text(&e)))
}

/// Whether `e` says the session itself is gone (terminated, timed out, the socket closed)
/// rather than that a statement failed: the server ends the transaction with the session, and
/// every session lock with it.
pub fn session_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            true
        }
        sqlx::Error::Database(db) => db.code().is_some_and(|c| session_ended_code(&c)),
        _ => false,
    }
}

/// SQLSTATEs of a session the server ended: the connection_exception class, admin_shutdown
/// (`pg_terminate_backend`), crash_shutdown, cannot_connect_now, idle_session_timeout and
/// idle_in_transaction_session_timeout.
pub fn session_ended_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "57P05" | "25P03")
}

/// Keep the session open while it waits: an `idle_session_timeout` or
/// `idle_in_transaction_session_timeout` set on the database or role would end it (and the
/// lock it holds) between two steps. `idle_session_timeout` exists from PostgreSQL 14 on, where
/// a `SET` of it would fail on 13; plain `SET`s, since a scan of `pg_settings` costs ~3 ms and
/// this runs before every migration.
pub fn keep_session_sql(conn: &sqlx::PgConnection) -> &'static str {
    if conn.server_version_num().is_some_and(|v| v >= 140000) {
        "SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0; "
    } else {
        "SET idle_in_transaction_session_timeout = 0; "
    }
}

/// Whether a table (or view) exists; `qualified` is `"schema"."name"`.
pub async fn relation_exists(conn: &mut sqlx::PgConnection, qualified: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(qualified).fetch_one(conn).await
}

/// Point the session's `search_path` at `schema` alone: unqualified names in migrations land
/// there and nowhere else.
pub async fn set_search_path(conn: &mut sqlx::PgConnection, schema: &str) -> sqlx::Result<()> {
    let sql = format!("SET search_path TO {}", quote_ident(schema));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
}

/// The total size on disk (table, indexes, TOAST) and the planner's row estimate of each
/// relation named as written, unqualified names looked up in `schema`: `None` for one that
/// does not exist (yet). One catalog query; it reads no table.
pub async fn relation_sizes(
    conn: &mut sqlx::PgConnection,
    schema: &str,
    names: &[String],
) -> sqlx::Result<Vec<Option<(i64, f32)>>> {
    let qualified = qualified_in(schema, names);
    let rows: Vec<(Option<i64>, Option<f32>)> = sqlx::query_as(
        "SELECT pg_total_relation_size(c.oid), c.reltuples \
         FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) \
         LEFT JOIN pg_class c ON c.oid = to_regclass(n.name) ORDER BY n.i",
    )
    .bind(&qualified)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(size, rows)| size.zip(rows)).collect())
}

/// For each relation named (unqualified, as a tenant migration names it), its largest copy
/// among `schemas`: size on disk, the planner's row estimate and the schema it is in; `None`
/// where no schema has it, or for a qualified name. One catalog query, whatever the number
/// of schemas (pg_class is looked up by name).
pub async fn largest_relation_sizes(
    conn: &mut sqlx::PgConnection,
    schemas: &[String],
    names: &[String],
) -> sqlx::Result<Vec<Option<(i64, f32, String)>>> {
    // As the catalog stores them: a quoted name as written, any other folded to lower case.
    let stored: Vec<Option<String>> = names
        .iter()
        .map(|n| match n.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => Some(quoted.replace("\"\"", "\"")),
            None if n.contains('.') => None,
            None => Some(n.to_lowercase()),
        })
        .collect();
    let rows: Vec<(Option<i64>, Option<f32>, Option<String>)> = sqlx::query_as(
        "SELECT s.size, s.tuples, s.nspname::text \
         FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) \
         LEFT JOIN LATERAL ( \
             SELECT pg_total_relation_size(c.oid) AS size, c.reltuples AS tuples, ns.nspname \
             FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace \
             WHERE c.relname = n.name AND ns.nspname = ANY($2) \
             ORDER BY 1 DESC LIMIT 1) s ON true \
         ORDER BY n.i",
    )
    .bind(&stored)
    .bind(schemas)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(size, rows, schema)| Some((size?, rows?, schema?))).collect())
}

/// A session holding a lock on a relation, in a transaction open for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub pid: i32,
    pub user: String,
    pub application: String,
    pub state: String,
    /// How long its transaction has been open, in seconds.
    pub age_s: f64,
    /// The first word of its current (or last) query: the text itself may hold values.
    pub query_kind: String,
    /// `pg_locks.mode`: `AccessShareLock`, ...
    pub mode: String,
    /// The relation as the caller named it.
    pub relation: String,
}

/// The granted locks other sessions hold on the relations named (as written, unqualified
/// names looked up in `schema`) in this database (relation OIDs repeat across databases), in
/// transactions open for at least `min_age`. Client sessions only: autovacuum gives way to a
/// lock it blocks. One query over
/// `pg_locks` and `pg_stat_activity`; reading it takes no lock.
pub async fn lock_holders(
    conn: &mut sqlx::PgConnection,
    schema: &str,
    names: &[String],
    min_age: std::time::Duration,
) -> sqlx::Result<Vec<Holder>> {
    let qualified = qualified_in(schema, names);
    type Row = (i32, String, String, String, f64, String, String, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
                coalesce(a.state, ''), extract(epoch FROM now() - a.xact_start)::float8, \
                coalesce(upper(substring(ltrim(a.query) FROM '^[A-Za-z]+')), ''), l.mode, n.i \
         FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) \
         JOIN pg_locks l ON l.locktype = 'relation' AND l.granted AND l.relation = to_regclass(n.name) \
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.pid <> pg_backend_pid() AND a.xact_start <= now() - make_interval(secs => $2) \
               AND a.backend_type = 'client backend' \
         ORDER BY a.xact_start, a.pid",
    )
    .bind(&qualified)
    .bind(min_age.as_secs_f64())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(pid, user, application, state, age_s, query_kind, mode, i)| Holder {
            pid,
            user,
            application,
            state,
            age_s,
            query_kind,
            mode,
            relation: names[(i - 1) as usize].clone(),
        })
        .collect())
}

/// `SHOW server_version`, as the server words it (`16.4 (Debian 16.4-1.pgdg120+2)`).
pub async fn server_version(conn: &mut sqlx::PgConnection) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT current_setting('server_version')").fetch_one(conn).await
}

/// TLS as the server sees this session (`pg_stat_ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTls {
    pub ssl: bool,
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub bits: Option<i32>,
}

/// This session's row of `pg_stat_ssl` (none on a server that does not track it).
pub async fn session_tls(conn: &mut sqlx::PgConnection) -> sqlx::Result<Option<SessionTls>> {
    type Row = (bool, Option<String>, Option<String>, Option<i32>);
    let row: Option<Row> =
        sqlx::query_as("SELECT ssl, version, cipher, bits FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(ssl, version, cipher, bits)| SessionTls { ssl, version, cipher, bits }))
}

/// Run `body` in a transaction: COMMIT when it returns `Ok`, ROLLBACK when it fails.
pub async fn in_transaction<T>(
    conn: &mut sqlx::PgConnection,
    body: impl AsyncFnOnce(&mut sqlx::PgConnection) -> sqlx::Result<T>,
) -> sqlx::Result<T> {
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    match body(&mut *conn).await {
        Ok(value) => sqlx::raw_sql("COMMIT").execute(&mut *conn).await.map(|_| value),
        Err(e) => {
            // The error that matters is the body's; a failed ROLLBACK ends the session anyway.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

/// Run `body` in a transaction that is always rolled back: a rehearsal that leaves nothing.
pub async fn rolled_back<T>(
    conn: &mut sqlx::PgConnection,
    body: impl AsyncFnOnce(&mut sqlx::PgConnection) -> sqlx::Result<T>,
) -> sqlx::Result<T> {
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    let result = body(&mut *conn).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    result
}

/// Relation names as written, unqualified ones put in `schema`: what `to_regclass` looks up.
fn qualified_in(schema: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| if n.contains('.') { n.clone() } else { format!("{}.{n}", quote_ident(schema)) })
        .collect()
}

/// Quote an identifier for SQL text (`"tenant ""a"""`): the only way a schema name reaches
/// a statement, since identifiers cannot be bind parameters.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quote_ident_escapes_quotes() {
        let cases = [("public", "\"public\""), ("a\"b", "\"a\"\"b\""), ("Mixed Case", "\"Mixed Case\"")];
        for (name, quoted) in cases {
            assert_eq!(super::quote_ident(name), quoted);
        }
    }
}
