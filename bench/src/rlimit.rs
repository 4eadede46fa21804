//! The open-files limit (RLIMIT_NOFILE) of this process, as the gateway raises its own
//! (`proxy/src/sys.rs`): the only unsafe code of the bench, two libc calls on a struct we own.

/// Raises the soft limit on open files to the hard limit; returns (soft, hard) after it. If
/// the kernel refuses the raise, the limits stay as they were and are returned as they are.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the struct we own for the duration of the call.
    #[allow(unsafe_code)]
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit(2) reads the struct we own for the duration of the call.
        #[allow(unsafe_code)]
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            limit = raised;
        }
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits as `/proc/self/limits` shows them: (soft, hard) of "Max open files".
    fn proc_limits() -> (u64, u64) {
        let text = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files line");
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[0], n[1])
    }

    #[test]
    fn soft_limit_is_raised_to_the_hard_one() {
        let (soft, hard) = raise_nofile_limit().expect("getrlimit");
        assert_eq!(soft, hard);
        assert_eq!(proc_limits(), (soft, hard));
        assert_eq!(raise_nofile_limit().expect("again"), (soft, hard));
    }
}
