//! Configuration errors that say where and what: file, line, column, key, what was found and
//! what is expected.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions).
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        /// File named on the command line.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema, or it fails a semantic check.
    #[error("{0}")]
    Invalid(Located),
}

/// A problem at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// File name as given.
    pub path: String,
    /// 1-based line; 0 when the problem has no single place (a missing section).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key path (`apis[0].routes[2].integration`), when known.
    pub key: String,
    /// What is wrong, including what was found.
    pub problem: String,
    /// What would be accepted.
    pub expected: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.problem)?;
        if !self.expected.is_empty() {
            write!(f, "; expected {}", self.expected)?;
        }
        Ok(())
    }
}

/// Turns byte offsets into line/column positions of one source text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self {
            path: path.to_str().unwrap_or("<config>"),
            text,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error at `span` (None: no single place).
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |s| self.position(s.start));
        ConfigError::Invalid(Located {
            path: self.path.to_string(),
            line,
            column,
            key: key.into(),
            problem: problem.into(),
            expected: expected.into(),
        })
    }

    /// The dotted key a TOML parse error points at, read from the source around it: the
    /// nearest table header above plus the key on the line itself.
    pub fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let own_key = if line.starts_with('[') {
            ""
        } else {
            line.split('=').next().unwrap_or("").trim()
        };
        let table = self.text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
            .unwrap_or("");
        match (table.is_empty(), own_key.is_empty()) {
            (true, _) => own_key.to_string(),
            (false, true) => table.to_string(),
            (false, false) => format!("{table}.{own_key}"),
        }
    }
}

/// A key as written in a dotted path: bare when it can be, quoted otherwise.
pub(crate) fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
