//! The request size phase: a body whose declared length is over `body_bytes_max` is refused
//! with 413 before anything reads it (a chunked body is counted as it is read instead, by the
//! integration's body reader).

use tollgate_backends::wire::http1::BodyFraming;
use tollgate_config::plan::Limits;
use tollgate_config::responses::ResponseType;

use super::request::Facts;
use super::respond::Stop;

/// Refuses a declared body over the limit.
pub fn check(facts: &Facts, limits: &Limits) -> Result<(), Stop> {
    match facts.head.framing {
        BodyFraming::Length(n) if n > limits.body_bytes_max => Err(Stop::Fail {
            kind: ResponseType::RequestTooLarge,
            detail: None,
        }),
        _ => Ok(()),
    }
}
