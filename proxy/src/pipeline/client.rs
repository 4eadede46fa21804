//! The client connection as the phases see it: its worker, its stream and where it came from.
//! The connection's own bookkeeping (registry slot, request count, PROXY state) stays in
//! [`crate::conn::Conn`], which holds one of these.

use std::net::SocketAddr;
use std::rc::Rc;

use tollgate_backends::wire::stream::ClientStream;
use tollgate_config::plan::ListenerPlan;
use tollgate_config::Plan;

use crate::worker::Worker;

/// A downstream connection's parts that requests use.
pub struct Client {
    /// Its worker.
    pub worker: Rc<Worker>,
    /// The socket, plain or TLS.
    pub stream: ClientStream,
    /// The peer's address (the client, or a balancer; a PROXY header may replace it).
    pub peer: SocketAddr,
    /// Local port it connected to (a PROXY header may replace it).
    pub local_port: u16,
    /// Name of the listener that accepted it.
    pub listener: Rc<str>,
}

impl Client {
    /// The listener that accepted this connection, in `plan` (None if a reload removed it).
    pub fn listener<'p>(&self, plan: &'p Plan) -> Option<&'p ListenerPlan> {
        plan.listeners.iter().find(|l| *l.name == *self.listener)
    }
}
