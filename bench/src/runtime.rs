//! Per-thread monoio runtime construction, shared by `origin` and `load`.
//!
//! The fusion driver uses io_uring where the kernel allows it and falls back to epoll
//! otherwise (containers often forbid io_uring), so the bench runs everywhere tollgate does.

use anyhow::{Context, Result};
use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver};

/// The runtime type every worker thread uses.
pub type Runtime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// Builds a runtime with timers enabled (sleeps, timeouts and open-loop pacing need them).
pub fn build() -> Result<Runtime> {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .context("building monoio runtime")
}
