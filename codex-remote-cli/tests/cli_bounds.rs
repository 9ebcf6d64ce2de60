//! What a hostile agent produces is bounded on the user's machine (real sshd, the real Codex CLI,
//! the scripted model server):
//! - one enormous line in its own event log (under `danger-full-access`): the client following it
//!   stays small, shows and records one `oversized_event` in its place, and the events after it
//!   still arrive; the client killed after that line and `attach`ed again resumes at the right
//!   byte of the host's log (the local copy no longer mirrors it byte for byte), so every line is
//!   recorded exactly once;
//! - thousands of lines that are not UTF-8 (each recorded with U+FFFD, so longer than the host's):
//!   each is recorded once and the saved mark accounts for every extra byte (one record write per
//!   batch, not per line, is counted by `run::tests` in codex-remote-core);
//! - a host log far larger than `logs`' look reads (40 MiB of blank lines, never shown, but read): the look
//!   stops at 32 MiB and `logs` says the listing was cut (text and `--json`);
//! - a result patch larger than `apply.max_stored_patch_bytes`: its retrieval stops there,
//!   nothing is stored, the run is refused (exit 6) saying how large it is at least, `diff` and
//!   `pull` say the same, and once the limit is raised `pull` takes it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout};

/// 100 MB of `x` on one line.
const HUGE: u64 = 100_000_000;

/// Polls an observable condition (not a timer) until it holds; fails after 120 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

fn only_run(project: &Path) -> Option<String> {
    let mut ids: Vec<String> = std::fs::read_dir(project.join(".codex-remote/runs"))
        .ok()?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(ids.len() <= 1, "{ids:?}");
    ids.pop()
}

#[test]
fn an_enormous_event_line_is_skipped_in_bounded_memory_and_attach_resumes_after_it() {
    let go = tempfile::tempdir().unwrap();
    let go_file = go.path().join("go");
    // The agent appends the line to its own log (its tree is
    // `<workspace>/.codex-remote/myapp/trees/<n>/myapp`) once Codex has logged the command
    // (`hostile-line` is in its text: Codex's own line would otherwise land inside this one),
    // then waits for the test's signal (a file).
    let hostile = format!(
        "f=$(ls ../../../agents/*/1/events.jsonl) && until grep -q hostile-line \"$f\"; do sleep 0.05; done && head -c {HUGE} /dev/zero | tr '\\0' x >> \"$f\" && echo >> \"$f\" && until [ -e {go} ]; do sleep 0.05; done # hostile-line",
        go = go_file.display()
    );
    let Some(s) = setup(
        vec![
            Reply::exec("c1", &hostile),
            Reply::exec("c2", "printf 'after\\n' > after.txt"),
            Reply::message("done after the big line"),
        ],
        true,
    ) else {
        return;
    };
    let agents = s.sshd.dir().join("ws/.codex-remote/myapp/agents");

    let child = s
        .env
        .command(&[
            "run",
            "--json",
            "--keep",
            "--sandbox",
            "danger-full-access",
            "--prompt",
            "write a big line",
            "--type",
            "feature",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let local_events = |id: &str| {
        std::fs::read_to_string(
            s.env
                .project
                .join(format!(".codex-remote/runs/{id}/events.jsonl")),
        )
        .unwrap_or_default()
    };
    wait_until("the skipped line is recorded", || {
        only_run(&s.env.project)
            .is_some_and(|id| local_events(&id).contains("codex-remote.oversized_event"))
    });
    let peak = peak_rss_mib(pid);
    eprintln!("client peak RSS after a {HUGE}-byte event line: {peak} MiB");
    assert!(peak < 64, "peak RSS {peak} MiB is not under 64 MiB");

    // The client dies here; the agent goes on; `attach` takes over from the record.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let first = child.wait_with_output().unwrap();
    let run_id = only_run(&s.env.project).unwrap();
    std::fs::write(&go_file, "").unwrap();
    let out = s.env.run(&["attach", &run_id, "--json"]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("after.txt")).unwrap(),
        "after\n"
    );
    // Shown once, typed, by the first client; never again by the second.
    let skipped = |text: &str| {
        text.lines()
            .filter(|l| l.contains(r#""event":"oversized_event""#))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let shown = skipped(&String::from_utf8_lossy(&first.stdout));
    assert_eq!(
        shown.len(),
        1,
        "{shown:?}\n{}\n{}",
        String::from_utf8_lossy(&first.stdout),
        local_events(&run_id)
    );
    assert_eq!(
        shown[0]["codex"]["bytes"],
        HUGE,
        "{}\n{}\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr),
        local_events(&run_id)
    );
    assert_eq!(shown[0]["codex"]["limit"], 1 << 20);
    assert!(skipped(&stdout(&out)).is_empty(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("done after the big line"),
        "{}",
        stdout(&out)
    );
    // The local record is the host's log with the one line replaced, every other line once.
    let remote = std::fs::File::open(agents.join(&run_id).join("1/events.jsonl")).unwrap();
    let mut expected = String::new();
    for line in std::io::BufRead::split(std::io::BufReader::new(remote), b'\n') {
        let line = line.unwrap();
        if line.len() as u64 == HUGE {
            expected.push_str(&format!(
                "{{\"type\":\"codex-remote.oversized_event\",\"bytes\":{HUGE},\"limit\":1048576}}\n"
            ));
        } else {
            expected.push_str(&String::from_utf8(line).unwrap());
            expected.push('\n');
        }
    }
    assert_eq!(local_events(&run_id), expected);
    // Shown in words too, as any event is.
    let out = s.env.run(&["logs", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "oversized event skipped: a line of {HUGE} bytes in the agent's event log, over the 1048576-byte limit"
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_patch_above_the_stored_limit_is_not_stored_and_diff_and_pull_say_so() {
    // About 1.3 MB of patch (a `+` and a number per line).
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "seq 1 200000 > big.txt"),
            Reply::message("wrote a big file"),
        ],
        true,
    ) else {
        return;
    };
    let config = s.env.project.join("codex-remote.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{base}[apply]\nmax_patch_bytes = 100000\nmax_stored_patch_bytes = 200000\n"),
    )
    .unwrap();
    let out = s
        .env
        .run(&["run", "--prompt", "write a big file", "--type", "feature"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let at_least = |text: &str| -> u64 {
        let rest = text
            .split("the result patch is at least ")
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"));
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    let seen = at_least(&stderr(&out));
    // Reading stopped at the limit (within one read), far short of the whole patch.
    assert!((200_000..=200_000 + 65_536).contains(&seen), "{seen}");
    assert!(
        stderr(&out).contains("above apply.max_stored_patch_bytes (200000)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    let run_id = only_run(&s.env.project).unwrap();
    let run_dir = s.env.project.join(format!(".codex-remote/runs/{run_id}"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["phase"], "refused");
    assert_eq!(record["warnings"][0]["kind"], "patch-not-stored");
    // Nothing of the patch is on disk.
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("patch"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!s.env.project.join("big.txt").exists());

    // `diff` and `pull` say the same (exit 6), `--json` with the figures.
    let out = s.env.run(&["diff", &run_id]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(at_least(&stderr(&out)) >= 200_000);
    let out = s.env.run(&["pull", &run_id, "--apply", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let error: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(error["error"]["exit_code"], 6);
    assert_eq!(error["error"]["patch_not_stored"]["limit"], 200_000);
    assert!(
        error["error"]["patch_not_stored"]["at_least"]
            .as_u64()
            .unwrap()
            > 200_000
    );
    assert!(!s.env.project.join("big.txt").exists());

    // Raised: retrieved, held back for its size, taken when allowed.
    std::fs::write(
        &config,
        format!("{base}[apply]\nmax_patch_bytes = 100000\nmax_stored_patch_bytes = 5000000\n"),
    )
    .unwrap();
    let out = s
        .env
        .run(&["pull", &run_id, "--apply", "--allow-held-back"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let big = std::fs::read_to_string(s.env.project.join("big.txt")).unwrap();
    assert_eq!(big.lines().count(), 200_000);
}

#[test]
fn thousands_of_lines_recorded_otherwise_than_the_host_has_them_are_each_recorded_once() {
    const LINES: usize = 20_000;
    // The agent appends 20 000 lines of one `\xff` byte to its own log (U+FFFD locally: 3 bytes
    // for the host's 1), once Codex has logged the command.
    let hostile = format!(
        "f=$(ls ../../../agents/*/1/events.jsonl) && until grep -q hostile-bytes \"$f\"; do sleep 0.05; done && yes | head -n {LINES} | tr y '\\377' >> \"$f\" # hostile-bytes"
    );
    let Some(s) = setup(
        vec![Reply::exec("c1", &hostile), Reply::message("done")],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--json",
        "--sandbox",
        "danger-full-access",
        "--prompt",
        "write bytes",
        "--type",
        "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = only_run(&s.env.project).unwrap();
    let dir = s.env.project.join(format!(".codex-remote/runs/{id}"));
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(events.lines().filter(|l| *l == "\u{fffd}").count(), LINES);
    assert!(events.contains("done"), "the events after them arrive");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    let mark = &record["events_mark"];
    let (local, remote) = (
        mark["local"].as_u64().unwrap(),
        mark["remote"].as_u64().unwrap(),
    );
    let start = record["attempt_log_start"].as_u64().unwrap();
    assert_eq!(local - start - remote, 2 * LINES as u64, "{mark}");
}

#[test]
fn logs_of_a_detached_run_stop_reading_the_hosts_log_at_the_limit_and_say_so() {
    const BLANK: u64 = 40 << 20;
    let go = tempfile::tempdir().unwrap();
    let go_file = go.path().join("go");
    // 40 MiB of blank lines (1023 spaces each) in the agent's own log, then it waits for the
    // test's signal.
    let hostile = format!(
        "f=$(ls ../../../agents/*/1/events.jsonl) && until grep -q hostile-blank \"$f\"; do sleep 0.05; done && yes \"$(printf %1023s)\" | head -c {BLANK} >> \"$f\" && touch \"$f.written\" && until [ -e {go} ]; do sleep 0.05; done # hostile-blank",
        go = go_file.display()
    );
    let Some(s) = setup(
        vec![Reply::exec("c1", &hostile), Reply::message("done")],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--detach",
        "--sandbox",
        "danger-full-access",
        "--prompt",
        "write blank lines",
        "--type",
        "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = only_run(&s.env.project).unwrap();
    let written = s.sshd.dir().join(format!(
        "ws/.codex-remote/myapp/agents/{run_id}/1/events.jsonl.written"
    ));
    wait_until("the agent wrote its blank lines", || written.exists());

    let out = s.env.run(&["logs", &run_id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    // Whole lines read up to the limit (the one it cut is not counted as read).
    let read = last["read"].as_u64().unwrap();
    assert!(((32 << 20) - 1024..=32 << 20).contains(&read), "{last}");
    assert_eq!(
        last,
        serde_json::json!({"event": "events_cut", "read": read, "limit": 32 << 20})
    );
    let out = s.env.run(&["logs", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "the listing stops here: {read} bytes of the agent's unrecorded events read, the \
             most one look reads is 33554432 bytes (`attach` records them all)"
        )),
        "{}",
        stdout(&out)
    );

    std::fs::write(&go_file, "").unwrap();
    let out = s.env.run(&["attach", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
}
