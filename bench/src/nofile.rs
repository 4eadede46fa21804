//! The open-files limit (RLIMIT_NOFILE) of this process, raised as the gateway raises its own.

/// Raises the soft limit on open files to the hard limit; returns (soft, hard) after it. If
/// the kernel refuses the raise, the limits stay as they were and are returned as they are.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    // A refused raise leaves the limits as they were: what they are is what the caller checks.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    rlimit::Resource::NOFILE.get()
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
