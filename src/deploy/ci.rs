//! Where a deploy reports besides stdout: GitHub Actions workflow commands (log groups,
//! masks, the error annotation), the step summary and step outputs, and the terminal spinner.

use std::time::Instant;

use crate::config::deploy::{CiConfig, EnvConfig};
use crate::deploy::report::{self, DeployRecord};
use crate::error::Result;
use crate::output::{Event, Reporter};
use crate::progress;

pub struct Ci {
    cfg: CiConfig,
    out: Reporter,
    started: Instant,
}

impl Ci {
    pub fn new(cfg: &CiConfig, out: &Reporter) -> Ci {
        Ci { cfg: cfg.clone(), out: out.clone(), started: Instant::now() }
    }

    /// Mask every secret-looking template variable in the CI log before anything is printed
    /// (shipgate's own output already masks them: `config::deploy::env_config` registered them).
    pub fn mask_variables(&self, env: &EnvConfig) {
        if !self.cfg.github {
            return;
        }
        for value in env.secret_values() {
            for line in value.lines() {
                // Not redacted: the runner must see the value to mask it.
                self.out.raw_unredacted(&format!("::add-mask::{line}"));
            }
        }
    }

    /// A phase starts: a collapsible log group in Actions, the spinner on a terminal.
    pub fn group(&self, title: &str) {
        if self.cfg.github {
            self.out.raw(&format!("::group::{title}"));
        }
        if self.cfg.progress {
            progress::phase(title);
        }
        self.out.emit(&Event::Phase { phase: title.to_string(), state: "started", message: String::new() });
        tracing::info!("── {title}");
    }

    pub fn end_group(&self, title: &str, ok: bool, message: &str) {
        if self.cfg.github {
            self.out.raw("::endgroup::");
        }
        progress::clear();
        let state = if ok { "succeeded" } else { "failed" };
        self.out.emit(&Event::Phase { phase: title.to_string(), state, message: message.to_string() });
    }

    /// A workflow command (an annotation) under GitHub Actions; nothing elsewhere.
    pub fn workflow(&self, line: &str) {
        if self.cfg.github {
            self.out.raw(line);
        }
    }

    /// Markdown for the step summary, under GitHub Actions.
    pub fn step_summary(&self, markdown: &str) {
        if let Some(path) = &self.cfg.step_summary {
            crate::output::append_file(path, &crate::redact::redact(markdown), "GITHUB_STEP_SUMMARY");
        }
    }

    /// The end: the summary event, the step summary and outputs, and the error annotation.
    pub fn finish(&self, record: &mut DeployRecord, result: &Result<()>) {
        progress::clear();
        record.duration_ms = self.started.elapsed().as_millis();
        record.succeeded = result.is_ok();
        if let Err(e) = result {
            record.message = e.message().to_string();
            record.cancelled = matches!(e.kind(), crate::error::Kind::Interrupted(_));
        }
        self.out.emit(&Event::DeploySummary(record.clone()));
        if !self.cfg.github {
            return;
        }
        if let Err(e) = result {
            self.out.raw(&report::error_annotation(
                &format!("shipgate {} {}", record.command, record.env),
                &e.to_string(),
            ));
        }
        if let Some(path) = &self.cfg.step_summary {
            crate::output::append_file(
                path,
                &crate::redact::redact(&report::step_summary(record)),
                "GITHUB_STEP_SUMMARY",
            );
        }
        if let Some(path) = &self.cfg.outputs {
            let lines = report::output_lines(&report::outputs(record));
            crate::output::append_file(path, &crate::redact::redact(&lines), "GITHUB_OUTPUT");
        }
    }
}
