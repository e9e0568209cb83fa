//! One known password through every failing path there is to reach a database (wrong
//! password, secrets that are malformed, incomplete or rejected, TLS failures, an unreachable
//! host, bad variables), at every log level and in both output formats: it must appear
//! nowhere, in any encoding.

use std::process::Command;

use serde_json::json;

use crate::support::moto::moto;
use crate::support::pg::TestDb;
use crate::support::{Dir, run, shipgate};
use crate::tls;

const PASSWORD: &str = "Sup3r-S3cret/Pass word";
/// What AWS Secrets Manager's generated passwords look like: quotes, a backslash, `%`, `#`,
/// `?`, `:`, `/`, a space.
const HOSTILE: &str = r#"Zq9"p@ss:w/rd%#? x\q'z7"#;

/// Forms a password could be printed in: as is, percent-encoded (URLs), form-encoded,
/// JSON-escaped, Debug-escaped, and its distinctive pieces alone.
fn forms(password: &str, pieces: &[&str]) -> Vec<String> {
    let json = serde_json::to_string(password).unwrap();
    let debug = format!("{password:?}");
    let mut forms = vec![
        password.to_string(),
        url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>().replace('+', "%20"),
        json[1..json.len() - 1].to_string(),
        debug[1..debug.len() - 1].to_string(),
    ];
    forms.extend(pieces.iter().map(|p| p.to_string()));
    forms
}

fn url_with_password(url: &str, password: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_password(Some(password)).unwrap();
    u.to_string()
}

struct Scenario {
    name: &'static str,
    code: i32,
    /// The command, before the log level and output flags are added.
    cmd: Box<dyn Fn() -> Command>,
}

#[tokio::test]
async fn a_password_never_appears_in_any_failure_at_any_log_level() {
    let levels: &[&[&str]] = &[&[], &["-v"], &["-vv"], &["--quiet"]];
    every_failure(PASSWORD, &forms(PASSWORD, &["Sup3r-S3cret"]), levels).await;
}

/// The same with quotes and a backslash in the password, which JSON and Debug escaping would
/// change before a plain-text mask could see them, at the most verbose level.
#[tokio::test]
async fn a_password_with_quotes_and_a_backslash_never_appears_escaped() {
    let levels: &[&[&str]] = &[&[], &["-vvv"]];
    every_failure(HOSTILE, &forms(HOSTILE, &["Zq9", "rd%#", "x\\q", "q'z7"]), levels).await;
}

async fn every_failure(password: &'static str, forms: &[String], levels: &[&[&str]]) {
    let db = TestDb::new().await;
    let u = url::Url::parse(&db.url).unwrap();
    let (host, port, user) = (u.host_str().unwrap().to_string(), u.port().unwrap(), u.username().to_string());
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE a (id int);")]);
    let source = dir.arg().to_string();
    let tls_server = tls::server();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let with =
        |args: &'static [&'static str], env: Vec<(&'static str, String)>| -> Box<dyn Fn() -> Command> {
            let source = source.clone();
            Box::new(move || {
                let mut cmd = shipgate(args);
                cmd.env("SHIPGATE_SOURCE", &source).env("SHIPGATE_CONNECT_TIMEOUT", "1s");
                for (k, v) in &env {
                    cmd.env(k, v);
                }
                cmd
            })
        };
    let wrong_url = url_with_password(&db.url, password);
    // A role with this password connects; a migration that quotes the password then fails, its
    // SQL logged at -vvv and its error (which quotes the value) reported in text and JSON.
    let literal = format!("'{}'", password.replace('\'', "''"));
    let role = format!("pw_{}", db.name);
    crate::support::pg::exec(
        &mut db.connect().await,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD {literal}; GRANT ALL ON SCHEMA public TO {role}; \
             GRANT CONNECT ON DATABASE {} TO {role}",
            db.name
        ),
    )
    .await;
    let quoting = Dir::new(&[("1_quote.sql", &format!("SELECT {literal}::int;"))]);
    let quoting_source = quoting.arg().to_string();
    let mut trusted = url::Url::parse(&db.url).unwrap();
    trusted.set_username(&role).unwrap();
    let trusted_url = url_with_password(trusted.as_str(), password);
    let mut scenarios = vec![
        Scenario {
            name: "a migration quoting the password fails",
            code: 1,
            cmd: Box::new(move || {
                let mut cmd = shipgate(&["migrate", "up"]);
                cmd.env("SHIPGATE_SOURCE", &quoting_source).env("DATABASE_URL", &trusted_url);
                cmd
            }),
        },
        Scenario {
            name: "wrong password in DATABASE_URL",
            code: 3,
            cmd: with(&["migrate", "up"], vec![("DATABASE_URL", wrong_url.clone())]),
        },
        Scenario {
            name: "wrong DB_password",
            code: 3,
            cmd: with(
                &["db", "check"],
                vec![
                    ("DB_HOST", host.clone()),
                    ("DB_PORT", port.to_string()),
                    ("DB_USER", user.clone()),
                    ("DB_NAME", db.name.clone()),
                    ("DB_password", password.into()),
                ],
            ),
        },
        Scenario {
            name: "bad DB_PORT next to DB_password",
            code: 2,
            cmd: with(
                &["migrate", "status"],
                vec![("DB_PORT", "five".into()), ("DB_password", password.into())],
            ),
        },
        Scenario {
            name: "malformed DATABASE_URL",
            code: 2,
            cmd: with(
                &["migrate", "up"],
                vec![("DATABASE_URL", format!("postgres://u:{password}@h:port/db"))],
            ),
        },
        Scenario {
            name: "unreachable host",
            code: 3,
            cmd: with(
                &["db", "check"],
                vec![(
                    "DATABASE_URL",
                    url_with_password(&format!("postgres://u@127.0.0.1:{closed_port}/db"), password),
                )],
            ),
        },
        Scenario {
            name: "TLS with the wrong CA",
            code: 3,
            cmd: with(
                &["db", "check", "--sslmode", "verify-full"],
                vec![
                    ("DATABASE_URL", url_with_password(&tls_server.url, password)),
                    ("PGSSLROOTCERT", tls_server.other_ca()),
                ],
            ),
        },
        Scenario {
            name: "no TLS against a TLS-only server",
            code: 3,
            cmd: with(
                &["migrate", "up", "--sslmode", "disable"],
                vec![("DATABASE_URL", url_with_password(&tls_server.url, password))],
            ),
        },
    ];

    let m = moto("a_password_never_appears_in_any_failure_at_any_log_level (secret scenarios)").await;
    if let Some(m) = &m {
        let rds = json!({"engine": "postgres", "host": host, "port": port, "username": user, "password": password, "dbname": db.name});
        let secrets: Vec<(&'static str, i32, String)> = vec![
            ("secret with the wrong password (read twice)", 3, rds.to_string()),
            ("secret URL with the wrong password", 3, json!({"DATABASE_URL": wrong_url}).to_string()),
            ("secret that is not valid JSON", 2, format!(r#"{{"username":"u","password":"{password}""#)),
            ("secret without a username", 2, json!({"password": password, "host": host}).to_string()),
            (
                "secret URL of another database",
                2,
                json!({"url": format!("mysql://u:{password}@h/db")}).to_string(),
            ),
            ("secret that is neither JSON nor a URL", 2, password.to_string()),
            (
                "secret pointing at a closed port",
                3,
                json!({"host": "127.0.0.1", "port": closed_port, "username": "u", "password": password})
                    .to_string(),
            ),
        ];
        for (name, code, value) in secrets {
            let (id, _) = m.create_secret(&value).await;
            let base = m.shipgate(&[]);
            let envs: Vec<(String, String)> = base
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
                .collect();
            let source = source.clone();
            scenarios.push(Scenario {
                name,
                code,
                cmd: Box::new(move || {
                    let mut cmd = shipgate(&["migrate", "up"]);
                    cmd.envs(envs.iter().map(|(k, v)| (k, v)))
                        .env("DB_SECRET_ID", &id)
                        .env("SHIPGATE_SOURCE", &source)
                        .env("SHIPGATE_CONNECT_TIMEOUT", "1s")
                        .env("AWS_MAX_ATTEMPTS", "1");
                    cmd
                }),
            });
        }
    }

    let mut runs = 0;
    for scenario in &scenarios {
        for level in levels {
            for output in ["text", "json"] {
                let mut cmd = (scenario.cmd)();
                cmd.args(*level).args(["--output", output]);
                let out = run(cmd).await.expect(scenario.code);
                for form in forms {
                    assert!(
                        !out.all().contains(form.as_str()),
                        "{} {level:?} {output}: printed the password as {form}:\n{}",
                        scenario.name,
                        out.all()
                    );
                }
                runs += 1;
            }
        }
    }
    eprintln!("{runs} failing runs, the password printed in none");
}
