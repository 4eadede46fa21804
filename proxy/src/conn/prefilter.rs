//! The pre-filter's checks on a connection: its source at accept time (or right after its
//! PROXY header), and the refusal counters.

use std::net::IpAddr;

use tracing::debug;

use super::Conn;
use crate::counters::bump;

impl Conn {
    /// Runs the pre-filter's connection check on the connection's (possibly PROXY-given)
    /// source; false when it is refused (counted; the caller closes without answering).
    pub(super) fn prefilter_admits(&self) -> bool {
        let wp = self.worker.plan();
        let Some(p) = &wp.plan.prefilter else {
            return true;
        };
        let ip = self.peer.ip();
        let state = &self.worker.prefilter;
        match crate::prefilter::check_connection(p, state, ip) {
            Ok(()) => true,
            Err(why) => {
                self.count_refused(why, ip);
                false
            }
        }
    }

    pub(super) fn count_refused(&self, why: crate::prefilter::Refused, ip: IpAddr) {
        debug!(ip = %ip, reason = why.label(), "pre-filter refused");
        bump(&self.worker.counters.prefilter_refused[why as usize]);
    }
}
