//! The TLS handshake of a connection on a TLS listener: after the PROXY header (if any) and
//! the pre-filter's check, before the first request head. The server configuration is
//! chosen by the name the client asks for (SNI) from the listener's certificates in the
//! current plan, so a reload's new certificates serve new handshakes while established
//! connections keep theirs. A client has the listener's `handshake_timeout_ms` from accept to
//! finish it (silent or stalling mid-way, it is closed then, like a slow head).

use std::sync::Arc;
use std::time::Duration;

use tollgate_backends::client_cert::{ClientCertificate, TlsSession};
use tollgate_backends::wire::stream::ClientStream;
use tollgate_backends::wire::tls_server::accept;
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
        let counters = self.client.worker.counters.tls_of(&self.client.listener);
        match accept(tcp, initial, |sni| tls.select(sni).cloned(), deadline).await {
            Ok(mut stream) => {
                if stream.resumed() {
                    bump(&counters.resumptions);
                }
                // Which certificate and client-certificate policy the client was given, by
                // label: its requests' Host must choose the same (`pipeline::misdirected`).
                let policy = tls.policy_of(stream.chosen_config());
                let (version, cipher) = stream.negotiated();
                let session = TlsSession {
                    label: policy.map(|p| p.label.clone()).unwrap_or_default(),
                    version,
                    cipher,
                    client_cert: stream
                        .peer_leaf()
                        .and_then(ClientCertificate::parse)
                        .map(Box::new),
                    client_cert_headers: policy.and_then(|p| p.client_cert_headers.clone()),
                };
                stream.set_session(session);
                self.client.stream = ClientStream::Tls(Box::new(stream));
                bump(&counters.handshakes);
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
                bump(&counters.failed[why.index()]);
                false
            }
        }
    }
}
