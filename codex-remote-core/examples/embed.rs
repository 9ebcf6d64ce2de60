//! `cargo run -p codex-remote-core --example embed -- TASK_FILE HOST`: runs the task on the host,
//! prints its patch on stdout and a summary on stderr; applies nothing, leaves nothing on the host.

use std::io::Write;

use codex_remote_core::{Engine, PlanOverrides, TaskSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [task_file, host] = args.as_slice() else {
        return Err("usage: embed TASK_FILE HOST".into());
    };
    let engine = Engine::from_env(&std::env::current_dir()?)?;
    let task = TaskSpec::load(task_file.as_ref())?;
    let plan = engine.plan(task, &PlanOverrides::on_host(host))?;
    let mut options = engine.run_options();
    options.apply = false; // The host's tree goes back to its pool all the same once the patch is back.
    let result = engine.start(&plan, options).await?.wait().await;
    engine.close().await;
    let done = result?;
    std::io::stdout().write_all(&done.patch)?;
    let (id, files) = (&done.summary.run_id, done.summary.files.len());
    eprintln!("run {id}: {files} file(s) changed, nothing applied");
    Ok(())
}
