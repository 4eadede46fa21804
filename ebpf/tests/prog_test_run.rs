//! Program tests: the XDP pre-filter run on built packets with `BPF_PROG_TEST_RUN`.
//!
//! Each case loads a fresh program (fresh maps), guards ports 443 and 8443, applies its
//! map setup, runs one packet, and checks the verdict and the change of every stats
//! counter (counters not named must not move). Setups may run earlier packets themselves
//! (token buckets), checking their verdicts too.
//!
//! Needs root (or CAP_BPF + CAP_NET_ADMIN). Without it the tests print a loud skip line
//! and pass, unless `TOLLGATE_REQUIRE_BPF=1` (set by scripts/test.sh as root, and in CI),
//! which turns the skip into a failure. The summary line (`prefilter program tests: N
//! cases ran`) is written straight to stderr, past libtest's capture, so it shows in a
//! plain `cargo test` run.

mod common;
use common::is_root;
use std::io::Write as _;
use std::net::IpAddr;

use anyhow::{bail, Context as _, Result};
use ipnet::IpNet;
use tollgate_ebpf::packet::{
    arp_request, PacketBuilder, TcpFlags, ETH_HLEN, IPOPT_NOP, IPV4_MAX_OPTIONS, TPID_8021AD,
    TPID_8021Q,
};
use tollgate_ebpf::{
    Limits, Prefilter, PrefilterError, PrefilterStats, Reason, XDP_DROP, XDP_PASS,
};

/// Ports every case guards.
const GATEWAY_PORTS: [u16; 2] = [443, 8443];

type Setup = Box<dyn Fn(&mut Prefilter) -> Result<()>>;

/// One row: a packet, the maps it meets, what must happen.
struct Case {
    name: &'static str,
    setup: Setup,
    packet: Vec<u8>,
    verdict: u32,
    deltas: &'static [(Reason, u64)],
}

fn case(
    name: &'static str,
    packet: Vec<u8>,
    setup: impl Fn(&mut Prefilter) -> Result<()> + 'static,
    verdict: u32,
    deltas: &'static [(Reason, u64)],
) -> Case {
    Case {
        name,
        setup: Box::new(setup),
        packet,
        verdict,
        deltas,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test network")
}

fn syn(src: &str, dport: u16) -> Vec<u8> {
    PacketBuilder::from_source(ip(src))
        .tcp(dport, TcpFlags::SYN)
        .build()
        .into_bytes()
}

fn ack(src: &str, dport: u16) -> Vec<u8> {
    PacketBuilder::from_source(ip(src))
        .tcp(dport, TcpFlags::ACK)
        .build()
        .into_bytes()
}

/// An IPv4 SYN from `src` to `dport` whose header carries `options` NOP bytes (IHL 5 +
/// options / 4).
fn syn_with_options(src: &str, dport: u16, options: usize) -> PacketBuilder {
    PacketBuilder::from_source(ip(src))
        .ipv4_options(&[IPOPT_NOP; IPV4_MAX_OPTIONS][..options])
        .tcp(dport, TcpFlags::SYN)
}

fn no_setup(_: &mut Prefilter) -> Result<()> {
    Ok(())
}

fn deny(nets: &'static [&'static str]) -> impl Fn(&mut Prefilter) -> Result<()> {
    move |p| {
        for n in nets {
            p.maps_mut().deny.insert(net(n))?;
        }
        Ok(())
    }
}

/// Runs `packet` and fails unless the verdict is `want` (for setups that send packets).
fn expect(p: &Prefilter, packet: &[u8], want: u32, what: &str) -> Result<()> {
    let got = p.test_run(packet)?;
    if got != want {
        bail!(
            "setup packet {what}: verdict {} instead of {}",
            name(got),
            name(want)
        );
    }
    Ok(())
}

/// Sets a SYN bucket of rate 1/s and burst 3, and spends the burst with three SYNs from
/// `src` (each passes).
fn fill_syn_bucket(p: &mut Prefilter, src: &str) -> Result<()> {
    p.maps_mut().limits.set(limits(1, 3, 0, 0))?;
    for n in 1..=3 {
        expect(p, &syn(src, 443), XDP_PASS, &format!("SYN {n}"))?;
    }
    Ok(())
}

fn limits(syn_rate_per_s: u32, syn_burst: u32, pkt_rate_per_s: u32, pkt_burst: u32) -> Limits {
    Limits {
        syn_rate_per_s,
        syn_burst,
        pkt_rate_per_s,
        pkt_burst,
        ..Limits::default()
    }
}

/// Keys clients by `v4`/`v6` prefixes and blocks the client `key`.
fn block_client(p: &mut Prefilter, v4: u32, v6: u32, key: &str) -> Result<()> {
    p.maps_mut().limits.set(Limits {
        v4_prefix: v4,
        v6_prefix: v6,
        ..Limits::default()
    })?;
    p.maps_mut().blocks.insert(ip(key), u64::MAX, 7)?;
    Ok(())
}

fn name(verdict: u32) -> &'static str {
    match verdict {
        XDP_PASS => "PASS",
        XDP_DROP => "DROP",
        _ => "other",
    }
}

const PASS: &[(Reason, u64)] = &[(Reason::Pass, 1)];
const OTHER_PORT: &[(Reason, u64)] = &[(Reason::PassOtherPort, 1)];
const ALLOW: &[(Reason, u64)] = &[(Reason::PassAllow, 1)];
const DENY: &[(Reason, u64)] = &[(Reason::DropDeny, 1)];
const BLOCK: &[(Reason, u64)] = &[(Reason::DropBlock, 1)];
const SYN_RATE: &[(Reason, u64)] = &[(Reason::DropSynRate, 1)];
const PKT_RATE: &[(Reason, u64)] = &[(Reason::DropPktRate, 1)];
const UNPARSED: &[(Reason, u64)] = &[(Reason::PassUnparsed, 1)];

fn cases() -> Vec<Case> {
    let v4_syn = PacketBuilder::from_source(ip("198.51.100.7"))
        .tcp(443, TcpFlags::SYN)
        .build();
    let v6_syn = PacketBuilder::from_source(ip("2001:db8:1::7"))
        .tcp(443, TcpFlags::SYN)
        .build();
    let ihl15_syn = syn_with_options("203.0.113.9", 443, 40).build();
    vec![
        // Defaults and the port gate.
        case(
            "ipv4 SYN to a gateway port passes by default",
            syn("198.51.100.7", 443),
            no_setup,
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv6 SYN to a gateway port passes by default",
            syn("2001:db8:1::7", 8443),
            no_setup,
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv4 to another port passes although denied",
            syn("203.0.113.9", 22),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            OTHER_PORT,
        ),
        case(
            "ipv6 UDP to another port passes although denied",
            PacketBuilder::from_source(ip("2001:db8:bad::1"))
                .udp(53)
                .build()
                .into_bytes(),
            deny(&["2001:db8:bad::1/128"]),
            XDP_PASS,
            OTHER_PORT,
        ),
        // Deny and allow.
        case(
            "ipv4 source in a denied /24 drops",
            syn("203.0.113.9", 443),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        case(
            "ipv4 source next to a denied /24 passes",
            syn("203.0.114.9", 443),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv6 source denied by /128 drops",
            syn("2001:db8:bad::1", 443),
            deny(&["2001:db8:bad::1/128"]),
            XDP_DROP,
            DENY,
        ),
        case(
            "ipv6 neighbour of a denied /128 passes",
            syn("2001:db8:bad::2", 443),
            deny(&["2001:db8:bad::1/128"]),
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv4 allow /32 beats deny /24",
            syn("203.0.113.9", 443),
            |p: &mut Prefilter| {
                deny(&["203.0.113.0/24"])(p)?;
                Ok(p.maps_mut().allow.insert(net("203.0.113.9/32"))?)
            },
            XDP_PASS,
            ALLOW,
        ),
        case(
            "ipv6 allow /48 beats deny /128",
            syn("2001:db8:bad::1", 443),
            |p: &mut Prefilter| {
                deny(&["2001:db8:bad::1/128"])(p)?;
                Ok(p.maps_mut().allow.insert(net("2001:db8:bad::/48"))?)
            },
            XDP_PASS,
            ALLOW,
        ),
        case(
            "ipv4 UDP to a gateway port from a denied source drops",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .udp(443)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        // Blocks.
        case(
            "ipv4 blocked source drops",
            syn("192.0.2.50", 443),
            |p: &mut Prefilter| Ok(p.maps_mut().blocks.insert(ip("192.0.2.50"), u64::MAX, 7)?),
            XDP_DROP,
            BLOCK,
        ),
        case(
            "ipv6 blocked source drops",
            syn("2001:db8::50", 443),
            |p: &mut Prefilter| {
                Ok(p.maps_mut()
                    .blocks
                    .insert(ip("2001:db8::50"), u64::MAX, 7)?)
            },
            XDP_DROP,
            BLOCK,
        ),
        case(
            "blocked source passes again after Blocks::remove",
            syn("192.0.2.50", 443),
            |p: &mut Prefilter| {
                p.maps_mut().blocks.insert(ip("192.0.2.50"), u64::MAX, 7)?;
                expect(p, &syn("192.0.2.50", 443), XDP_DROP, "while blocked")?;
                if !p.maps_mut().blocks.remove(ip("192.0.2.50"))? {
                    bail!("remove found no block");
                }
                Ok(())
            },
            XDP_PASS,
            PASS,
        ),
        // Clients keyed by prefix (`limits.v4_prefix` / `v6_prefix`): a block on the
        // client's prefix drops every address in it, and only those.
        case(
            "ipv6 source in a blocked /64 client drops",
            syn("2001:db8:7:8:aaaa:bbbb:cccc:dddd", 443),
            |p: &mut Prefilter| block_client(p, 32, 64, "2001:db8:7:8::"),
            XDP_DROP,
            BLOCK,
        ),
        case(
            "ipv6 source in the next /64 passes",
            syn("2001:db8:7:9::1", 443),
            |p: &mut Prefilter| block_client(p, 32, 64, "2001:db8:7:8::"),
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv4 source in a blocked /24 client drops",
            syn("192.0.2.99", 443),
            |p: &mut Prefilter| block_client(p, 24, 64, "192.0.2.0"),
            XDP_DROP,
            BLOCK,
        ),
        case(
            "without prefixes a block holds its exact address only",
            syn("2001:db8:7:8::2", 443),
            |p: &mut Prefilter| block_client(p, 0, 0, "2001:db8:7:8::"),
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv6: SYNs from one /64 share a bucket (4th drops, from another address)",
            syn("2001:db8:6::4", 443),
            |p: &mut Prefilter| {
                p.maps_mut().limits.set(Limits {
                    v4_prefix: 32,
                    v6_prefix: 64,
                    ..limits(1, 3, 0, 0)
                })?;
                for n in 1..=3 {
                    let from = format!("2001:db8:6::{n}");
                    expect(p, &syn(&from, 443), XDP_PASS, "within the burst")?;
                }
                Ok(())
            },
            XDP_DROP,
            SYN_RATE,
        ),
        // SYN bucket: rate 1/s, burst 3; the test's packets arrive within microseconds,
        // which refills a millionth of a token.
        case(
            "4th SYN from one source drops (syn_burst 3)",
            syn("198.51.100.20", 443),
            |p: &mut Prefilter| fill_syn_bucket(p, "198.51.100.20"),
            XDP_DROP,
            SYN_RATE,
        ),
        case(
            "ipv6: 4th SYN from one source drops (syn_burst 3)",
            syn("2001:db8:5::20", 443),
            |p: &mut Prefilter| fill_syn_bucket(p, "2001:db8:5::20"),
            XDP_DROP,
            SYN_RATE,
        ),
        case(
            "an ACK is not counted as a SYN",
            syn("198.51.100.21", 443),
            |p: &mut Prefilter| {
                p.maps_mut().limits.set(limits(1, 3, 0, 0))?;
                expect(p, &syn("198.51.100.21", 443), XDP_PASS, "SYN 1")?;
                expect(p, &syn("198.51.100.21", 443), XDP_PASS, "SYN 2")?;
                expect(p, &ack("198.51.100.21", 443), XDP_PASS, "ACK")?;
                Ok(())
            },
            XDP_PASS,
            PASS,
        ),
        case(
            "a SYN|ACK is not a new connection",
            PacketBuilder::from_source(ip("198.51.100.22"))
                .tcp(443, TcpFlags::SYN_ACK)
                .build()
                .into_bytes(),
            |p: &mut Prefilter| fill_syn_bucket(p, "198.51.100.22"),
            XDP_PASS,
            PASS,
        ),
        case(
            "another source is unaffected by a full SYN bucket",
            syn("198.51.100.24", 443),
            |p: &mut Prefilter| {
                fill_syn_bucket(p, "198.51.100.23")?;
                expect(p, &syn("198.51.100.23", 443), XDP_DROP, "SYN 4")?;
                Ok(())
            },
            XDP_PASS,
            PASS,
        ),
        // Packet bucket: rate 1/s, burst 2.
        case(
            "3rd packet from one source drops (pkt_burst 2)",
            ack("198.51.100.30", 443),
            |p: &mut Prefilter| {
                p.maps_mut().limits.set(limits(0, 0, 1, 2))?;
                expect(p, &ack("198.51.100.30", 443), XDP_PASS, "packet 1")?;
                expect(p, &ack("198.51.100.30", 443), XDP_PASS, "packet 2")?;
                Ok(())
            },
            XDP_DROP,
            PKT_RATE,
        ),
        case(
            "a SYN also spends a packet token",
            ack("2001:db8:6::30", 443),
            |p: &mut Prefilter| {
                p.maps_mut().limits.set(limits(100, 100, 1, 2))?;
                expect(p, &syn("2001:db8:6::30", 443), XDP_PASS, "SYN")?;
                expect(p, &ack("2001:db8:6::30", 443), XDP_PASS, "ACK")?;
                Ok(())
            },
            XDP_DROP,
            PKT_RATE,
        ),
        // VLAN tags.
        case(
            "802.1Q-tagged ipv4 SYN from a denied source drops",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .vlan(TPID_8021Q, 10)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        case(
            "802.1ad+802.1Q-tagged ipv4 SYN from a denied source drops",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .vlan(TPID_8021AD, 100)
                .vlan(TPID_8021Q, 10)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        case(
            "802.1Q-tagged ipv6 SYN passes by default",
            PacketBuilder::from_source(ip("2001:db8:1::7"))
                .vlan(TPID_8021Q, 10)
                .build()
                .into_bytes(),
            no_setup,
            XDP_PASS,
            PASS,
        ),
        case(
            "three VLAN tags are unparsable: PASS",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2)
                .vlan(TPID_8021Q, 3)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        // IPv4 options: the transport header starts IHL * 4 bytes into the IP header.
        // Read at a fixed 20 bytes, the "port" would be option bytes (0x0101 = 257).
        case(
            "ipv4 IHL 6 (4 NOP option bytes) SYN from a denied source drops",
            syn_with_options("203.0.113.9", 443, 4).build().into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        case(
            "ipv4 IHL 6 (4 NOP option bytes) SYN from another source passes",
            syn_with_options("198.51.100.7", 443, 4)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            PASS,
        ),
        case(
            "ipv4 IHL 15 (40 NOP option bytes) SYN from a denied source drops",
            ihl15_syn.bytes().to_vec(),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        case(
            "ipv4 IHL 15 (40 NOP option bytes) SYN from another source passes",
            syn_with_options("198.51.100.7", 8443, 40)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            PASS,
        ),
        // IPv4 fragments: only the first carries the transport header.
        case(
            "ipv4 first fragment (MF, offset 0) SYN from a denied source drops",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .ipv4_fragment(0, true)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_DROP,
            DENY,
        ),
        // The bytes after a non-first fragment's IP header look like a SYN to 443 here:
        // the program must not take a port from them.
        case(
            "ipv4 non-first fragment (MF, offset 185) from a denied source passes unparsed",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .ipv4_fragment(185, true)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "ipv4 last fragment (no MF, offset 370) from a denied source passes unparsed",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .ipv4_fragment(370, false)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        // Unparsable frames pass, even from denied sources.
        case(
            "Ethernet cut inside a VLAN tag",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .vlan(TPID_8021Q, 10)
                .build()
                .truncated(ETH_HLEN + 2),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "truncated ipv4 header",
            v4_syn.truncated(v4_syn.l3_offset() + 10),
            deny(&["198.51.100.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "ipv4 IHL 15 cut inside its options",
            ihl15_syn.truncated(ihl15_syn.l3_offset() + 20 + 20),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "truncated TCP header",
            v4_syn.truncated(v4_syn.l4_offset() + 10),
            deny(&["198.51.100.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "truncated ipv6 header",
            v6_syn.truncated(v6_syn.l3_offset() + 39),
            deny(&["2001:db8:1::/48"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "ipv4 with IHL 4",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .ipv4_ihl(4)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "ipv4 ethertype carrying version 6",
            PacketBuilder::from_source(ip("203.0.113.9"))
                .ip_version(6)
                .build()
                .into_bytes(),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "ipv6 with a hop-by-hop extension header",
            PacketBuilder::from_source(ip("2001:db8:bad::1"))
                .ipv6_extension_header()
                .build()
                .into_bytes(),
            deny(&["2001:db8:bad::1/128"]),
            XDP_PASS,
            UNPARSED,
        ),
        case(
            "ARP request",
            arp_request(
                "203.0.113.9".parse().expect("v4"),
                "192.0.2.1".parse().expect("v4"),
            ),
            deny(&["203.0.113.0/24"]),
            XDP_PASS,
            UNPARSED,
        ),
        // Reload of the deny list: after replace_all({A} -> {B}), A passes and B drops.
        case(
            "replace_all deny {A} -> {B}: A passes",
            syn("203.0.113.9", 443),
            replace_deny_a_with_b,
            XDP_PASS,
            PASS,
        ),
        case(
            "replace_all deny {A} -> {B}: B drops",
            syn("2001:db8:b::1", 443),
            replace_deny_a_with_b,
            XDP_DROP,
            DENY,
        ),
    ]
}

fn replace_deny_a_with_b(p: &mut Prefilter) -> Result<()> {
    let a = net("203.0.113.0/24");
    let b = net("2001:db8:b::/64");
    p.maps_mut().deny.replace_all(&[a])?;
    expect(p, &syn("203.0.113.9", 443), XDP_DROP, "A while denied")?;
    p.maps_mut().deny.replace_all(&[b])?;
    let list = p.maps().deny.list()?;
    if list != [b] {
        bail!("deny list after replace_all is {list:?}, not [{b}]");
    }
    Ok(())
}

/// A loaded program with the gateway ports set, or `None` (after a loud skip line) when
/// this environment cannot load BPF and does not require it.
fn prefilter() -> Result<Option<Prefilter>> {
    let required = std::env::var("TOLLGATE_REQUIRE_BPF").is_ok_and(|v| v == "1");
    let reason = if !is_root() {
        Some("not root".to_owned())
    } else if !tollgate_ebpf::object_embedded() {
        Some("built without clang: no XDP object".to_owned())
    } else {
        None
    };
    if let Some(reason) = reason {
        if required {
            bail!("TOLLGATE_REQUIRE_BPF=1 but the program tests cannot run: {reason}");
        }
        loud(&format!(
            "SKIPPING prefilter program tests: {reason} (run as root with clang installed; \
             TOLLGATE_REQUIRE_BPF=1 makes this a failure)"
        ));
        return Ok(None);
    }
    let mut p = Prefilter::load().context("loading the pre-filter")?;
    p.maps_mut().ports.replace_all(&GATEWAY_PORTS)?;
    Ok(Some(p))
}

/// Writes past libtest's output capture (which only catches the print macros).
fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn expected_stats(deltas: &[(Reason, u64)]) -> String {
    let mut text: Vec<String> = deltas
        .iter()
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect();
    text.sort();
    text.join(" ")
}

fn actual_stats(delta: &PrefilterStats) -> String {
    let mut text: Vec<String> = Reason::ALL
        .iter()
        .filter(|r| delta.get(**r) != 0)
        .map(|r| format!("{}={}", r.name(), delta.get(*r)))
        .collect();
    text.sort();
    text.join(" ")
}

fn run_case(case: &Case) -> Result<()> {
    let Some(mut p) = prefilter()? else {
        bail!("environment lost BPF")
    };
    (case.setup)(&mut p).context("setup")?;
    let before = p.maps().stats.read()?;
    let verdict = p.test_run(&case.packet)?;
    let delta = p.maps().stats.read()?.since(&before);
    let (want, got) = (expected_stats(case.deltas), actual_stats(&delta));
    if verdict != case.verdict || want != got {
        bail!(
            "verdict {} (want {}), stats {{{got}}} (want {{{want}}})",
            name(verdict),
            name(case.verdict)
        );
    }
    Ok(())
}

#[test]
fn prefilter_program_table() -> Result<()> {
    if prefilter()?.is_none() {
        return Ok(());
    }
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        match run_case(case) {
            Ok(()) => eprintln!("ok   {}", case.name),
            Err(err) => {
                eprintln!("FAIL {}: {err:#}", case.name);
                failures.push(format!("{}: {err:#}", case.name));
            }
        }
    }
    loud(&format!(
        "prefilter program tests: {} cases ran, {} failed",
        cases.len(),
        failures.len()
    ));
    if !failures.is_empty() {
        bail!(
            "{} case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

#[test]
fn frames_shorter_than_ethernet_are_refused_by_the_kernel() -> Result<()> {
    let Some(p) = prefilter()? else { return Ok(()) };
    match p.test_run(&[0u8; ETH_HLEN - 1]) {
        Err(PrefilterError::TestRun { len, .. }) if len == ETH_HLEN - 1 => Ok(()),
        other => bail!("expected a TestRun error, got {other:?}"),
    }
}

#[test]
fn lists_round_trip() -> Result<()> {
    let Some(mut p) = prefilter()? else {
        return Ok(());
    };
    let deny = &mut p.maps_mut().deny;
    deny.insert(net("203.0.113.77/24"))?;
    deny.insert(net("2001:db8::/32"))?;
    deny.insert(net("2001:db8:1::/48"))?;
    assert!(deny.contains(net("203.0.113.0/24"))?);
    assert!(
        !deny.contains(net("203.0.113.0/25"))?,
        "covered is not contained"
    );
    assert_eq!(
        deny.matching(ip("2001:db8:1::5"))?,
        Some(net("2001:db8:1::/48"))
    );
    assert_eq!(
        deny.matching(ip("2001:db8:2::5"))?,
        Some(net("2001:db8::/32"))
    );
    assert_eq!(deny.matching(ip("192.0.2.1"))?, None);
    let mut listed = deny.list()?;
    listed.sort();
    assert_eq!(
        listed,
        [
            net("203.0.113.0/24"),
            net("2001:db8::/32"),
            net("2001:db8:1::/48")
        ]
    );
    assert!(deny.remove(net("2001:db8::/32"))?);
    assert!(
        !deny.remove(net("2001:db8::/32"))?,
        "second remove finds nothing"
    );
    deny.replace_all(&[])?;
    assert!(deny.list()?.is_empty());
    assert!(p.maps().allow.list()?.is_empty(), "allow untouched");
    Ok(())
}

#[test]
fn blocks_ports_and_limits_round_trip() -> Result<()> {
    let Some(mut p) = prefilter()? else {
        return Ok(());
    };
    let maps = p.maps_mut();
    maps.blocks.insert(ip("192.0.2.1"), 100, 1)?;
    maps.blocks.insert(ip("2001:db8::1"), 300, 2)?;
    let mut blocks = maps.blocks.list()?;
    blocks.sort();
    assert_eq!(
        blocks,
        [(ip("192.0.2.1"), 100, 1), (ip("2001:db8::1"), 300, 2)]
    );
    assert_eq!(maps.blocks.remove_expired(200)?, 1);
    assert_eq!(maps.blocks.list()?, [(ip("2001:db8::1"), 300, 2)]);

    assert_eq!(maps.ports.list()?, GATEWAY_PORTS);
    maps.ports.replace_all(&[80, 443])?;
    assert_eq!(maps.ports.list()?, [80, 443]);
    assert!(maps.ports.contains(80)? && !maps.ports.contains(8443)?);

    assert_eq!(maps.limits.get()?, Limits::default(), "buckets start off");
    maps.limits.set(limits(1, 2, 3, 4))?;
    assert_eq!(maps.limits.get()?, limits(1, 2, 3, 4));
    Ok(())
}
