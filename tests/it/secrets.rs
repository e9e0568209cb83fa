//! Credentials from AWS Secrets Manager, against the emulator over HTTP and a real PostgreSQL:
//! the shapes teams store, version stages, a rotation landing between two reads, and the
//! failures (unknown secret, missing key) with what they print.

use std::time::Duration;

use serde_json::json;

use crate::support::moto::moto;
use crate::support::pg::TestDb;
use crate::support::{Dir, proxy, run};

struct Db {
    host: String,
    port: u16,
    user: String,
    password: String,
    name: String,
}

fn parts(db: &TestDb) -> Db {
    let u = url::Url::parse(&db.url).unwrap();
    Db {
        host: u.host_str().unwrap().to_string(),
        port: u.port().unwrap(),
        user: u.username().to_string(),
        password: u.password().unwrap().to_string(),
        name: db.name.clone(),
    }
}

fn rds_secret(db: &Db, password: &str) -> String {
    json!({
        "engine": "postgres",
        "host": db.host,
        "port": db.port,
        "username": db.user,
        "password": password,
        "dbname": db.name,
        "dbInstanceIdentifier": "it-db",
    })
    .to_string()
}

/// A role of our own, so the test can give it a password nobody else uses.
async fn role(db: &TestDb, password: &str) -> String {
    let name = format!("sec_{}", fastrand::u32(..));
    let mut admin = db.connect().await;
    crate::support::pg::exec(
        &mut admin,
        &format!("CREATE ROLE {name} LOGIN SUPERUSER PASSWORD '{password}'"),
    )
    .await;
    name
}

fn dir() -> Dir {
    Dir::new(&[("1_a.sql", "CREATE TABLE a (id int);")])
}

#[tokio::test]
async fn rds_format_url_forms_and_db_overrides_all_reach_the_database() {
    let Some(m) = moto("rds_format_url_forms_and_db_overrides_all_reach_the_database").await else { return };
    let db = TestDb::new().await;
    let p = parts(&db);
    let dir = dir();

    // The RDS format, named by --db-secret, then applied.
    let (name, arn) = m.create_secret(&rds_secret(&p, &p.password)).await;
    let up = m.shipgate(&["migrate", "up", "--source", dir.arg(), "--db-secret", &name]);
    let out = run(up).await.expect(0);
    assert!(
        out.stderr.contains(&format!("read the database credentials from secret `{name}`")),
        "{}",
        out.stderr
    );

    // By ARN, from DB_SECRET_ID; db check names the source.
    let mut check = m.shipgate(&["db", "check", "--source", dir.arg(), "--output", "json"]);
    check.env("DB_SECRET_ID", &arn);
    let out = run(check).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["credentials_from"], format!("secret `{arn}`"));
    assert_eq!((doc["applied"].as_u64(), doc["pending"].as_u64()), (Some(1), Some(0)), "{doc}");

    // An RDS-managed secret (username and password only): DB_HOST/DB_PORT/DB_NAME say where,
    // and a DB_HOST set next to a full secret overrides the secret's host.
    let (managed, _) =
        m.create_secret(&json!({"username": p.user, "password": p.password}).to_string()).await;
    let mut cmd = m.shipgate(&["migrate", "verify", "--source", dir.arg()]);
    cmd.env("DB_SECRET_ID", &managed)
        .env("DB_HOST", &p.host)
        .env("DB_PORT", p.port.to_string())
        .env("DB_NAME", &p.name);
    run(cmd).await.expect(0);
    let wrong_host = json!({"username": p.user, "password": p.password, "host": "db.invalid", "port": p.port, "dbname": p.name});
    let (overridden, _) = m.create_secret(&wrong_host.to_string()).await;
    let mut cmd = m.shipgate(&["migrate", "verify", "--source", dir.arg()]);
    cmd.env("DB_SECRET_ID", &overridden).env("DB_HOST", &p.host);
    run(cmd).await.expect(0);

    // The URL shapes: {"DATABASE_URL": ...} with other app secrets beside it, and the bare URL.
    for value in [json!({"DATABASE_URL": db.url, "STRIPE_KEY": "sk_test_123456"}).to_string(), db.url.clone()]
    {
        let (url_secret, _) = m.create_secret(&value).await;
        let mut cmd = m.shipgate(&["migrate", "verify", "--source", dir.arg()]);
        cmd.env("DB_SECRET_ID", &url_secret);
        run(cmd).await.expect(0);
    }

    // DATABASE_URL wins over DB_SECRET_ID, and says that it did.
    let mut cmd = m.shipgate(&["migrate", "verify", "--source", dir.arg()]);
    cmd.env("DATABASE_URL", &db.url).env("DB_SECRET_ID", "it/does-not-exist");
    let out = run(cmd).await.expect(0);
    assert!(
        out.stderr.contains("DB_SECRET_ID is ignored: DATABASE_URL names the database"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn version_stages_pick_the_version() {
    let Some(m) = moto("version_stages_pick_the_version").await else { return };
    let db = TestDb::new().await;
    let p = parts(&db);
    let dir = dir();
    let (name, _) = m.create_secret(&rds_secret(&p, "stale-password-1")).await;
    // The new version becomes AWSCURRENT; the first moves to AWSPREVIOUS.
    m.put_secret(&name, &rds_secret(&p, &p.password), &[]).await;
    // A custom label on a third version.
    m.put_secret(&name, &rds_secret(&p, &p.password), &["blue"]).await;
    for (id, code) in [
        (name.clone(), 0),
        (format!("{name}:AWSCURRENT"), 0),
        (format!("{name}:blue"), 0),
        (format!("{name}:AWSPREVIOUS"), 3),
    ] {
        let mut cmd = m.shipgate(&["db", "check", "--source", dir.arg(), "--db-secret", &id]);
        cmd.env("AWS_MAX_ATTEMPTS", "1");
        let out = run(cmd).await.expect(code);
        assert!(!out.all().contains("stale-password-1"), "{id}: {}", out.all());
        if code == 3 {
            assert!(out.stderr.contains("password authentication failed"), "{}", out.stderr);
            assert!(out.stderr.contains("no newer version"), "{}", out.stderr);
        }
    }
    let mut cmd =
        m.shipgate(&["db", "check", "--source", dir.arg(), "--db-secret", &format!("{name}:green")]);
    cmd.env("AWS_MAX_ATTEMPTS", "1");
    let out = run(cmd).await.expect(2);
    assert!(out.stderr.contains("has no version labelled green"), "{}", out.stderr);
}

#[tokio::test]
async fn a_rotation_between_two_reads_is_picked_up_and_retried_once() {
    let Some(m) = moto("a_rotation_between_two_reads_is_picked_up_and_retried_once").await else { return };
    let db = TestDb::new().await;
    let p = parts(&db);
    let dir = dir();
    // The database already has the new password; the secret still holds the old one, and
    // moves to the new one just before the runner reads it a second time.
    let user = role(&db, "rotated-password-2").await;
    let secret = |password: &str| {
        json!({"username": user, "password": password, "host": p.host, "port": p.port, "dbname": p.name})
            .to_string()
    };
    let (name, _) = m.create_secret(&secret("old-password-1")).await;
    let (client, id, rotated) = (m.secrets.clone(), name.clone(), secret("rotated-password-2"));
    let proxy = proxy::start(&m.endpoint, "secretsmanager.GetSecretValue", 2, move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(client.put_secret_value().secret_id(&id).secret_string(rotated).send()).expect("rotate");
    });
    let mut cmd = m.shipgate(&["migrate", "up", "--source", dir.arg(), "--db-secret", &name]);
    cmd.env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &proxy.endpoint);
    let out = run(cmd).await.expect(0);
    assert_eq!(proxy.seen(), 2, "read once, then once more after the rejected password");
    assert!(out.stderr.contains("read the secret again: a new version, retrying with it"), "{}", out.stderr);
    for password in ["old-password-1", "rotated-password-2"] {
        assert!(!out.all().contains(password), "{}", out.all());
    }

    // No rotation: the second read finds the same version, and the run fails with exit 3
    // after exactly two reads, without retrying further.
    let (stuck, _) = m.create_secret(&secret("old-password-1")).await;
    let proxy = proxy::start(&m.endpoint, "secretsmanager.GetSecretValue", 99, || {});
    let started = std::time::Instant::now();
    let mut cmd = m.shipgate(&["migrate", "up", "--source", dir.arg(), "--db-secret", &stuck]);
    cmd.env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &proxy.endpoint);
    let out = run(cmd).await.expect(3);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(proxy.seen(), 2);
    assert!(
        out.stderr.contains(&format!("the password from secret `{stuck}` was rejected")),
        "{}",
        out.stderr
    );
    assert!(!out.all().contains("old-password-1"), "{}", out.all());
}

#[tokio::test]
async fn unknown_secrets_and_missing_keys_fail_before_connecting() {
    let Some(m) = moto("unknown_secrets_and_missing_keys_fail_before_connecting").await else { return };
    let dir = dir();
    let missing_password =
        json!({"username": "app", "host": "db.internal", "api_token": "tok-abcdef-99"}).to_string();
    let (no_password, _) = m.create_secret(&missing_password).await;
    let (not_json, _) = m.create_secret(r#"{"username":"app","password":"half-a-secret-77""#).await;
    let (mysql, _) = m
        .create_secret(&json!({"engine": "mysql", "username": "a", "password": "my-secret-88"}).to_string())
        .await;
    let cases = [
        ("it/no-such-secret".to_string(), "secret `it/no-such-secret` does not exist"),
        (no_password, "has no `password` key (its keys: api_token, host, username)"),
        (not_json, "is not valid JSON"),
        (mysql, "is for engine `mysql`"),
    ];
    for (id, needle) in cases {
        let mut cmd = m.shipgate(&["-vv", "migrate", "up", "--source", dir.arg(), "--db-secret", &id]);
        cmd.env("AWS_MAX_ATTEMPTS", "1");
        let out = run(cmd).await.expect(2);
        assert!(out.stderr.contains(needle), "{id}: {}", out.stderr);
        assert!(!out.stderr.contains("could not connect"), "{}", out.stderr);
        for value in ["tok-abcdef-99", "half-a-secret-77", "my-secret-88"] {
            assert!(!out.all().contains(value), "{id} printed a secret value: {}", out.all());
        }
    }
}
