//! Heap allocations per request, counted with a counting global allocator, for each traffic
//! pattern in [`SCENARIOS`] and on both drivers.
//!
//! Each scenario starts a gateway with one worker in this process, next to an upstream and the
//! client; after warm-up, a fixed number of requests goes through it and the allocations the
//! process made in that window are divided by the request count. This is a count, not a
//! timing: it does not depend on the machine's speed. The client and the upstream allocate
//! nothing after warm-up, so what is counted is the gateway's. The access log's writer thread
//! is counted apart: it is not on a request's path.
//!
//! With `ALLOC_BACKTRACES=1` in the environment, the backtrace of every allocation counted is
//! printed after its scenario: what to look at when a bound fails.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tollgate::control::{Gateway, Options};
use tollgate_config::plan::DriverChoice;

struct Counting;

/// Allocations by every thread but the access log writer.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Allocations by the access log writer thread (`tollgate-log`).
static LOG_WRITER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Set while a measured window runs with `ALLOC_BACKTRACES=1`.
static BACKTRACES: AtomicBool = AtomicBool::new(false);
/// The backtraces recorded, with their thread's name.
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// The thread is recording a backtrace: what that allocates is not counted.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// The calling thread's name (at most 15 bytes, NUL-padded), without allocating.
#[allow(unsafe_code)]
fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes the calling thread's name, at most 16 bytes with its NUL,
    // into the buffer.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    name
}

fn count() {
    if RECORDING.with(Cell::get) {
        return;
    }
    let name = thread_name();
    if name.starts_with(b"tollgate-log\0") {
        LOG_WRITER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    } else {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
    if BACKTRACES.load(Ordering::Relaxed) {
        RECORDING.with(|r| r.set(true));
        let name = String::from_utf8_lossy(&name);
        let trace = std::backtrace::Backtrace::force_capture();
        let record = format!("thread {}\n{trace}", name.trim_end_matches('\0'));
        if let Ok(mut recorded) = RECORDED.lock() {
            recorded.push(record);
        }
        RECORDING.with(|r| r.set(false));
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What a gateway is configured with, besides the routes every scenario's gateway has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Routes only.
    Plain,
    /// Every limit on every route ([`limits_config`]); none of them ever refuses here.
    Limits,
    /// Two more routes: `/keyed` requires an API key, `/throttled` lets a client through once.
    Refusals,
    /// The access log on, to a temporary file.
    AccessLog,
}

/// How the client paces its requests.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// The next request as soon as the responses are read.
    BackToBack,
    /// A pause of this many milliseconds before each request, longer than the connection's
    /// busy linger (20 ms): every request starts a new busy period.
    Pause(u64),
}

/// What comes back for one request write.
#[derive(Debug, Clone, Copy)]
struct Reply {
    /// Responses (more than one for pipelined requests).
    count: usize,
    status: u16,
    /// Chunked; otherwise framed by Content-Length.
    chunked: bool,
    /// The decoded body.
    body: &'static [u8],
}

/// One traffic pattern.
struct Scenario {
    name: &'static str,
    setup: Setup,
    /// The bytes the client writes at once, built before the gateway starts.
    request: fn() -> Vec<u8>,
    reply: Reply,
    pace: Pace,
    /// The most allocations per request allowed after warm-up.
    bound: Bound,
}

/// Allocations per request allowed, per driver.
#[derive(Debug, Clone, Copy)]
struct Bound {
    uring: f64,
    epoll: f64,
}

/// Allowed for patterns that allocate nothing in the steady state. On a loaded machine a few
/// allocations can still land in the window: a test client descheduled for longer than the
/// busy linger (20 ms) starts a new busy period (see the pause scenario), and the gateway's
/// background threads, when they first run late, set up their channel waits. The bound
/// tolerates that (at most 1 in 100 requests) while still failing for any allocation made per
/// request.
const ZERO: Bound = Bound {
    uring: 0.01,
    epoll: 0.01,
};

/// Allowed for the access log's writer thread, per request, in every scenario: it writes each
/// hand-off and gives the buffer back without allocating.
const LOG_WRITER_MAX: f64 = 0.01;

const HELLO: Reply = Reply {
    count: 1,
    status: 200,
    chunked: false,
    body: b"hello",
};

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "keep-alive GET",
        setup: Setup::Plain,
        request: || get("/items/42", ""),
        reply: HELLO,
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "keep-alive GET, every limit on",
        setup: Setup::Limits,
        request: || get("/items/42", "x-api-key: alloc-test-key-0123456789\r\n"),
        reply: HELLO,
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        // Every request is a new busy period: its state machine is boxed once per period
        // (`Conn::busy_boxed`). On io_uring the busy linger's readiness wait is cancelled by
        // its timer when it ends, and monoio boxes a cancelled operation's data until the
        // kernel completes it: one more. Exactly 2 and 1 per request on an idle machine (a
        // loaded one can make it fewer: a worker late for the linger's timer finds the next
        // request already there).
        name: "GET after a 30 ms pause",
        setup: Setup::Plain,
        request: || get("/items/42", ""),
        reply: HELLO,
        pace: Pace::Pause(30),
        bound: Bound {
            uring: 2.01,
            epoll: 1.01,
        },
    },
    // Bodies up to `body_buffer_bytes` (64 KiB) are read whole before the upstream is
    // contacted; past a pool buffer (16 KiB) they grow into the pool's large class.
    Scenario {
        name: "POST 1 KiB",
        setup: Setup::Plain,
        request: || post(1024),
        reply: HELLO,
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "POST 16 KiB",
        setup: Setup::Plain,
        request: || post(16 * 1024),
        reply: HELLO,
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "POST 60 KiB",
        setup: Setup::Plain,
        request: || post(60 * 1024),
        reply: HELLO,
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "GET, 60 KiB response",
        setup: Setup::Plain,
        request: || get("/items/large", ""),
        reply: Reply {
            body: LARGE_BODY,
            ..HELLO
        },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "chunked response",
        setup: Setup::Plain,
        request: || get("/chunked", ""),
        reply: Reply {
            count: 1,
            status: 200,
            chunked: true,
            body: b"hello, chunked!",
        },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "404 no route",
        setup: Setup::Plain,
        request: || get("/nowhere", ""),
        reply: Reply {
            count: 1,
            status: 404,
            chunked: false,
            body: b"{\"message\":\"Not Found\"}",
        },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "403 no API key",
        setup: Setup::Refusals,
        request: || get("/keyed", ""),
        reply: Reply {
            count: 1,
            status: 403,
            chunked: false,
            body: b"{\"message\":\"Forbidden\"}",
        },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        // The bucket holds one request and refills one per 1000 s: the first request (in the
        // warm-up) passes, every later one is refused.
        name: "429 client throttle",
        setup: Setup::Refusals,
        request: || get("/throttled", ""),
        reply: Reply {
            count: 1,
            status: 429,
            chunked: false,
            body: b"{\"message\":\"Too Many Requests\"}",
        },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "mock route",
        setup: Setup::Plain,
        request: || get("/mock", ""),
        reply: Reply {
            count: 1,
            status: 200,
            chunked: false,
            body: b"{\"mock\":true}",
        },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "4 pipelined GETs",
        setup: Setup::Plain,
        request: || {
            ["/items/1", "/items/2", "/items/3", "/items/4"]
                .map(|p| get(p, ""))
                .concat()
        },
        reply: Reply { count: 4, ..HELLO },
        pace: Pace::BackToBack,
        bound: ZERO,
    },
    Scenario {
        name: "keep-alive GET, access log on",
        setup: Setup::AccessLog,
        request: || get("/items/42", ""),
        reply: HELLO,
        pace: Pace::BackToBack,
        bound: ZERO,
    },
];

fn get(path: &str, headers: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: alloc-test\r\n{headers}\
         Accept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// Every byte of a request body; the upstream checks them.
const BODY_BYTE: u8 = b'b';

fn post(len: usize) -> Vec<u8> {
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: example.com\r\nUser-Agent: alloc-test\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    );
    [head.as_bytes(), &vec![BODY_BYTE; len]].concat()
}

// The upstream.

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello";

/// The answer on `/chunked`, written in three writes.
const CHUNKED: [&[u8]; 3] = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n\
      5\r\nhello\r\n",
    b"6\r\n, chun\r\n",
    b"4\r\nked!\r\n0\r\n\r\n",
];

/// The answer on `/items/large`: 60 KiB (61,440 bytes), more than a pool buffer.
const LARGE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 61440\r\n\r\n";
const LARGE_BODY: &[u8] = &[b'x'; 60 * 1024];

/// The answer to a request whose body is not what the client sent.
const BAD_BODY: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 8\r\n\r\nbad body";

/// Larger than any request here.
const UPSTREAM_BUFFER: usize = 128 * 1024;

/// A keep-alive upstream, allocation-free after its first read: reads each request's head and
/// its Content-Length body, checks the body, and answers [`RESPONSE`] ([`CHUNKED`] on
/// `/chunked`, 60 KiB on `/items/large`).
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve_upstream(stream));
        }
    });
    addr
}

fn serve_upstream(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; UPSTREAM_BUFFER];
    let mut filled = 0;
    loop {
        let head_end = loop {
            if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut buf[filled..]) {
                Ok(n) if n > 0 => filled += n,
                _ => return,
            }
        };
        let length = header(&buf[..head_end], b"content-length").map_or(0, parse_decimal);
        let end = head_end + length;
        assert!(
            end <= buf.len(),
            "request larger than the upstream's buffer"
        );
        while filled < end {
            match stream.read(&mut buf[filled..]) {
                Ok(n) if n > 0 => filled += n,
                _ => return,
            }
        }
        let answered = if buf[head_end..end].iter().any(|&b| b != BODY_BYTE) {
            stream.write_all(BAD_BODY)
        } else if buf.starts_with(b"GET /chunked ") {
            CHUNKED.iter().try_for_each(|piece| stream.write_all(piece))
        } else if buf.starts_with(b"GET /items/large ") {
            [LARGE_HEAD, LARGE_BODY]
                .iter()
                .try_for_each(|piece| stream.write_all(piece))
        } else {
            stream.write_all(RESPONSE)
        };
        if answered.is_err() {
            return;
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
    }
}

// HTTP/1.1 text helpers, allocation-free.

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of the first header named `name` in a head.
fn header<'h>(head: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

fn parse_decimal(digits: &[u8]) -> usize {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("a decimal number")
}

fn parse_hex(digits: &[u8]) -> usize {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| usize::from_str_radix(s, 16).ok())
        .expect("a chunk size")
}

// The client.

/// Reads from `stream` into `buf[*filled..]`, at least one byte.
fn read_some(stream: &mut TcpStream, buf: &mut [u8], filled: &mut usize) {
    let n = stream.read(&mut buf[*filled..]).expect("read response");
    assert!(n > 0, "gateway closed the connection");
    *filled += n;
}

/// Reads the responses to one request write; nothing may follow them. With `check`, checks
/// them against `reply` (the warm-up only reads them: the 429 scenario's first request
/// passes).
fn read_replies(stream: &mut TcpStream, buf: &mut [u8], reply: &Reply, check: bool) {
    let (mut pos, mut filled) = (0, 0);
    for _ in 0..reply.count {
        let head_end = loop {
            if let Some(end) = find(&buf[pos..filled], b"\r\n\r\n") {
                break pos + end + 4;
            }
            read_some(stream, buf, &mut filled);
        };
        let head = &buf[pos..head_end];
        let status = parse_decimal(&head[9..12]);
        let chunked = header(head, b"transfer-encoding") == Some(b"chunked");
        let length = header(head, b"content-length").map(parse_decimal);
        let expected = status == usize::from(reply.status) && chunked == reply.chunked;
        assert!(expected || !check, "{}", String::from_utf8_lossy(head));
        pos = head_end;
        if chunked {
            let mut decoded = 0;
            loop {
                let line_end = loop {
                    if let Some(end) = find(&buf[pos..filled], b"\r\n") {
                        break pos + end;
                    }
                    read_some(stream, buf, &mut filled);
                };
                let size = parse_hex(&buf[pos..line_end]);
                pos = line_end + 2;
                while filled < pos + size + 2 {
                    read_some(stream, buf, &mut filled);
                }
                assert_eq!(&buf[pos + size..pos + size + 2], b"\r\n", "chunk end");
                if check {
                    let data = &buf[pos..pos + size];
                    assert_eq!(data, &reply.body[decoded..decoded + size], "chunk data");
                }
                decoded += size;
                pos += size + 2;
                if size == 0 {
                    break;
                }
            }
            assert!(decoded == reply.body.len() || !check, "chunked body");
        } else {
            let length = length.expect("content-length");
            while filled < pos + length {
                read_some(stream, buf, &mut filled);
            }
            assert!(&buf[pos..pos + length] == reply.body || !check, "body");
            pos += length;
        }
    }
    assert_eq!(pos, filled, "bytes after the last response");
}

// The gateway.

/// Top-level TOML and API lines that put every limit on the route: a required key in a plan
/// with a throttle and a quota, a stage throttle, per-client throttles, the account bucket
/// and priority shedding (none of them ever refuses here). Usage is not flushed during the
/// test and one quota chunk covers it, so the keeper thread stays quiet.
fn limits_config(state: &Path) -> (String, String) {
    let never = "{ rate_per_s = 1000000, burst = 1000000 }";
    let top = format!(
        "[state]\ndir = \"{}\"\nquota_chunk = 1000000\nusage_flush_ms = 3600000\n\n\
         [throttle]\nrate_per_s = 1000000\nburst = 1000000\n\n[overload]\nin_flight_max = 1000\n\n\
         [[api_keys.keys]]\nid = \"k\"\nvalue = \"alloc-test-key-0123456789\"\n\n\
         [[usage_plans]]\nid = \"p\"\nkeys = [\"k\"]\nthrottle = {never}\n\
         quota = {{ limit = 4000000000, period = \"MONTH\" }}\n\n\
         [[usage_plans.stages]]\napi = \"a\"\nroutes = {{ \"GET /items/{{id}}\" = {never} }}\n\n",
        state.display()
    );
    let api = format!(
        "api_key_required = true\nclient_throttle = {never}\n\n\
         [apis.stages.\"$default\"]\nthrottle = {never}\n\n"
    );
    (top, api)
}

/// Routes of the [`Setup::Refusals`] gateway, and its state directory: routes with a key
/// requirement or a throttle have their usage counted, and usage is not flushed during the
/// test, so the keeper thread stays quiet.
fn refusals_config(state: &Path) -> (String, String) {
    let top = format!(
        "[state]\ndir = \"{}\"\nusage_flush_ms = 3600000\n\n",
        state.display()
    );
    let routes = "[[apis.routes]]\nroute = \"GET /keyed\"\nintegration = \"mock\"\n\
                  api_key_required = true\n\n\
                  [[apis.routes]]\nroute = \"GET /throttled\"\nintegration = \"mock\"\n\
                  client_throttle = { rate_per_s = 0.001, burst = 1 }\n\n";
    (top, routes.to_string())
}

/// The whole configuration: `setup`'s lines and the routes every scenario uses.
fn config(setup: Setup, up: SocketAddr, scratch: &Path) -> String {
    let (top, api) = match setup {
        Setup::Plain => (String::new(), String::new()),
        Setup::Limits => limits_config(&scratch.join("state")),
        Setup::Refusals => refusals_config(&scratch.join("state")),
        Setup::AccessLog => {
            let log = scratch.join("access.log");
            let top = format!("[access_log]\npath = \"{}\"\n\n", log.display());
            (top, String::new())
        }
    };
    format!(
        "{top}[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:0\"\n\n[[apis]]\nid = \"a\"\n{api}\n\
         [[apis.routes]]\nroute = \"GET /items/{{id}}\"\nintegration = \"up\"\n\n\
         [[apis.routes]]\nroute = \"POST /upload\"\nintegration = \"upload\"\n\n\
         [[apis.routes]]\nroute = \"GET /chunked\"\nintegration = \"chunked\"\n\n\
         [[apis.routes]]\nroute = \"GET /mock\"\nintegration = \"mock\"\n\n\
         [apis.integrations.up]\ntype = \"http\"\nurl = \"http://{up}/items/{{id}}\"\n\n\
         [apis.integrations.upload]\ntype = \"http\"\nurl = \"http://{up}/upload\"\n\n\
         [apis.integrations.chunked]\ntype = \"http\"\nurl = \"http://{up}/chunked\"\n\n\
         [apis.integrations.mock]\ntype = \"mock\"\nbody = '{{\"mock\":true}}'\n"
    )
}

/// Allocations counted in a measured window.
struct Measured {
    /// Per request, every thread but the access log writer.
    per_request: f64,
    /// Per request, the access log writer thread.
    log_writer_per_request: f64,
}

fn measure(scenario: &Scenario, driver: DriverChoice, up: SocketAddr) -> Measured {
    let scratch = std::env::temp_dir().join(format!(
        "tollgate-alloc-{}-{driver:?}-{}",
        std::process::id(),
        scenario
            .name
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    ));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let path = scratch.join("tollgate.toml");
    std::fs::write(&path, config(scenario.setup, up, &scratch)).expect("write config");
    let gateway = Gateway::start(Options {
        config: path,
        driver: Some(driver),
        workers: Some(1),
        test_clock: false,
    })
    .expect("start gateway");
    let addr = gateway.listener_addr("main").expect("listener");
    let mut client = TcpStream::connect(addr).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let request = (scenario.request)();
    let mut buf = vec![0u8; 128 * 1024];
    let (pause, warm_up, requests) = match scenario.pace {
        Pace::BackToBack => (None, 100, 1000),
        Pace::Pause(ms) => (Some(Duration::from_millis(ms)), 3, 20),
    };
    let mut exchange = |check: bool| {
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
        client.write_all(&request).expect("write");
        read_replies(&mut client, &mut buf, &scenario.reply, check);
    };
    for _ in 0..warm_up {
        exchange(false);
    }
    let log = scratch.join("access.log");
    let mut logged = warm_up;
    if scenario.setup == Setup::AccessLog {
        // Once the warm-up's lines are written, the worker's log buffers are warm too (the
        // writer thread hands each written buffer back for the next hand-off). One request
        // more: the wait was a pause, the connection is back in its busy state.
        wait_for_lines(&log, logged);
        exchange(false);
        logged += 1;
    }
    let backtraces = std::env::var_os("ALLOC_BACKTRACES").is_some_and(|v| v == "1");
    let before = (
        ALLOCATIONS.load(Ordering::Relaxed),
        LOG_WRITER_ALLOCATIONS.load(Ordering::Relaxed),
    );
    BACKTRACES.store(backtraces, Ordering::Relaxed);
    for _ in 0..requests {
        exchange(true);
    }
    BACKTRACES.store(false, Ordering::Relaxed);
    let after = (
        ALLOCATIONS.load(Ordering::Relaxed),
        LOG_WRITER_ALLOCATIONS.load(Ordering::Relaxed),
    );
    for trace in RECORDED
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default()
    {
        eprintln!("{driver:?} {}: allocation at\n{trace}", scenario.name);
    }
    drop(client);
    // Stopped, not dropped: its threads must not run on into the next scenario's count. A
    // stop also flushes the workers' log buffers and joins the log writer.
    gateway.stop().expect("stop gateway");
    if scenario.setup == Setup::AccessLog {
        // The log is really on: every request has its line.
        assert_eq!(log_lines(&log), logged + requests, "access log lines");
    }
    let _ = std::fs::remove_dir_all(scratch);
    let requests = (requests * scenario.reply.count) as f64;
    Measured {
        per_request: (after.0 - before.0) as f64 / requests,
        log_writer_per_request: (after.1 - before.1) as f64 / requests,
    }
}

/// Lines in the access log.
fn log_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
}

/// Waits until the access log holds `lines` lines. Workers hand their lines to the writer
/// thread every 50 ms, and it hands the buffers back once written: nothing announces that,
/// so the file it writes is what is watched (a bounded poll; only the warm-up needs it).
fn wait_for_lines(log: &Path, lines: usize) {
    let count = || log_lines(log);
    for _ in 0..100 {
        if count() >= lines {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(), lines, "access log lines");
}

#[test]
fn allocations_per_request_after_warm_up() {
    let up = upstream();
    let mut failures = Vec::new();
    for driver in [DriverChoice::Uring, DriverChoice::Epoll] {
        for scenario in SCENARIOS {
            let m = measure(scenario, driver, up);
            let bound = match driver {
                DriverChoice::Epoll => scenario.bound.epoll,
                _ => scenario.bound.uring,
            };
            let log_writer = match scenario.setup {
                Setup::AccessLog => format!(", log writer thread {:.3}", m.log_writer_per_request),
                _ => String::new(),
            };
            eprintln!(
                "{driver:?} {:32} {:.3} allocations per request (max {bound}){log_writer}",
                scenario.name, m.per_request,
            );
            if m.per_request > bound {
                failures.push(format!(
                    "{driver:?} {}: {:.3} allocations per request (max {bound})",
                    scenario.name, m.per_request
                ));
            }
            if m.log_writer_per_request > LOG_WRITER_MAX {
                failures.push(format!(
                    "{driver:?} {}: {:.3} log writer allocations per request (max {LOG_WRITER_MAX})",
                    scenario.name, m.log_writer_per_request
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
