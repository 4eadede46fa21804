//! In-memory rustls 0.23 benchmark: *ring* vs *aws-lc-rs* crypto providers,
//! measured from the point of view of a TLS-terminating HTTP gateway (server side).
//!
//! No sockets: a `ClientConnection` and a `ServerConnection` exchange TLS bytes
//! through `Vec<u8>` buffers. Only the server's calls (`ServerConnection::new`,
//! `read_tls`, `process_new_packets`, `reader().read`, `writer().write_all`,
//! `write_tls`) are inside the server timer, which reads the per-thread CPU clock
//! (CLOCK_THREAD_CPUTIME_ID). Whole-pair cost = thread CPU time (getrusage
//! RUSAGE_THREAD) of the whole measurement loop, client and harness included.
//! Single-threaded; wall time is only used to decide when a run ends.
//!
//! Usage: provider-compare [--rounds N] [--secs S] [--slice S] [--warmup S] [--raw FILE] [--only SUBSTR]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::ProducesTickets;
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, NamedGroup,
    ProtocolVersion, RootCertStore, ServerConfig, ServerConnection, SupportedProtocolVersion,
};

// ---------------------------------------------------------------- providers

struct Provider {
    name: &'static str,
    base: fn() -> CryptoProvider,
    ticketer: fn() -> Result<Arc<dyn ProducesTickets>, rustls::Error>,
}

fn providers() -> Vec<Provider> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    // rustls 0.23.48 marks ring::default_provider() deprecated ("no support for
    // post-quantum algorithms"); it still works and is what a ring user gets.
    #[cfg(feature = "ring")]
    #[allow(deprecated)]
    v.push(Provider {
        name: "ring",
        base: rustls::crypto::ring::default_provider,
        ticketer: rustls::crypto::ring::Ticketer::new,
    });
    #[cfg(feature = "aws-lc")]
    v.push(Provider {
        name: "aws-lc-rs",
        base: rustls::crypto::aws_lc_rs::default_provider,
        ticketer: rustls::crypto::aws_lc_rs::Ticketer::new,
    });
    v
}

/// The provider's own default provider, cut down to exactly one cipher suite and
/// one key-exchange group, so negotiation is deterministic. `None` if the
/// provider does not implement the group (e.g. ring has no ML-KEM).
fn restrict(p: &Provider, suite: CipherSuite, group: NamedGroup) -> Option<Arc<CryptoProvider>> {
    let base = (p.base)();
    let cs = *base.cipher_suites.iter().find(|s| s.suite() == suite)?;
    let kx = *base.kx_groups.iter().find(|k| k.name() == group)?;
    Some(Arc::new(CryptoProvider {
        cipher_suites: vec![cs],
        kx_groups: vec![kx],
        ..base
    }))
}

// ---------------------------------------------------------------- certificates

struct Certs {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

/// ECDSA P-256 CA + ECDSA P-256 leaf for "gateway.test" (rcgen 0.14).
fn make_certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "provider-bench CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate_for(alg).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["gateway.test".to_string()]).unwrap();
    leaf_params.distinguished_name.push(DnType::CommonName, "gateway.test");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Certs {
        ca: ca_cert.der().clone(),
        leaf: leaf.der().clone(),
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

// ---------------------------------------------------------------- configs

fn server_config(p: &Provider, prov: Arc<CryptoProvider>, certs: &Certs) -> Arc<ServerConfig> {
    // A gateway-like server: TLS 1.3 + 1.2 enabled, stateless tickets from the
    // provider's own Ticketer, rustls defaults otherwise (send_tls13_tickets = 2).
    let mut cfg = ServerConfig::builder_with_provider(prov)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certs.leaf.clone()],
            PrivateKeyDer::Pkcs8(certs.key.clone_key()),
        )
        .unwrap();
    cfg.ticketer = (p.ticketer)().unwrap();
    Arc::new(cfg)
}

fn client_config(
    prov: Arc<CryptoProvider>,
    certs: &Certs,
    version: &'static SupportedProtocolVersion,
    resumption: bool,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(certs.ca.clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.resumption = if resumption {
        Resumption::in_memory_sessions(256)
    } else {
        Resumption::disabled()
    };
    Arc::new(cfg)
}

// ---------------------------------------------------------------- in-memory pump

fn feed<D>(conn: &mut ConnectionCommon<D>, mut data: &[u8]) {
    while !data.is_empty() {
        conn.read_tls(&mut data).unwrap();
        conn.process_new_packets().unwrap();
    }
}

fn drain<D>(conn: &mut ConnectionCommon<D>, out: &mut Vec<u8>) {
    while conn.wants_write() {
        conn.write_tls(out).unwrap();
    }
}

struct Bufs {
    c2s: Vec<u8>,
    s2c: Vec<u8>,
}

impl Bufs {
    fn new() -> Self {
        Bufs { c2s: Vec::with_capacity(1 << 16), s2c: Vec::with_capacity(1 << 16) }
    }
}

/// Full handshake including delivery of post-handshake messages (tickets).
/// Returns the server connection and the time spent inside server calls.
fn handshake(
    client: &mut ClientConnection,
    scfg: &Arc<ServerConfig>,
    b: &mut Bufs,
) -> (ServerConnection, Duration) {
    let t = thread_cpu();
    let mut server = ServerConnection::new(scfg.clone()).unwrap();
    let mut srv = thread_cpu() - t;
    loop {
        b.c2s.clear();
        drain(client, &mut b.c2s);
        if b.c2s.is_empty() {
            break;
        }
        let t = thread_cpu();
        feed(&mut server, &b.c2s);
        b.s2c.clear();
        drain(&mut server, &mut b.s2c);
        srv += thread_cpu() - t;
        feed(client, &b.s2c);
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    (server, srv)
}

// ---------------------------------------------------------------- measurement

/// Per-thread CPU clock (CLOCK_THREAD_CPUTIME_ID): excludes time the thread was
/// preempted, so it stays meaningful while other work (a compile) shares the cores.
fn thread_cpu() -> Duration {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[derive(Clone, Copy, Debug)]
struct Usage {
    cpu: f64,
    nivcsw: i64,
}

fn usage() -> Usage {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Usage { cpu: tv(ru.ru_utime) + tv(ru.ru_stime), nivcsw: ru.ru_nivcsw }
}

#[derive(Clone, Debug)]
struct Sample {
    iters: u64,
    server_s: f64, // summed thread-CPU time inside server calls
    wall_s: f64,   // wall time of the whole loop
    cpu_s: f64,    // thread CPU time of the whole loop (client + server + harness)
    nivcsw: i64,   // involuntary context switches during the loop
}

impl Sample {
    fn zero() -> Self {
        Sample { iters: 0, server_s: 0.0, wall_s: 0.0, cpu_s: 0.0, nivcsw: 0 }
    }
    fn add(&mut self, o: &Sample) {
        self.iters += o.iters;
        self.server_s += o.server_s;
        self.wall_s += o.wall_s;
        self.cpu_s += o.cpu_s;
        self.nivcsw += o.nivcsw;
    }
    fn server_rate(&self) -> f64 {
        self.iters as f64 / self.server_s
    }
    fn pair_rate(&self) -> f64 {
        self.iters as f64 / self.cpu_s
    }
}

/// Calls `f` until `dur` of wall time has passed. `f` returns (ops done, server CPU time).
fn run_for(dur: Duration, mut f: impl FnMut() -> (u64, Duration)) -> Sample {
    let u0 = usage();
    let w0 = Instant::now();
    let mut srv = Duration::ZERO;
    let mut n = 0u64;
    loop {
        let (ops, d) = f();
        srv += d;
        n += ops;
        if w0.elapsed() >= dur {
            break;
        }
    }
    let wall = w0.elapsed().as_secs_f64();
    let u1 = usage();
    Sample {
        iters: n,
        server_s: srv.as_secs_f64(),
        wall_s: wall,
        cpu_s: u1.cpu - u0.cpu,
        nivcsw: u1.nivcsw - u0.nivcsw,
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Tls13Full(NamedGroup),
    Tls13Resumed,
    Tls12Full,
    Bulk { suite: CipherSuite, req: usize, resp: usize },
}

struct Scenario {
    name: &'static str,
    kind: Kind,
}

fn scenarios() -> Vec<Scenario> {
    use CipherSuite::*;
    vec![
        Scenario { name: "tls13-full (P-256 cert, X25519, AES128GCM)", kind: Kind::Tls13Full(NamedGroup::X25519) },
        Scenario { name: "tls13-resumed (ticket, psk_dhe X25519)", kind: Kind::Tls13Resumed },
        Scenario { name: "tls12-full ECDHE-ECDSA-AES128-GCM (X25519)", kind: Kind::Tls12Full },
        Scenario {
            name: "bulk AES-128-GCM 100B req / 1200B resp",
            kind: Kind::Bulk { suite: TLS13_AES_128_GCM_SHA256, req: 100, resp: 1200 },
        },
        Scenario {
            name: "bulk CHACHA20-POLY1305 100B req / 1200B resp",
            kind: Kind::Bulk { suite: TLS13_CHACHA20_POLY1305_SHA256, req: 100, resp: 1200 },
        },
        Scenario {
            name: "bulk AES-128-GCM 1KiB in / 1KiB out",
            kind: Kind::Bulk { suite: TLS13_AES_128_GCM_SHA256, req: 1024, resp: 1024 },
        },
        Scenario {
            name: "bulk CHACHA20-POLY1305 1KiB in / 1KiB out",
            kind: Kind::Bulk { suite: TLS13_CHACHA20_POLY1305_SHA256, req: 1024, resp: 1024 },
        },
        Scenario {
            name: "extra: tls13-full X25519MLKEM768 (aws-lc-rs default)",
            kind: Kind::Tls13Full(NamedGroup::X25519MLKEM768),
        },
    ]
}

/// One unit of work for the timing loop: returns (ops done, server CPU time spent).
type Op = Box<dyn FnMut() -> (u64, Duration)>;

/// Build the connection state for one scenario and one provider and return a closure
/// that performs one unit of work. None if the provider lacks the scenario's group.
fn setup(p: &Provider, sc: &Scenario, certs: &Certs) -> Option<Op> {
    let name = ServerName::try_from("gateway.test").unwrap();
    let mut b = Bufs::new();
    match sc.kind {
        Kind::Tls13Full(_) | Kind::Tls12Full | Kind::Tls13Resumed => {
            let (suite, group, version, resume) = match sc.kind {
                Kind::Tls13Full(g) => (CipherSuite::TLS13_AES_128_GCM_SHA256, g, &rustls::version::TLS13, false),
                Kind::Tls13Resumed => (CipherSuite::TLS13_AES_128_GCM_SHA256, NamedGroup::X25519, &rustls::version::TLS13, true),
                _ => (
                    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    NamedGroup::X25519,
                    &rustls::version::TLS12,
                    false,
                ),
            };
            let prov = restrict(p, suite, group)?;
            let scfg = server_config(p, prov.clone(), certs);
            let ccfg = client_config(prov, certs, version, resume);
            let want_kind = if resume { HandshakeKind::Resumed } else { HandshakeKind::Full };
            let want_ver = if matches!(sc.kind, Kind::Tls12Full) { ProtocolVersion::TLSv1_2 } else { ProtocolVersion::TLSv1_3 };
            if resume {
                // prime the client's session store with tickets
                let mut c = ClientConnection::new(ccfg.clone(), name.clone()).unwrap();
                handshake(&mut c, &scfg, &mut b);
            }
            let pname = p.name;
            let one = move || {
                let mut c = ClientConnection::new(ccfg.clone(), name.clone()).unwrap();
                let (s, t) = handshake(&mut c, &scfg, &mut b);
                // cheap sanity checks on what was actually negotiated
                if s.handshake_kind() != Some(want_kind)
                    || s.protocol_version() != Some(want_ver)
                    || s.negotiated_cipher_suite().map(|s| s.suite()) != Some(suite)
                    || s.negotiated_key_exchange_group().map(|g| g.name()) != Some(group)
                {
                    panic!(
                        "{}: unexpected negotiation: kind={:?} ver={:?} suite={:?} group={:?}",
                        pname,
                        s.handshake_kind(),
                        s.protocol_version(),
                        s.negotiated_cipher_suite(),
                        s.negotiated_key_exchange_group().map(|g| g.name())
                    );
                }
                (1, t)
            };
            Some(Box::new(one))
        }
        Kind::Bulk { suite, req, resp } => {
            let prov = restrict(p, suite, NamedGroup::X25519)?;
            let scfg = server_config(p, prov.clone(), certs);
            let ccfg = client_config(prov, certs, &rustls::version::TLS13, false);
            let mut client = ClientConnection::new(ccfg, name).unwrap();
            let (mut server, _) = handshake(&mut client, &scfg, &mut b);
            assert_eq!(server.negotiated_cipher_suite().unwrap().suite(), suite);
            let reqb = vec![b'q'; req];
            let respb = vec![b'r'; resp];
            let mut rbuf = vec![0u8; req.max(resp)];
            // Requests are processed in batches of BATCH so the per-thread CPU clock is
            // read once per ~150-400 us of server work (one clock read costs ~0.33 us on
            // this VM, so < 0.3 % overhead). Inside a batch the server still does, per
            // request: read_tls + process_new_packets of one record, reader().read,
            // writer().write_all of one response record, write_tls -- exactly the calls
            // of a ping-pong keep-alive loop; the client just pipelines its requests.
            const BATCH: usize = 128;
            let mut reqs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(2048)).collect();
            let mut resps: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(2048)).collect();
            let one = move || {
                for r in reqs.iter_mut() {
                    client.writer().write_all(&reqb).unwrap();
                    r.clear();
                    drain(&mut client, r);
                }

                let t = thread_cpu();
                for (rq, rs) in reqs.iter().zip(resps.iter_mut()) {
                    feed(&mut server, rq);
                    let mut got = 0;
                    while got < req {
                        got += server.reader().read(&mut rbuf[got..req]).unwrap();
                    }
                    server.writer().write_all(&respb).unwrap();
                    rs.clear();
                    drain(&mut server, rs);
                }
                let d = thread_cpu() - t;

                for rs in resps.iter() {
                    feed(&mut client, rs);
                    let mut got = 0;
                    while got < resp {
                        got += client.reader().read(&mut rbuf[got..resp]).unwrap();
                    }
                }
                (BATCH as u64, d)
            };
            Some(Box::new(one))
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() {
    let mut rounds = 5usize;
    let mut secs = 2.5f64;
    let mut warm = 0.3f64;
    let mut raw_path: Option<String> = None;
    let mut only: Option<String> = None;
    let mut slice = 0.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            "--secs" => secs = args.next().unwrap().parse().unwrap(),
            "--warmup" => warm = args.next().unwrap().parse().unwrap(),
            "--raw" => raw_path = args.next(),
            "--only" => only = args.next(),
            "--slice" => slice = args.next().unwrap().parse().unwrap(),
            _ => panic!("unknown arg {a}"),
        }
    }
    let dur = Duration::from_secs_f64(secs);
    let warm = Duration::from_secs_f64(warm);

    // cost of one CPU-clock read (two per timed server block)
    let t = Instant::now();
    let c0 = thread_cpu();
    for _ in 0..200_000 {
        std::hint::black_box(thread_cpu());
    }
    eprintln!(
        "thread_cpu() call: {:.1} ns wall, {:.1} ns cpu",
        t.elapsed().as_nanos() as f64 / 2e5,
        (thread_cpu() - c0).as_nanos() as f64 / 2e5
    );

    let provs = providers();
    let certs = make_certs();
    let scs: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| only.as_deref().map_or(true, |o| s.name.contains(o)))
        .collect();

    // results[scenario][provider] = samples
    let mut results: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); provs.len()]; scs.len()];
    let mut raw = String::from("round,scenario,provider,iters,server_s,wall_s,cpu_s,nivcsw,server_per_s,pair_per_cpu_s\n");
    for r in 0..rounds {
        for (si, sc) in scs.iter().enumerate() {
            // alternate which provider goes first each round (ABBA) to cancel drift
            let mut order: Vec<usize> = (0..provs.len()).collect();
            if r % 2 == 1 {
                order.reverse();
            }
            // arms: (provider index, label, is a main provider arm, op)
            let mut ops: Vec<(usize, String, bool, Op)> = order
                .iter()
                .filter_map(|&pi| setup(&provs[pi], sc, &certs).map(|op| (pi, provs[pi].name.to_string(), true, op)))
                .collect();
            // For the post-quantum extra, also run every provider's plain-X25519 full
            // handshake in the same slices, so the PQ cost is measured side by side.
            if matches!(sc.kind, Kind::Tls13Full(NamedGroup::X25519MLKEM768)) {
                let x = Scenario { name: "x", kind: Kind::Tls13Full(NamedGroup::X25519) };
                for &pi in &order {
                    if let Some(op) = setup(&provs[pi], &x, &certs) {
                        ops.push((pi, format!("{}@X25519", provs[pi].name), false, op));
                    }
                }
            }
            for (_, _, _, op) in ops.iter_mut() {
                run_for(warm, op);
            }
            // Each provider gets `secs` of measurement per round. With --slice S the
            // round is cut into S-second slices that alternate between providers
            // (A B B A A B ...), so both see the same machine conditions.
            let nslices = if slice > 0.0 { (secs / slice).round().max(1.0) as u32 } else { 1 };
            let sl = dur / nslices;
            let mut acc: Vec<Sample> = vec![Sample::zero(); ops.len()];
            for k in 0..nslices {
                let idx: Vec<usize> = if k % 2 == 0 {
                    (0..ops.len()).collect()
                } else {
                    (0..ops.len()).rev().collect()
                };
                for i in idx {
                    acc[i].add(&run_for(sl, &mut ops[i].3));
                }
            }
            for (i, (pi, label, main_arm, _)) in ops.iter().enumerate() {
                let s = acc[i].clone();
                let line = format!(
                    "{r},{},{},{},{:.4},{:.4},{:.4},{},{:.1},{:.1}",
                    sc.name, label, s.iters, s.server_s, s.wall_s, s.cpu_s, s.nivcsw,
                    s.server_rate(), s.pair_rate()
                );
                eprintln!("{line}");
                raw.push_str(&line);
                raw.push('\n');
                if *main_arm {
                    results[si][*pi].push(s);
                }
            }
        }
    }
    if let Some(path) = raw_path {
        std::fs::write(path, &raw).unwrap();
    }

    // Summary (markdown)
    let pname = |i: usize| provs[i].name;
    println!("| scenario | metric | {} | aws-lc/ring |", (0..provs.len()).map(pname).collect::<Vec<_>>().join(" | "));
    println!("|---|---|{}---|", "---|".repeat(provs.len()));
    for (si, sc) in scs.iter().enumerate() {
        for (metric, f) in [
            ("server ops/CPU-s", Sample::server_rate as fn(&Sample) -> f64),
            ("pair ops/CPU-s", Sample::pair_rate as fn(&Sample) -> f64),
        ] {
            let mut meds = Vec::new();
            let mut cells = Vec::new();
            for pi in 0..provs.len() {
                let mut v: Vec<f64> = results[si][pi].iter().map(f).collect();
                if v.is_empty() {
                    meds.push(None);
                    cells.push("n/a".to_string());
                    continue;
                }
                let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = v.iter().cloned().fold(0.0, f64::max);
                let m = median(&mut v);
                meds.push(Some(m));
                cells.push(format!("{m:.0} ({lo:.0}–{hi:.0})"));
            }
            let ring = provs.iter().position(|p| p.name == "ring").and_then(|i| meds[i]);
            let aws = provs.iter().position(|p| p.name == "aws-lc-rs").and_then(|i| meds[i]);
            let ratio = match (ring, aws) {
                (Some(r), Some(a)) => format!("{:.3}", a / r),
                _ => "–".to_string(),
            };
            println!("| {} | {} | {} | {} |", sc.name, metric, cells.join(" | "), ratio);
        }
    }
    // contention check
    let all: Vec<&Sample> = results.iter().flatten().flatten().collect();
    let worst = all.iter().map(|s| s.wall_s / s.cpu_s).fold(0.0, f64::max);
    let csw: i64 = all.iter().map(|s| s.nivcsw).sum();
    println!();
    println!("contention check: worst wall/CPU ratio of any run = {worst:.3}; total involuntary context switches = {csw}");
}
