//! The process-wide list of secret values that must never be printed.
//!
//! Passwords enter the list the moment credentials are resolved; every log line (see
//! `logging`), every error printed by `main` and every report line passes through
//! [`redact`]. Masking at the output edge, rather than trusting every call site, is what
//! keeps a password out of a third-party error chain we do not control.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// Remember a secret value (and its URL-encoded form) so it is masked everywhere.
pub fn register(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut list = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let encoded = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
    let percent = encoded.replace('+', "%20");
    for value in [secret.to_string(), encoded, percent] {
        if !list.contains(&value) {
            list.push(value);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Mask every registered secret in `text`.
pub fn redact(text: &str) -> String {
    let list = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_url_encoded_forms() {
        register("s3cr3t/p@ss word");
        let cases = [
            ("password is s3cr3t/p@ss word!", "password is ********!"),
            ("postgres://u:s3cr3t%2Fp%40ss%20word@h/db", "postgres://u:********@h/db"),
            ("form s3cr3t%2Fp%40ss+word", "form ********"),
            ("nothing here", "nothing here"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }
}
