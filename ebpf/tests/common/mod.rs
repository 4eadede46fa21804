//! Helpers shared by the ebpf crate's integration tests.

/// Whether this process runs with effective uid 0 (loading and attaching need root or
/// CAP_BPF/CAP_NET_ADMIN; without them the tests say why they skip).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            // Real, effective, saved, filesystem: the effective one decides.
            uids.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
