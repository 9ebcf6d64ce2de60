//! `doctor`.

use codex_remote_core::doctor::CheckStatus;

use super::Context;
use crate::cli::HostArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn doctor(ctx: &Context, args: HostArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let host = config.host(args.host.as_deref())?;
    let transport = ctx.transport(host.clone())?;
    // What doctor learns about the agent's prerequisites spares the next run its own check.
    let root = codex_remote_core::find_project_root(&ctx.cwd);
    let cache = codex_remote_core::PrerequisiteCache::new(&root);
    let checks = if matches!(host.kind, codex_remote_core::host::HostKind::OnDemand(_)) {
        // A host made on demand: its engine and image, then the usual checks in a container
        // started for them.
        codex_remote_core::doctor::diagnose_on_demand(&host, &cache).await
    } else {
        codex_remote_core::doctor::diagnose_and_remember(transport.as_ref(), &cache).await
    };
    let _ = transport.close().await;
    let mut checks = checks;
    if let Some(found) = checks
        .iter_mut()
        .find(|c| c.name == "codex found" && c.status == CheckStatus::Fail)
    {
        if let Some(hint) = super::codex_cache::on_path_hint(&host).await {
            found.fix = Some(match found.fix.take() {
                Some(fix) => format!("{fix}; or {hint}"),
                None => hint,
            });
        }
    }
    // A skipped check follows a failed one: `ok` is false then too.
    let ok = checks.iter().all(|c| c.ok);
    let connected = checks
        .iter()
        .take_while(|c| c.name != "host key known")
        .all(|c| c.ok);
    if ctx.json {
        output::print_json(&serde_json::json!({ "host": host.name, "ok": ok, "checks": checks }))?;
    } else {
        let mut text = String::new();
        for c in &checks {
            let mark = match c.status {
                CheckStatus::Pass => "ok  ",
                CheckStatus::Fail => "FAIL",
                CheckStatus::Skipped => "skip",
            };
            text.push_str(&format!(
                "{mark} {:<30} {:>5} ms  {}\n",
                c.name, c.millis, c.detail
            ));
            if let Some(fix) = &c.fix {
                text.push_str(&format!("     fix: {fix}\n"));
            }
        }
        output::print_text(&text)?;
    }
    Ok(if ok {
        exit::OK
    } else if !connected {
        exit::CONNECTION
    } else {
        exit::PREREQUISITE
    })
}
