//! Migration checksums: sqlx's raw SHA-384, plus a normalized one that forgives checkouts.
//!
//! The raw checksum keeps us byte-compatible with `_sqlx_migrations`. The normalized one
//! ignores a UTF-8 BOM, CRLF line endings and trailing whitespace, so a Windows checkout or an
//! editor's whitespace cleanup is not reported as a modified migration (sqlx#2659).

use sha2::{Digest, Sha384};

/// SHA-384 of the file's raw bytes, exactly as sqlx computes it.
pub fn raw(bytes: &[u8]) -> Vec<u8> {
    Sha384::digest(bytes).to_vec()
}

/// SHA-384 of the text with BOM, line endings and trailing whitespace normalized away.
pub fn normalized(text: &str) -> Vec<u8> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text.split('\n').map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    Sha384::digest(lines.join("\n").as_bytes()).to_vec()
}

/// The first 16 hex digits, enough to tell two checksums apart in a message.
pub fn short(checksum: &[u8]) -> String {
    let full = hex::encode(checksum);
    full[..full.len().min(16)].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_matches_sqlx_sha384() {
        // sha384("") is a published test vector.
        assert_eq!(
            hex::encode(raw(b"")),
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        );
    }

    #[test]
    fn normalization_ignores_checkout_noise_but_not_edits() {
        let base = "CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);\n";
        let same = [
            "CREATE TABLE t (id int);\r\nCREATE INDEX i ON t (id);\r\n",
            "\u{feff}CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);\n",
            "CREATE TABLE t (id int);   \nCREATE INDEX i ON t (id);\t\n\n\n",
            "CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);",
        ];
        for text in same {
            assert_eq!(normalized(text), normalized(base), "{text:?}");
        }
        let different = [
            "CREATE TABLE t (id bigint);\nCREATE INDEX i ON t (id);\n",
            "CREATE TABLE t (id int);\n\nCREATE INDEX i ON t (id);\n",
            "  CREATE TABLE t (id int);\nCREATE INDEX i ON t (id);\n",
        ];
        for text in different {
            assert_ne!(normalized(text), normalized(base), "{text:?}");
        }
    }
}
