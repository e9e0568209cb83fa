//! `shipgate migrate baseline --version V`: record migrations up to V as applied without
//! running them, for databases that were migrated by hand before any tracking existed; and
//! `--from-schema`, which finds V from the live catalog instead of trusting a guess.

use serde_json::json;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use crate::config::MigrateConfig;
use crate::db::quote_ident;
use crate::duration;
use crate::error::{Error, Result};
use crate::identity;
use crate::migrate::catalog::{self, Point, Proposal, Shape};
use crate::migrate::history::{self, NewRow, Writer};
use crate::migrate::plan::ORIGIN_BASELINE;
use crate::migrate::plan::current_version;
use crate::migrate::run::with_session;
use crate::migrate::session::Mode;
use crate::migrate::source::{self, MigrationSet};
use crate::output::{Event, Reporter};
use crate::shutdown::Shutdown;

pub async fn run(
    cfg: &MigrateConfig,
    version: i64,
    force: bool,
    shutdown: &Shutdown,
    out: &Reporter,
) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    if set.get(version).is_none() {
        return Err(Error::input(format!(
            "--version {version} is not the version of any migration in {}",
            cfg.source.display()
        ))
        .hint("run `shipgate migrate status` to list the versions"));
    }
    with_session(cfg, Mode::Write, shutdown, async |s| {
        s.ensure_history().await?;
        let existing = s.history().await?;
        if !existing.is_empty() && !force {
            return Err(Error::failed(format!(
                "{} already has {} history row{}; a baseline is for databases with no history",
                s.describe(),
                existing.len(),
                if existing.len() == 1 { "" } else { "s" }
            ))
            .hint("pass --force to also record the versions up to the baseline that have no row yet"));
        }
        let applied_by = identity::applied_by().await;
        let by = Writer { run_id: &cfg.run_id, applied_by: &applied_by };
        let todo: Vec<_> = set
            .migrations
            .iter()
            .filter(|m| m.version <= version && !existing.iter().any(|r| r.version == m.version))
            .collect();
        let table = s.table.clone();
        let conn = s.worker();
        let write = async {
            sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
            for m in &todo {
                let row = NewRow {
                    version: m.version,
                    description: &m.description,
                    checksum: &m.up.checksum,
                    checksum_normalized: m.up.checksum_normalized(),
                    success: true,
                    execution_ms: 0,
                    origin: ORIGIN_BASELINE,
                    applied_at: None,
                    statements_done: None,
                };
                history::insert(&mut *conn, &table, &row, &by).await?;
            }
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await
        };
        if let Err(e) = write.await {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(Error::failed(format!(
                "could not record the baseline: {}; nothing was recorded",
                crate::db::error_text(&e)
            )));
        }
        for m in &todo {
            out.emit(&Event::Baselined { version: m.version, description: m.description.clone() });
        }
        let history = s.history().await?;
        out.emit(&Event::Summary {
            command: "baseline",
            schema: Some(s.table.schema.clone()),
            changed: todo.len(),
            duration_ms: 0,
            version: current_version(&history),
            message: format!(
                "recorded {} migration{} up to {version} as applied in {} without running them",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" },
                s.describe()
            ),
        });
        Ok(())
    })
    .await
}

/// `shipgate migrate baseline --from-schema`: replay the migrations in a scratch schema inside
/// a transaction that is rolled back, read the catalog after each one, and propose the version
/// the live schema matches. Records nothing: the operator confirms with `--version V`.
pub async fn propose(cfg: &MigrateConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let set = source::load(&cfg.source, &cfg.read)?;
    with_session(cfg, Mode::Write, shutdown, async |s| {
        let live_schema = s.table.schema.clone();
        let history = s.history().await?;
        let conn = s.worker();
        let live = catalog::snapshot(&mut *conn, &live_schema).await.map_err(crate::db::failed("could not read the catalog"))?;
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await.map_err(crate::db::failed("could not start a transaction"))?;
        let replayed = replay(&mut *conn, cfg, &set, &live_schema).await;
        // The scratch schema and everything in it go with the transaction.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        let (shapes, stopped) = replayed?;
        let (points, proposal) = catalog::compare(&live, &shapes);
        let doc = json!({
            "schema": live_schema,
            "replayed": shapes.len(),
            "stopped": stopped.as_ref().map(|(v, e)| json!({"version": v, "error": e})),
            "points": points,
            "proposal": match &proposal {
                Proposal::Version { version, ambiguous } => json!({"version": version, "ambiguous": ambiguous}),
                Proposal::Nothing => json!({"version": null}),
                Proposal::NoMatch { closest } => json!({"version": null, "closest": closest}),
            },
            "history_rows": history.len(),
        });
        out.document(&doc, &render(&s.describe(), &points, stopped.as_ref()));
        conclude(&proposal, &history, stopped.as_ref(), out)
    })
    .await
}

/// Apply every migration in a fresh schema, one savepoint each, and read the shape after
/// each. A migration that fails there ends the replay (returned with its error).
async fn replay(
    conn: &mut PgConnection,
    cfg: &MigrateConfig,
    set: &MigrationSet,
    live_schema: &str,
) -> Result<(Vec<(i64, Shape)>, Option<(i64, String)>)> {
    let scratch = format!("shipgate_scratch_{}", std::process::id());
    // Types and functions of extensions (citext, uuid-ossp, pgcrypto) live in the schemas the
    // extensions were created in, usually public: the replay must still resolve them.
    let extension_schemas: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::db::failed("could not list the database's extensions"))?;
    let mut path = vec![quote_ident(&scratch)];
    for schema in extension_schemas.iter().map(String::as_str).chain(["public"]) {
        let quoted = quote_ident(schema);
        if !path.contains(&quoted) {
            path.push(quoted);
        }
    }
    let setup = format!(
        "SET LOCAL lock_timeout = '{}'; CREATE SCHEMA {q}; SET LOCAL search_path TO {}",
        duration::pg_setting(cfg.limits.lock_timeout),
        path.join(", "),
        q = quote_ident(&scratch)
    );
    sqlx::raw_sql(AssertSqlSafe(setup)).execute(&mut *conn).await.map_err(|e| {
        Error::failed(format!("could not create a scratch schema to replay the migrations in: {}", crate::db::error_text(&e)))
            .hint("the database user needs CREATE on the database (the scratch schema is rolled back and never committed)")
    })?;
    let mut shapes = Vec::new();
    for m in &set.migrations {
        sqlx::raw_sql("SAVEPOINT replay")
            .execute(&mut *conn)
            .await
            .map_err(crate::db::failed("could not set a savepoint"))?;
        let mut failed = None;
        for statement in m.up.units().into_iter().map(|r| &m.up.sql[r]) {
            let sql = for_replay(statement, live_schema, &scratch, m.up.directives.no_transaction);
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
                failed = Some(crate::db::error_text(&e));
                break;
            }
        }
        if let Some(error) = failed {
            let _ = sqlx::raw_sql("ROLLBACK TO SAVEPOINT replay").execute(&mut *conn).await;
            return Ok((shapes, Some((m.version, error))));
        }
        let shape = catalog::snapshot(&mut *conn, &scratch)
            .await
            .map_err(crate::db::failed("could not read the catalog"))?;
        shapes.push((m.version, shape));
    }
    Ok((shapes, None))
}

/// A statement as replayed: names qualified with the live schema point at the scratch one
/// (drizzle-kit writes `"public"."users"`), and CONCURRENTLY is dropped, since the replay
/// runs in a transaction and only the resulting shape matters. Pure.
pub fn for_replay(sql: &str, live: &str, scratch: &str, no_transaction: bool) -> String {
    let quoted_live = format!("{}.", quote_ident(live));
    let quoted_scratch = format!("{}.", quote_ident(scratch));
    let mut out = sql.replace(&quoted_live, &quoted_scratch);
    let bare = format!("{live}.");
    let mut rewritten = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find(&bare) {
        let before = rest[..at].chars().last();
        let boundary = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '.'));
        rewritten.push_str(&rest[..at]);
        rewritten.push_str(if boundary { &quoted_scratch } else { &bare });
        rest = &rest[at + bare.len()..];
    }
    rewritten.push_str(rest);
    out = rewritten;
    if no_transaction {
        for word in ["CONCURRENTLY", "concurrently", "Concurrently"] {
            out = out.replace(&format!(" {word} "), " ");
        }
    }
    out
}

fn render(scope: &str, points: &[Point], stopped: Option<&(i64, String)>) -> String {
    let mut s =
        format!("the migrations replayed in a scratch schema (rolled back), compared with {scope}:\n");
    s.push_str(&format!(
        "  {:>14}  {:<5}  {:>7}  {:>10}\n",
        "AFTER VERSION", "MATCH", "MISSING", "UNEXPECTED"
    ));
    for p in points {
        s.push_str(&format!(
            "  {:>14}  {:<5}  {:>7}  {:>10}\n",
            p.version,
            if p.exact() { "yes" } else { "no" },
            p.missing.len(),
            p.unexpected.len()
        ));
    }
    if let Some((version, error)) = stopped {
        s.push_str(&format!("  replay stopped at {version}, which failed in the scratch schema: {error}\n"));
    }
    s
}

fn conclude(
    proposal: &Proposal,
    history: &[crate::migrate::plan::AppliedRow],
    stopped: Option<&(i64, String)>,
    out: &Reporter,
) -> Result<()> {
    let force = if history.is_empty() { "" } else { " --force" };
    match proposal {
        Proposal::Version { version, ambiguous } => {
            if !ambiguous.is_empty() {
                tracing::warn!(
                    "the schema also matches after {}: they change no table, column or index, so the catalog cannot tell \
                     whether they ran; check their effect by hand before recording a later version",
                    ambiguous.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                );
            }
            out.emit(&Event::Summary {
                command: "baseline",
                schema: None,
                changed: 0,
                duration_ms: 0,
                version: Some(*version),
                message: format!(
                    "the live schema is what the migrations make at version {version}; record it with \
                     `shipgate migrate baseline --version {version}{force}`"
                ),
            });
            Ok(())
        }
        Proposal::Nothing => {
            out.emit(&Event::Summary {
                command: "baseline",
                schema: None,
                changed: 0,
                duration_ms: 0,
                version: None,
                message:
                    "the live schema has none of the tables, columns or indexes the migrations create: no \
                          baseline is needed; `shipgate migrate up` applies them all"
                        .into(),
            });
            Ok(())
        }
        Proposal::NoMatch { closest } => {
            let mut list: Vec<String> = closest.missing.iter().map(|m| format!("  - missing: {m}")).collect();
            list.extend(closest.unexpected.iter().map(|u| format!("  - unexpected: {u}")));
            let stop = stopped.map_or(String::new(), |(v, _)| format!(" (the replay stopped at {v})"));
            Err(Error::failed(format!(
                "the live schema matches no point of the migration history{stop}; the closest is after version {}:\n{}",
                closest.version,
                list.join("\n")
            ))
            .hint("the database drifted from the migrations (a hand-made change, or a migration edited after it ran); \
                   fix the drift or write a migration for it, then try again; `--version V` records a baseline anyway"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_statements_point_at_the_scratch_schema() {
        let cases = [
            (
                r#"CREATE TYPE "public"."role" AS ENUM('a');"#,
                false,
                r#"CREATE TYPE "s"."role" AS ENUM('a');"#,
            ),
            ("ALTER TABLE public.users ADD x int", false, r#"ALTER TABLE "s".users ADD x int"#),
            (
                "CREATE TABLE notpublic.t (); SELECT my_public.x",
                false,
                "CREATE TABLE notpublic.t (); SELECT my_public.x",
            ),
            ("CREATE INDEX CONCURRENTLY i ON t (x)", true, "CREATE INDEX i ON t (x)"),
            ("CREATE INDEX CONCURRENTLY i ON t (x)", false, "CREATE INDEX CONCURRENTLY i ON t (x)"),
        ];
        for (sql, no_tx, expected) in cases {
            assert_eq!(for_replay(sql, "public", "s", no_tx), expected, "{sql}");
        }
    }
}
