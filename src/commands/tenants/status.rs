//! `shipgate tenants status`: where every tenant stands, from a read-only session, in a few
//! statements for the whole fleet (histories are read 500 tenants per statement).

use serde_json::json;

use crate::config::FleetConfig;
use crate::error::Result;
use crate::fleet::state::histogram;
use crate::fleet::survey::{Survey, View, survey};
use crate::output::Reporter;
use crate::shutdown::Shutdown;

pub async fn run(cfg: &FleetConfig, shutdown: &Shutdown, out: &Reporter) -> Result<()> {
    let survey = survey(cfg, shutdown).await?;
    let latest = survey.set.migrations.last().map(|m| m.version);
    let versions = histogram(survey.views.iter().filter(|v| v.schema_exists).map(|v| v.standing.version));
    let count = |problem: &str| survey.views.iter().filter(|v| v.problems().contains(&problem)).count();
    let current = survey.views.iter().filter(|v| v.problems().is_empty()).count();
    let summary = json!({
        "tenants": survey.views.len(),
        "current": current,
        "behind": count("behind"),
        "failed": count("failed"),
        "dirty": count("dirty"),
        "drift": count("drift"),
        "no_schema": count("no_schema"),
        "invalid": survey.invalid.len(),
    });
    let doc = json!({
        "scope": survey.scope,
        "tenant_set": survey.set.dir.display().to_string(),
        "latest_version": latest,
        "versions": versions.iter().map(|(v, n)| json!({"version": v, "tenants": n})).collect::<Vec<_>>(),
        "tenants": survey.views.iter().map(|v| {
            let mut row = serde_json::to_value(v).expect("views serialize");
            row["state"] = json!(v.problems().first().copied().unwrap_or("current"));
            row["problems"] = json!(v.problems());
            row
        }).collect::<Vec<_>>(),
        "invalid": survey.invalid.iter().map(|(n, r)| json!({"name": n, "reason": r})).collect::<Vec<_>>(),
        "summary": summary,
    });
    // Bars for a person at a terminal; plain counts for a log or a pipe.
    let bars = std::io::IsTerminal::is_terminal(&std::io::stdout());
    out.document(&doc, &render_text(&survey, latest, &versions, current, bars));
    Ok(())
}

/// One tenant's line under a problem heading.
fn problem_line(problem: &str, v: &View) -> String {
    let st = &v.standing;
    match problem {
        "failed" => {
            let f = v.last_failure.as_ref().expect("failed views have a failure");
            let at = f.version.map(|m| format!(" at migration {m}")).unwrap_or_default();
            let reason = f.reason.lines().next().unwrap_or_default();
            format!("{}{at} ({}, run {}): {reason}", v.tenant, f.failed_at, f.run_id)
        }
        "dirty" => format!(
            "{}: {:?}; check it, then `shipgate migrate repair --set tenant --schema {} --version V`",
            v.tenant, st.dirty, v.tenant
        ),
        "drift" => format!("{}: modified {:?}, missing {:?}", v.tenant, st.modified, st.missing),
        "behind" => {
            let at = st.version.map_or("nothing applied".into(), |x| format!("at {x}"));
            format!("{}: {at}, {} pending", v.tenant, st.pending.len())
        }
        _ => format!("{} (`shipgate tenants provision {}` creates it)", v.tenant, v.tenant),
    }
}

/// The longest bar of the version histogram, in characters.
const BAR_WIDTH: usize = 40;

/// `n` of at most `most` as a bar of up to `width` characters, in eighths of a character;
/// never empty for a count above zero.
fn bar(n: usize, most: usize, width: usize) -> String {
    if n == 0 || most == 0 {
        return String::new();
    }
    let eighths = (n * width * 8).div_ceil(most).max(1);
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
    }
    s
}

/// At most this many tenants are named per problem in text; JSON names them all.
const SHOWN: usize = 20;

fn render_text(
    survey: &Survey,
    latest: Option<i64>,
    versions: &[(Option<i64>, usize)],
    current: usize,
    bars: bool,
) -> String {
    let mut s = format!(
        "tenant fleet of {}: {} tenant{}, tenant set {} (latest version {})\n",
        survey.scope,
        survey.views.len(),
        if survey.views.len() == 1 { "" } else { "s" },
        survey.set.dir.display(),
        latest.map_or("none".into(), |v| v.to_string())
    );
    for (version, n) in versions {
        let label = match version {
            Some(v) if Some(*v) == latest => format!("version {v} (latest)"),
            Some(v) => format!("version {v}"),
            None => "nothing applied".into(),
        };
        let plural = if *n == 1 { " " } else { "s" };
        let most = versions.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let drawn = if bars { format!(" {}", bar(*n, most, BAR_WIDTH)) } else { String::new() };
        s.push_str(format!("  {label:<32} {n:>6} tenant{plural}{drawn}").trim_end());
        s.push('\n');
    }
    let sections = [
        ("failed", "failed in their last run"),
        ("dirty", "dirty (a no-transaction migration did not finish)"),
        ("drift", "drifted from the files (modified or missing migrations)"),
        ("behind", "behind"),
        ("no_schema", "listed by tenants_query but without a schema"),
    ];
    for (key, title) in sections {
        let hits: Vec<&View> = survey.views.iter().filter(|v| v.problems().contains(&key)).collect();
        if hits.is_empty() {
            continue;
        }
        s.push_str(&format!("{} {title}:\n", hits.len()));
        for v in hits.iter().take(SHOWN) {
            s.push_str(&format!("  {}\n", problem_line(key, v)));
        }
        if hits.len() > SHOWN {
            s.push_str(&format!(
                "  ... and {} more (--output json lists every tenant)\n",
                hits.len() - SHOWN
            ));
        }
    }
    if !survey.invalid.is_empty() {
        s.push_str(&format!(
            "{} rows of tenants_query are not valid schema names (skipped by every run):\n",
            survey.invalid.len()
        ));
        for (_, reason) in survey.invalid.iter().take(SHOWN) {
            s.push_str(&format!("  {reason}\n"));
        }
    }
    s.push_str(&format!("{current} of {} tenants current", survey.views.len()));
    s
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn the_histogram_bars_are_proportional_and_never_hide_a_tenant() {
        // (count, largest count, width) -> bar
        let cases = [
            (10, 10, 4, "████"),
            (5, 10, 4, "██"),
            (1, 10, 4, "▌"),
            (1, 100_000, 40, "▏"),
            (3, 8, 2, "▊"),
            (0, 10, 4, ""),
        ];
        for (n, most, width, want) in cases {
            assert_eq!(bar(n, most, width), want, "{n} of {most} in {width}");
        }
    }
}
