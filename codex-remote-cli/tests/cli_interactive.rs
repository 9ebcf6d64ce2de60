//! `codex-remote interactive` in a real terminal (tmux), over a real sshd, with the real Codex
//! TUI talking to the scripted model server: it works in a run tree of its own, and what it did
//! comes back as a run (`diff`, `pull --apply`); nothing of it is left running on the host.
//! Without a terminal it refuses before pushing anything.

mod common;

use std::path::Path;

use codex_remote_testkit::model_server::write_file_server;
use common::{setup_with, stderr, stdout, Env, Tmux};

/// The live processes (zombies left out) whose environment has `CODEX_HOME=<home>`: Codex and
/// everything it started, app-servers included (this test's Codex home is its own).
fn processes_of_codex_home(home: &Path) -> Vec<String> {
    let wanted = format!("CODEX_HOME={}", home.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, s)| s.chars().next());
        if matches!(state, Some(Some('Z' | 'X')) | None) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        found.push(format!(
            "{name}: {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        ));
    }
    found
}

/// Ends whatever still runs with this Codex home when the test ends, passed or failed.
struct EndLeftovers(std::path::PathBuf);

impl Drop for EndLeftovers {
    fn drop(&mut self) {
        for process in processes_of_codex_home(&self.0) {
            if let Some(pid) = process.split(':').next() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid])
                    .output();
            }
        }
    }
}

/// Writes a host `codex` in `dir` that, when it opens the TUI, first starts Codex's app-server
/// daemon (`codex app-server --listen unix:// --managed-daemon` and its `pid-update-loop`, each
/// in a session of its own), as Codex's TUI does by itself when it may: what a session leaves
/// running on the host. Its other uses (the prerequisite check's) start nothing.
fn codex_starting_its_daemon(dir: &Path) -> std::path::PathBuf {
    let codex = codex_remote_testkit::model_server::codex_binary().unwrap();
    let wrapper = dir.join("codex-with-daemon");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase $1 in --no-daemon) '{0}' app-server daemon start >/dev/null 2>&1 || exit 97 ;; esac\nexec '{0}' \"$@\"\n",
            codex.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    wrapper
}

/// Runs `codex-remote interactive` in tmux in `env`'s project, whose host runs Codex with
/// `codex_home` and keeps the project's mirror at `mirror`: the model writes made.txt, the user
/// quits; then the change comes back through `diff` and `pull --apply`, survives the next push,
/// and nothing of the session is left running.
fn session_round_trip(env: &Env, codex_home: &Path, mirror: &Path) {
    let mut vars = env.vars.clone();
    vars.push(("HOME".into(), env.home.path().display().to_string()));
    let binary = env!("CARGO_BIN_EXE_codex-remote");
    let tmux = Tmux::start("interactive", &env.project, &vars, &[binary, "interactive"]);

    // Codex asks whether to trust the run tree (a directory it has not seen: the run's own, not
    // the mirror): yes.
    let screen = tmux.wait_for_within(60, "Codex's trust question", |screen| {
        screen.contains("Trust this folder")
    });
    assert!(
        screen.contains("/.codex-remote/myapp/trees/0/myapp"),
        "Codex runs in a run tree: {screen}"
    );
    // (The TUI may draw the question before it reads keys: the answer is repeated until taken.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tmux.screen().contains("Trust this folder") {
        assert!(std::time::Instant::now() < deadline, "{}", tmux.screen());
        tmux.keys(&["Enter"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // (Codex's composer shows its shortcuts line once it takes input.)
    tmux.wait_for("the prompt", |screen| screen.contains("? for shortcuts"));

    // The scripted model answers `WRITE made.txt` with a command writing it, then "done".
    tmux.paste("WRITE made.txt");
    tmux.wait_for("the prompt typed", |screen| {
        screen.contains("WRITE made.txt")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the command and the answer", |screen| {
        screen.contains("made.txt") && screen.contains("• done") && screen.contains("Worked for")
    });
    let during = processes_of_codex_home(codex_home);
    assert!(
        during.iter().any(|p| p.contains("app-server --listen")),
        "the app-server daemon runs during the session: {during:#?}"
    );
    assert!(
        !mirror.join("made.txt").exists(),
        "the session wrote in its own tree, not in the mirror"
    );

    // Quit Codex: the session's change comes back as a run.
    tmux.paste("/quit");
    tmux.keys(&["Enter"]);
    let status = tmux.wait_exit(60);
    let screen = tmux.screen();
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("files    1 changed"), "{screen}");
    assert!(
        screen.contains("codex-remote pull interactive-"),
        "{screen}"
    );

    // Nothing of the session is left on the host: no Codex, no app-server.
    let left = processes_of_codex_home(codex_home);
    assert!(left.is_empty(), "left running on the host: {left:#?}");

    // A run like any other: kind interactive, completed, its result waiting to be applied.
    let status: serde_json::Value =
        serde_json::from_slice(&env.run(&["status", "last", "--json"]).stdout).unwrap();
    assert_eq!(status["run"]["kind"], "interactive", "{status}");
    assert_eq!(status["run"]["phase"], "completed", "{status}");
    assert!(!env.project.join("made.txt").exists());
    // There is no agent to attach to; `attach` says where the result is.
    let out = env.run(&["attach", "last"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interactive session"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("codex-remote diff interactive-"),
        "{}",
        stderr(&out)
    );

    let out = env.run(&["diff", "last"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let diff = stdout(&out);
    assert!(diff.contains("+++ b/made.txt"), "{diff}");
    assert!(diff.contains("+made.txt"), "{diff}");

    let out = env.run(&["pull", "last", "--apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(env.project.join("made.txt")).unwrap(),
        "made.txt\n"
    );

    // The next push keeps it (it is the project's now).
    let out = env.run(&["push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(mirror.join("made.txt")).unwrap(),
        "made.txt\n"
    );
}

#[test]
fn interactive_works_in_a_run_tree_and_its_changes_come_back_through_diff_and_pull() {
    let Some(s) = setup_with(write_file_server(), true) else {
        return;
    };
    let codex_home = s.sshd.dir().join("codex-home");
    let _leftovers = EndLeftovers(codex_home.clone());
    let wrapper = codex_starting_its_daemon(s.sshd.dir());
    let config = std::fs::read_to_string(s.env.project.join("codex-remote.toml")).unwrap();
    let config = config.replacen(
        "]\nworkspace",
        &format!("]\ncodex = \"{}\"\nworkspace", wrapper.display()),
        1,
    );
    s.env.write("codex-remote.toml", &config);
    session_round_trip(&s.env, &codex_home, &s.sshd.dir().join("ws/myapp"));
}

#[test]
fn interactive_on_the_local_host_works_in_a_run_tree_too() {
    let Some(_) = codex_remote_testkit::model_server::codex_binary() else {
        return;
    };
    let server = write_file_server();
    let env = Env::new().var("CODEX_REMOTE_HOST", "local");
    let host_dir = env.home.path().join("host");
    std::fs::create_dir_all(&host_dir).unwrap();
    let codex_home = server.write_codex_home(&host_dir.join("codex-home"));
    let _leftovers = EndLeftovers(codex_home.clone());
    let wrapper = codex_starting_its_daemon(&host_dir);
    env.write(
        "codex-remote.toml",
        &format!(
            "[hosts.local]\ncodex = \"{}\"\nworkspace = \"{}\"\n[hosts.local.env]\nCODEX_HOME = \"{}\"\n",
            wrapper.display(),
            host_dir.join("ws").display(),
            codex_home.display()
        ),
    );
    env.write("src/app.ts", "export const a = 1;\n");
    session_round_trip(&env, &codex_home, &host_dir.join("ws/myapp"));
}

/// The pid of the `ssh` client that `pid` started.
fn ssh_child_of(pid: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            let ppid = rest.split_whitespace().nth(1)?;
            (comm.ends_with("(ssh") && ppid == pid)
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

#[test]
fn a_dropped_connection_still_brings_the_sessions_change_back_and_leaves_nothing_running() {
    let Some(s) = setup_with(write_file_server(), true) else {
        return;
    };
    let codex_home = s.sshd.dir().join("codex-home");
    let _leftovers = EndLeftovers(codex_home.clone());
    let wrapper = codex_starting_its_daemon(s.sshd.dir());
    let config = std::fs::read_to_string(s.env.project.join("codex-remote.toml")).unwrap();
    s.env.write(
        "codex-remote.toml",
        &config.replacen(
            "]\nworkspace",
            &format!("]\ncodex = \"{}\"\nworkspace", wrapper.display()),
            1,
        ),
    );
    let mut vars = s.env.vars.clone();
    vars.push(("HOME".into(), s.env.home.path().display().to_string()));
    let binary = env!("CARGO_BIN_EXE_codex-remote");
    let tmux = Tmux::start("dropped", &s.env.project, &vars, &[binary, "interactive"]);
    tmux.wait_for_within(60, "Codex's trust question", |screen| {
        screen.contains("Trust this folder")
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tmux.screen().contains("Trust this folder") {
        assert!(std::time::Instant::now() < deadline, "{}", tmux.screen());
        tmux.keys(&["Enter"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // (Codex's composer shows its shortcuts line once it takes input.)
    tmux.wait_for("the prompt", |screen| screen.contains("? for shortcuts"));
    tmux.paste("WRITE made.txt");
    tmux.wait_for("the prompt typed", |screen| {
        screen.contains("WRITE made.txt")
    });
    tmux.keys(&["Enter"]);
    tmux.wait_for("the answer", |screen| {
        screen.contains("• done") && screen.contains("Worked for")
    });
    assert!(!processes_of_codex_home(&codex_home).is_empty());

    // The connection drops: the ssh client dies.
    let client = tmux.program_pid();
    let ssh = ssh_child_of(&client).expect("the session's ssh client");
    std::process::Command::new("kill")
        .args(["-KILL", &ssh])
        .status()
        .unwrap();
    let status = tmux.wait_exit(60);
    let screen = tmux.screen();
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("files    1 changed"), "{screen}");
    let left = processes_of_codex_home(&codex_home);
    assert!(left.is_empty(), "left running on the host: {left:#?}");
    let out = s.env.run(&["diff", "last"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("+made.txt"), "{}", stdout(&out));
}

#[test]
fn interactive_without_a_terminal_fails_up_front_and_pushes_nothing() {
    let Some(s) = setup_with(write_file_server(), true) else {
        return;
    };
    // stdin is /dev/null and stdout a pipe.
    let out = s.env.run(&["interactive"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stdin and stdout are not a terminal"), "{err}");
    assert!(err.contains("codex-remote run --prompt"), "{err}");
    assert!(
        !s.sshd.dir().join("ws").exists(),
        "nothing was pushed to the host"
    );
    let runs: serde_json::Value =
        serde_json::from_slice(&s.env.run(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");

    // In JSON, the error is a JSON line like any other.
    let out = s.env.run(&["interactive", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(line.to_string().contains("not a terminal"), "{line}");
}
