//! `codex-remote exec` on the local host and over SSH to a real sshd.

mod common;

use codex_remote_testkit::{sshd::ALIAS, suite::hostile_strings, Sshd};
use common::{stderr, stdout, Env};

fn exec_args<'a>(host: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["exec", "--host", host, "--"];
    args.extend_from_slice(rest);
    args
}

#[test]
fn local_exec_streams_output_and_passes_the_exit_status() {
    let env = Env::new();
    let out = env.run(&exec_args(
        "local",
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
    ));
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let out = env.run(&exec_args("local", &["codex-remote-no-such-program"]));
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn local_exec_forwards_stdin() {
    let env = Env::new();
    let mut child = env
        .command(&exec_args("local", &["cat"]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped \0 bytes")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"piped \0 bytes");
}

#[test]
fn ssh_exec_runs_after_shell_init_with_byte_exact_arguments() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let env = Env::new().var(
        "CODEX_REMOTE_SSH_CONFIG",
        sshd.ssh_config().display().to_string(),
    );
    let init = sshd.write_file("init.sh", "export CODEX_REMOTE_INIT_RAN=yes\n");
    let project_dir = sshd.dir().join("workspace").join("my app");
    std::fs::create_dir_all(&project_dir).unwrap();
    env.write(
        "codex-remote.toml",
        &format!(
            "[hosts.{ALIAS}]\nshell_init = \". '{}'\"\nworkspace = \"{}\"\n",
            init.display(),
            sshd.dir().join("workspace").display()
        ),
    );
    let hostile = hostile_strings();
    let mut args = vec![
        "exec",
        "--host",
        ALIAS,
        "--cd",
        "my app",
        "--",
        "sh",
        "-c",
        "printf '%s|' \"$CODEX_REMOTE_INIT_RAN\" \"$PWD\"; printf '%s\\0' \"$@\"; exit 3",
        "sh",
    ];
    args.extend(hostile.iter().map(String::as_str));
    let out = env.run(&args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    let (prefix, rest) = text
        .split_once(&format!("{}|", project_dir.display()))
        .expect("pwd printed");
    assert_eq!(prefix, "yes|");
    let mut echoed: Vec<&str> = rest.split('\0').collect();
    assert_eq!(echoed.pop(), Some(""));
    assert_eq!(
        echoed,
        hostile.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn ssh_exec_connection_failure_exits_3() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let env = Env::new().var(
        "CODEX_REMOTE_SSH_CONFIG",
        sshd.ssh_config().display().to_string(),
    );
    std::fs::write(sshd.dir().join("authorized_keys"), "").unwrap();
    let out = env.run(&exec_args(ALIAS, &["true"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("refused authentication"),
        "{}",
        stderr(&out)
    );
}
