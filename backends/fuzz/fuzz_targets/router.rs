//! The router never panics on arbitrary templates and paths, and a match's captures lie
//! inside the path, one per template parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_config::router::Router;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.lines();
    let mut router = Router::new();
    let mut names = Vec::new();
    let path = lines.next().unwrap_or("/");
    for (i, line) in lines.enumerate().take(64) {
        let (method, template) = match line.split_once(' ') {
            Some((m, t)) => (Some(m), t),
            None => (None, line),
        };
        if let Ok(params) = router.insert(method, template, i) {
            names.push((i, params.len()));
        }
    }
    if !path.starts_with('/') {
        return;
    }
    let mut captures = Vec::new();
    for method in ["GET", "POST", "ANY"] {
        if let Some(&i) = router.lookup(method, path, &mut captures) {
            let expected = names.iter().find(|(n, _)| *n == i).map(|(_, c)| *c);
            assert_eq!(Some(captures.len()), expected);
            for c in &captures {
                assert!(c.start <= c.end && c.end <= path.len());
            }
        }
    }
});
