//! Golden configuration files: every `examples/*.toml` must compile, and every
//! `tests/invalid/*.toml` must fail with exactly the message in `tests/invalid/errors.txt`
//! (file, line, column, key, what was found and what is expected).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    out
}

#[test]
fn examples_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let examples = files(&dir);
    assert!(!examples.is_empty());
    for path in examples {
        if let Err(e) = tollgate_config::load(&path) {
            panic!("{e}");
        }
    }
}

#[test]
fn invalid_files_fail_with_their_exact_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let expected_text = std::fs::read_to_string(dir.join("errors.txt")).expect("errors.txt");
    let expected: BTreeMap<&str, &str> = expected_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_once(" => ").expect("`file => message` lines"))
        .collect();
    let mut seen = 0;
    for path in files(&dir) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        let text = std::fs::read_to_string(&path).expect("read");
        let err = tollgate_config::compile(Path::new(name), &text)
            .err()
            .unwrap_or_else(|| panic!("{name} compiled but should fail"));
        let want = expected
            .get(name)
            .unwrap_or_else(|| panic!("{name}: no line in errors.txt; got: {err}"));
        assert_eq!(err.to_string(), *want, "{name}");
        seen += 1;
    }
    assert_eq!(
        seen,
        expected.len(),
        "errors.txt lists files that do not exist"
    );
}
