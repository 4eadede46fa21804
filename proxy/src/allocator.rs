//! The gateway's memory allocator: mimalloc, set up to give memory back to the system.
//!
//! Every idle connection is a small long-lived allocation (its task), and every busy one
//! briefly holds much larger ones (buffers, the busy state). glibc's malloc puts both in one
//! heap, so after a burst the small ones pin the pages the large ones left: after the `hold`
//! benchmark's bursts, 1.5 KB stayed resident per idle connection on io_uring. mimalloc keeps
//! each size class on its own pages and, set up as below, returns pages that empty to the
//! system at once: about 0.5 KB per idle connection (docs/BENCHMARKS.md §2 and §6).

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in the bundled mimalloc (v3): commit arenas up front (2, the
/// default: where the system overcommits). With it, pages a burst emptied stayed resident
/// (measured with `tollgate-bench hold`: 1.2 KB per idle connection at 19,000, 0.5 without).
const ARENA_EAGER_COMMIT: mi_option_t = 4;
/// `mi_option_purge_delay` in the bundled mimalloc (v3): how long emptied pages wait before
/// they are returned (1000 ms by default).
const PURGE_DELAY: mi_option_t = 15;

/// Each option: its number, its default in the bundled mimalloc (which identifies the number:
/// the Rust bindings' constants follow an older numbering), and the value set here.
const OPTIONS: [(mi_option_t, std::ffi::c_long, std::ffi::c_long); 2] =
    [(ARENA_EAGER_COMMIT, 2, 0), (PURGE_DELAY, 1000, 0)];

/// Runs [`configure`] as an ELF constructor, before `main` and before the Rust runtime's first
/// allocation: mimalloc reserves its first arena on that allocation, with the options it finds
/// then (setting them in `main` is too late).
#[used]
#[allow(unsafe_code)]
#[link_section = ".init_array"]
static CONFIGURE_BEFORE_MAIN: extern "C" fn() = configure_before_main;

extern "C" fn configure_before_main() {
    CONFIGURED.store(configure(), std::sync::atomic::Ordering::Relaxed);
}

static CONFIGURED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether both options were set before `main`. False when one of them was not at its
/// expected default: set in the environment (`MIMALLOC_*`, which then wins), or numbered
/// differently in the bundled mimalloc.
pub fn configured() -> bool {
    CONFIGURED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets each option that still has its expected default (so an option set in the environment
/// keeps that value, and a renumbered one is left alone); true when both were set.
fn configure() -> bool {
    let mut all = true;
    for (option, default, value) in OPTIONS {
        #[allow(unsafe_code)]
        // SAFETY: mi_option_get takes an option number, no pointers.
        let current = unsafe { mi_option_get(option) };
        if current != default {
            all = false;
            continue;
        }
        #[allow(unsafe_code)]
        // SAFETY: mi_option_set takes an option number and a value, no pointers; the number
        // was just checked against the bundled library's default for it.
        unsafe {
            mi_option_set(option, value)
        };
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary runs the same constructor: it found the bundled mimalloc's options
    /// with their expected defaults (so the numbers are right) and set them.
    #[test]
    fn options_were_set_before_main() {
        assert!(
            configured(),
            "mimalloc's option numbers changed (or MIMALLOC_* is set): update \
             ARENA_EAGER_COMMIT and PURGE_DELAY from include/mimalloc.h of the bundled version"
        );
        for (option, _, want) in OPTIONS {
            #[allow(unsafe_code)]
            // SAFETY: mi_option_get takes an option number, no pointers.
            let value = unsafe { mi_option_get(option) };
            assert_eq!(value, want, "option {option}");
        }
    }
}
