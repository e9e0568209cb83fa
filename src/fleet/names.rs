//! Which tenants a fleet run touches: names from `tenants_query` checked before any reaches
//! SQL, `--only`, and `--shard i/N` (a stable split of the fleet across parallel tasks).

use sha2::{Digest, Sha256};

/// Why a name from `tenants_query` cannot be a tenant schema; `None` when it can.
///
/// Names are always quoted when they reach SQL, so this is not what stops injection; it stops
/// a bad row from becoming a schema nobody can type (`"acme corp"`), one PostgreSQL would
/// silently truncate (over 63 bytes), or one it reserves (`pg_*`).
pub fn invalid(name: &str, master: &str) -> Option<String> {
    let shown = shown(name);
    if name.is_empty() {
        return Some("an empty schema name".into());
    }
    if name.len() > 63 {
        return Some(format!("`{shown}` is {} bytes; PostgreSQL names are at most 63", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))) {
        return Some(format!(
            "`{shown}` contains {c:?}; tenant schema names are ASCII letters, digits, `_`, `-` and `$`"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Some(format!("`{shown}` does not start with a letter or `_`"));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Some(format!("`{shown}` is a name PostgreSQL reserves for system schemas"));
    }
    if name == master {
        return Some(format!("`{shown}` is the master schema, not a tenant"));
    }
    None
}

/// A name from the database as it can be printed: control characters escaped, quotes kept.
pub fn shown(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// One of N parallel fleet runs (`--shard 2/4`): it owns the tenants whose name hashes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn parse(text: &str) -> Result<Shard, String> {
        let parsed =
            text.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count >= 1 && (1..=count).contains(&index) => Ok(Shard { index, count }),
            _ => Err(format!("`{text}` is not I/N with 1 <= I <= N (e.g. 2/4)")),
        }
    }

    /// Stable across runs, machines and versions: SHA-256 of the name, not Rust's hasher.
    pub fn owns(&self, name: &str) -> bool {
        let digest = Sha256::digest(name.as_bytes());
        let value = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        value % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        let long = "t".repeat(64);
        let cases = [
            ("tenant_42", true),
            ("org_2NzXyAbC", true),
            ("acme-eu", true),
            ("_private", true),
            ("", false),
            ("acme corp", false),
            ("o'brien", false),
            ("x\"; DROP TABLE tenants; --", false),
            ("ünïcode", false),
            ("42tenant", false),
            ("pg_temp", false),
            ("information_schema", false),
            ("public", false),
            (long.as_str(), false),
        ];
        for (name, valid) in cases {
            assert_eq!(invalid(name, "public").is_none(), valid, "{name}: {:?}", invalid(name, "public"));
        }
        assert!(invalid(&"t".repeat(63), "public").is_none());
    }

    #[test]
    fn shards_parse_and_split_the_fleet_exactly_once() {
        for (text, ok) in
            [("1/1", true), ("2/4", true), ("0/4", false), ("5/4", false), ("1/0", false), ("x", false)]
        {
            assert_eq!(Shard::parse(text).is_ok(), ok, "{text}");
        }
        let names: Vec<String> = (0..1000).map(|i| format!("tenant_{i}")).collect();
        let shards: Vec<Shard> = (1..=4).map(|i| Shard { index: i, count: 4 }).collect();
        let mut sizes = [0usize; 4];
        for name in &names {
            let owners: Vec<usize> = (0..4).filter(|&i| shards[i].owns(name)).collect();
            assert_eq!(owners.len(), 1, "{name}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 200), "{sizes:?}");
        // Pinned, so a new version of shipgate never moves tenants between shards.
        assert_eq!((1..=4).find(|&i| Shard { index: i, count: 4 }.owns("tenant_0")), Some(SHARD_OF_TENANT_0));
    }

    const SHARD_OF_TENANT_0: u32 = 2;
}
