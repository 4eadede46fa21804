//! Golden configuration files: every `examples/*.toml` must compile to what [`EXAMPLES`]
//! says of it, and every `tests/invalid/*.toml` must fail with exactly the message in
//! `tests/invalid/errors.txt` (file, line, column, key, what was found and what is expected).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tollgate_config::plan::IntegrationPlan;
use tollgate_config::Plan;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    out
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
}

/// What an example compiles to.
struct Example {
    file: &'static str,
    /// `NAME ADDRESS`, in file order.
    listeners: &'static [&'static str],
    /// The admin listener's address.
    admin: Option<&'static str>,
    /// `ID: STAGE, STAGE`, in file order (stages sorted, as compiled).
    apis: &'static [&'static str],
    /// Every compiled route in plan order: `API STAGE ROUTE_KEY -> ANSWER`, where ANSWER is
    /// `http AUTHORITY`, `mock STATUS` or `not found` (the catch-all behind a stage without
    /// `$default`), followed by `, key required` when the route needs an API key.
    routes: &'static [&'static str],
    /// Requests and the route they reach: (listener, `METHOD /path`, `API STAGE ROUTE_KEY`).
    requests: &'static [(&'static str, &'static str, &'static str)],
    /// Usage plans: `ID: KEY, KEY`.
    usage_plans: &'static [&'static str],
}

const EXAMPLES: &[Example] = &[
    Example {
        file: "quickstart.toml",
        listeners: &["public 127.0.0.1:8080", "backend 127.0.0.1:9081"],
        admin: Some("127.0.0.1:9901"),
        apis: &["shop: $default, prod", "backend: $default"],
        routes: &[
            "shop $default GET /pets/{id} -> http 127.0.0.1:9081",
            "shop $default GET /hello -> mock 200",
            "shop $default (unmatched) -> not found",
            "shop prod GET /pets/{id} -> http 127.0.0.1:9081",
            "shop prod GET /hello -> mock 200",
            "shop prod (unmatched) -> not found",
            "backend $default GET /pet/{id} -> mock 200",
            "backend $default (unmatched) -> not found",
        ],
        requests: &[
            ("public", "GET /pets/42", "shop $default GET /pets/{id}"),
            ("public", "GET /prod/pets/42", "shop prod GET /pets/{id}"),
            ("public", "GET /hello", "shop $default GET /hello"),
            ("public", "GET /prod/hello", "shop prod GET /hello"),
            ("public", "GET /pet/42", "shop $default (unmatched)"),
            ("backend", "GET /pet/42", "backend $default GET /pet/{id}"),
            ("backend", "GET /pets/42", "backend $default (unmatched)"),
        ],
        usage_plans: &[],
    },
    Example {
        file: "usage-plans.toml",
        listeners: &["public 127.0.0.1:8080"],
        admin: Some("127.0.0.1:9901"),
        apis: &["shop: $default"],
        routes: &[
            "shop $default GET /pets/{id} -> mock 200, key required",
            "shop $default GET /health -> mock 200",
            "shop $default (unmatched) -> not found",
        ],
        requests: &[
            ("public", "GET /pets/1", "shop $default GET /pets/{id}"),
            ("public", "GET /health", "shop $default GET /health"),
            ("public", "POST /pets/1", "shop $default (unmatched)"),
        ],
        usage_plans: &["gold: demo"],
    },
];

/// The plan, described in [`Example`]'s terms.
struct Described {
    listeners: Vec<String>,
    admin: Option<String>,
    apis: Vec<String>,
    routes: Vec<String>,
    usage_plans: Vec<String>,
}

fn describe(plan: &Plan) -> Described {
    let route = |i: usize| {
        let r = &plan.routes[i];
        format!("{} {} {}", plan.apis[r.api].id, r.stage, r.route_key)
    };
    Described {
        listeners: plan
            .listeners
            .iter()
            .map(|l| format!("{} {}", l.name, l.addr))
            .collect(),
        admin: plan.admin.as_ref().map(|a| a.addr.to_string()),
        apis: plan
            .apis
            .iter()
            .map(|a| format!("{}: {}", a.id, a.stages.join(", ")))
            .collect(),
        routes: (0..plan.routes.len())
            .map(|i| {
                let r = &plan.routes[i];
                let answer = match &r.integration {
                    IntegrationPlan::Http(h) => {
                        format!("http {}", plan.upstreams[h.upstream].authority)
                    }
                    IntegrationPlan::Mock(m) => format!("mock {}", m.status),
                    IntegrationPlan::NotFound => "not found".to_string(),
                };
                let key = if r.limits.api_key_required {
                    ", key required"
                } else {
                    ""
                };
                format!("{} -> {answer}{key}", route(i))
            })
            .collect(),
        usage_plans: plan
            .usage
            .plans
            .iter()
            .map(|p| format!("{}: {}", p.id, p.keys.join(", ")))
            .collect(),
    }
}

/// Where `request` (`METHOD /path`) on `listener` is routed, as `API STAGE ROUTE_KEY`.
fn routed(plan: &Plan, listener: &str, request: &str) -> Option<String> {
    let (method, path) = request.split_once(' ')?;
    let l = plan.listeners.iter().find(|l| l.name == listener)?;
    let i = l.routes.lookup(None, method, path, &mut Vec::new())?;
    let r = &plan.routes[i];
    Some(format!(
        "{} {} {}",
        plan.apis[r.api].id, r.stage, r.route_key
    ))
}

#[test]
fn examples_compile_to_what_they_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let examples = files(&dir);
    let names: Vec<&str> = examples.iter().map(|p| file_name(p)).collect();
    let described: Vec<&str> = EXAMPLES.iter().map(|e| e.file).collect();
    assert_eq!(
        names, described,
        "every example has one entry in EXAMPLES, in file name order"
    );
    for (path, want) in examples.iter().zip(EXAMPLES) {
        let plan = tollgate_config::load(path).unwrap_or_else(|e| panic!("{e}"));
        let got = describe(&plan);
        let file = want.file;
        assert_eq!(got.listeners, want.listeners, "{file}: listeners");
        assert_eq!(got.admin.as_deref(), want.admin, "{file}: admin");
        assert_eq!(got.apis, want.apis, "{file}: APIs and stages");
        assert_eq!(got.routes, want.routes, "{file}: routes");
        assert_eq!(got.usage_plans, want.usage_plans, "{file}: usage plans");
        for (listener, request, route) in want.requests {
            assert_eq!(
                routed(&plan, listener, request).as_deref(),
                Some(*route),
                "{file}: {request} on listener {listener:?}"
            );
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
    let mut wrong = Vec::new();
    for path in files(&dir) {
        let name = file_name(&path);
        let text = std::fs::read_to_string(&path).expect("read");
        let got = match tollgate_config::compile(Path::new(name), &text) {
            Ok(_) => "(compiled)".to_string(),
            Err(e) => e.to_string(),
        };
        match expected.get(name) {
            Some(want) if got == *want => {}
            Some(want) => wrong.push(format!("{name}\n  want: {want}\n  got:  {got}")),
            None => wrong.push(format!("{name}: no line in errors.txt; got: {got}")),
        }
        seen += 1;
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    assert_eq!(
        seen,
        expected.len(),
        "errors.txt lists files that do not exist"
    );
}

/// The review's case: a wrong value in quickstart's `[apis.integrations.pets]` was reported
/// at the table's header under `apis.routes`.
#[test]
fn a_wrong_timeout_in_the_quickstart_is_reported_at_the_timeout() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.toml");
    let text = std::fs::read_to_string(path).expect("quickstart.toml");
    assert!(text.contains("\ntimeout_ms = 29000\n"));
    let text = text.replace("\ntimeout_ms = 29000\n", "\ntimeout_ms = \"x\"\n");
    let Err(err) = tollgate_config::compile(Path::new("quickstart.toml"), &text) else {
        panic!("a string timeout compiled");
    };
    assert_eq!(
        err.to_string(),
        "quickstart.toml:48:14: apis.integrations.pets.timeout_ms: invalid type: string \"x\", \
         expected u64"
    );
}

/// Every `key = value` line of every `[apis.integrations.ID]` table in the examples, its
/// value replaced by `true` (the wrong type for every integration field), fails at that
/// line and value under `apis.integrations.ID.key`.
#[test]
fn a_wrong_value_anywhere_in_an_example_integration_is_reported_where_it_is_written() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = BTreeMap::<String, usize>::new();
    for path in files(&dir) {
        let name = file_name(&path);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        let mut integration: Option<&str> = None;
        for (n, line) in lines.iter().enumerate() {
            if line.starts_with('[') {
                integration = line
                    .strip_prefix("[apis.integrations.")
                    .and_then(|rest| rest.strip_suffix(']'));
                continue;
            }
            let (Some(id), Some((key, _))) = (integration, line.split_once(" = ")) else {
                continue;
            };
            let mut mutated = lines.clone();
            let wrong = format!("{key} = true");
            mutated[n] = &wrong;
            let err = tollgate_config::compile(Path::new(name), &mutated.join("\n"))
                .err()
                .unwrap_or_else(|| panic!("{name}:{}: `{wrong}` compiled", n + 1))
                .to_string();
            let want = format!(
                "{name}:{}:{}: apis.integrations.{id}.{key}: invalid type: boolean `true`, expected ",
                n + 1,
                key.len() + 4
            );
            assert!(err.starts_with(&want), "want {want}…\ngot  {err}");
            *checked.entry(key.to_string()).or_default() += 1;
        }
    }
    let keys: Vec<&str> = checked.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "body",
            "headers",
            "request_headers",
            "status",
            "timeout_ms",
            "type",
            "url"
        ],
        "integration fields the examples exercise"
    );
}
