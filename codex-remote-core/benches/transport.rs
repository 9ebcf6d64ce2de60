//! Per-command cost of running N sequential commands, measured in one run on one machine:
//! a fresh `ssh host true` each time, `ssh` through an existing ControlMaster, our SSH transport
//! on its open session (its persistent remote shell; a login shell per command with native mux
//! and with process mux), and the local transport. Repeated for a user
//! with a light shell rc and one whose `~/.bashrc` is heavy (as with nvm or pyenv sourced at the
//! top), because sshd runs every command through the login shell.
//!
//! Run: `cargo bench -p codex-remote-core --bench transport` (as root, for the second user;
//! needs /usr/sbin/sshd). Prints a markdown table for docs/performance.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_remote_core::config::Config;
use codex_remote_core::transport::local::LocalTransport;
use codex_remote_core::transport::ssh::{MuxMode, ShellMode, SshTransport};
use codex_remote_core::transport::{CommandSpec, Transport, TransportExt};
use codex_remote_testkit::sshd::{SshdOptions, ALIAS};
use codex_remote_testkit::Sshd;

/// A user whose ~/.bashrc is empty.
const LIGHT_USER: &str = "codex-remote-light";
/// A user whose ~/.bashrc costs about what sourcing nvm does (~0.3 s): many command
/// substitutions, as nvm.sh performs.
const HEAVY_USER: &str = "codex-remote-heavy";
const HEAVY_RC: &str = "for i in $(seq 600); do x=$(command -v ls); done\n";

fn n() -> usize {
    std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn per_command(n: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed() / n as u32
}

fn ssh_ok(mut command: Command) {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("ssh runs");
    assert!(status.success(), "ssh failed");
}

fn ensure_user(user: &str, bashrc: &str) -> bool {
    let ok = codex_remote_testkit::sshd::ensure_user(user, bashrc);
    if !ok {
        eprintln!("cannot create {user} (not root?): skipping its rows");
    }
    ok
}

struct Row {
    method: &'static str,
    user: &'static str,
    per_command: Duration,
}

fn measure(rt: &tokio::runtime::Runtime, sshd: &Sshd, user: &'static str, rows: &mut Vec<Row>) {
    let n = n();
    let fresh = per_command(n, || {
        let mut c = sshd.ssh_command();
        c.arg("true");
        ssh_ok(c)
    });
    rows.push(Row {
        method: "fresh `ssh host true`",
        user,
        per_command: fresh,
    });

    let socket = sshd.dir().join("cm.sock");
    let mut master = Command::new("ssh");
    master
        .arg("-F")
        .arg(sshd.ssh_config())
        .args(["-M", "-f", "-N", "-S"])
        .arg(&socket)
        .arg(ALIAS);
    ssh_ok(master);
    let control_master = per_command(n, || {
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(sshd.ssh_config())
            .arg("-S")
            .arg(&socket)
            .args([ALIAS, "true"]);
        ssh_ok(c)
    });
    let mut exit = Command::new("ssh");
    exit.arg("-F")
        .arg(sshd.ssh_config())
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", ALIAS]);
    let _ = exit.stderr(Stdio::null()).status();
    rows.push(Row {
        method: "`ssh -S socket host true` (ControlMaster)",
        user,
        per_command: control_master,
    });

    for (method, mux, shell) in [
        (
            "**codex-remote SSH transport, persistent shell (default)**",
            MuxMode::Native,
            ShellMode::Persistent,
        ),
        (
            "codex-remote SSH transport, native mux, login shell per command",
            MuxMode::Native,
            ShellMode::PerCommand,
        ),
        (
            "codex-remote SSH transport, process mux, login shell per command",
            MuxMode::Process,
            ShellMode::PerCommand,
        ),
    ] {
        let mut options = sshd.ssh_options();
        options.mux = mux;
        options.shell = shell;
        let t = SshTransport::new(sshd.host_spec(""), options).unwrap();
        rt.block_on(t.connect()).unwrap();
        let d = per_command(n, || {
            rt.block_on(t.run_checked(CommandSpec::new("true")))
                .unwrap();
        });
        rt.block_on(t.close()).unwrap();
        rows.push(Row {
            method,
            user,
            per_command: d,
        });
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if Sshd::start_or_skip().is_none() {
        return;
    }
    let mut rows = Vec::new();
    for (user, bashrc, label) in [
        (LIGHT_USER, "", "light rc"),
        (HEAVY_USER, HEAVY_RC, "heavy rc (~nvm)"),
    ] {
        if ensure_user(user, bashrc) {
            let sshd = Sshd::start(SshdOptions {
                user: Some(user.into()),
                source_bashrc: true,
            })
            .expect("sshd starts");
            measure(&rt, &sshd, label, &mut rows);
        }
    }
    let local = LocalTransport::new(Config::builtin().host(None).unwrap());
    let d = per_command(n(), || {
        rt.block_on(local.run_checked(CommandSpec::new("true")))
            .unwrap();
    });
    rows.push(Row {
        method: "codex-remote local transport",
        user: "(this process)",
        per_command: d,
    });

    println!("N = {} sequential commands per method\n", n());
    println!("| method | user | per command | vs fresh ssh |");
    println!("|---|---|---|---|");
    for row in &rows {
        let fresh = rows
            .iter()
            .find(|r| r.user == row.user && r.method.starts_with("fresh"))
            .map(|r| r.per_command);
        let ratio = fresh
            .map(|f| {
                format!(
                    "{:.1}x faster",
                    f.as_secs_f64() / row.per_command.as_secs_f64()
                )
            })
            .unwrap_or_default();
        println!(
            "| {} | {} | {:.1} ms | {} |",
            row.method,
            row.user,
            row.per_command.as_secs_f64() * 1000.0,
            ratio
        );
    }
}
