//! `shipgate task exec ARN [-- COMMAND]`: an ECS Exec session in a running task, through
//! `aws ecs execute-command` (which needs the Session Manager plugin); without the plugin, the
//! command line to run once it is installed.

use crate::aws::Aws;
use crate::error::{Error, Result};
use crate::output::Reporter;
use crate::task::exec::{self, ExecRequest, PLUGIN_DOCS};

pub async fn run(request: &ExecRequest, out: &Reporter) -> Result<()> {
    let aws = Aws::load(request.region.as_deref()).await?;
    let argv = exec::prepare(&aws, request).await?;
    let path = std::env::var_os("PATH");
    let (Some(aws_cli), Some(_)) =
        (exec::on_path("aws", path.as_deref()), exec::on_path("session-manager-plugin", path.as_deref()))
    else {
        out.raw(&shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" ")));
        return Err(Error::unavailable(
            "the AWS CLI and its Session Manager plugin are needed to open the session; the command is above",
        )
        .hint(format!("install the AWS CLI and the plugin ({PLUGIN_DOCS}), then run the command above")));
    };
    tracing::info!("opening an ECS Exec session: {}", argv.join(" "));
    let status = std::process::Command::new(aws_cli)
        .args(&argv[1..])
        .status()
        .map_err(|e| Error::unavailable(format!("cannot start the AWS CLI: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Error::new(
            crate::error::Kind::Exit(u8::try_from(code).unwrap_or(1)),
            format!("the ECS Exec session ended with exit code {code}"),
        )),
        None => Err(Error::failed("the ECS Exec session was ended by a signal")),
    }
}
