//! `codex-remote checkpoint`: byte-for-byte preservation, no match, ambiguity, already done.

mod common;

use common::{stderr, stdout, Env};

const SPEC: &str = "# Spec ✓\r\n\r\n## Checkpoints\r\n- [ ] Auth module migration\r\n- [x] Done already\r\n  - [ ] Nested step\r\n\r\n```md\r\n- [ ] Auth module migration\r\n```\r\n1. [ ] Numbered item";

#[test]
fn ticks_exactly_one_item_and_changes_no_other_byte() {
    let env = Env::new();
    let spec = env.write("SPEC.md", SPEC);
    let out = env.run(&[
        "checkpoint",
        spec.to_str().unwrap(),
        "--item",
        " Auth module migration ",
        "--run",
        "r-42",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = SPEC.replacen(
        "- [ ] Auth module migration\r\n",
        "- [x] Auth module migration ← Completed via Codex (run r-42)\r\n",
        1,
    );
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), expected);
    let out = env.run(&[
        "checkpoint",
        spec.to_str().unwrap(),
        "--item",
        "Numbered item",
        "--run",
        "r-43",
    ]);
    assert!(out.status.success());
    assert!(
        std::fs::read_to_string(&spec)
            .unwrap()
            .ends_with("1. [x] Numbered item ← Completed via Codex (run r-43)"),
        "no newline added at the end"
    );
    let before = std::fs::read(&spec).unwrap();
    let out = env.run(&[
        "checkpoint",
        spec.to_str().unwrap(),
        "--item",
        "Done already",
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("already ticked"));
    assert_eq!(
        std::fs::read(&spec).unwrap(),
        before,
        "already ticked: nothing written"
    );
}

#[test]
fn no_match_or_several_matches_write_nothing() {
    let env = Env::new();
    let spec = env.write("SPEC.md", "- [ ] Alpha\n- [ ] Alpha\n- [ ] Beta\n");
    let out = env.run(&["checkpoint", spec.to_str().unwrap(), "--item", "Gamma"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`Alpha`, `Alpha`, `Beta`"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["checkpoint", spec.to_str().unwrap(), "--item", "Alpha"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lines 1, 2"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&spec).unwrap(),
        "- [ ] Alpha\n- [ ] Alpha\n- [ ] Beta\n"
    );
}
