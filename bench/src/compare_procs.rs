//! Process plumbing for `compare`: finding the peer tools, checking ports, starting pinned
//! children and stopping them again, and reading CPU time and affinity from `/proc`.
//!
//! Every child is started in the foreground (nginx with `daemon off;`, HAProxy without `-D`)
//! so it stays our child and in our process group: a Ctrl-C reaches all of them, and
//! [`Children`] stops them on drop (SIGTERM, then SIGKILL after a grace period).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The tools `compare` needs on PATH.
pub const TOOLS: [&str; 3] = ["nginx", "haproxy", "taskset"];

/// How to get the tools on Debian/Ubuntu (taskset is in util-linux, normally present).
pub const INSTALL_HINT: &str = "apt-get install -y nginx-light haproxy";

/// Names in `tools` that are not an executable file in any directory of `path` (a PATH value).
pub fn missing_tools<'a>(tools: &[&'a str], path: &str) -> Vec<&'a str> {
    tools
        .iter()
        .copied()
        .filter(|tool| {
            !std::env::split_paths(path).any(|dir| {
                std::fs::metadata(dir.join(tool))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
        .collect()
}

/// Fails with the install hint when any of [`TOOLS`] is missing from `path`.
pub fn check_tools(path: &str) -> Result<()> {
    let missing = missing_tools(&TOOLS, path);
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "missing on PATH: {}. Install them first (as root): {INSTALL_HINT} \
         (taskset is in util-linux); compare installs nothing itself",
        missing.join(", ")
    )
}

/// Fails with a clear message if any of `ports` on 127.0.0.1 is already bound.
pub fn check_ports_free(ports: &[(u16, &str)]) -> Result<()> {
    for &(port, what) in ports {
        TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!(
                "port 127.0.0.1:{port} (for {what}) is taken; stop whatever listens there \
                 (`ss -ltnp 'sport = :{port}'`) and retry"
            )
        })?;
    }
    Ok(())
}

/// Waits until `addr` accepts TCP connections, or fails after `timeout`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration, what: &str) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {addr} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One started child: its name (for messages) and process.
struct Started {
    name: String,
    child: Child,
}

/// Every process `compare` started; stopped in reverse order when dropped.
#[derive(Default)]
pub struct Children {
    started: Vec<Started>,
}

impl Children {
    /// Starts `taskset -c CPU PROGRAM ARGS...` with output to `log`; returns the PID, which
    /// is the program's own (taskset execs it).
    pub fn spawn_pinned(
        &mut self,
        name: &str,
        cpu: usize,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> Result<u32> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
        let err = out.try_clone()?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({program:?}) under taskset"))?;
        let pid = child.id();
        self.started.push(Started {
            name: name.to_string(),
            child,
        });
        Ok(pid)
    }

    /// Fails if any started child has already exited (a crash or a config error).
    pub fn check_alive(&mut self, logs: &Path) -> Result<()> {
        for s in &mut self.started {
            if let Some(status) = s.child.try_wait()? {
                bail!(
                    "{} exited early ({status}); see its log in {logs:?}",
                    s.name
                );
            }
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for s in self.started.iter_mut().rev() {
            if matches!(s.child.try_wait(), Ok(Some(_))) {
                continue;
            }
            // SIGTERM lets the nginx master stop its worker; SIGKILL would orphan it.
            let _ = Command::new("kill")
                .args(["-TERM", &s.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(s.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(s.child.try_wait(), Ok(None)) {
                eprintln!("compare: {} ignored SIGTERM, killing it", s.name);
                let _ = s.child.kill();
                let _ = s.child.wait();
            }
        }
    }
}

/// CPU time fields of `/proc/PID/stat`: (utime, stime) in clock ticks, all threads summed.
pub fn parse_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    let fields = stat_fields_after_comm(stat)?;
    // After `comm`, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// Parent PID (field 4) of a `/proc/PID/stat` line.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    stat_fields_after_comm(stat)?.get(1)?.parse().ok()
}

/// The fields after `(comm)`, which may itself contain spaces and parentheses.
fn stat_fields_after_comm(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// utime + stime of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (u, s) = parse_stat_cpu(&text).with_context(|| format!("parsing {path}"))?;
    Ok(u + s)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails, the Linux default).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Parses a CPU list such as `0-2,5` (the `Cpus_allowed_list:` format) into CPU numbers.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    Some(cpus)
}

/// The CPUs `pid` may run on, from `Cpus_allowed_list:` in `/proc/PID/status`.
pub fn affinity(pid: u32) -> Result<Vec<usize>> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(parse_cpu_list)
        .with_context(|| format!("no Cpus_allowed_list in {path}"))
}

/// Fails unless every thread of `pid` (described by `what`) is pinned to exactly `cpu`.
pub fn verify_pinned(pid: u32, cpu: usize, what: &str) -> Result<()> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("listing the threads of {what} (pid {pid})"))?;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cpus = affinity(tid).unwrap_or_else(|_| vec![cpu]); // a thread that just exited
        if cpus != [cpu] {
            bail!("pinning failed: {what} (pid {pid}, thread {tid}) may run on CPUs {cpus:?}, wanted [{cpu}]");
        }
    }
    Ok(())
}

/// The first child process of `parent` (the nginx worker of a master), waiting up to `timeout`.
pub fn child_of(parent: u32, timeout: Duration) -> Result<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if parse_stat_ppid(&stat) == Some(parent) {
                return Ok(pid);
            }
        }
        if Instant::now() > deadline {
            bail!("process {parent} has no child process after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies every `*.in` file of `peers` into `dir` without the suffix, `@DIR@` replaced by
/// `dir`; returns the written paths.
pub fn render_configs(peers: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let entries = std::fs::read_dir(peers).with_context(|| format!("reading {peers:?}"))?;
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".in") else {
            continue;
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
        let out = dir.join(stem);
        std::fs::write(&out, text.replace("@DIR@", &dir.to_string_lossy()))
            .with_context(|| format!("writing {out:?}"))?;
        written.push(out);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        // comm with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (nginx: wo) rker) S 4241 4241 4241 0 -1 4194624 100 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000 50";
        assert_eq!(parse_stat_cpu(stat), Some((1234, 567)));
        assert_eq!(parse_stat_ppid(stat), Some(4241));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 0 1"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu(&own).is_some());
        assert_eq!(
            parse_stat_ppid(&own),
            Some(std::os::unix::process::parent_id())
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(!affinity(std::process::id()).unwrap().is_empty());
    }

    #[test]
    fn tools_missing_from_path() {
        let dir = std::env::temp_dir().join(format!("tb-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("haproxy");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("nginx"), "not executable").unwrap();
        let path = dir.to_string_lossy().to_string();
        assert_eq!(missing_tools(&TOOLS, &path), ["nginx", "taskset"]);
        let err = check_tools(&path).unwrap_err().to_string();
        assert!(
            err.contains("nginx, taskset") && err.contains(INSTALL_HINT),
            "{err}"
        );
        assert_eq!(missing_tools(&TOOLS, ""), TOOLS);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn renders_peer_configs() {
        let base = std::env::temp_dir().join(format!("tb-render-{}", std::process::id()));
        let (peers, out) = (base.join("peers"), base.join("out"));
        std::fs::create_dir_all(&peers).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(peers.join("a.conf.in"), "pid @DIR@/a.pid;").unwrap();
        std::fs::write(peers.join("b.toml"), "untouched").unwrap();
        let written = render_configs(&peers, &out).unwrap();
        assert_eq!(written, [out.join("a.conf")]);
        let text = std::fs::read_to_string(out.join("a.conf")).unwrap();
        assert_eq!(text, format!("pid {}/a.pid;", out.display()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
