//! The TLS handshake of a connection on a TLS listener: after the PROXY header (if any) and
//! the pre-filter's check, before the first request head. The server configuration is
//! chosen by the name the client asks for (SNI) from the listener's certificates in the
//! current plan, so a reload's new certificates serve new handshakes while established
//! connections keep theirs. A client has the listener's `handshake_timeout_ms` from accept to
//! finish it (silent or stalling mid-way, it is closed then, like a slow head).

use std::sync::Arc;
use std::time::Duration;

use tollgate_backends::wire::stream::ClientStream;
use tollgate_backends::wire::tls::{accept, HandshakeError};
use tracing::debug;

use super::Conn;
use crate::counters::bump;

impl Conn {
    /// The listener's TLS settings in the current plan, if it terminates TLS.
    pub(super) fn listener_tls(&self) -> Option<Arc<tollgate_config::tls::TlsListenerPlan>> {
        let wp = self.client.worker.plan();
        self.client.listener(&wp.plan)?.tls.clone()
    }

    /// Runs the handshake, starting with `initial` bytes already read (behind a PROXY
    /// header); false when it failed (counted; the caller closes).
    pub(super) async fn handshake(&mut self, initial: &[u8]) -> bool {
        let Some(tls) = self.listener_tls() else {
            return true;
        };
        let ClientStream::Plain(tcp) =
            std::mem::replace(&mut self.client.stream, ClientStream::Detached)
        else {
            unreachable!("the handshake runs once, on the plain stream");
        };
        // From accept: the wait for the first bytes counted already.
        let deadline = self.accepted + Duration::from_millis(tls.handshake_timeout_ms);
        let counters = &self.client.worker.counters;
        match accept(tcp, initial, |sni| tls.select(sni).cloned(), deadline).await {
            Ok(mut stream) => {
                if stream.resumed() {
                    bump(&counters.tls_resumptions);
                }
                // Which certificate the client was given, by id: its requests' Host must name
                // the same one (`pipeline::misdirected`).
                if let Some(id) = stream.chosen_config().and_then(|c| tls.certificate_of(c)) {
                    stream.set_certificate(id);
                }
                self.client.stream = ClientStream::Tls(Box::new(stream));
                bump(&counters.tls_handshakes);
                // The first head's deadline runs from here, not from accept: the handshake had
                // its own.
                self.accepted = std::time::Instant::now();
                true
            }
            Err((why, tcp)) => {
                // The socket comes back to be closed by the connection (its registry entry
                // goes first, see `Conn::drop`).
                self.client.stream = ClientStream::Plain(tcp);
                debug!(peer = %self.client.peer, reason = why.label(), "TLS handshake failed");
                bump(&counters.tls_failed[failure_index(why)]);
                false
            }
        }
    }
}

fn failure_index(why: HandshakeError) -> usize {
    match why {
        HandshakeError::Timeout => 0,
        HandshakeError::Closed => 1,
        HandshakeError::Protocol => 2,
        HandshakeError::UnknownName => 3,
    }
}
