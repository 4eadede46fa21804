//! The command line: `tollgate check` on valid and invalid files (exit status, the plan on
//! stdout, `FILE:LINE:COL: key: problem` on stderr), `--help` for `run` and `check`, and `run`
//! refusing an invalid file on each driver.

use std::process::{Command, Output};
use std::time::Duration;

use tollgate_tests::config::listener;
use tollgate_tests::gateway::{binary, temp_config_path};
use tollgate_tests::DRIVERS;

/// A config file removed on drop.
struct TempConfig(std::path::PathBuf);

impl TempConfig {
    fn new(text: &str) -> TempConfig {
        let path = temp_config_path();
        std::fs::write(&path, text).expect("write config");
        TempConfig(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the binary with `args` and a deadline.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tollgate");
    let (tx, rx) = std::sync::mpsc::channel();
    let id = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let read = |mut r: Box<dyn std::io::Read + Send>| {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            s
        };
        let err_thread = std::thread::spawn(move || read(Box::new(stderr)));
        let out = read(Box::new(stdout));
        let err = err_thread.join().unwrap_or_default();
        let status = child.wait().expect("wait");
        let _ = tx.send(Output {
            status,
            stdout: out,
            stderr: err,
        });
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("tollgate {args:?} (pid {id}) did not finish in 20 s"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const VALID: &str = r#"
[[apis]]
id = "shop"

[apis.stages.prod]
variables = { v = "1" }

[[apis.routes]]
route = "GET /pets/{id}"
integration = "pets"

[[apis.routes]]
route = "ANY /files/{proxy+}"
integration = "pets"

[apis.integrations.pets]
type = "mock"
body = "x"
"#;

#[test]
fn check_valid_file_prints_the_plan() {
    let cfg = TempConfig::new(&format!("{}{VALID}", listener("public")));
    let out = run(&["check", "-c", cfg.path()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("GET /pets/{id}"), "{stdout}");
    assert!(stdout.contains("ANY /files/{proxy+}"), "{stdout}");
    assert!(stdout.contains("/prod/pets/{id}"), "{stdout}");
    assert!(stdout.contains("public"), "{stdout}");
}

#[test]
fn check_invalid_file_names_line_column_and_key() {
    let cases: [(&str, &str, &str); 3] = [
        // (file body, position, key)
        (
            "[limits]\nheader_bytes_max = 5\n",
            ":2:20:",
            "limits.header_bytes_max",
        ),
        (
            "[[listeners]]\nname = \"a\"\nbind = \"not an address\"\n",
            ":3:8:",
            "listeners[0].bind",
        ),
        ("[server]\nworkers = 0\n", ":2:", "server.workers"),
    ];
    for (body, position, key) in cases {
        let cfg = TempConfig::new(body);
        let out = run(&["check", "-c", cfg.path()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body:?}: {stderr}");
        let prefix = format!("error: {}{position}", cfg.path());
        assert!(
            stderr.starts_with(&prefix),
            "{body:?}: want {prefix:?}, got {stderr}"
        );
        assert!(stderr.contains(&format!("{key}:")), "{body:?}: {stderr}");
        assert!(stderr.contains("expected"), "{body:?}: {stderr}");
    }
}

#[test]
fn check_reports_toml_syntax_and_unknown_keys() {
    for body in ["[server\nworkers = 1\n", "[limits]\nno_such_limit = 3\n"] {
        let cfg = TempConfig::new(body);
        let out = run(&["check", "-c", cfg.path()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {}:", cfg.path())),
            "{body:?}: {stderr}"
        );
    }
    let out = run(&["check", "-c", "/nonexistent/tollgate.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!out.stderr.is_empty());
}

#[test]
fn help_for_run_and_check() {
    let out = run(&["run", "--help"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for flag in ["--config", "--driver", "--workers", "--log-format"] {
        assert!(stdout.contains(flag), "run --help lacks {flag}: {stdout}");
    }
    let out = run(&["check", "--help"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("--config"), "{stdout}");
    let out = run(&["--help"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("run") && stdout.contains("check"),
        "{stdout}"
    );
}

#[test]
fn run_refuses_an_invalid_file() {
    for driver in DRIVERS {
        let cfg = TempConfig::new("[limits]\nheader_bytes_max = 5\n");
        let out = run(&[
            "--log-format",
            "json",
            "run",
            "-c",
            cfg.path(),
            "--driver",
            driver.arg(),
        ]);
        assert!(!out.status.success(), "{driver:?}: {out:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("limits.header_bytes_max"),
            "{driver:?}: {stderr}"
        );
    }
}
