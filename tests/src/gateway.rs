//! Runs the real `tollgate` binary as a child process for one test.
//!
//! [`Gateway::start`] writes the configuration to a unique temporary file, spawns
//! `tollgate --log-format json run -c FILE --driver D --workers N`, and reads the JSON log lines
//! from its stderr on a thread. Every line is kept (it is printed when a test panics) and every
//! parsed event is appended to a shared list that [`Gateway::wait_for`] scans under a condition
//! variable, so tests synchronise on log events instead of sleeping. Listener addresses come
//! from the `listening` events (configurations bind port 0).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a gateway may take to log `ready`.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a reload or an exit may take.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// The io driver the gateway is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring.
    Uring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

/// Both drivers; every end-to-end test runs against each.
pub const DRIVERS: [Driver; 2] = [Driver::Uring, Driver::Epoll];

impl Driver {
    /// The `--driver` value.
    pub fn arg(self) -> &'static str {
        match self {
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Path of the `tollgate` binary: `TOLLGATE_BIN` when set, else the `tollgate` of the test
/// executable's own profile: `target/<profile>/tollgate` next to the `target/<profile>/deps/`
/// the test runs from (so `cargo test --release` drives the release build, and
/// `CARGO_TARGET_DIR` or `--target` are followed). Panics with the command that builds it when
/// it does not exist.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TOLLGATE_BIN") {
        let path = PathBuf::from(bin);
        assert!(
            path.is_file(),
            "TOLLGATE_BIN is set to {}, which is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let dir = profile_dir(&exe).unwrap_or_else(|| {
        panic!(
            "cannot tell the build profile from the test executable {}: set TOLLGATE_BIN",
            exe.display()
        )
    });
    let path = dir.join("tollgate");
    assert!(
        path.is_file(),
        "tollgate binary not found at {}: build it with `{}` first (or set TOLLGATE_BIN)",
        path.display(),
        build_command(dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug"))
    );
    path
}

/// The profile directory (`target/<profile>`) of an executable Cargo built: the parent of the
/// `deps/` (tests) or `examples/` directory it is in, else its own directory.
fn profile_dir(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().map(Path::to_path_buf),
        _ => Some(dir.to_path_buf()),
    }
}

/// The command that builds the binary into the profile directory named `profile`.
fn build_command(profile: &str) -> String {
    match profile {
        "debug" => "cargo build -p tollgate --bin tollgate".to_string(),
        "release" => "cargo build --release -p tollgate --bin tollgate".to_string(),
        other => format!("cargo build --profile {other} -p tollgate --bin tollgate"),
    }
}

/// A unique path under the temp dir for a configuration file.
pub fn temp_config_path() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("tollgate-test-{}-{n}.toml", std::process::id()))
}

/// Runs the binary with `args` to its exit and returns its status and output; kills it and
/// panics when it has not exited within `deadline`.
pub fn run_binary(args: &[&str], deadline: Duration) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate");
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut pipe = pipe.expect("piped output");
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as _));
    let end = Instant::now() + deadline;
    // Both pipes reach end of file when the process exits.
    let collected = stdout
        .recv_timeout(end.saturating_duration_since(Instant::now()))
        .and_then(|out| {
            let err = stderr.recv_timeout(end.saturating_duration_since(Instant::now()))?;
            Ok((out, err))
        });
    let Ok((stdout, stderr)) = collected else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("tollgate {args:?} did not exit within {deadline:?}");
    };
    let status = child.wait().expect("wait for tollgate");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// What `tollgate check` said about a configuration.
#[derive(Debug)]
pub struct Checked {
    /// The path of the file checked (error messages start with it).
    pub path: String,
    /// The exit code.
    pub code: Option<i32>,
    /// Standard output (the plan of a valid file).
    pub stdout: String,
    /// Standard error (`error: FILE:LINE:COL: key: problem…` for an invalid file).
    pub stderr: String,
}

impl Checked {
    /// The `LINE:COL` of an error on stderr, parsed from `error: FILE:LINE:COL: …`.
    pub fn position(&self) -> Option<(usize, usize)> {
        let rest = self
            .stderr
            .strip_prefix("error: ")?
            .strip_prefix(self.path.as_str())?
            .strip_prefix(':')?;
        let mut parts = rest.splitn(3, ':');
        let line = parts.next()?.parse().ok()?;
        let column = parts.next()?.parse().ok()?;
        Some((line, column))
    }
}

/// Runs `tollgate check -c FILE` on `config_toml` (written to a temporary file, removed
/// afterwards).
pub fn check(config_toml: &str) -> Checked {
    let config = temp_config_path();
    std::fs::write(&config, config_toml).expect("write temp config");
    let path = config.to_str().expect("utf-8 temp path").to_string();
    let out = run_binary(&["check", "-c", &path], START_DEADLINE);
    let _ = std::fs::remove_file(&config);
    Checked {
        path,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `tollgate run` on `config_toml` with `driver`, expecting it to refuse the file and
/// exit unsuccessfully; returns its stderr (JSON log lines).
pub fn run_refused(config_toml: &str, driver: Driver) -> String {
    let config = temp_config_path();
    std::fs::write(&config, config_toml).expect("write temp config");
    let path = config.to_str().expect("utf-8 temp path").to_string();
    let args = [
        "--log-format",
        "json",
        "run",
        "-c",
        &path,
        "--driver",
        driver.arg(),
    ];
    let out = run_binary(&args, START_DEADLINE);
    let _ = std::fs::remove_file(&config);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{driver:?}: `tollgate run` accepted the file: {stderr}"
    );
    stderr
}

/// Log lines and parsed events shared with the stderr reader thread.
#[derive(Default)]
struct Log {
    /// Every stderr line, parsed or not.
    lines: Vec<String>,
    /// Lines that parsed as JSON objects, in order.
    events: Vec<Value>,
    /// Stderr reached end of file (the process exited).
    eof: bool,
}

type SharedLog = Arc<(Mutex<Log>, Condvar)>;

/// Options for [`Gateway::start_with`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// io driver.
    pub driver: Driver,
    /// `--workers`.
    pub workers: usize,
    /// `--test-clock`.
    pub test_clock: bool,
    /// Open-files limit (soft and hard) to start the process with.
    pub nofile: Option<u64>,
    /// `RUST_LOG` of the process.
    pub log_filter: &'static str,
}

impl Options {
    /// Two workers on `driver`.
    pub fn new(driver: Driver) -> Options {
        Options {
            driver,
            workers: 2,
            test_clock: false,
            nofile: None,
            log_filter: "info",
        }
    }

    /// Starts the process with this open-files limit (through `sh -c 'ulimit -n N; exec …'`).
    pub fn nofile(mut self, limit: u64) -> Options {
        self.nofile = Some(limit);
        self
    }

    /// Enables the test clock control socket.
    pub fn test_clock(mut self) -> Options {
        self.test_clock = true;
        self
    }

    /// Sets the process's `RUST_LOG` (e.g. to see a module's debug events).
    pub fn log_filter(mut self, filter: &'static str) -> Options {
        self.log_filter = filter;
        self
    }

    /// Sets the worker count.
    pub fn workers(mut self, workers: usize) -> Options {
        self.workers = workers;
        self
    }
}

/// A running gateway process; killed (and its config file removed) on drop.
pub struct Gateway {
    child: Mutex<Option<Child>>,
    config: PathBuf,
    log: SharedLog,
    /// The driver it runs on (for messages).
    pub driver: Driver,
}

impl Gateway {
    /// Starts the binary on `config_toml` with two workers and waits for `ready`.
    pub fn start(config_toml: &str, driver: Driver) -> Gateway {
        Gateway::start_with(config_toml, Options::new(driver))
    }

    /// Starts the binary with explicit options and waits for `ready`.
    pub fn start_with(config_toml: &str, options: Options) -> Gateway {
        let config = temp_config_path();
        std::fs::write(&config, config_toml).expect("write temp config");
        let mut command = match options.nofile {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let mut child = command
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("-c")
            .arg(&config)
            .arg("--driver")
            .arg(options.driver.arg())
            .arg("--workers")
            .arg(options.workers.to_string())
            .args(options.test_clock.then_some("--test-clock"))
            .env("RUST_LOG", options.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tollgate");
        let stderr = child.stderr.take().expect("piped stderr");
        let log: SharedLog = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let shared = Arc::clone(&log);
        std::thread::spawn(move || read_log(stderr, shared));
        let gateway = Gateway {
            child: Mutex::new(Some(child)),
            config,
            log,
            driver: options.driver,
        };
        gateway
            .wait_for(|e| is(e, "ready"), START_DEADLINE)
            .unwrap_or_else(|e| panic!("gateway ({:?}) did not become ready: {e}", options.driver));
        gateway
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        let child = self.child.lock().expect("child lock");
        child.as_ref().map(|c| c.id()).expect("gateway running")
    }

    /// User plus system CPU time of the gateway so far, in clock ticks (from /proc).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name (which is in parentheses): utime is the 12th, stime
        // the 13th.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }

    /// The address of listener `name` (the latest `listening` event for it).
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.try_addr(name)
            .unwrap_or_else(|| panic!("no `listening` event for listener {name:?}"))
    }

    /// The address of listener `name`, if it has logged `listening`.
    pub fn try_addr(&self, name: &str) -> Option<SocketAddr> {
        let log = self.log.0.lock().expect("log lock");
        log.events.iter().rev().find_map(|e| {
            if is(e, "listening") && e["listener"] == name {
                e["addr"].as_str()?.parse().ok()
            } else {
                None
            }
        })
    }

    /// All listener addresses by name.
    pub fn addrs(&self) -> HashMap<String, SocketAddr> {
        let log = self.log.0.lock().expect("log lock");
        let mut out = HashMap::new();
        for e in log.events.iter().filter(|e| is(e, "listening")) {
            if let (Some(n), Some(a)) = (e["listener"].as_str(), e["addr"].as_str()) {
                if let Ok(a) = a.parse() {
                    out.insert(n.to_string(), a);
                }
            }
        }
        out
    }

    /// Number of events logged so far; pass it to [`Gateway::wait_for_since`] to wait only
    /// for later events.
    pub fn mark(&self) -> usize {
        self.log.0.lock().expect("log lock").events.len()
    }

    /// Waits for any event (from the start) matching `pred`.
    pub fn wait_for(
        &self,
        pred: impl Fn(&Value) -> bool,
        deadline: Duration,
    ) -> Result<Value, String> {
        self.wait_for_since(0, pred, deadline)
    }

    /// Waits for an event at index `mark` or later matching `pred`. Fails at the deadline or
    /// when the process exits without logging it.
    pub fn wait_for_since(
        &self,
        mark: usize,
        pred: impl Fn(&Value) -> bool,
        deadline: Duration,
    ) -> Result<Value, String> {
        let end = Instant::now() + deadline;
        let (lock, cvar) = &*self.log;
        let mut log = lock.lock().expect("log lock");
        let mut scanned = mark;
        loop {
            if let Some(e) = log.events.iter().skip(scanned).find(|e| pred(e)) {
                return Ok(e.clone());
            }
            scanned = scanned.max(log.events.len());
            if log.eof {
                drop(log);
                return Err(format!(
                    "the gateway exited before the awaited event ({})",
                    self.exit_status_text()
                ));
            }
            let now = Instant::now();
            if now >= end {
                return Err(format!("no matching event within {deadline:?}"));
            }
            log = cvar.wait_timeout(log, end - now).expect("log lock").0;
        }
    }

    /// Counts events (from the start) matching `pred`.
    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        let log = self.log.0.lock().expect("log lock");
        log.events.iter().filter(|e| pred(e)).count()
    }

    /// Every stderr line so far, joined.
    pub fn log_text(&self) -> String {
        self.log.0.lock().expect("log lock").lines.join("\n")
    }

    /// Rewrites the configuration file, sends SIGHUP and waits for `reload complete` (Ok with
    /// the new generation) or `reload failed…` (Err with its `error` field).
    pub fn reload(&self, new_toml: &str) -> Result<u64, String> {
        std::fs::write(&self.config, new_toml).expect("rewrite config");
        let mark = self.mark();
        self.signal(libc::SIGHUP);
        let e = self
            .wait_for_since(
                mark,
                |e| is(e, "reload complete") || is_reload_failed(e),
                EVENT_DEADLINE,
            )
            .unwrap_or_else(|err| panic!("reload: {err}"));
        if is(&e, "reload complete") {
            Ok(e["generation"].as_u64().expect("generation field"))
        } else {
            Err(e["error"].as_str().unwrap_or_default().to_string())
        }
    }

    /// The exit status if the process has exited, for messages.
    fn exit_status_text(&self) -> String {
        let mut child = self.child.lock().expect("child lock");
        match child.as_mut().map(|c| c.wait()) {
            Some(Ok(status)) => format!("exit status: {status}"),
            Some(Err(e)) => format!("wait failed: {e}"),
            None => "already reaped".to_string(),
        }
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let child = self.child.lock().expect("child lock");
        let child = child.as_ref().expect("process running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, which
        // has not been reaped (we hold its `Child`).
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits (up to `deadline`) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        {
            let (lock, cvar) = &*self.log;
            let mut log = lock.lock().expect("log lock");
            while !log.eof {
                let now = Instant::now();
                assert!(now < end, "the gateway did not exit within {deadline:?}");
                log = cvar.wait_timeout(log, end - now).expect("log lock").0;
            }
        }
        // stderr is closed: the process has exited or is about to; `wait` reaps it.
        self.child
            .lock()
            .expect("child lock")
            .take()
            .expect("process running")
            .wait()
            .expect("wait for tollgate")
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(EVENT_DEADLINE)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).unwrap_or_default();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
        if std::thread::panicking() {
            eprintln!(
                "---- tollgate log ({:?}) ----\n{}\n---- end of tollgate log ----",
                self.driver,
                self.log_text()
            );
        }
    }
}

/// Is `event` the `reload failed` event? (Its message continues: "reload failed; the previous
/// configuration keeps serving".)
pub fn is_reload_failed(event: &Value) -> bool {
    event["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("reload failed"))
}

/// Is `event` a log event with this `message`?
pub fn is(event: &Value, message: &str) -> bool {
    event["message"] == message
}

fn read_log(stderr: impl std::io::Read, log: SharedLog) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = line.trim_end().to_string();
                let (lock, cvar) = &*log;
                let mut l = lock.lock().expect("log lock");
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
                    l.events.push(v);
                }
                l.lines.push(text);
                cvar.notify_all();
            }
        }
    }
    let (lock, cvar) = &*log;
    lock.lock().expect("log lock").eof = true;
    cvar.notify_all();
}
