//! The pre-filter's checks on a connection: its source at accept time (or right after its
//! PROXY header). (Each request's resolved client is checked again by the pipeline.)

use super::Conn;

impl Conn {
    /// Runs the pre-filter's connection check on the connection's (possibly PROXY-given)
    /// source; false when it is refused (counted; the caller closes without answering).
    pub(super) fn prefilter_admits(&self) -> bool {
        let wp = self.client.worker.plan();
        let Some(p) = &wp.plan.prefilter else {
            return true;
        };
        let ip = self.client.peer.ip();
        let state = &self.client.worker.prefilter;
        match crate::prefilter::check_connection(p, state, ip) {
            Ok(()) => true,
            Err(why) => {
                crate::pipeline::prefilter::count_refused(&self.client, why, ip);
                false
            }
        }
    }
}
