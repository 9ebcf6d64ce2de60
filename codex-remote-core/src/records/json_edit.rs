//! Editing a few keys of one object inside a JSON document *in place*: every byte outside the
//! changed values stays as written (indentation — spaces or tabs —, key order, spacing around
//! `:`, single-line objects, the final newline), so a diff of the file shows only the changed
//! values. The document's structure (byte ranges of objects and properties) comes from the
//! `jsonc-parser` AST; the edits are splices of that text.

use jsonc_parser::ast::{Object, Value as Ast};
use jsonc_parser::common::Ranged;
use jsonc_parser::{parse_to_ast, CollectOptions, ParseOptions};
use serde_json::Value;

/// Sets (`Some`) or removes (`None`) keys of the object `find` picks, in order; a new key goes
/// after the object's last one, laid out as that one is. `None` when the text has no such object.
pub(crate) fn edit_object(
    text: &str,
    find: impl for<'a, 'b> Fn(&'b Ast<'a>) -> Option<&'b Object<'a>>,
    changes: &[(String, Option<Value>)],
) -> Option<String> {
    let mut text = text.to_string();
    // Re-parse after each change: ranges stay exact, and plans are small.
    for (key, value) in changes {
        let parsed =
            parse_to_ast(&text, &CollectOptions::default(), &ParseOptions::default()).ok()?;
        let root = parsed.value?;
        let object = find(&root)?;
        let (start, end, replacement) = splice(&text, object, key, value.as_ref())?;
        text.replace_range(start..end, &replacement);
    }
    Some(text)
}

/// The one splice that makes `key` hold `value` (or disappear) in `object`.
fn splice(
    text: &str,
    object: &Object<'_>,
    key: &str,
    value: Option<&Value>,
) -> Option<(usize, usize, String)> {
    let props = &object.properties;
    let index = props.iter().position(|p| p.name.as_str() == key);
    let rendered = value.map(|v| serde_json::to_string(v).expect("values serialise"));
    match (index, rendered) {
        (Some(i), Some(new)) => {
            let range = props[i].value.range();
            Some((range.start, range.end, new))
        }
        (Some(i), None) => {
            // Remove the property with the separator before it (or after it, when first).
            if i > 0 {
                Some((props[i - 1].range.end, props[i].range.end, String::new()))
            } else if let Some(next) = props.get(1) {
                Some((props[0].range.start, next.range.start, String::new()))
            } else {
                // The only property: leave `{}` with the object's own spacing inside.
                let inner = object.range.start + 1..object.range.end - 1;
                Some((inner.start, inner.end, String::new()))
            }
        }
        (None, None) => Some((0, 0, String::new())),
        (None, Some(new)) => {
            let name = serde_json::to_string(key).expect("strings serialise");
            let Some(last) = props.last() else {
                let inner = object.range.start + 1;
                return Some((inner, inner, format!("{name}: {new}")));
            };
            // `"key": ` exactly as the last property separates its name from its value.
            let separator = &text[last.name.range().end..last.value.range().start];
            // Whatever precedes the last property after the previous one (or the brace):
            // `,\n\t\t`, `, `, `\n    `...
            let before_last = match props.len() {
                1 => &text[object.range.start + 1..last.range.start],
                n => &text[props[n - 2].range.end..last.range.start],
            };
            let lead = before_last.trim_start_matches(',');
            Some((
                last.range.end,
                last.range.end,
                format!(",{lead}{name}{separator}{new}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_object<'b, 'a>(root: &'b Ast<'a>) -> Option<&'b Object<'a>> {
        root.as_array()?.elements.first()?.as_object()
    }

    fn edit(text: &str, changes: &[(&str, Option<Value>)]) -> String {
        let changes: Vec<(String, Option<Value>)> = changes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        edit_object(text, first_object, &changes).unwrap()
    }

    #[test]
    fn values_change_in_place_and_new_keys_follow_the_layout() {
        let two = "[\n  {\n    \"task_id\": \"a\",\n    \"status\": \"pending\"\n  }\n]\n";
        assert_eq!(
            edit(two, &[("status", Some("running".into())), ("run_id", Some("r1".into()))]),
            "[\n  {\n    \"task_id\": \"a\",\n    \"status\": \"running\",\n    \"run_id\": \"r1\"\n  }\n]\n"
        );
        let tabs = "[\n\t{\n\t\t\"task_id\":\"a\",\n\t\t\"status\":\"pending\"\n\t}\n]";
        assert_eq!(
            edit(tabs, &[("run_id", Some("r1".into()))]),
            "[\n\t{\n\t\t\"task_id\":\"a\",\n\t\t\"status\":\"pending\",\n\t\t\"run_id\":\"r1\"\n\t}\n]"
        );
        let inline = "[{ \"task_id\": \"a\", \"status\": \"pending\" }]\n";
        assert_eq!(
            edit(
                inline,
                &[
                    ("run_id", Some("r1".into())),
                    ("status", Some("failed".into()))
                ]
            ),
            "[{ \"task_id\": \"a\", \"status\": \"failed\", \"run_id\": \"r1\" }]\n"
        );
        let one = "[{\"task_id\":\"a\"}]";
        assert_eq!(
            edit(one, &[("status", Some("x".into()))]),
            "[{\"task_id\":\"a\",\"status\":\"x\"}]"
        );
    }

    #[test]
    fn removals_take_their_separator_and_unicode_is_kept() {
        let text = "[{ \"task_id\": \"ü\", \"error\": \"boom ✗\", \"status\": \"failed\" }]";
        assert_eq!(
            edit(text, &[("error", None), ("status", Some("running".into()))]),
            "[{ \"task_id\": \"ü\", \"status\": \"running\" }]"
        );
        let first = "[{\n  \"error\": \"x\",\n  \"task_id\": \"a\"\n}]";
        assert_eq!(
            edit(first, &[("error", None)]),
            "[{\n  \"task_id\": \"a\"\n}]"
        );
        // Removing what is not there changes nothing.
        assert_eq!(edit(first, &[("nope", None)]), first);
    }
}
