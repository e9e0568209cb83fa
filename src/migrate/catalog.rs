//! The shape of a schema as `migrate baseline --from-schema` compares it: tables, columns and
//! indexes by name. The snapshot is one catalog query; the comparison is pure.
//!
//! The migrations are replayed in a scratch schema (rolled back) and the catalog is read after
//! each one, so "what the migrations would create" is what PostgreSQL made of them, not what
//! a SQL parser guessed.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::postgres::PgConnection;

/// Objects by kind and name: `table users`, `column users.email`, `index users_email_idx`.
pub type Shape = BTreeSet<String>;

/// The tables (and views), their columns, and the indexes of one schema. Our own history
/// table is left out: it is not something a migration creates.
pub async fn snapshot(conn: &mut PgConnection, schema: &str) -> sqlx::Result<Shape> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT CASE WHEN c.relkind IN ('i', 'I') THEN 'index ' ELSE 'table ' END || c.relname
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'i', 'I')
            AND c.relname NOT LIKE 'shipgate\\_migrations%'
         UNION ALL
         SELECT 'column ' || c.relname || '.' || a.attname
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND a.attnum > 0 AND NOT a.attisdropped
            AND c.relname NOT LIKE 'shipgate\\_migrations%'",
    )
    .bind(schema)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// How the live schema compares with the schema after one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    pub version: i64,
    /// In the migrations' schema at this point, not in the live one.
    pub missing: Vec<String>,
    /// In the live schema and made by some migration, but not there at this point.
    pub unexpected: Vec<String>,
}

impl Point {
    pub fn exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

/// What the comparison concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// The live schema is what the migrations make at `version`. `ambiguous` lists the later
    /// versions that match too (they change no table, column or index, so the catalog cannot
    /// tell whether they ran); the lowest is proposed, because re-running a migration that
    /// did run fails loudly, while skipping one that did not loses its effect silently.
    Version { version: i64, ambiguous: Vec<i64> },
    /// The live schema has none of the migrations' objects: nothing was applied.
    Nothing,
    /// No point matches; the closest one, with its differences.
    NoMatch { closest: Point },
}

/// Compare `live` with the shape after each migration (`shapes[i]` = after the i-th, in
/// version order). Objects no migration makes (other tools' tables) are ignored. Pure.
pub fn compare(live: &Shape, shapes: &[(i64, Shape)]) -> (Vec<Point>, Proposal) {
    let made: Shape = shapes.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    let relevant: Shape = live.intersection(&made).cloned().collect();
    let points: Vec<Point> = shapes
        .iter()
        .map(|(version, shape)| Point {
            version: *version,
            missing: shape.difference(live).cloned().collect(),
            unexpected: relevant.difference(shape).cloned().collect(),
        })
        .collect();
    if relevant.is_empty() {
        return (points, Proposal::Nothing);
    }
    let exact: Vec<i64> = points.iter().filter(|p| p.exact()).map(|p| p.version).collect();
    let proposal = match exact.split_first() {
        Some((first, rest)) => Proposal::Version { version: *first, ambiguous: rest.to_vec() },
        None => {
            let closest = points
                .iter()
                .min_by_key(|p| (p.missing.len() + p.unexpected.len(), std::cmp::Reverse(p.version)))
                .cloned()
                .expect("relevant objects come from at least one migration");
            Proposal::NoMatch { closest }
        }
    };
    (points, proposal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(items: &[&str]) -> Shape {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn proposals() {
        let after = |v: i64, items: &[&str]| (v, shape(items));
        let history = vec![
            after(1, &["table users", "column users.id"]),
            after(2, &["table users", "column users.id", "column users.email", "index users_email_idx"]),
            // 3 only inserts rows: no catalog change.
            after(3, &["table users", "column users.id", "column users.email", "index users_email_idx"]),
            after(
                4,
                &[
                    "table users",
                    "column users.id",
                    "column users.email",
                    "index users_email_idx",
                    "table posts",
                ],
            ),
            // 5 drops the index.
            after(5, &["table users", "column users.id", "column users.email", "table posts"]),
        ];
        let version = |v: i64, ambiguous: Vec<i64>| Proposal::Version { version: v, ambiguous };
        let cases: Vec<(Shape, Proposal)> = vec![
            (shape(&["table users", "column users.id"]), version(1, vec![])),
            (
                shape(&["table users", "column users.id", "column users.email", "index users_email_idx"]),
                version(2, vec![3]),
            ),
            (
                shape(&[
                    "table users",
                    "column users.id",
                    "column users.email",
                    "table posts",
                    "table knex_migrations",
                ]),
                version(5, vec![]),
            ),
            (shape(&["table knex_migrations", "table other"]), Proposal::Nothing),
            (
                shape(&["table users", "column users.id", "table posts"]),
                Proposal::NoMatch {
                    closest: Point {
                        version: 5,
                        missing: vec!["column users.email".into()],
                        unexpected: vec![],
                    },
                },
            ),
        ];
        for (live, expected) in cases {
            let (points, proposal) = compare(&live, &history);
            assert_eq!(points.len(), 5);
            assert_eq!(proposal, expected, "{live:?}");
        }
    }
}
