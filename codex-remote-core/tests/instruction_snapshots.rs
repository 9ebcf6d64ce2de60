//! Snapshots of rendered instructions: one per task type (the examples) and the edge cases.
//! Review changes with `cargo insta review` as you would a diff.

use codex_remote_core::instruction::render;
use codex_remote_core::policy::RestrictedFiles;
use codex_remote_core::task::{TaskSpec, TaskType};

fn example(name: &str) -> TaskSpec {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    TaskSpec::load(&path).unwrap()
}

fn rendered(task: &TaskSpec) -> String {
    render(task, &RestrictedFiles::default()).text
}

#[test]
fn every_example_renders() {
    for (name, task_type) in [
        ("auth-migration.yaml", TaskType::Migration),
        ("refactor.yaml", TaskType::Refactor),
        ("test-gen.yaml", TaskType::TestGen),
        ("feature.json", TaskType::Feature),
        ("debug.yaml", TaskType::Debug),
        ("quick-fix.yaml", TaskType::QuickFix),
        ("scaffold.yaml", TaskType::Scaffold),
    ] {
        let task = example(name);
        assert_eq!(task.task_type, task_type, "{name}");
        insta::assert_snapshot!(
            format!("example_{}", name.replace('.', "_")),
            rendered(&task)
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    let task = example("auth-migration.yaml");
    let first = render(&task, &RestrictedFiles::default());
    for _ in 0..10 {
        assert_eq!(render(&task, &RestrictedFiles::default()), first);
    }
}

fn task(yaml: &str) -> TaskSpec {
    TaskSpec::parse_str(yaml, "edge.yaml").unwrap()
}

#[test]
fn minimal_task_omits_empty_sections() {
    insta::assert_snapshot!(rendered(&task(
        "id: t\ntitle: Do one thing\ntype: quick-fix\nrequirements: [Do it]\n"
    )));
}

#[test]
fn long_lists_number_and_align() {
    let requirements: String = (1..=12)
        .map(|i| format!("  - Requirement number {i}\n"))
        .collect();
    let files: String = (1..=8)
        .map(|i| format!("    - src/module_{i}/**/*.ts\n"))
        .collect();
    let yaml = format!("id: t\ntitle: Many things\ntype: refactor\nscope:\n  files:\n{files}requirements:\n{requirements}");
    insta::assert_snapshot!(rendered(&task(&yaml)));
}

#[test]
fn unicode_quotes_and_shell_syntax_are_kept_verbatim() {
    let yaml = r#"id: t
title: "Fix the «ünïcødé» handling in `parse()` — it's \"broken\""
type: debug
scope:
  files: ["src/naïve file.ts", "src/$(whoami).ts"]
standards: ["Use `const`; never `var`", "Keep 'single' and \"double\" quotes as they are"]
context: ["Shell bits must survive: $(rm -rf /) `id` ${HOME} && || ; | > <"]
requirements:
  - "Handle 日本語, emoji 🚀 and RTL ‏עברית‏ input"
  - 'Print $PATH literally, not expanded'
verification: ["echo \"$(date)\" still prints the date"]
"#;
    insta::assert_snapshot!(rendered(&task(yaml)));
}

#[test]
fn crlf_and_multiline_input_is_normalised() {
    let yaml = "id: t\r\ntitle: \"Title with\\r\\nCRLF inside\"\r\ntype: feature\r\nrequirements:\r\n  - |\r\n    First line of a long requirement\r\n    second line, indented under it\r\n  - \"Trailing spaces   \\r\\n\"\r\nverification:\r\n  - \"npm test\\r\\n\"\r\n";
    let rendered = rendered(&task(yaml));
    assert!(!rendered.contains('\r'), "no CR survives: {rendered:?}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn restricted_entries_are_excluded_and_reported() {
    let yaml = "id: t\ntitle: Bump a version\ntype: quick-fix\nscope:\n  files: [package.json, web/package-lock.json, src/index.ts, \"*.json\"]\ncontext: [package.json, Keep the changelog]\nrequirements: [Bump it]\n";
    let policy = RestrictedFiles::new([
        "package.json".to_string(),
        "package-lock.json".to_string(),
        "secrets/**".to_string(),
    ])
    .unwrap();
    let instruction = render(&task(yaml), &policy);
    let excluded: Vec<(String, &str)> = instruction
        .excluded
        .iter()
        .map(|e| (e.entry.clone(), e.field))
        .collect();
    assert_eq!(
        excluded,
        vec![
            ("package.json".to_string(), "scope.files"),
            ("web/package-lock.json".to_string(), "scope.files"),
            ("package.json".to_string(), "context"),
        ]
    );
    assert!(
        !instruction.text.contains("- package.json"),
        "restricted entries never enter context"
    );
    insta::assert_snapshot!(instruction.text);
}

#[test]
fn no_restricted_constraint_when_the_policy_is_empty() {
    let instruction = render(
        &task("id: t\ntitle: X\ntype: feature\nrequirements: [Y]\n"),
        &RestrictedFiles::new(Vec::new()).unwrap(),
    );
    assert!(!instruction.text.contains("restricted"));
}
