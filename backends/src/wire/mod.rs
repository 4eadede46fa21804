//! The HTTP/1.1 wire, shared by the server side (the gateway's downstream connections, in
//! `proxy/`) and the client side (the integrations' upstream connections, here): the sans-IO
//! codec, the per-worker buffer pool, deadline-bound I/O helpers, request-body framing and the
//! writers of gateway-made responses. Nothing here knows about routes, phases or workers.
//!
//! - [`http1`]: heads parsed into spans over the read buffer, chunked decoding, the
//!   request-smuggling defenses.
//! - [`buffers`]: pooled read buffers ([`buffers::IoBuf`]) and plain output buffers.
//! - [`io`]: `read_more` / `write_all` with deadlines over any monoio stream.
//! - [`body`]: reading a request body piece by piece whatever its framing.
//! - [`respond`]: status lines, header lines and the gateway response catalogue's writer.
//! - [`tls_server`], [`tls`] and [`stream`]: TLS on a client connection (our adapter between
//!   rustls' unbuffered server API and monoio, with buffers an idle connection lets go of), on
//!   an upstream connection (over rustls' buffered client), and a connection's stream as one
//!   type, plain or TLS.

pub mod body;
pub mod buffers;
// The codec predates this crate's `missing_docs` lint: its items are documented where they are
// not self-explaining (spans, enum variants), which the lint does not see.
#[allow(missing_docs)]
pub mod http1;
pub mod io;
pub mod respond;
pub mod stream;
pub mod tls;
pub mod tls_server;
