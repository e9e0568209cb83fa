//! Reading one CloudWatch Logs stream a page at a time, from its head, by forward token.

use aws_sdk_cloudwatchlogs::Client;

use super::error::{Failure, failure};
use crate::task::logs::Read;

/// One page of a stream: the lines, and the read it counts as for [`crate::task::logs::Tail`].
#[derive(Debug)]
pub struct Page {
    pub read: Read,
    pub lines: Vec<(Option<i64>, String)>,
}

pub async fn read(logs: &Client, group: &str, stream: &str, token: Option<&str>) -> Result<Page, Failure> {
    let result = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        // Required with forward tokens, and the only way to get the head of a long stream.
        .start_from_head(true)
        .set_next_token(token.map(str::to_string))
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            return Ok(Page { read: Read::Missing, lines: Vec::new() });
        }
        Err(e) => return Err(failure("logs:GetLogEvents", &e)),
    };
    let mut bytes = 0;
    let lines: Vec<(Option<i64>, String)> = out
        .events()
        .iter()
        .map(|e| {
            let message = e.message().unwrap_or_default().to_string();
            // CloudWatch counts each event as its UTF-8 bytes plus 26.
            bytes += message.len() + 26;
            (e.timestamp(), message)
        })
        .collect();
    Ok(Page {
        read: Read::Page {
            events: lines.len(),
            bytes,
            next_forward_token: out.next_forward_token().map(str::to_string),
        },
        lines,
    })
}
