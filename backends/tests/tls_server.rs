//! The server side of TLS (`wire::tls_server::ServerTls`, over rustls' unbuffered API) against
//! rustls' own buffered client on a thread: both versions, requests split over records and
//! reads smaller than a record, large writes, key updates and close_notify from the client,
//! alerts on errors, SNI refusals, and what an idle connection keeps in memory.

// The counting allocator below is the only unsafe code: it forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use tollgate_backends::wire::stream::TlsIo;
use tollgate_backends::wire::tls::HandshakeError;
use tollgate_backends::wire::tls_server::{accept, ServerTls};

/// Counts the bytes each thread has allocated and not freed (frees on another thread are not
/// matched, and none happen here on the server's thread).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: the thread-local may be gone while the thread exits.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every call forwards to the system allocator with the caller's arguments; the
// bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

const NAME: &str = "shop.example.com";
const WAIT: Duration = Duration::from_secs(10);

struct Pki {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![NAME.into()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    Pki {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

fn server_config(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let provider = Arc::new(tollgate_config::tls::crypto_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
        .expect("server config");
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().expect("ticketer");
    Arc::new(config)
}

fn client_config(pki: &Pki) -> Arc<ClientConfig> {
    let provider = Arc::new(tollgate_config::tls::crypto_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).expect("root");
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Client = StreamOwned<ClientConnection, std::net::TcpStream>;

fn client(addr: SocketAddr, config: Arc<ClientConfig>) -> Client {
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let name = ServerName::try_from(NAME).expect("name");
    let conn = ClientConnection::new(config, name).expect("client");
    StreamOwned::new(conn, tcp)
}

/// Runs `server` on a monoio runtime, handed the handshake's result for the one connection
/// `client` (on a thread) makes; returns what the client returned.
fn run<R, F>(
    config: Arc<ServerConfig>,
    client: impl FnOnce(SocketAddr) -> R + Send + 'static,
    server: impl FnOnce(Result<ServerTls, HandshakeError>) -> F,
) -> R
where
    R: Send + 'static,
    F: std::future::Future<Output = ()>,
{
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let thread = std::thread::spawn(move || client(addr));
        let (tcp, _) = listener.accept().await.expect("accept");
        let deadline = Instant::now() + WAIT;
        let tls = accept(tcp, &[], |_| Some(config), deadline).await;
        server(tls.map_err(|(e, _)| e)).await;
        thread.join().expect("client thread")
    })
}

fn deadline() -> Instant {
    Instant::now() + WAIT
}

/// Reads until `n` plaintext bytes came (or the end of the stream), taking at most `chunk`
/// bytes at a time.
async fn read_exact(tls: &mut ServerTls, n: usize, chunk: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let ready = tls.wait_plain(deadline()).await.expect("read");
        if ready == 0 {
            break;
        }
        let mut dst = vec![0u8; ready.min(chunk)];
        let taken = tls.take_plain(&mut dst).expect("take");
        got.extend_from_slice(&dst[..taken]);
    }
    got
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Both versions: a request split over several records (and read a few bytes at a time), a
/// response larger than a batch of records, then the client's close_notify ends the stream,
/// and our close_notify reaches the client.
#[test]
fn both_versions_exchange_and_close() {
    let pki = pki();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = server_config(&pki, &[version]);
        let client_config = client_config(&pki);
        let request = pattern(40_000);
        let response = pattern(200_000);
        let (req, resp) = (request.clone(), response.clone());
        let got = run(
            config,
            move |addr| {
                let mut c = client(addr, client_config);
                c.write_all(&req).expect("request");
                let mut got = vec![0u8; resp.len()];
                c.read_exact(&mut got).expect("response");
                assert!(got == resp, "response bytes differ");
                c.conn.send_close_notify();
                c.flush().expect("close_notify");
                // Our close_notify: a clean end of stream.
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).expect("clean end");
                (c.conn.protocol_version(), rest.len())
            },
            |tls| async move {
                let mut tls = tls.expect("handshake");
                let got = read_exact(&mut tls, request.len(), 1000).await;
                assert!(got == request, "request bytes differ");
                tls.write_plain(&response, deadline()).await.expect("write");
                assert_eq!(tls.wait_plain(deadline()).await.expect("end"), 0);
                assert!(tls.has_buffered_input(), "the close is input");
                tls.close(deadline()).await.expect("close");
            },
        );
        assert_eq!(got.0, Some(version.version), "{version:?}");
        assert_eq!(got.1, 0);
    }
}

/// A client's key update (TLS 1.3, update requested) is taken and answered: the client reads
/// our response under our new keys.
#[test]
fn key_updates_from_the_client() {
    let pki = pki();
    let config = server_config(&pki, &[&rustls::version::TLS13]);
    let client_config = client_config(&pki);
    let reply = run(
        config,
        move |addr| {
            let mut c = client(addr, client_config);
            c.write_all(b"one").expect("first");
            c.flush().expect("flush");
            let mut first = [0u8; 3];
            c.read_exact(&mut first).expect("first reply");
            c.conn.refresh_traffic_keys().expect("key update");
            c.write_all(b"two").expect("second");
            c.flush().expect("flush");
            let mut second = [0u8; 3];
            c.read_exact(&mut second).expect("second reply");
            c.conn.refresh_traffic_keys().expect("key update");
            c.write_all(b"three").expect("third");
            let mut third = [0u8; 5];
            c.read_exact(&mut third).expect("third reply");
            [first.to_vec(), second.to_vec(), third.to_vec()].concat()
        },
        |tls| async move {
            let mut tls = tls.expect("handshake");
            for word in [&b"one"[..], b"two", b"three"] {
                let got = read_exact(&mut tls, word.len(), 64).await;
                assert_eq!(got, word);
                tls.write_plain(&got, deadline()).await.expect("echo");
            }
        },
    );
    assert_eq!(reply, b"onetwothree");
}

/// A read cancelled by the caller's timeout while part of a record is buffered loses none of
/// it: the rest of the record, sent later, completes it.
#[test]
fn a_cancelled_read_keeps_the_partial_record() {
    let pki = pki();
    let config = server_config(&pki, &[&rustls::version::TLS13]);
    let client_config = client_config(&pki);
    let (timed_out, wait_timed_out) = std::sync::mpsc::channel::<()>();
    let reply = run(
        config,
        move |addr| {
            let mut c = client(addr, client_config);
            while c.conn.is_handshaking() {
                c.conn.complete_io(&mut c.sock).expect("handshake");
            }
            c.conn
                .writer()
                .write_all(b"split record")
                .expect("plaintext");
            let mut record = Vec::new();
            while c.conn.wants_write() {
                c.conn.write_tls(&mut record).expect("record");
            }
            c.sock.write_all(&record[..10]).expect("first part");
            wait_timed_out.recv().expect("server timed out");
            c.sock.write_all(&record[10..]).expect("the rest");
            let mut reply = [0u8; 2];
            c.read_exact(&mut reply).expect("reply");
            reply
        },
        |tls| async move {
            let mut tls = tls.expect("handshake");
            let cancelled =
                monoio::time::timeout(Duration::from_millis(200), tls.wait_plain(deadline())).await;
            assert!(cancelled.is_err(), "only part of the record came");
            assert!(tls.has_buffered_input(), "the part is kept");
            timed_out.send(()).expect("tell the client");
            assert_eq!(read_exact(&mut tls, 12, 64).await, b"split record");
            tls.write_plain(b"ok", deadline()).await.expect("reply");
        },
    );
    assert_eq!(&reply, b"ok");
}

/// A record that fails to decrypt is an error for the reader, and the client gets the alert.
#[test]
fn a_corrupt_record_is_refused_with_an_alert() {
    let pki = pki();
    let config = server_config(&pki, &[&rustls::version::TLS13]);
    let client_config = client_config(&pki);
    let err = run(
        config,
        move |addr| {
            let mut c = client(addr, client_config);
            c.write_all(b"hello").expect("request");
            let mut reply = [0u8; 2];
            c.read_exact(&mut reply).expect("reply");
            // Application data under keys nobody has.
            let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x20];
            junk.extend_from_slice(&[0x55; 0x20]);
            c.sock.write_all(&junk).expect("junk");
            let mut rest = [0u8; 16];
            c.read(&mut rest).expect_err("an alert")
        },
        |tls| async move {
            let mut tls = tls.expect("handshake");
            assert_eq!(read_exact(&mut tls, 5, 64).await, b"hello");
            tls.write_plain(b"ok", deadline()).await.expect("reply");
            let e = tls
                .wait_plain(deadline())
                .await
                .expect_err("corrupt record");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            // The connection is unusable from then on.
            assert!(tls.write_plain(b"x", deadline()).await.is_err());
        },
    );
    assert!(err.to_string().contains("BadRecordMac"), "{err}");
}

/// A name the listener does not serve gets `unrecognized_name` and the reason.
#[test]
fn an_unknown_name_is_refused() {
    let pki = pki();
    let client_config = client_config(&pki);
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    let (why, client_err) = rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let thread = std::thread::spawn(move || {
            let mut c = client(addr, client_config);
            c.write_all(b"x").expect_err("refused").to_string()
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut asked = None;
        let res = accept(
            tcp,
            &[],
            |sni| {
                asked = sni.map(str::to_string);
                None
            },
            deadline(),
        )
        .await;
        assert_eq!(asked.as_deref(), Some(NAME));
        let why = res.err().map(|(e, _)| e);
        (why, thread.join().expect("client"))
    });
    assert_eq!(why, Some(HandshakeError::UnknownName));
    assert!(client_err.contains("UnrecognisedName"), "{client_err}");
}

/// An idle connection holds none of its buffers: after an exchange and
/// `shed_idle_buffers`, what the connection keeps on the Rust heap is rustls' state only
/// (2026-12-08: 1,280 bytes boxed — rustls' `UnbufferedServerConnection` is 1,088 of them —
/// and 1,168 on the heap in seven allocations). The AEAD contexts aws-lc allocates with C's
/// `malloc` (about 600 bytes per direction) are not counted here; docs/BENCHMARKS.md §18 has
/// the whole.
#[test]
fn an_idle_connection_keeps_no_buffers() {
    let pki = pki();
    let config = server_config(&pki, &[&rustls::version::TLS13]);
    let client_config = client_config(&pki);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let thread = std::thread::spawn(move || {
            let mut c = client(addr, client_config);
            c.write_all(&pattern(20_000)).expect("request");
            let mut reply = vec![0u8; 30_000];
            c.read_exact(&mut reply).expect("reply");
            // Hold the connection open until the server has measured.
            let _ = rx.recv();
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let before = live();
        let mut tls = accept(tcp, &[], |_| Some(config), deadline())
            .await
            .map_err(|(e, _)| e)
            .expect("handshake");
        let _ = read_exact(&mut tls, 20_000, 16 * 1024).await;
        tls.write_plain(&pattern(30_000), deadline())
            .await
            .expect("reply");
        assert!(!tls.has_buffered_input());
        tls.shed_idle_buffers();
        let heap = live() - before;
        let inline = std::mem::size_of::<ServerTls>();
        eprintln!("idle TLS connection: {inline} bytes inline (boxed), {heap} bytes on the heap");
        assert!(
            heap + (inline as isize) < 3 * 1024,
            "an idle TLS connection holds {heap} + {inline} bytes"
        );
        let _ = tx.send(());
        drop(tls);
        thread.join().expect("client");
    });
}
