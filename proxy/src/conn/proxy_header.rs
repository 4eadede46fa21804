//! The start of a connection behind PROXY protocol: whether this connection must, may or
//! must not send a PROXY header (by its listener and its source), and reading that header.

use std::time::Duration;

use tollgate_config::plan::ProxyProtocol;
use tracing::debug;

use super::Conn;
use crate::client_addr::{self, ProxyHeader, ProxyParse};
use crate::counters::bump;
use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::io::{read_more, IoFail};

impl Conn {
    /// Whether this connection must, may or must not start with a PROXY header, by its
    /// listener's settings and its source; None when it is refused (a listener that requires
    /// the header, and a source that may not send it).
    pub(super) fn proxy_expectation(&self) -> Option<ProxyProtocol> {
        let wp = self.client.worker.plan();
        let listener = self.client.listener(&wp.plan)?;
        let trusted = client_addr::is_trusted(self.client.peer.ip(), &listener.proxy_protocol_from);
        match listener.proxy_protocol {
            ProxyProtocol::Off => Some(ProxyProtocol::Off),
            ProxyProtocol::Optional if trusted => Some(ProxyProtocol::Optional),
            ProxyProtocol::Optional => Some(ProxyProtocol::Off),
            ProxyProtocol::Required if trusted => Some(ProxyProtocol::Required),
            ProxyProtocol::Required => {
                debug!(peer = %self.client.peer, "connection refused: source may not send a PROXY header");
                None
            }
        }
    }

    /// Reads the PROXY header at the start of the connection (within the header timeout) and
    /// takes the client's address and port from it. Returns the buffer holding the bytes that
    /// followed it, or None when the connection must close: a required header was missing or
    /// invalid, or the client went away.
    pub(super) async fn read_proxy_header(
        &mut self,
        mut buf: IoBuf,
        required: bool,
    ) -> Option<IoBuf> {
        let timeout = self.client.worker.plan().plan.limits.header_read_timeout_ms;
        let deadline = self.accepted + Duration::from_millis(timeout);
        loop {
            if !buf.data.is_empty() {
                match client_addr::parse_proxy_header(&buf.data) {
                    ProxyParse::Done { header, consumed } => {
                        if let ProxyHeader::Proxied {
                            source,
                            destination,
                        } = header
                        {
                            self.client.peer = source;
                            self.client.local_port = destination.port();
                        }
                        buf.data.drain(..consumed);
                        return Some(buf);
                    }
                    ProxyParse::Invalid(why) if required => {
                        debug!(peer = %self.client.peer, why, "connection refused: invalid PROXY header");
                        bump(&self.client.worker.counters.rejected_proxy_protocol);
                        self.client.worker.buffers.give(buf);
                        return None;
                    }
                    // Optional: not a PROXY header, so plain HTTP.
                    ProxyParse::Invalid(_) => return Some(buf),
                    ProxyParse::Incomplete => {}
                }
            }
            match read_more(&mut self.client.stream, &mut buf.data, deadline).await {
                Ok(_) => {}
                Err(e) => {
                    if required {
                        bump(&self.client.worker.counters.rejected_proxy_protocol);
                    }
                    // After a timeout the cancelled read may still own the buffer.
                    if !matches!(e, IoFail::Timeout) {
                        self.client.worker.buffers.give(buf);
                    }
                    return None;
                }
            }
        }
    }
}
