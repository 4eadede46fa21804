//! The `mock` integration: a fixed status, headers and body from the plan, written by the
//! gateway's response writer. Nothing is computed per request beyond the request id.

use tollgate_config::plan::MockResponse;

/// Header lines of a mock response, in the order configured.
pub fn headers(mock: &MockResponse) -> impl Iterator<Item = (&str, &str)> {
    mock.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

/// Whether the mock sets its own content type.
pub fn has_content_type(mock: &MockResponse) -> bool {
    mock.headers.iter().any(|(n, _)| n == "content-type")
}
