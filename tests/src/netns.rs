//! Network namespaces made by a test (needs root): a namespace with one end of a veth pair,
//! the other end on the host, an IPv4 /24 between them and, on request, an IPv6 link plus a
//! whole IPv6 /64 routed to the namespace and made local there (an AnyIP route), so one
//! client can send from any address of the /64. Clients inside run Python scripts. Everything
//! is removed on drop.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs a command; panics with its stderr when it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace with one end of a veth pair; the other end stays on the host. Removed on drop.
pub struct Netns {
    /// The namespace's name.
    pub name: String,
    /// The host end of the veth pair.
    pub host_if: String,
    /// The host's IPv4 address on the link.
    pub host_ip: String,
    /// The namespace's IPv4 address on the link.
    pub client_ip: String,
    /// The namespace's end of the veth pair.
    peer: String,
    /// The link's /64 index for IPv6 (see [`Netns::with_ipv6_clients`]).
    subnet: usize,
}

impl Netns {
    /// A namespace with an IPv4 link to the host.
    // Not `Default`: it creates kernel objects (a namespace, a link), which a default should
    // not do behind a caller's back.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let subnet = 1 + (std::process::id() as usize * 7 + n) % 250;
        let ns = Netns {
            name: format!("tgns{id}"),
            host_if: format!("tgh{id}"),
            host_ip: format!("10.201.{subnet}.1"),
            client_ip: format!("10.201.{subnet}.2"),
            peer: format!("tgp{id}"),
            subnet,
        };
        let peer = ns.peer.clone();
        // Built before the commands: a failing command drops `ns`, which removes what exists.
        run(&["ip", "netns", "add", &ns.name]);
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        run(&["ip", "link", "set", &peer, "netns", &ns.name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        run(&["ip", "link", "set", &ns.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &ns.name];
            all.extend_from_slice(args);
            run(&all);
        };
        inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.client_ip),
            "dev",
            &peer,
        ]);
        inside(&["ip", "link", "set", &peer, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// One GET from inside the namespace: `status N`, `timeout` (no answer to the SYN or the
    /// request within 1 s) or `closed` (accepted, then closed without an answer).
    pub fn get(&self, addr: SocketAddr, path: &str) -> String {
        let script = format!(
            "import socket\n\
             s = socket.socket(); s.settimeout(1.0)\n\
             try:\n    s.connect(('{ip}', {port}))\n\
             except socket.timeout:\n    print('timeout'); raise SystemExit\n\
             except OSError:\n    print('closed'); raise SystemExit\n\
             try:\n    s.sendall(b'GET {path} HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n')\n    d = s.recv(64)\n    print('status ' + d.split(b' ')[1].decode() if d else 'closed')\n\
             except socket.timeout:\n    print('timeout')\n\
             except OSError:\n    print('closed')\n",
            ip = addr.ip(),
            port = addr.port(),
        );
        run(&["ip", "netns", "exec", &self.name, "python3", "-c", &script])
            .trim()
            .to_string()
    }
}

impl Netns {
    /// The host's IPv6 address on the link.
    pub fn host_ip6(&self) -> String {
        format!("fd00:4201:{:x}::1", self.subnet)
    }

    /// The IPv6 /64 whose every address the namespace may send from.
    pub fn client_net6(&self) -> String {
        format!("2001:db8:4201:{:x}::/64", self.subnet)
    }

    /// Adds IPv6 to the link and routes [`Netns::client_net6`] to the namespace, where an
    /// AnyIP local route and non-local binds let a socket send from any address of it.
    pub fn with_ipv6_clients(self) -> Netns {
        let host6 = self.host_ip6();
        let inside6 = format!("fd00:4201:{:x}::2", self.subnet);
        let net6 = self.client_net6();
        // `nodad`: the addresses are usable at once, not after duplicate detection.
        run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{host6}/64"),
            "dev",
            &self.host_if,
            "nodad",
        ]);
        self.inside(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{inside6}/64"),
            "dev",
            &self.peer,
            "nodad",
        ]);
        self.inside(&["ip", "-6", "route", "add", "local", &net6, "dev", "lo"]);
        // IPv6 binds only to configured addresses unless non-local binds are on (this
        // namespace's setting only); the local route then takes the answers in.
        let sysctl = "echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind";
        self.inside(&["sh", "-c", sysctl]);
        run(&[
            "ip",
            "-6",
            "route",
            "add",
            &net6,
            "via",
            &inside6,
            "dev",
            &self.host_if,
        ]);
        self
    }

    /// Runs `args` inside the namespace.
    pub fn inside(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs a Python script inside the namespace; its standard output.
    pub fn python(&self, script: &str) -> String {
        self.inside(&["python3", "-c", script])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// True as root; otherwise says why the test is skipped (and fails instead when
/// `TOLLGATE_REQUIRE_BPF=1`, as scripts/test.sh sets for root).
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_BPF").as_deref() != Ok("1"),
            "TOLLGATE_REQUIRE_BPF=1 but not root: the network namespace test cannot run"
        );
        eprintln!("SKIPPING the pre-filter namespace test: not root");
    }
    root
}
