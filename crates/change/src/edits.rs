//! Reading a JSON list of edits into a [`Change`].
//!
//! This is the format models are asked to answer in, because search/replace
//! pairs survive a model's miscounting far better than hunk headers do.
//! Models also invent fields and ops, so every unknown name is an error that
//! names the edit (`edits[2]`) and the place in the JSON text, rather than
//! being silently dropped.
//!
//! ```json
//! [
//!   {"op": "create",  "path": "a.py", "content": "...", "executable": false},
//!   {"op": "modify",  "path": "a.py", "edits": [{"search": "x", "replace": "y"}]},
//!   {"op": "modify",  "path": "a.py", "search": "x", "replace": "y"},
//!   {"op": "replace", "path": "a.py", "content": "..."},
//!   {"op": "delete",  "path": "a.py"},
//!   {"op": "rename",  "from": "a.py", "to": "b.py"}
//! ]
//! ```
//!
//! The list may also come wrapped as `{"edits": [...]}`.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::diff::utf8;
use crate::error::ChangeError;
use crate::path::RelPath;
use crate::{Change, Edit, ModifyOp};

/// Parses a JSON list of edits. `source_name` prefixes every error.
pub fn parse_edits_json(source_name: &str, bytes: &[u8]) -> Result<Change, ChangeError> {
    let text = utf8(source_name, bytes)?;
    let index = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = TopSeed { index: &index }
        .deserialize(&mut de)
        .and_then(|raw| de.end().map(|()| raw))
        .map_err(|e| json_error(source_name, index.get(), &e))?;
    if raw.is_empty() {
        return Err(ChangeError::EmptyChange {
            source_name: source_name.to_string(),
            reason: "the change has no edits",
        });
    }
    let edits = raw
        .into_iter()
        .enumerate()
        .map(|(i, edit)| convert(source_name, i, edit))
        .collect::<Result<_, _>>()?;
    Ok(Change { edits })
}

/// One edit as written. A flat struct rather than an enum tagged by `op`:
/// serde buffers a tagged enum's fields, which moves the position of an
/// unknown-field error to the end of the edit, and the per-op checks in
/// [`convert`] say more than serde's "missing field" would.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdit {
    op: String,
    path: Option<String>,
    content: Option<String>,
    executable: Option<bool>,
    edits: Option<Vec<RawPair>>,
    search: Option<String>,
    replace: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    search: String,
    replace: String,
}

const OPS: &str = "`create`, `modify`, `replace`, `delete` or `rename`";

/// Turns one parsed edit into an [`Edit`], checking what serde cannot:
/// which fields each op takes, and the paths.
fn convert(src: &str, index: usize, raw: RawEdit) -> Result<Edit, ChangeError> {
    let invalid = |message: String| ChangeError::InvalidEdits {
        source_name: src.to_string(),
        index: Some(index),
        line: None,
        column: None,
        message,
    };
    let path = |raw: &str| {
        RelPath::new(raw).map_err(|error| ChangeError::InEdits {
            source_name: src.to_string(),
            index,
            error: Box::new(error),
        })
    };
    let present = [
        ("path", raw.path.is_some()),
        ("content", raw.content.is_some()),
        ("executable", raw.executable.is_some()),
        ("edits", raw.edits.is_some()),
        ("search", raw.search.is_some()),
        ("replace", raw.replace.is_some()),
        ("from", raw.from.is_some()),
        ("to", raw.to.is_some()),
    ];
    let takes: &[&str] = match raw.op.as_str() {
        "create" => &["path", "content", "executable"],
        "modify" => &["path", "edits", "search", "replace"],
        "replace" => &["path", "content"],
        "delete" => &["path"],
        "rename" => &["from", "to"],
        other => {
            return Err(invalid(format!("unknown op `{other}`, expected {OPS}")));
        }
    };
    if let Some((field, _)) = present.iter().find(|(f, here)| *here && !takes.contains(f)) {
        let list: Vec<String> = takes.iter().map(|t| format!("`{t}`")).collect();
        return Err(invalid(format!(
            "a `{}` edit does not take `{field}` (it takes {})",
            raw.op,
            list.join(", ")
        )));
    }
    let need = |value: Option<String>, field: &str| {
        value.ok_or_else(|| invalid(format!("a `{}` edit needs `{field}`", raw.op)))
    };
    Ok(match raw.op.as_str() {
        "create" => Edit::Create {
            path: path(&need(raw.path, "path")?)?,
            content: need(raw.content, "content")?.into_bytes(),
            executable: raw.executable.unwrap_or(false),
        },
        "modify" => {
            let target = path(&need(raw.path, "path")?)?;
            let pairs = match (raw.edits, raw.search, raw.replace) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(invalid(
                        "give either `edits` or `search` and `replace`, not both".to_string(),
                    ));
                }
                (Some(pairs), None, None) => pairs,
                (None, Some(search), Some(replace)) => vec![RawPair { search, replace }],
                (None, Some(_), None) => {
                    return Err(invalid(
                        "`search` needs a `replace` (use \"\" to delete the text)".to_string(),
                    ));
                }
                (None, None, Some(_)) => {
                    return Err(invalid("`replace` needs a `search`".to_string()));
                }
                (None, None, None) => {
                    return Err(invalid(
                        "a `modify` edit needs `edits` (a list of {\"search\", \"replace\"}) or `search` and `replace`"
                            .to_string(),
                    ));
                }
            };
            if pairs.is_empty() {
                return Err(invalid(
                    "`edits` is empty; give at least one search/replace pair".to_string(),
                ));
            }
            let mut ops = Vec::with_capacity(pairs.len());
            for (j, pair) in pairs.into_iter().enumerate() {
                if pair.search.is_empty() {
                    return Err(invalid(format!(
                        "`search` is empty (pair {j}); give the exact text to find, or use a `replace` edit for the whole file"
                    )));
                }
                ops.push(ModifyOp::SearchReplace {
                    search: pair.search,
                    replace: pair.replace,
                });
            }
            Edit::Modify { path: target, ops }
        }
        "replace" => Edit::Replace {
            path: path(&need(raw.path, "path")?)?,
            content: need(raw.content, "content")?.into_bytes(),
        },
        "delete" => Edit::Delete {
            path: path(&need(raw.path, "path")?)?,
            expect: None,
        },
        _ => {
            let from = path(&need(raw.from, "from")?)?;
            let to = path(&need(raw.to, "to")?)?;
            if from == to {
                return Err(invalid(format!("`from` and `to` are both `{from}`")));
            }
            Edit::Rename {
                from,
                to,
                ops: Vec::new(),
            }
        }
    })
}

/// Rewrites serde_json's error into ours: the edit's index when the error
/// is inside one, the line and column, and serde's words made to speak of
/// ops rather than enum variants.
fn json_error(src: &str, index: Option<usize>, e: &serde_json::Error) -> ChangeError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let bare = full.strip_suffix(&suffix).unwrap_or(&full);
    let message = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("invalid JSON: {bare}")
        }
        _ if bare == "missing field `op`" => format!("{bare}; give one of {OPS}"),
        _ => bare.to_string(),
    };
    let (line, column) = if e.line() > 0 {
        (Some(e.line()), Some(e.column()))
    } else {
        (None, None)
    };
    ChangeError::InvalidEdits {
        source_name: src.to_string(),
        index,
        line,
        column,
        message,
    }
}

/// The top level: a list of edits, or `{"edits": [...]}`.
struct TopSeed<'c> {
    index: &'c Cell<Option<usize>>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Vec<RawEdit>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TopVisitor { index: self.index })
    }
}

struct TopVisitor<'c> {
    index: &'c Cell<Option<usize>>,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Vec<RawEdit>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of edits, or an object with an `edits` list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        ListVisitor { index: self.index }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut edits = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "edits" {
                return Err(de::Error::unknown_field(&key, &["edits"]));
            }
            if edits.is_some() {
                return Err(de::Error::duplicate_field("edits"));
            }
            edits = Some(map.next_value_seed(ListSeed { index: self.index })?);
        }
        edits.ok_or_else(|| de::Error::missing_field("edits"))
    }
}

struct ListSeed<'c> {
    index: &'c Cell<Option<usize>>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<RawEdit>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(ListVisitor { index: self.index })
    }
}

/// Records which edit is being read, so an error from inside one can say
/// which; serde_json's own error only knows the line and column.
struct ListVisitor<'c> {
    index: &'c Cell<Option<usize>>,
}

impl<'de> Visitor<'de> for ListVisitor<'_> {
    type Value = Vec<RawEdit>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of edits")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        loop {
            self.index.set(Some(out.len()));
            match seq.next_element::<RawEdit>()? {
                Some(edit) => out.push(edit),
                None => break,
            }
        }
        self.index.set(None);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Change, ChangeError> {
        parse_edits_json("edits.json", text.as_bytes())
    }

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn every_op() {
        let text = r##"[
            {"op": "create", "path": "bin/run", "content": "#!/bin/sh\n", "executable": true},
            {"op": "create", "path": "a.py", "content": "x = 1\n"},
            {"op": "modify", "path": "a.py", "edits": [{"search": "x", "replace": "y"}, {"search": "1", "replace": "2"}]},
            {"op": "modify", "path": "a.py", "search": "y", "replace": "z"},
            {"op": "replace", "path": "b.py", "content": ""},
            {"op": "delete", "path": "c.py"},
            {"op": "rename", "from": "d.py", "to": "e/d.py"}
        ]"##;
        let change = parse(text).unwrap();
        let sr = |s: &str, r: &str| ModifyOp::SearchReplace {
            search: s.into(),
            replace: r.into(),
        };
        assert_eq!(
            change.edits,
            vec![
                Edit::Create {
                    path: p("bin/run"),
                    content: b"#!/bin/sh\n".to_vec(),
                    executable: true
                },
                Edit::Create {
                    path: p("a.py"),
                    content: b"x = 1\n".to_vec(),
                    executable: false
                },
                Edit::Modify {
                    path: p("a.py"),
                    ops: vec![sr("x", "y"), sr("1", "2")]
                },
                Edit::Modify {
                    path: p("a.py"),
                    ops: vec![sr("y", "z")]
                },
                Edit::Replace {
                    path: p("b.py"),
                    content: vec![]
                },
                Edit::Delete {
                    path: p("c.py"),
                    expect: None
                },
                Edit::Rename {
                    from: p("d.py"),
                    to: p("e/d.py"),
                    ops: vec![]
                },
            ]
        );
    }

    #[test]
    fn object_wrapper() {
        let change = parse(r#"{"edits": [{"op": "delete", "path": "x"}]}"#).unwrap();
        assert_eq!(change.edits.len(), 1);
        let err = parse(r#"{"edits": [], "why": "because"}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_edits");
        assert!(
            err.to_string().contains("unknown field `why`, expected `edits`"),
            "{err}"
        );
        let err = parse(r#"{}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `edits`"), "{err}");
    }

    #[test]
    fn unknown_field_names_index_field_and_position() {
        let text = "[\n  {\"op\": \"delete\", \"path\": \"a\"},\n  {\"op\": \"modify\", \"path\": \"a\", \"serch\": \"x\", \"replace\": \"y\"}\n]";
        let err = parse(text).unwrap_err();
        assert_eq!(err.code(), "invalid_edits");
        let msg = err.to_string();
        assert!(msg.starts_with("edits.json: edits[1] (line 3, column "), "{msg}");
        assert!(msg.contains("unknown field `serch`"), "{msg}");
        assert!(!msg.contains(" at line "), "{msg}");
        assert!(matches!(
            err,
            ChangeError::InvalidEdits {
                index: Some(1),
                line: Some(3),
                ..
            }
        ));
    }

    #[test]
    fn unknown_field_in_a_pair() {
        let text =
            r#"[{"op": "modify", "path": "a", "edits": [{"search": "x", "replace": "y", "all": true}]}]"#;
        let err = parse(text).unwrap_err();
        assert!(err.to_string().contains("edits[0]"), "{err}");
        assert!(err.to_string().contains("unknown field `all`"), "{err}");
    }

    #[test]
    fn unknown_op_is_named() {
        let err = parse(r#"[{"op": "move", "from": "a", "to": "b"}]"#).unwrap_err();
        assert_eq!(err.code(), "invalid_edits");
        let msg = err.to_string();
        assert!(msg.contains("edits[0]"), "{msg}");
        assert!(msg.contains("unknown op `move`"), "{msg}");
        assert!(msg.contains("`rename`"), "{msg}");
        let err = parse(r#"[{"op": "delete", "path": "a", "content": ""}]"#).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("edits[0]: a `delete` edit does not take `content` (it takes `path`)"),
            "{err}"
        );
    }

    #[test]
    fn missing_op_and_missing_field() {
        let err = parse(r#"[{"path": "a"}]"#).unwrap_err();
        assert!(err.to_string().contains("missing field `op`"), "{err}");
        let err = parse(r#"[{"op": "create", "path": "a"}]"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("edits[0]: a `create` edit needs `content`"),
            "{err}"
        );
        let err = parse(r#"[{"op": "rename", "from": "a"}]"#).unwrap_err();
        assert!(err.to_string().contains("a `rename` edit needs `to`"), "{err}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("[\n{\"op\": \"delete\", \"path\": \"a\",}\n]").unwrap_err();
        assert_eq!(err.code(), "invalid_edits");
        let msg = err.to_string();
        assert!(msg.contains("(line 2, column"), "{msg}");
        assert!(msg.contains("invalid JSON"), "{msg}");
        let err = parse("[{\"op\": \"delete\", \"path\": \"a\"}] trailing").unwrap_err();
        assert!(
            err.to_string().contains("invalid JSON: trailing characters"),
            "{err}"
        );
        let err = parse("\"just a string\"").unwrap_err();
        assert!(err.to_string().contains("a list of edits"), "{err}");
    }

    #[test]
    fn empty_list_is_refused() {
        let err = parse("[]").unwrap_err();
        assert_eq!(err.code(), "empty_change");
        assert_eq!(err.to_string(), "edits.json: the change has no edits");
        assert_eq!(parse(r#"{"edits": []}"#).unwrap_err().code(), "empty_change");
    }

    #[test]
    fn empty_search_is_refused() {
        let err = parse(r#"[{"op": "modify", "path": "a", "search": "", "replace": "y"}]"#).unwrap_err();
        assert_eq!(err.code(), "invalid_edits");
        assert!(err.to_string().contains("edits[0]: `search` is empty"), "{err}");
    }

    #[test]
    fn modify_field_combinations() {
        for (body, fragment) in [
            (r#""search": "a""#, "`search` needs a `replace`"),
            (r#""replace": "a""#, "`replace` needs a `search`"),
            (r#""edits": [], "search": "a""#, "not both"),
            (r#""edits": []"#, "`edits` is empty"),
            ("", "a `modify` edit needs `edits`"),
        ] {
            let text = format!(
                r#"[{{"op": "modify", "path": "a"{}{body}}}]"#,
                if body.is_empty() { "" } else { ", " }
            );
            let err = parse(&text).unwrap_err();
            assert_eq!(err.code(), "invalid_edits", "{text}");
            assert!(err.to_string().contains(fragment), "{text}: {err}");
        }
    }

    #[test]
    fn bad_paths_name_the_edit() {
        let err =
            parse(r#"[{"op": "delete", "path": "ok"}, {"op": "create", "path": "../x", "content": ""}]"#)
                .unwrap_err();
        assert_eq!(err.code(), "path_traversal");
        assert!(
            err.to_string()
                .starts_with("edits.json: edits[1]: the path `../x`"),
            "{err}"
        );
        let err = parse(r#"[{"op": "rename", "from": "a", "to": ".git/hooks/post-commit"}]"#).unwrap_err();
        assert_eq!(err.code(), "path_git_dir");
        let err = parse(r#"[{"op": "rename", "from": "a", "to": "./a"}]"#).unwrap_err();
        assert_eq!(err.code(), "invalid_edits");
    }

    #[test]
    fn invalid_utf8() {
        let err = parse_edits_json("e.json", b"[{\"op\": \"\xc3\x28\"}]").unwrap_err();
        assert_eq!(err.code(), "not_utf8");
        assert!(err.to_string().contains("byte 9"), "{err}");
    }
}
