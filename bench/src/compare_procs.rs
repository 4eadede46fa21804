//! Process plumbing for `compare`: finding the peer tools, choosing free ports, starting pinned
//! children, waiting until each listens on its port (and no other process does) and stopping
//! them again, and reading CPU time and affinity from `/proc`.
//!
//! Every child is started in the foreground (nginx with `daemon off;`, HAProxy without `-D`)
//! so it stays our child and in our process group: a Ctrl-C reaches all of them, and
//! [`Children`] stops them on drop (SIGTERM, then SIGKILL after a grace period).

use std::net::{Ipv4Addr, TcpListener};
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

/// `n` distinct ports of 127.0.0.1 that were free a moment ago: all bound to port 0 at once
/// (so the kernel hands out different ones), read and released together. Another process may
/// still take one before our child binds it; [`Children::wait_listening`] tells that apart.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("asking the kernel for free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Socket inodes in `tcp` (the text of `/proc/net/tcp`) listening on `port` of 127.0.0.1 or
/// 0.0.0.0, the addresses a listener on 127.0.0.1:`port` shares its connections with.
pub fn parse_listen_inodes(tcp: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for line in tcp.lines().skip(1) {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(&st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
            continue;
        };
        let Some((ip, p)) = local.split_once(':') else {
            continue;
        };
        // The address is the in-memory (network order) u32 printed as a native integer.
        let ip = u32::from_str_radix(ip, 16).map(|v| Ipv4Addr::from(v.to_ne_bytes()));
        let here = matches!(ip, Ok(ip) if ip == Ipv4Addr::LOCALHOST || ip.is_unspecified());
        if st == LISTEN && here && u16::from_str_radix(p, 16) == Ok(port) {
            inodes.extend(inode.parse::<u64>().ok());
        }
    }
    inodes
}

/// Inodes of the sockets among the open files of `pid` (`/proc/PID/fd/*` → `socket:[N]`).
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The last `lines` lines of the file at `path` (empty if unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One started child: its name (for messages), process and log file.
struct Started {
    name: String,
    child: Child,
    log: PathBuf,
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
            log: log.to_path_buf(),
        });
        Ok(pid)
    }

    /// Waits until the child `pid` listens on 127.0.0.1:`port`, failing after `timeout`, or
    /// as soon as it exits (saying so when its log shows the address was in use: a port race),
    /// or when another process listens on that port too (seen on two looks in a row, so a
    /// listener our child is still replacing does not count).
    pub fn wait_listening(&mut self, pid: u32, port: u16, timeout: Duration) -> Result<()> {
        let s = self
            .started
            .iter_mut()
            .find(|s| s.child.id() == pid)
            .with_context(|| format!("process {pid} is not one compare started"))?;
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + timeout;
        let mut suspects: Vec<u64> = Vec::new();
        loop {
            if let Some(status) = s.child.try_wait()? {
                let log = tail(&s.log, 10);
                if log.to_ascii_lowercase().contains("in use") {
                    bail!(
                        "port race: {} could not bind {addr} ({status}). The port was free when \
                         compare chose it, but another process took it before {} started; run \
                         compare again. End of {:?}:\n{log}",
                        s.name,
                        s.name,
                        s.log
                    );
                }
                bail!(
                    "{} exited ({status}) before listening on {addr}; end of {:?}:\n{log}",
                    s.name,
                    s.log
                );
            }
            let tcp = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
            let listening = parse_listen_inodes(&tcp, port);
            let own = socket_inodes(pid);
            let foreign: Vec<u64> = listening
                .iter()
                .copied()
                .filter(|i| !own.contains(i))
                .collect();
            if foreign.iter().any(|i| suspects.contains(i)) {
                bail!(
                    "port race: another process listens on {addr} (socket inode {foreign:?}), \
                     the port compare chose for {} a moment ago, so it would share the \
                     connections; run compare again (`ss -ltnp 'sport = :{port}'` shows who)",
                    s.name
                );
            }
            if foreign.is_empty() && !listening.is_empty() {
                return Ok(());
            }
            suspects = foreign;
            if Instant::now() > deadline {
                bail!(
                    "{} did not start listening on {addr} within {timeout:?}; see {:?}",
                    s.name,
                    s.log
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
    fn free_ports_differ_and_are_free() -> Result<()> {
        let ports = free_ports(12)?;
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 12, "{ports:?}");
        // Released again: none is still listening in this process. (Binding them again here
        // would race with every other process on the machine, as compare itself does.)
        let tcp = std::fs::read_to_string("/proc/net/tcp")?;
        let own = socket_inodes(std::process::id());
        for p in ports {
            assert_ne!(p, 0);
            let held: Vec<u64> = parse_listen_inodes(&tcp, p)
                .into_iter()
                .filter(|i| own.contains(i))
                .collect();
            assert!(held.is_empty(), "port {p} still held: {held:?}");
        }
        Ok(())
    }

    #[test]
    fn listen_inodes_of_a_port() -> Result<()> {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0\n\
           1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 100 0 0 10 0\n\
           2: 0200007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 100 0 0 10 0\n\
           3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 444 1 0 100 0 0 10 0\n\
           4: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 555 1 0 100 0 0 10 0\n";
        // 127.0.0.1:8080 and 0.0.0.0:8080 listening; not 127.0.0.2, not established, not 8081.
        if cfg!(target_endian = "little") {
            assert_eq!(parse_listen_inodes(tcp, 8080), [111, 222]);
        }
        assert_eq!(
            parse_listen_inodes("garbage\nmore garbage", 8080),
            Vec::<u64>::new()
        );

        // A real listener of this process: in /proc/net/tcp, and among our own sockets.
        let l = TcpListener::bind(("127.0.0.1", 0))?;
        let port = l.local_addr()?.port();
        let live = parse_listen_inodes(&std::fs::read_to_string("/proc/net/tcp")?, port);
        assert_eq!(live.len(), 1, "{live:?}");
        assert!(socket_inodes(std::process::id()).contains(&live[0]));
        Ok(())
    }

    /// A child that exits saying its address was in use: a port race, named as such.
    #[test]
    fn a_peer_that_cannot_bind_is_a_port_race() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("tb-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut kids = Children::default();
        let script = "echo 'nginx: [emerg] bind() to 127.0.0.1:1 failed (98: Address already in use)' >&2; exit 1";
        let pid = kids.spawn_pinned(
            "nginx",
            0,
            Path::new("sh"),
            &["-c", script],
            &dir.join("n.log"),
        )?;
        let e = kids
            .wait_listening(pid, 1, Duration::from_secs(10))
            .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.starts_with("port race: nginx could not bind 127.0.0.1:1"),
            "{e}"
        );
        assert!(
            e.contains("run compare again") && e.contains("(98: Address already in use)"),
            "{e}"
        );

        let pid = kids.spawn_pinned(
            "haproxy",
            0,
            Path::new("sh"),
            &["-c", "echo bad config >&2; exit 3"],
            &dir.join("h.log"),
        )?;
        let e = format!(
            "{:#}",
            kids.wait_listening(pid, 1, Duration::from_secs(10))
                .unwrap_err()
        );
        assert!(
            e.starts_with("haproxy exited (exit status: 3) before listening on 127.0.0.1:1"),
            "{e}"
        );
        assert!(e.ends_with("bad config"), "{e}");
        drop(kids);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Another process listening on the chosen port (here: this one) while the child does not
    /// own the listener: a port race too, not a successful start.
    #[test]
    fn a_foreign_listener_on_the_port_is_a_port_race() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("tb-foreign-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let foreign = TcpListener::bind(("127.0.0.1", 0))?;
        let port = foreign.local_addr()?.port();
        let mut kids = Children::default();
        let pid = kids.spawn_pinned(
            "tollgate",
            0,
            Path::new("sleep"),
            &["30"],
            &dir.join("t.log"),
        )?;
        let e = format!(
            "{:#}",
            kids.wait_listening(pid, port, Duration::from_secs(10))
                .unwrap_err()
        );
        assert!(
            e.starts_with(&format!(
                "port race: another process listens on 127.0.0.1:{port}"
            )),
            "{e}"
        );
        assert!(e.contains("chose for tollgate"), "{e}");
        drop(kids); // stops `sleep`
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
