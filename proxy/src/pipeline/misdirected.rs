//! The misdirected-request phase (TLS only): the certificate and the client-certificate
//! (mTLS) policy were chosen by the name the client asked for in its handshake (SNI). A
//! request on that connection whose `Host` names a domain another certificate or policy
//! serves on this listener gets 421 Misdirected Request (RFC 9110 §15.5.20) and never that
//! domain's routes: otherwise a client could handshake as a domain without mTLS and reach
//! one that requires it.
//!
//! A `Host` the listener's certificates do not name (an IP literal, an unknown name) falls to
//! the listener's default certificate, as a handshake without SNI would: it is misdirected
//! only if the handshake chose another certificate, or the listener refuses unknown names.

use tollgate_backends::wire::buffers::IoBuf;
use tollgate_config::responses::ResponseType;
use tollgate_config::Plan;

use super::client::Client;
use super::request::Facts;
use super::respond::Stop;
use super::route::lowercase_host;

/// Refuses a request whose `Host` would have chosen another TLS configuration.
pub fn check(client: &Client, plan: &Plan, facts: &Facts, buf: &IoBuf) -> Result<(), Stop> {
    let Some(stream) = client.stream.tls() else {
        return Ok(());
    };
    let Some(tls) = client.listener(plan).and_then(|l| l.tls.as_ref()) else {
        return Ok(());
    };
    let mut host_buf = [0u8; 256];
    let host = facts
        .head
        .host
        .and_then(|h| lowercase_host(h.get(&buf.data), &mut host_buf))
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    // Compared by label (certificate and client-certificate policy), not by configuration: a
    // reload rebuilds the configurations, and an open connection keeps what it was given.
    let wanted = tls
        .select(host)
        .and_then(|c| tls.policy_of(c))
        .map(|p| &*p.label);
    match (wanted, stream.session().map(|s| &*s.label)) {
        (Some(wanted), Some(given)) if wanted == given => Ok(()),
        _ => Err(Stop::refuse(ResponseType::MisdirectedRequest)),
    }
}
