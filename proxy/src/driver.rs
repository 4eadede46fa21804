//! Which io driver the workers run, and how each runtime is built.
//!
//! io_uring is the default, set up with `COOP_TASKRUN | SINGLE_ISSUER | DEFER_TASKRUN`: with
//! monoio's default ring setup io_uring spends more kernel time per request than epoll, with
//! deferred single-issuer task running it spends less (measured, see docs/BENCHMARKS.md).
//! Kernels without those flags get a plain ring; kernels without io_uring get epoll. The
//! start-up log says which driver runs and why.

use std::future::Future;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use tollgate_config::plan::DriverChoice;

/// Submission queue entries per worker ring: bounds io_uring operations in flight per core
/// (monoio queues further submissions until entries free up).
const RING_ENTRIES: u32 = 4096;

/// The driver the workers will run, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring; `tuned` when the deferred single-issuer flags are accepted.
    Uring {
        /// COOP_TASKRUN | SINGLE_ISSUER | DEFER_TASKRUN accepted by the kernel.
        tuned: bool,
    },
    /// epoll (monoio's legacy driver).
    Epoll,
}

impl Driver {
    /// Short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Uring { tuned: true } => "io_uring",
            Driver::Uring { tuned: false } => "io_uring (default setup)",
            Driver::Epoll => "epoll",
        }
    }
}

fn tuned_builder() -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    builder
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun();
    builder
}

/// Picks the driver for `choice` by probing the kernel; returns it and the reason to log.
pub fn choose(choice: DriverChoice) -> Result<(Driver, String), String> {
    if choice == DriverChoice::Epoll {
        return Ok((Driver::Epoll, "requested with --driver epoll".into()));
    }
    let tuned = tuned_builder().build(8);
    let plain = io_uring::IoUring::new(8);
    match (tuned, plain) {
        (Ok(_), _) => Ok((
            Driver::Uring { tuned: true },
            "io_uring available; COOP_TASKRUN|SINGLE_ISSUER|DEFER_TASKRUN accepted".into(),
        )),
        (Err(e), Ok(_)) => Ok((
            Driver::Uring { tuned: false },
            format!("io_uring available, but the kernel refused DEFER_TASKRUN ({e}): default ring setup"),
        )),
        (Err(_), Err(e)) if choice == DriverChoice::Auto => Ok((
            Driver::Epoll,
            format!("io_uring unavailable ({e}): falling back to epoll"),
        )),
        (Err(_), Err(e)) => Err(format!("--driver uring, but io_uring is unavailable: {e}")),
    }
}

/// Builds a runtime for `driver` on the calling thread and runs `main` to completion.
pub fn block_on<F: Future>(driver: Driver, main: F) -> std::io::Result<F::Output> {
    match driver {
        Driver::Uring { tuned } => {
            let builder = if tuned {
                tuned_builder()
            } else {
                io_uring::IoUring::builder()
            };
            let mut rt = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(RING_ENTRIES)
                .uring_builder(builder)
                .enable_timer()
                .build()?;
            Ok(rt.block_on(main))
        }
        Driver::Epoll => {
            let mut rt: monoio::Runtime<TimeDriver<LegacyDriver>> =
                RuntimeBuilder::<LegacyDriver>::new()
                    .enable_timer()
                    .build()?;
            Ok(rt.block_on(main))
        }
    }
}
