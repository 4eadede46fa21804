//! `compare` as a user meets it without nginx and HAProxy: it must refuse to run, say how to
//! install them, install nothing and exit non-zero, before touching any port or process.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate-bench");

#[test]
fn missing_peers_fail_with_install_hint() {
    let empty = std::env::temp_dir().join(format!("tb-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("create empty dir");
    let out = Command::new(BIN)
        .args(["compare", "--quick", "--scenarios", "plain"])
        .env("PATH", &empty)
        .output()
        .expect("run compare");
    let _ = std::fs::remove_dir_all(&empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "compare succeeded: {stderr}");
    assert!(
        stderr.contains("missing on PATH: nginx, haproxy, taskset"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install -y nginx-light haproxy"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "printed a report: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
