//! Text → [`FileConfig`], keeping every position an error may need.
//!
//! The document is parsed once into toml's span-keeping tree ([`DeTable`]), and
//! [`FileConfig`] is deserialized from that tree, so every serde error carries the span of
//! the value or key it is about.
//!
//! Tables whose fields depend on a `type` key (`[apis.integrations.ID]`; authorizers, pools
//! and functions later) are the one shape serde cannot read without losing positions: an
//! internally tagged enum (`#[serde(tag = "type")]`) buffers the table in serde's private
//! `Content` before choosing the variant, which drops every [`toml::Spanned`] inside and
//! leaves errors at whatever span the enclosing table had. So before serde runs, each such
//! table is rewritten in the tree from `{ type = "http", url = … }` to serde's externally
//! tagged form `{ http = { url = … } }` (the new key carries the span of the `type` value,
//! the inner table keeps its own), and the section is an ordinary enum without `tag`. toml's
//! deserializer then reads the variant straight from the tree: fields can be `Spanned`, and
//! a wrong value, unknown field or unknown type is reported where it is written.
//!
//! A new tagged table is one more path in [`TAGGED_TABLES`] plus an enum like
//! [`crate::file::IntegrationSection`]; if the path is forgotten, no file using the table
//! loads (the enum expects a single key), so the first test that writes one catches it.
//!
//! Errors are named by the full dotted key path of the innermost key or value at their
//! span (array indices left out: `apis.integrations.pets.timeout_ms`), found in the tree.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{key_segment, ConfigError, Source};
use crate::file::FileConfig;

/// Tables tagged by a `type` key, as paths from the document root; `*` is every key of a
/// table or every table of an array of tables.
const TAGGED_TABLES: &[&[&str]] = &[&["apis", "*", "integrations", "*"]];

/// A problem found in the tree before serde runs: span and message.
type TreeError = (Range<usize>, String);

/// Parses `src` into a [`FileConfig`]; errors name the line, column and key path.
pub(crate) fn file_config(src: &Source<'_>) -> Result<FileConfig, ConfigError> {
    let mut doc = DeTable::parse(src.text).map_err(|e| {
        // Not TOML at all: there is no tree to look the key up in.
        let span = e.span();
        let key = span
            .clone()
            .map(|s| src.key_at(s.start))
            .unwrap_or_default();
        src.error(span, key, e.message().trim().to_string(), "")
    })?;
    for path in TAGGED_TABLES {
        untag_in_table(doc.get_mut(), path)
            .map_err(|(span, message)| invalid(src, Some(span), message))?;
    }
    FileConfig::deserialize(toml::de::Deserializer::from(doc))
        .map_err(|e| invalid(src, e.span(), e.message().trim().to_string()))
}

/// A schema error at `span`, keyed by the path found there in a fresh parse (the tree that
/// was deserialized has had its tagged tables rewritten).
fn invalid(src: &Source<'_>, span: Option<Range<usize>>, message: String) -> ConfigError {
    let key = span.as_ref().and_then(|s| {
        let doc = DeTable::parse(src.text).ok()?;
        key_path(doc.get_ref(), s)
    });
    let key = match (key, &span) {
        (Some(k), _) => k,
        (None, Some(s)) => src.key_at(s.start),
        (None, None) => String::new(),
    };
    src.error(span, key, message, "")
}

/// Rewrites the tagged tables at `path` below `table`.
fn untag_in_table(table: &mut DeTable<'_>, path: &[&str]) -> Result<(), TreeError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    if *first == "*" {
        for (_, value) in table.iter_mut() {
            untag_at(value, rest)?;
        }
    } else if let Some(value) = table.get_mut(*first) {
        untag_at(value, rest)?;
    }
    Ok(())
}

/// Rewrites the tagged tables at `path` below `value`, or `value` itself when `path` is
/// empty. A value of the wrong shape on the way is left for serde to report.
fn untag_at(value: &mut Spanned<DeValue<'_>>, path: &[&str]) -> Result<(), TreeError> {
    if path.is_empty() {
        return untag(value);
    }
    match value.get_mut() {
        DeValue::Table(table) => untag_in_table(table, path),
        DeValue::Array(items) if path[0] == "*" => {
            for item in items.iter_mut() {
                untag_at(item, &path[1..])?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `{ type = "http", url = … }` → `{ http = { url = … } }`.
fn untag(value: &mut Spanned<DeValue<'_>>) -> Result<(), TreeError> {
    let span = value.span();
    let found = unexpected(value.get_ref());
    let DeValue::Table(table) = value.get_mut() else {
        return Err((
            span,
            format!("invalid type: {found}, expected a table with a `type` key"),
        ));
    };
    let Some(kind) = table.remove("type") else {
        return Err((span, "missing field `type`".to_string()));
    };
    let kind_span = kind.span();
    let found = unexpected(kind.get_ref());
    let DeValue::String(name) = kind.into_inner() else {
        return Err((
            kind_span,
            format!("invalid type: {found}, expected a string"),
        ));
    };
    let fields = std::mem::take(table);
    table.insert(
        Spanned::new(kind_span, name),
        Spanned::new(span, DeValue::Table(fields)),
    );
    Ok(())
}

/// What was found, worded as serde words it in its own `invalid type` messages.
fn unexpected(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer `{i}`"),
        DeValue::Float(f) => format!("floating point `{f}`"),
        DeValue::Boolean(b) => format!("boolean `{b}`"),
        DeValue::Datetime(d) => format!("datetime `{d}`"),
        DeValue::Array(_) => "sequence".to_string(),
        DeValue::Table(_) => "map".to_string(),
    }
}

/// The dotted key path of the innermost key or value at `span`: one whose span is exactly
/// `span` if any, else the smallest that contains its start.
fn key_path(root: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let mut finder = KeyFinder {
        target: span.clone(),
        path: Vec::new(),
        best: None,
    };
    finder.table(root);
    finder.best.map(|(_, path)| path)
}

/// How well a span fits the target, lower is better: not exact, length, then deeper.
type Rank = (bool, usize, std::cmp::Reverse<usize>);

struct KeyFinder {
    target: Range<usize>,
    path: Vec<String>,
    best: Option<(Rank, String)>,
}

impl KeyFinder {
    fn table(&mut self, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            self.path.push(key_segment(key.get_ref()));
            self.consider(&key.span());
            self.value(value);
            self.path.pop();
        }
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>) {
        self.consider(&value.span());
        match value.get_ref() {
            DeValue::Table(table) => self.table(table),
            DeValue::Array(items) => {
                for item in items.iter() {
                    self.value(item);
                }
            }
            _ => {}
        }
    }

    fn consider(&mut self, span: &Range<usize>) {
        let exact = *span == self.target;
        let contains = span.start <= self.target.start && self.target.start < span.end;
        if !exact && !contains {
            return;
        }
        let rank = (!exact, span.len(), std::cmp::Reverse(self.path.len()));
        if self.best.as_ref().is_none_or(|(best, _)| rank < *best) {
            self.best = Some((rank, self.path.join(".")));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const HEAD: &str = "[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:0\"\n\n";

    fn error(text: &str) -> String {
        match crate::compile(Path::new("t.toml"), &format!("{HEAD}{text}")) {
            Ok(_) => "(compiled)".to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// The key path at the first `needle` (leading newlines only anchor it to a line start).
    fn path_at(text: &str, needle: &str) -> Option<String> {
        let doc = DeTable::parse(text).expect("toml");
        let word = needle.trim_start_matches('\n');
        let start = text.find(needle).expect("needle") + needle.len() - word.len();
        key_path(doc.get_ref(), &(start..start + word.len()))
    }

    #[test]
    fn key_paths_are_found_through_headers_inline_tables_and_arrays() {
        let text = concat!(
            "[[apis]]\n",
            "id = \"shop\"\n",
            "[apis.stages.\"$default\"]\n",
            "variables = { a = { b = 7 } }\n",
            "[[apis.routes]]\n",
            "route = [\n",
            "  \"x\",\n",
            "  true,\n",
            "]\n",
        );
        assert_eq!(
            path_at(text, "7").as_deref(),
            Some("apis.stages.\"$default\".variables.a.b")
        );
        assert_eq!(path_at(text, "true").as_deref(), Some("apis.routes.route"));
        assert_eq!(
            path_at(text, "\nroute").as_deref(),
            Some("apis.routes.route")
        );
        assert_eq!(path_at(text, "\nid").as_deref(), Some("apis.id"));
    }

    #[test]
    fn tagged_tables_are_read_in_every_element_of_an_array_of_tables() {
        let api = |id: &str, integration: &str| {
            format!("[[apis]]\nid = \"{id}\"\n[[apis.routes]]\nroute = \"GET /\"\nintegration = \"i\"\n[apis.integrations.i]\n{integration}\n")
        };
        let good = api("a", "type = \"mock\"");
        let bad = api("b", "type = \"mock\"\nstatus = -1");
        assert_eq!(
            error(&format!("{good}{bad}")),
            "t.toml:19:10: apis.integrations.i.status: invalid value: integer `-1`, expected u16"
        );
    }

    #[test]
    fn an_element_of_a_multi_line_array_is_keyed_by_its_array() {
        assert_eq!(
            error("[client_address]\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n  5,\n]\n"),
            "t.toml:8:3: client_address.trusted_proxies: invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn keys_that_are_not_bare_are_quoted() {
        assert_eq!(key_segment("x-tenant_1"), "x-tenant_1");
        assert_eq!(key_segment("$default"), "\"$default\"");
        assert_eq!(key_segment("a.b"), "\"a.b\"");
        assert_eq!(key_segment(""), "\"\"");
    }
}
