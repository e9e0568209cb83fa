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

/// Remember a secret value so it is masked everywhere, in every form it can be printed in:
/// as is, URL-encoded (form and percent), JSON-escaped (`--output json`), Rust-Debug-escaped
/// (error chains, `-vv` logs) and SQL-quoted (`'` doubled, as in a logged statement). A value
/// that is a URL with a password also registers that password, encoded and decoded, since a
/// program may print only that part.
pub fn register(secret: &str) {
    if secret.is_empty() {
        return;
    }
    register_url_password(secret);
    let mut list = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for value in forms(secret) {
        if !value.is_empty() && !list.contains(&value) {
            list.push(value);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Mask a URL's password (as written and percent-decoded), not the whole URL; nothing when
/// `text` is not a URL with a password.
pub fn register_url_password(text: &str) {
    if let Ok(url) = url::Url::parse(text)
        && let Some(password) = url.password()
    {
        register(password);
        register(&percent_encoding::percent_decode_str(password).decode_utf8_lossy());
    }
}

fn forms(secret: &str) -> Vec<String> {
    let inner = |quoted: String| quoted[1..quoted.len() - 1].to_string();
    let json = |text: &str| inner(serde_json::to_string(text).expect("strings serialize"));
    let debug = |text: &str| inner(format!("{text:?}"));
    let encoded = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
    let mut forms = vec![encoded.replace('+', "%20"), encoded];
    // As written, and as a SQL literal writes it; each also escaped for JSON, for Debug, and
    // both (a JSON event carrying a Debug-formatted error or statement log).
    for base in [secret.to_string(), secret.replace('\'', "''")] {
        let debugged = debug(&base);
        forms.extend([json(&base), json(&debugged), debugged, base]);
    }
    forms
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

    #[test]
    fn masks_escaped_forms_and_the_password_of_a_url_secret() {
        let password = r#"Zq9"p@ss:w/rd%#? x\q'z7"#;
        register(password);
        let json = serde_json::to_string(password).unwrap();
        let debug = format!("{password:?}");
        let cases = [
            format!("{{\"message\":{json}}}"),
            format!("error: {debug}"),
            serde_json::to_string(&debug).unwrap(),
            format!("INSERT INTO t VALUES ('{}')", password.replace('\'', "''")),
        ];
        for text in cases {
            let shown = redact(&text);
            assert!(!shown.contains("Zq9") && !shown.contains("rd%#"), "{text} -> {shown}");
        }
        register("postgres://app:hunter%2F42x@db/app");
        for text in ["pw hunter%2F42x", "pw hunter/42x"] {
            assert!(!redact(text).contains("hunter"), "{text}");
        }
    }
}
