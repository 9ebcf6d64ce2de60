//! One module per subcommand. Each parses nothing and decides nothing an embedder would need:
//! it calls core and renders.

pub mod attach;
pub mod checkpoint;
pub mod codex_cache;
pub mod demo;
pub mod diff;
pub mod doctor;
pub mod exec;
pub mod hints;
pub mod init;
pub mod interactive;
pub mod interrupt;
pub mod orchestrate;
pub mod plan;
pub mod progress;
pub mod pull;
pub mod push;
pub mod run;
pub mod runref;
pub mod runs;
pub mod schema;
pub mod scope;
pub mod skill;
pub mod snapshot;
pub mod watch;

use std::path::PathBuf;

use codex_remote_core::config::{Config, ConfigLoader};
use codex_remote_core::task::{TaskSource, TaskSpec};
use codex_remote_core::transport::ssh::SshOptions;

use crate::cli::{Cli, TaskArgs};
use crate::error::CliError;

pub use codex_remote_core::ENV_SSH_CONFIG;

/// What every command may need, resolved lazily so that `schema` works with a broken config.
pub struct Context {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub cwd: PathBuf,
    loader: ConfigLoader,
}

impl Context {
    pub fn new(cli: &Cli) -> Result<Self, CliError> {
        let cwd =
            std::env::current_dir().map_err(CliError::io("cannot read the current directory"))?;
        let mut loader = ConfigLoader::from_env(cwd.clone());
        if let Some(path) = &cli.config {
            loader.user_file = Some(path.clone());
        }
        Ok(Self {
            json: cli.json,
            quiet: cli.quiet,
            verbose: cli.verbose,
            cwd,
            loader,
        })
    }

    pub fn config(&self) -> Result<Config, CliError> {
        if let Some(path) = &self.loader.user_file {
            // An explicitly named file must exist; the default one may not.
            let explicit = std::env::var_os(codex_remote_core::config::ENV_CONFIG).is_some()
                || self.loader.user_file != codex_remote_core::config::user_config_path();
            if explicit && !path.exists() {
                return Err(codex_remote_core::InputError::new(
                    path.display().to_string(),
                    "the config file does not exist",
                )
                .hint("check the --config path, or create it with `codex-remote init --path FILE`")
                .into());
            }
        }
        Ok(self.loader.load()?)
    }

    /// The project at the working directory (see `find_project_root`): its run records, for
    /// resolving `last` and for `watch`.
    pub fn project(&self, name: Option<&str>) -> Result<codex_remote_core::Project, CliError> {
        codex_remote_core::Project::find(&self.cwd, name)
            .map_err(|e| CliError::from(e.input("<project name>", "project")))
    }

    /// The engine for the project at the working directory (see `find_project_root`),
    /// reaching hosts with this command's ssh options.
    pub fn engine(&self, config: Config) -> codex_remote_core::Engine {
        codex_remote_core::Engine::found_from(config, &self.cwd)
            .with_transports(codex_remote_core::DefaultTransports(self.ssh_options()))
    }

    /// Checks what a push would send (refusing a root or size the user did not confirm) and
    /// shows it on stderr before anything is sent.
    pub fn check_push(&self, engine: &codex_remote_core::Engine) -> Result<(), CliError> {
        let scope = engine.push_scope()?;
        if !self.quiet && !self.json {
            eprintln!(
                "project to push: {} ({} files, {})",
                scope.root.display(),
                scope.files,
                crate::output::human_bytes(scope.bytes)
            );
        }
        Ok(())
    }

    /// The transport for a host.
    pub fn transport(
        &self,
        host: codex_remote_core::host::HostSpec,
    ) -> Result<codex_remote_core::transport::SharedTransport, CliError> {
        Ok(codex_remote_core::transport::for_host(
            host,
            self.ssh_options(),
        )?)
    }

    pub fn ssh_options(&self) -> SshOptions {
        SshOptions {
            config_file: std::env::var_os(ENV_SSH_CONFIG).map(PathBuf::from),
            ..SshOptions::default()
        }
    }
}

/// Loads the task named by the task arguments.
pub fn load_task(args: &TaskArgs) -> Result<TaskSpec, CliError> {
    if args.prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(CliError::Usage(
            "--prompt is empty: give the task in words, e.g. --prompt \"Fix the login redirect\""
                .into(),
        ));
    }
    let source = match (&args.task, &args.prompt, args.task_type) {
        (Some(path), None, _) => TaskSource::File(path.clone()),
        (Some(path), Some(prompt), None) => {
            // The workflow document's sketch, completed by the prompt.
            let format = codex_remote_core::task::TaskFormat::from_path(path)?;
            let text = std::fs::read_to_string(path)
                .map_err(CliError::io(format!("reading {}", path.display())))?;
            return Ok(TaskSpec::parse_with_prompt(
                &text,
                &path.display().to_string(),
                format,
                Some(prompt),
            )?);
        }
        (None, Some(prompt), Some(task_type)) => TaskSource::Prompt {
            prompt: prompt.clone(),
            task_type,
            files: {
                let cwd = std::env::current_dir()
                    .map_err(CliError::io("cannot read the current directory"))?;
                let root = codex_remote_core::find_project_root(&cwd);
                scope::resolve(&root, &cwd, &args.files)?
            },
        },
        (None, Some(_), None) => {
            return Err(CliError::Usage(format!(
                "a --prompt task needs --type TYPE, one of: {}",
                codex_remote_core::task::TaskType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        _ => {
            return Err(CliError::Usage(
                "give a task file, or --prompt TEXT --type TYPE".into(),
            ))
        }
    };
    Ok(source.load()?)
}
