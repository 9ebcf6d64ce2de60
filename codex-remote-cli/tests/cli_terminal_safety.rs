//! What the agent writes never reaches the user's terminal as control sequences: its messages,
//! its file names and its patch are shown with their escapes visible (real Codex CLI, real sshd,
//! scripted model server playing a hostile agent).

mod common;

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout};

/// Sequences that would erase the line above, retitle the terminal, or act as a C1 CSI.
const HOSTILE: [&str; 3] = ["\x1b[2K\x1b[1A", "\x1b]0;PWNED\x07", "\u{9b}2J"];

fn assert_no_raw_escapes(what: &str, text: &str) {
    for sequence in HOSTILE {
        assert!(
            !text.contains(sequence),
            "{what} sent {sequence:?} to the terminal: {text:?}"
        );
    }
}

#[test]
fn the_agent_s_words_names_and_patch_are_shown_not_sent_to_the_terminal() {
    let Some(s) = setup(
        vec![
            // The change: a line that would erase the one above it when printed raw.
            Reply::exec(
                "c1",
                "printf 'visible\\n\\033[2K\\033[1Ahidden\\n' > notes.txt",
            ),
            Reply::message("Done \x1b]0;PWNED\x07 \u{9b}2J \x1b[2K\x1b[1A"),
            // Then a held-back result whose file name carries escapes: the refusal names it.
            Reply::exec(
                "c2",
                "d=\"$(printf 'x\\033]0;PWNED\\007')\" && mkdir -p \"$d\" && printf 'a\\n' > \"$d/.gitignore\"",
            ),
            Reply::message("Ignored things"),
        ],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--no-apply",
        "-v",
        "--prompt",
        "Write notes",
        "--type",
        "quick-fix",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_raw_escapes("run's stdout", &stdout(&out));
    assert_no_raw_escapes("run's progress", &stderr(&out));
    assert!(
        stdout(&out).contains("\\x1b]0;PWNED\\x07"),
        "the message is shown with its escapes visible: {}",
        stdout(&out)
    );

    // On a terminal (or to a pager reading colours) the patch's escapes are shown ...
    let out = s.env.run(&["diff", "last", "--color", "always"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert_no_raw_escapes("diff --color always", &shown);
    assert!(shown.contains("+\\x1b[2K\\x1b[1Ahidden"), "{shown}");
    // ... while a program reading the patch gets it byte for byte.
    let out = s.env.run(&["diff", "last", "--color", "never"]);
    assert!(
        stdout(&out).contains("+\x1b[2K\x1b[1Ahidden"),
        "{}",
        stdout(&out)
    );

    for args in [["logs", "last"], ["status", "last"]] {
        let out = s.env.run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_no_raw_escapes(&format!("{args:?}"), &stdout(&out));
        assert_no_raw_escapes(&format!("{args:?}"), &stderr(&out));
    }
    // JSON escapes them too, C1 included, and stays JSON.
    let out = s.env.run(&["logs", "last", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in stdout(&out).lines() {
        assert_no_raw_escapes("logs --json", line);
        serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
    }

    // A refusal naming the agent's file shows the name's escapes.
    let out = s
        .env
        .run(&["run", "--prompt", "Ignore things", "--type", "quick-fix"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert_no_raw_escapes("the refusal", &err);
    assert!(err.contains("x\\x1b]0;PWNED\\x07/.gitignore"), "{err}");
}
