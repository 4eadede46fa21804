//! One IPv6 host, 500 source addresses of its /64: per-client throttles count them as one
//! client (`[client_address] client_prefix_v6`, default 64), so rotating addresses does not
//! escape the limit; keyed by the whole address (`client_prefix_v6 = 128`) each address would
//! have its own bucket, which is what the default prevents.
//!
//! The client sends from a network namespace made by the test, where the /64 is routed locally
//! (an AnyIP route) so a socket can bind any address of it (IPv6 loopback is `::1/128` only).
//! Needs root: without it the test says so and passes, unless `TOLLGATE_REQUIRE_BPF=1`.

use std::net::SocketAddr;

use tollgate_tests::netns::{root_or_skip, Netns};
use tollgate_tests::{Gateway, DRIVERS};

/// Source addresses the client rotates through.
const ADDRESSES: usize = 500;
/// The client throttle's burst; its rate is so low that no token comes back during the test.
const BURST: usize = 5;

fn config(ns: &Netns, prefix_v6: u8) -> String {
    format!(
        "[client_address]\nclient_prefix_v6 = {prefix_v6}\n\n\
         [[listeners]]\nname = \"public\"\nbind = \"[{ip}]:0\"\n\n\
         [[apis]]\nid = \"api\"\nclient_throttle = {{ rate_per_s = 0.001, burst = {BURST} }}\n\n\
         [[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
         [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n",
        ip = ns.host_ip6(),
    )
}

/// One GET from each of `ADDRESSES` addresses of the namespace's /64; the statuses, counted.
fn rotate_sources(ns: &Netns, addr: SocketAddr) -> (usize, usize, usize) {
    let net = ns.client_net6();
    let prefix = net.trim_end_matches("::/64");
    let script = format!(
        "import socket\n\
         counts = {{'200': 0, '429': 0, 'other': 0}}\n\
         for n in range(1, {ADDRESSES} + 1):\n\
         \x20   s = socket.socket(socket.AF_INET6); s.settimeout(5.0)\n\
         \x20   s.bind(('{prefix}:%x:%x::1' % (n >> 8, n & 0xff), 0))\n\
         \x20   s.connect(('{ip}', {port}))\n\
         \x20   s.sendall(b'GET /hello HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20   d = s.recv(64)\n\
         \x20   status = d.split(b' ')[1].decode() if d else 'closed'\n\
         \x20   counts[status if status in counts else 'other'] += 1\n\
         \x20   s.close()\n\
         print(counts['200'], counts['429'], counts['other'])\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    let out = ns.python(&script);
    let counts: Vec<usize> = out
        .split_whitespace()
        .map(|n| n.parse().expect("count"))
        .collect();
    (counts[0], counts[1], counts[2])
}

#[test]
fn addresses_of_one_ipv6_64_share_one_client_bucket() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new().with_ipv6_clients();
    for driver in DRIVERS {
        let gw = Gateway::start(&config(&ns, 64), driver);
        let (ok, throttled, other) = rotate_sources(&ns, gw.addr("public"));
        assert_eq!(
            (ok, throttled, other),
            (BURST, ADDRESSES - BURST, 0),
            "{driver:?}: one /64 is one client: its burst, then 429s"
        );
        drop(gw);
        // Keyed by the whole address, every address is a new client (the evasion the default
        // prevents).
        let gw = Gateway::start(&config(&ns, 128), driver);
        let (ok, throttled, other) = rotate_sources(&ns, gw.addr("public"));
        assert_eq!(
            (ok, throttled, other),
            (ADDRESSES, 0, 0),
            "{driver:?}: /128 keys every address apart"
        );
    }
}
