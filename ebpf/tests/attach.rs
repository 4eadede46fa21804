//! Attach tests: the pre-filter on real interfaces, inside a private network namespace so
//! the host's interfaces are never touched.
//!
//! The test re-runs its own binary under `unshare --net` (env `TOLLGATE_NETNS_CHILD=1`),
//! where `lo` is fresh and a veth pair can be made. Same skip rules as the program tests:
//! without root (or `unshare`/`ip`) it prints a loud skip line, and fails instead when
//! `TOLLGATE_REQUIRE_BPF=1`.

mod common;
use common::is_root;
use std::io::Write as _;
use std::process::Command;

use anyhow::{bail, ensure, Context as _, Result};
use tollgate_ebpf::{AttachMode, AttachedMode, Prefilter, PrefilterError};

const CHILD_ENV: &str = "TOLLGATE_NETNS_CHILD";
const TEST_NAME: &str = "attach_in_a_network_namespace";

#[test]
fn attach_in_a_network_namespace() -> Result<()> {
    if std::env::var(CHILD_ENV).is_ok() {
        return attach_checks();
    }
    let required = std::env::var("TOLLGATE_REQUIRE_BPF").is_ok_and(|v| v == "1");
    let usable = is_root()
        && tollgate_ebpf::object_embedded()
        && Command::new("unshare").arg("--version").output().is_ok()
        && Command::new("ip").arg("-V").output().is_ok();
    if !usable {
        ensure!(
            !required,
            "TOLLGATE_REQUIRE_BPF=1 but attach tests cannot run (root, clang, unshare, ip)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPING prefilter attach tests: needs root, clang at build time, unshare and ip"
        );
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let output = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .context("running the test in a new network namespace")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "attach checks failed in the namespace:\n{text}"
    );
    ensure!(
        text.contains("1 passed"),
        "the namespace run did not run the test:\n{text}"
    );
    Ok(())
}

/// Runs inside the private namespace.
fn attach_checks() -> Result<()> {
    let ip = |args: &[&str]| -> Result<()> {
        let status = Command::new("ip").args(args).status()?;
        ensure!(status.success(), "ip {args:?} failed");
        Ok(())
    };
    ip(&["link", "add", "tg0", "type", "veth", "peer", "name", "tg1"])?;
    ip(&["link", "set", "tg0", "up"])?;
    ip(&["link", "set", "tg1", "up"])?;

    let mut p = Prefilter::load()?;

    // lo has no native XDP: Native fails with the hint, Auto falls back and says why.
    match p.attach("lo", AttachMode::Native) {
        Err(PrefilterError::Attach { hint, .. }) => {
            ensure!(
                hint.contains("try generic"),
                "native attach hint on lo: {hint}"
            )
        }
        other => bail!("native attach on lo: expected an Attach error, got {other:?}"),
    }
    let on_lo = p.attach("lo", AttachMode::Auto)?;
    ensure!(
        on_lo.mode() == AttachedMode::Generic,
        "lo attached as {}",
        on_lo.mode()
    );
    let reason = on_lo.fallback_reason().context("a fallback says why")?;
    eprintln!("lo fallback reason: {reason}");
    ensure!(reason.contains("try generic"), "fallback reason: {reason}");

    // veth has native XDP.
    let on_veth = p.attach("tg0", AttachMode::Auto)?;
    ensure!(
        on_veth.mode() == AttachedMode::Native,
        "veth attached as {}",
        on_veth.mode()
    );
    ensure!(on_veth.fallback_reason().is_none());

    // Dropping detaches: the same interface takes a new attachment.
    drop(on_veth);
    let again = p.attach("tg0", AttachMode::Generic)?;
    ensure!(again.mode() == AttachedMode::Generic);
    drop(again);
    drop(on_lo);

    match p.attach("no-such-if", AttachMode::Generic) {
        Err(PrefilterError::Attach { hint, .. }) => {
            ensure!(hint == "no such interface", "hint: {hint}")
        }
        other => bail!("unknown interface: expected an Attach error, got {other:?}"),
    }
    Ok(())
}
