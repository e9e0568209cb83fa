//! What ships beside the binary, checked against the binary: the aws/ templates and their
//! example variables, the IAM policies against the AWS calls the code makes, the Dockerfile
//! against the README (and hadolint), the workflows (actionlint) and the action's outputs
//! against what `deploy` writes, and the generated reference against the README.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::moto::{moto, unique};
use crate::support::{repo_root, run, shipgate};

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn templates() -> Vec<PathBuf> {
    files("aws", "json")
}

/// Every `${NAME}` / `${NAME:-default}` of a text (`$${` is a literal).
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        rest = &rest[at + 2..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !escaped && !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

fn example_vars() -> BTreeSet<String> {
    read(&repo_root().join("aws/example.vars"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').expect("NAME=VALUE").0.to_string())
        .collect()
}

#[tokio::test]
async fn every_template_renders_with_the_example_vars_and_every_example_var_is_used() {
    assert_eq!(templates().len(), 2, "{:?}", templates());
    let vars_file = repo_root().join("aws/example.vars");
    let mut used = BTreeSet::new();
    for template in templates().iter().chain(&files("aws/iam", "json")) {
        used.extend(placeholders(&read(template)));
    }
    for template in templates() {
        // AWS_REGION and friends must come from the file, not from the machine running the test.
        let mut cmd = shipgate(&[
            "taskdef",
            "render",
            template.to_str().unwrap(),
            "--vars-file",
            vars_file.to_str().unwrap(),
        ]);
        cmd.env_remove("AWS_REGION").env_remove("IMAGE_TAG");
        let r = run(cmd).await.expect(0);
        let rendered: Value = serde_json::from_str(&r.stdout).unwrap();
        for c in rendered["containerDefinitions"].as_array().unwrap() {
            let log = &c["logConfiguration"];
            assert_eq!(log["logDriver"], "awslogs", "{}", template.display());
            assert!(log["options"]["awslogs-stream-prefix"].is_string(), "{}", template.display());
            assert!(log["options"]["mode"].is_string(), "{}", template.display());
            assert_eq!(c["readonlyRootFilesystem"], true, "{}", template.display());
            for s in c["secrets"].as_array().unwrap() {
                assert!(s["valueFrom"].as_str().unwrap().starts_with("arn:aws:secretsmanager:"), "{s}");
            }
        }
    }
    let migrate: Value = serde_json::from_str(&read(&repo_root().join("aws/migration-task.json"))).unwrap();
    assert_eq!(migrate["containerDefinitions"][0]["stopTimeout"], 120);
    assert_eq!(migrate["containerDefinitions"][0]["logConfiguration"]["options"]["mode"], "blocking");
    let defined = example_vars();
    let unused: Vec<&String> = defined.difference(&used).collect();
    let missing: Vec<&String> = used.difference(&defined).collect();
    assert!(unused.is_empty(), "aws/example.vars defines variables nothing uses: {unused:?}");
    assert!(missing.is_empty(), "aws/example.vars has no example for: {missing:?}");
}

#[tokio::test]
async fn every_template_registers_against_the_emulator() {
    let Some(moto) = moto("every_template_registers_against_the_emulator").await else { return };
    let vars_file = repo_root().join("aws/example.vars");
    let app = format!("APP={}", unique("pkg"));
    for template in templates() {
        let r = run(moto.shipgate(&[
            "taskdef",
            "register",
            template.to_str().unwrap(),
            "--vars-file",
            vars_file.to_str().unwrap(),
            "--var",
            &app,
        ]))
        .await
        .expect(0);
        assert!(r.all().contains(":task-definition/pkg-"), "{}: {}", template.display(), r.all());
    }
}

/// The IAM actions for the SDK operations a source file calls: `ecs`, `logs` or `client`
/// followed by `.operation()` (the thin edge modules call nothing else on a client).
fn calls(file: &str, service: &str) -> BTreeSet<String> {
    let text: String = read(&repo_root().join(file)).chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = BTreeSet::new();
    for client in ["ecs.", "logs.", "client."] {
        for (at, _) in text.match_indices(client) {
            let before = text[..at].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[at + client.len()..];
            let op: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !op.is_empty() && rest[op.len()..].starts_with("()") {
                let pascal: String = op.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
                found.insert(format!("{service}:{pascal}"));
            }
        }
    }
    found
}

fn policy_actions(name: &str) -> BTreeSet<String> {
    let doc: Value = serde_json::from_str(&read(&repo_root().join("aws/iam").join(name))).unwrap();
    let mut actions = Vec::new();
    for statement in doc["Statement"].as_array().unwrap() {
        match &statement["Action"] {
            Value::String(a) => actions.push(a.clone()),
            Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("{name}: Action is {other}"),
        }
    }
    actions.into_iter().collect()
}

#[test]
fn the_policies_allow_exactly_what_the_code_calls() {
    for path in files("aws/iam", "json") {
        let name = path.file_name().unwrap().to_str().unwrap();
        let doc: Value = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc["Version"], "2012-10-17", "{name}");
        for s in doc["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow", "{name}");
            assert!(s["Sid"].is_string(), "{name}: every statement says why (Sid)");
        }
        for action in policy_actions(name) {
            assert!(!action.contains('*'), "{name}: wildcard action {action}");
        }
    }
    // No AWS call is made outside the edge modules.
    let mut stack = vec![repo_root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs")
                && !path.starts_with(repo_root().join("src/aws"))
            {
                assert!(!read(&path).contains(".send()"), "{} calls AWS outside src/aws", path.display());
            }
        }
    }

    let mut code = calls("src/aws/ecs.rs", "ecs");
    code.extend(calls("src/aws/logs.rs", "logs"));
    assert!(code.len() >= 10, "the call scanner found too little: {code:?}");
    // Not calls but conditions of them: RunTask and RegisterTaskDefinition hand the task's
    // roles to ECS, and RunTask tags the task it creates.
    let implied: BTreeSet<String> = ["iam:PassRole", "ecs:TagResource"].map(String::from).into();
    let deploy = policy_actions("deploy-role-policy.json");
    let expected: BTreeSet<String> = code.union(&implied).cloned().collect();
    assert_eq!(
        deploy,
        expected,
        "deploy-role-policy.json: extra {:?}, missing {:?}",
        deploy.difference(&expected).collect::<Vec<_>>(),
        expected.difference(&deploy).collect::<Vec<_>>()
    );
    assert_eq!(
        policy_actions("migrate-task-role-policy.json"),
        calls("src/aws/secrets.rs", "secretsmanager")
    );
    let execution = policy_actions("task-execution-role-policy.json");
    let pull_log_secret: BTreeSet<String> = [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    ]
    .map(String::from)
    .into();
    assert_eq!(execution, pull_log_secret);
}

/// `NAME ARGS` of the Dockerfile's last stage.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read(&repo_root().join("Dockerfile")).replace("\\\n", " ");
    let lines: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, args) = l.split_once(' ').unwrap_or((l, ""));
            (name.to_uppercase(), args.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect();
    let last_from = lines.iter().rposition(|(n, _)| n == "FROM").expect("a FROM");
    lines[last_from..].to_vec()
}

#[tokio::test]
async fn the_dockerfile_agrees_with_the_readme_and_passes_hadolint() {
    let stage = dockerfile_instructions();
    let get = |name: &str| -> Vec<&str> {
        stage.iter().filter(|(n, _)| n == name).map(|(_, a)| a.as_str()).collect()
    };
    assert_eq!(get("ENTRYPOINT"), [r#"["shipgate"]"#]);
    assert_eq!(get("CMD"), [r#"["migrate"]"#]);
    assert!(get("COPY").contains(&"migrations /app/migrations"), "{:?}", get("COPY"));
    assert!(get("ENV").iter().any(|e| e.contains("SHIPGATE_SOURCE=/app/migrations")), "{:?}", get("ENV"));
    let user = get("USER");
    assert!(user.len() == 1 && !user[0].starts_with('0') && !user[0].starts_with("root"), "{user:?}");
    let readme = read(&repo_root().join("README.md"));
    for promised in [r#"ENTRYPOINT ["shipgate"]"#, r#"CMD ["migrate"]"#, "/app/migrations", "SHIPGATE_SOURCE"]
    {
        assert!(readme.contains(promised), "the README does not say {promised}");
    }
    // Only what the build and the image need is sent to the builder.
    let ignore = read(&repo_root().join(".dockerignore"));
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src/", "!shipgate.toml", "!migrations/"] {
        assert!(ignore.lines().any(|l| l == needed), ".dockerignore lacks {needed}");
    }

    let Ok(hadolint) = std::env::var("SHIPGATE_HADOLINT") else {
        eprintln!("skipped hadolint: SHIPGATE_HADOLINT unset (scripts/test installs it)");
        return;
    };
    let out = std::process::Command::new(hadolint)
        .arg("--no-color")
        .arg(repo_root().join("Dockerfile"))
        .output()
        .expect("hadolint runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "hadolint:\n{text}");
}

#[tokio::test]
async fn the_workflows_pass_actionlint_and_the_action_declares_every_output() {
    let action = read(&repo_root().join("action.yml"));
    let outputs_section = action.split("\noutputs:\n").nth(1).unwrap().split("\nruns:\n").next().unwrap();
    let declared: BTreeSet<&str> = outputs_section
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    let written: BTreeSet<&str> = shipgate::deploy::report::OUTPUT_NAMES.into_iter().collect();
    assert_eq!(declared, written, "action.yml outputs");
    for name in written {
        assert!(
            outputs_section.contains(&format!("${{{{ steps.deploy.outputs.{name} }}}}")),
            "action.yml: output {name} is not the deploy step's"
        );
    }
    for input in ["env:", "vars:", "config:", "args:"] {
        assert!(action.contains(&format!("\n  {input}\n")), "action.yml lacks input {input}");
    }
    let example = read(&repo_root().join(".github/workflows/deploy-example.yml"));
    for step in [
        "aws-actions/configure-aws-credentials@",
        "aws-actions/amazon-ecr-login@",
        "uses: ./",
        "id-token: write",
    ] {
        assert!(example.contains(step), "deploy-example.yml lacks {step}");
    }
    let ci = read(&repo_root().join(".github/workflows/ci.yml"));
    for step in [
        "cargo fmt --check",
        "cargo clippy --locked --all-targets -- -D warnings",
        "run: scripts/test",
        "cargo build --release --locked",
    ] {
        assert!(ci.contains(step), "ci.yml lacks {step}");
    }

    let Ok(actionlint) = std::env::var("SHIPGATE_ACTIONLINT") else {
        eprintln!("skipped actionlint: SHIPGATE_ACTIONLINT unset (scripts/test installs it)");
        return;
    };
    let out = std::process::Command::new(actionlint)
        .arg(".github/workflows/*.yml")
        .current_dir(repo_root())
        .output()
        .expect("actionlint runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "actionlint:\n{text}");
    let count = files(".github/workflows", "yml").len();
    assert!(
        text.contains(&format!("Checking {count} workflow file(s)")),
        "actionlint missed a workflow:\n{text}"
    );
}

#[tokio::test]
async fn the_readme_reference_is_the_generated_one_and_the_generated_tools_work() {
    let readme = read(&repo_root().join("README.md"));
    let copy = readme
        .split("<!-- reference:start -->\n")
        .nth(1)
        .and_then(|rest| rest.split("<!-- reference:end -->").next())
        .expect("README.md has the reference markers");
    let generated = run(shipgate(&["config", "reference"])).await.expect(0).stdout;
    assert!(copy == generated, "the README's configuration reference is stale: run scripts/update-reference");

    let schema: Value =
        serde_json::from_str(&run(shipgate(&["config", "schema"])).await.expect(0).stdout).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["$defs"]["EnvSection"]["properties"]["platform"].is_object());

    let bash = run(shipgate(&["completions", "bash"])).await.expect(0).stdout;
    assert!(bash.contains("_shipgate()") && bash.contains("deploy"), "{bash}");
    let zsh = run(shipgate(&["completions", "zsh"])).await.expect(0).stdout;
    assert!(zsh.starts_with("#compdef shipgate"), "{zsh}");
    let page = run(shipgate(&["man"])).await.expect(0).stdout;
    assert!(page.contains(".TH shipgate 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let r = run(shipgate(&["man", "--dir", dir.path().to_str().unwrap()])).await.expect(0);
    for page in ["shipgate.1", "shipgate-deploy.1", "shipgate-migrate-up.1"] {
        assert!(dir.path().join(page).is_file(), "no {page}: {}", r.all());
    }
    let r = run(shipgate(&["man", "--dir", "/proc/shipgate-cannot-write-here"])).await.expect(2);
    assert!(
        r.stderr.contains("cannot write the man pages into /proc/shipgate-cannot-write-here"),
        "{}",
        r.stderr
    );
}

/// The README's commands that need neither AWS nor a database, run as written from the
/// repository root, with `shipgate` on PATH and a fresh home directory.
#[tokio::test]
async fn the_readmes_offline_commands_run_as_written() {
    let readme = read(&repo_root().join("README.md"));
    let home = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_shipgate")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let starts = [
        "mkdir -p ~/.local/share/bash-completion/completions",
        "shipgate completions bash > ",
        "shipgate man --dir ",
        "shipgate taskdef render aws/migration-task.json",
        "shipgate config check --env ",
    ];
    for start in starts {
        let line = readme
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("the README has no `{start}…` line"));
        let command = line.split("  #").next().unwrap().trim().replace("$GITHUB_SHA", "test");
        let out = std::process::Command::new("sh")
            .args(["-c", &command])
            .current_dir(repo_root())
            .env("HOME", home.path())
            .env("PATH", &path)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(home.path().join(".local/share/bash-completion/completions/shipgate").is_file());
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks), numbered as GitHub
/// numbers repeats (`name`, `name-1`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else { continue };
        if fenced || !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut name = base.clone();
        let mut n = 0;
        while found.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        found.insert(name);
    }
    found
}

/// The `[text](target)` links of a Markdown file, outside code blocks and inline code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans hold examples, not links.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        for (at, _) in prose.match_indices("](") {
            let rest = &prose[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_string());
            }
        }
    }
    found
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    if root.join("docs").is_dir() {
        pages.extend(files("docs", "md"));
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = read(page);
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", page.display()));
                continue;
            }
            if !anchor.is_empty()
                && target.extension().is_some_and(|x| x == "md")
                && !anchors(&read(&target)).contains(anchor)
            {
                broken.push(format!("{}: {link}: no such heading", page.display()));
            }
        }
    }
    assert!(checked >= 5, "the link scanner found too little: {checked}");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The slugs are GitHub's: punctuation goes, and each space stays a hyphen.
    assert_eq!(
        slug("Expand / contract: post migrations after the rollout"),
        "expand--contract-post-migrations-after-the-rollout"
    );
    assert_eq!(
        slug("`MIGRATION_TYPE`: the container entrypoint contract"),
        "migration_type-the-container-entrypoint-contract"
    );
}
