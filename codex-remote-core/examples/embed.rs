//! `embed TASK_FILE HOST`: runs the task on the host, prints its patch; applies nothing.

use codex_remote_core::{Engine, Error, PlanOverrides, TaskSpec};

#[tokio::main]
async fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()).await {
        let hint = e.downcast_ref().and_then(Error::hint);
        let hint = hint.map(|h| format!("\nhint: {h}"));
        eprintln!("error: {e}{}", hint.unwrap_or_default());
        std::process::exit(1);
    }
}
async fn run(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
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
    std::io::Write::write_all(&mut std::io::stdout(), &done.patch)?;
    let (id, files) = (&done.summary.run_id, done.summary.files.len());
    eprintln!("run {id}: {files} file(s) changed, nothing applied");
    Ok(())
}
