//! The request bytes a `load` run sends, formatted once before any connection starts.
//!
//! Without `--header-list` every connection sends the same request. With
//! `--header-list NAME:FILE` there is one request per value in FILE (one value a line, blank
//! lines ignored, surrounding whitespace trimmed), each carrying `NAME: value`; connection `i`
//! sends `requests[i % n]` on every request, so with an API key per line each connection acts
//! as one client with its own key. Nothing is formatted per request.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::http::build_request;

/// `--header-list NAME:FILE` as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderListArg {
    pub name: String,
    pub file: PathBuf,
}

/// Parses `NAME:FILE`; the name must be a plain header token (the file may contain colons).
pub fn parse_header_list_arg(s: &str) -> Result<HeaderListArg, String> {
    let Some((name, file)) = s.split_once(':') else {
        return Err(format!("expected NAME:FILE, got {s:?}"));
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("bad header name {name:?} in {s:?}"));
    }
    if file.is_empty() {
        return Err(format!("no file in {s:?}"));
    }
    Ok(HeaderListArg {
        name: name.to_string(),
        file: PathBuf::from(file),
    })
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The values of a header-list file: one a line, trimmed, blank lines skipped.
pub fn parse_values(text: &str) -> Result<Vec<String>> {
    let mut values = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let value = line.trim();
        if value.is_empty() {
            continue;
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            bail!("line {}: control character in header value", n + 1);
        }
        values.push(value.to_string());
    }
    if values.is_empty() {
        bail!("no values (one per line, blank lines are skipped)");
    }
    Ok(values)
}

/// Reads and parses the values of `file`.
pub fn read_values(file: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    parse_values(&text).with_context(|| format!("header list {}", file.display()))
}

/// What every request of a run shares.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    /// `name: value` headers sent on every request.
    pub headers: &'a [String],
    pub body_bytes: usize,
    /// Ask the server to close after each response.
    pub close: bool,
}

/// One request per value of `list` (`name: value` added to the common headers), or the single
/// common request without a list.
pub fn build_requests(spec: &RequestSpec<'_>, list: Option<(&str, &[String])>) -> Vec<Vec<u8>> {
    let build = |headers: &[String]| {
        build_request(
            spec.method,
            spec.path,
            spec.host,
            headers,
            spec.body_bytes,
            spec.close,
        )
    };
    match list {
        None => vec![build(spec.headers)],
        Some((name, values)) => {
            let mut headers = spec.headers.to_vec();
            headers.push(String::new());
            values
                .iter()
                .map(|value| {
                    if let Some(last) = headers.last_mut() {
                        *last = format!("{name}: {value}");
                    }
                    build(&headers)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_list_args() {
        assert_eq!(
            parse_header_list_arg("x-api-key:/tmp/a:b.txt"),
            Ok(HeaderListArg {
                name: "x-api-key".into(),
                file: "/tmp/a:b.txt".into()
            })
        );
        for bad in [
            "keys.txt",
            ":keys.txt",
            "x api:keys.txt",
            "x-api-key:",
            "x\r\n:f",
        ] {
            assert!(parse_header_list_arg(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_skip_blank_lines_and_trim() -> Result<()> {
        let values = parse_values("k1\n\n  k2 \r\n\t\nk3")?;
        assert_eq!(values, ["k1", "k2", "k3"]);
        assert!(parse_values("\n \n").is_err());
        assert!(parse_values("a\nb\x00c\n").is_err());
        Ok(())
    }

    #[test]
    fn one_request_per_value_with_common_headers() {
        let spec = RequestSpec {
            method: "POST",
            path: "/p",
            host: "h:1",
            headers: &["x-a: 1".to_string()],
            body_bytes: 3,
            close: false,
        };
        let values = ["k1".to_string(), "k2".to_string()];
        let got = build_requests(&spec, Some(("x-api-key", &values)));
        let want = |key: &str| {
            format!(
                "POST /p HTTP/1.1\r\nhost: h:1\r\nx-a: 1\r\nx-api-key: {key}\r\n\
                 content-length: 3\r\n\r\nxxx"
            )
            .into_bytes()
        };
        assert_eq!(got, [want("k1"), want("k2")]);
        let single = build_requests(&spec, None);
        assert_eq!(
            single,
            [b"POST /p HTTP/1.1\r\nhost: h:1\r\nx-a: 1\r\ncontent-length: 3\r\n\r\nxxx".to_vec()]
        );
    }
}
