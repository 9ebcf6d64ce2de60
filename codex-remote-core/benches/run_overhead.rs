//! What a whole run costs beyond the model's own time: the workflow done by hand (`rsync` push,
//! `ssh host 'cd DIR; codex exec -'` with the prompt on stdin, `rsync` back) against
//! `codex-remote run` (the library's [`Engine`], as the CLI runs it), side by side in one process,
//! over the testkit's real sshd on 127.0.0.1 and the real Codex CLI driven by the scripted model
//! server (which answers at once: one command writing a file, then a final message).
//!
//! Cases: a 100-file and a 10,000-file (~50 MB) project; a login user with a light `~/.bashrc`
//! (empty) and one with a heavy one (~0.25 s, as sourcing nvm costs; sshd runs every command
//! through the login shell, and Debian's bash sources `~/.bashrc` even for ssh commands); the
//! first run (a new remote directory by hand, a new mirror and run tree for us) and a second run
//! (the same directory by hand, a reused run tree for us). The two users are created for the bench
//! (`codex-remote-light`, `codex-remote-heavy`): the heavy rc never touches the real `/root`.
//!
//! `harness = false` like the other benches of this crate: each case is one end-to-end run of
//! several seconds, measured once per bench run (criterion's sampling would take an hour), and
//! the output is the markdown table docs/performance.md quotes.
//!
//! Run: `CODEX_REMOTE_TEST_CODEX=/path/to/codex cargo bench -p codex-remote-core --bench run_overhead`
//! (as root: it creates the users; needs /usr/sbin/sshd and rsync). `BENCH_SIZES=100` limits the
//! project sizes; `BENCH_USERS=light` the users; `BENCH_SHELL=per-command` runs our side without
//! the persistent remote shell.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::transport::ssh::{ShellMode, SshTransport};
use codex_remote_core::transport::SharedTransport;
use codex_remote_core::{Engine, PlanOverrides, TaskSpec};
use codex_remote_testkit::model_server::{codex_binary, write_file_server};
use codex_remote_testkit::sshd::{ensure_user, SshdOptions, ALIAS};
use codex_remote_testkit::Sshd;

const LIGHT_USER: &str = "codex-remote-light";
const HEAVY_USER: &str = "codex-remote-heavy";
/// About what sourcing nvm costs (~0.25 s of command substitutions), as in the transport bench.
/// It also counts the times it is sourced (one line each in `~/.rc-count`), which the table
/// reports: a number that does not depend on the machine's load.
const HEAVY_RC: &str =
    "echo >> \"$HOME/.rc-count\"\nfor i in $(seq 600); do x=$(command -v ls); done\n";

fn sizes() -> Vec<usize> {
    std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 10_000])
}

fn users() -> Vec<(&'static str, &'static str, &'static str)> {
    let wanted = std::env::var("BENCH_USERS").unwrap_or_else(|_| "light,heavy".into());
    [(LIGHT_USER, "", "light"), (HEAVY_USER, HEAVY_RC, "heavy")]
        .into_iter()
        .filter(|(_, _, label)| wanted.split(',').any(|w| w.trim() == *label))
        .collect()
}

/// Writes back what earlier cases left dirty, so it is not charged to the next one.
fn settle() {
    run(&mut Command::new("sync"));
}

fn run(command: &mut Command) {
    let out = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `files` files of 5 KiB pseudo-random text in directories of 100, readable by the login user.
fn make_project(dir: &Path, files: usize) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        let mut text = String::with_capacity(5 * 1024);
        while text.len() < 5 * 1024 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(&format!("{seed:016x}\n"));
        }
        std::fs::write(sub.join(format!("f{i}.txt")), text).unwrap();
    }
    std::fs::write(dir.join("README.md"), "# bench\n").unwrap();
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir));
}

/// The Codex CLI where the login user can read it (the test copy lives under root's 0700 home):
/// hard links when possible, a copy otherwise; made once and kept.
fn readable_codex(codex: &Path) -> PathBuf {
    // .../codex-0.169.0/node_modules/.bin/codex
    let package = codex
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("codex under <dir>/node_modules/.bin");
    let shared = PathBuf::from("/var/tmp/codex-remote-bench").join(package.file_name().unwrap());
    if !shared.join("node_modules/.bin/codex").exists() {
        std::fs::create_dir_all(shared.parent().unwrap()).unwrap();
        let linked = Command::new("cp")
            .arg("-al")
            .arg(package)
            .arg(&shared)
            .status()
            .is_ok_and(|s| s.success());
        if !linked {
            let _ = std::fs::remove_dir_all(&shared);
            run(Command::new("cp").arg("-a").arg(package).arg(&shared));
        }
        run(Command::new("chmod").args(["-R", "a+rX"]).arg(&shared));
        run(Command::new("chmod").args(["a+rx", "/var/tmp/codex-remote-bench"]));
    }
    shared.join("node_modules/.bin/codex")
}

struct Case {
    user: &'static str,
    files: usize,
    tree: &'static str,
    by_hand: Duration,
    ours: Duration,
    /// Times the heavy `~/.bashrc` was sourced: by hand, ours.
    rc_loads: Option<(usize, usize)>,
}

/// Lines in the heavy user's `~/.rc-count` (the times its rc was sourced so far).
fn rc_loads(home: &Path) -> usize {
    std::fs::read_to_string(home.join(".rc-count"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

struct Bench<'a> {
    sshd: &'a Sshd,
    home: PathBuf,
    codex_dir: PathBuf,
    codex_home: PathBuf,
    rt: &'a tokio::runtime::Runtime,
}

impl Bench<'_> {
    fn rsync_e(&self) -> String {
        format!("ssh -F {}", self.sshd.ssh_config().display())
    }

    /// rsync push, `codex exec` over ssh with the prompt on stdin, rsync back.
    fn by_hand(&self, local: &Path, remote: &str, file: &str) -> Duration {
        let started = Instant::now();
        run(Command::new("rsync")
            .args(["-a", "--delete", "-e", &self.rsync_e()])
            .arg(format!("{}/", local.display()))
            .arg(format!("{ALIAS}:{remote}/")));
        let mut ssh = self.sshd.ssh_command();
        ssh.arg(format!(
            "cd {remote} && export PATH='{}':$PATH CODEX_HOME='{}' && codex exec --skip-git-repo-check --sandbox workspace-write -",
            self.codex_dir.display(),
            self.codex_home.display()
        ));
        let mut child = ssh
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("TASK: WRITE {file}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "codex exec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        run(Command::new("rsync")
            .args(["-a", "-e", &self.rsync_e()])
            .arg(format!("{ALIAS}:{remote}/"))
            .arg(format!("{}/", local.display())));
        let elapsed = started.elapsed();
        assert!(
            local.join(file).exists(),
            "by hand: {file} did not come back"
        );
        elapsed
    }

    /// `codex-remote run` through the library: a fresh engine (as a fresh CLI process is).
    fn ours(&self, local: &Path, project: &str, file: &str, shell: ShellMode) -> Duration {
        let config_text = format!(
            "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"export PATH='{}':$PATH\"\n[hosts.{ALIAS}.env]\nCODEX_HOME = \"{}\"\n",
            self.home.join("run-overhead/ws").display(),
            self.codex_dir.display(),
            self.codex_home.display()
        );
        let config =
            Config::from_files([ConfigFile::parse(&config_text, "bench").unwrap()]).unwrap();
        let mut options = self.sshd.ssh_options();
        options.shell = shell;
        let transport: SharedTransport =
            Arc::new(SshTransport::new(config.host(Some(ALIAS)).unwrap(), options).unwrap());
        let task = TaskSpec::parse_str(
            &format!("id: t\ntitle: WRITE {file}\ntype: quick-fix\nrequirements: [WRITE {file}]\n"),
            "bench.yaml",
        )
        .unwrap();
        let started = Instant::now();
        let summary = self.rt.block_on(async {
            let engine = Engine::new(config, local)
                .with_project_name(project)
                .with_transports({
                    let transport = transport.clone();
                    move |_host| Ok(transport.clone())
                });
            let plan = engine.plan(task, &PlanOverrides::on_host(ALIAS)).unwrap();
            let mut handle = engine.start(&plan, engine.run_options()).await.unwrap();
            // BENCH_TRACE=1: when each of the run's events arrived, to see where the time goes.
            let trace = std::env::var_os("BENCH_TRACE").is_some();
            let events = handle.events();
            let tracer = tokio::spawn(async move {
                let Some(mut events) = events else { return };
                while let Some(event) = events.recv().await {
                    if trace {
                        let line = serde_json::to_string(&event.kind).unwrap_or_default();
                        eprintln!("  {:>7.3} s {:.110}", started.elapsed().as_secs_f64(), line);
                    }
                }
            });
            let summary = handle.wait().await.unwrap().summary;
            let _ = tracer.await;
            let _ = transport.close().await;
            summary
        });
        let elapsed = started.elapsed();
        assert!(summary.applied, "{summary:?}");
        assert!(local.join(file).exists(), "ours: {file} was not applied");
        elapsed
    }
}

fn main() {
    let Some(codex) = codex_binary() else { return };
    if Sshd::start_or_skip().is_none() {
        return;
    }
    let codex = readable_codex(&codex);
    let shell = match std::env::var("BENCH_SHELL").as_deref() {
        Ok("per-command") => ShellMode::PerCommand,
        _ => ShellMode::Persistent,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = write_file_server();
    let mut cases = Vec::new();
    // Everything made is removed only at the end: ext4 skips inodes freed in the last seconds
    // (minutes, while their table blocks are dirty) when it allocates new ones, so tens of
    // thousands of files deleted just before a case slow every file it creates, several fold.
    let mut keep = Vec::new();
    let mut bases = Vec::new();
    for (user, rc, label) in users() {
        assert!(
            ensure_user(user, rc),
            "cannot create the bench user {user} (run as root)"
        );
        let home = PathBuf::from(format!("/home/{user}"));
        let base = home.join("run-overhead");
        let _ = std::fs::remove_dir_all(&base);
        let codex_home = server.write_codex_home(&base.join("codex-home"));
        std::fs::create_dir_all(base.join("hand")).unwrap();
        run(Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(&base));
        let sshd = Sshd::start(SshdOptions {
            user: Some(user.to_string()),
            source_bashrc: true,
        })
        .expect("sshd starts");
        let bench = Bench {
            sshd: &sshd,
            home: home.clone(),
            codex_dir: codex.parent().unwrap().to_path_buf(),
            codex_home,
            rt: &rt,
        };
        for files in sizes() {
            let hand_local = tempfile::tempdir().unwrap();
            let ours_local = tempfile::tempdir().unwrap();
            make_project(hand_local.path(), files);
            make_project(ours_local.path(), files);
            let remote = format!("run-overhead/hand/p{files}");
            let project = format!("p{files}");
            for (i, tree) in ["first run, new tree", "second run, reused tree"]
                .into_iter()
                .enumerate()
            {
                let file = format!("r{i}.txt");
                // Each side starts with nothing of the other's waiting to be written back.
                settle();
                let loads = rc_loads(&home);
                let by_hand = bench.by_hand(hand_local.path(), &remote, &file);
                let by_hand_loads = rc_loads(&home) - loads;
                settle();
                let ours = bench.ours(ours_local.path(), &project, &file, shell);
                let ours_loads = rc_loads(&home) - loads - by_hand_loads;
                let rc_loads = (label == "heavy").then_some((by_hand_loads, ours_loads));
                eprintln!(
                    "{label} rc, {files} files, {tree}: by hand {:.2} s, ours {:.2} s",
                    by_hand.as_secs_f64(),
                    ours.as_secs_f64()
                );
                cases.push(Case {
                    user: label,
                    files,
                    tree,
                    by_hand,
                    ours,
                    rc_loads,
                });
            }
            keep.push(hand_local);
            keep.push(ours_local);
        }
        bases.push(base);
    }
    drop(keep);
    for base in bases {
        let _ = std::fs::remove_dir_all(base);
    }

    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "our side: {}\n",
        match shell {
            ShellMode::Persistent => "persistent remote shell (default)",
            ShellMode::PerCommand => "one login shell per command",
        }
    );
    println!("| project | rc | run | by hand | `codex-remote run` | ratio |");
    println!("|---|---|---|---|---|---|");
    for c in &cases {
        println!(
            "| {} files | {} | {} | {} | {} | {:.2} |",
            c.files,
            c.user,
            c.tree,
            s(c.by_hand),
            s(c.ours),
            c.ours.as_secs_f64() / c.by_hand.as_secs_f64()
        );
    }
    let heavy_vs_light: Vec<String> = cases
        .iter()
        .filter(|c| c.user == "heavy")
        .filter_map(|h| {
            cases
                .iter()
                .find(|l| l.user == "light" && l.files == h.files && l.tree == h.tree)
                .map(|l| {
                    let (hand_loads, our_loads) = h.rc_loads.unwrap_or_default();
                    format!(
                        "| {} files | {} | {:.2} | {:.2} | {our_loads} | {hand_loads} |",
                        h.files,
                        h.tree,
                        h.ours.as_secs_f64() / l.ours.as_secs_f64(),
                        h.by_hand.as_secs_f64() / l.by_hand.as_secs_f64()
                    )
                })
        })
        .collect();
    if !heavy_vs_light.is_empty() {
        println!(
            "\n| project | run | heavy rc / light rc, ours | heavy / light, by hand | rc sourced, ours | rc sourced, by hand |"
        );
        println!("|---|---|---|---|---|---|");
        for line in heavy_vs_light {
            println!("{line}");
        }
    }
}
