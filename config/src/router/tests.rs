//! Tests for the router: precedence tables, template errors, a node-visit
//! scaling check and a property test against a naive linear matcher.

use super::*;
use proptest::prelude::*;

/// Build a router whose value is the route's "METHOD /template" string.
fn router(routes: &[&str]) -> Router<String> {
    let mut r = Router::new();
    for key in routes {
        let (method, template) = key.split_once(' ').unwrap();
        let method = (method != "ANY").then_some(method);
        r.insert(method, template, key.to_string())
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    r
}

/// Look up and return (route key, captured texts), or None.
fn hit(r: &Router<String>, method: &str, path: &str) -> Option<(String, Vec<String>)> {
    let mut caps = Vec::new();
    let value = r.lookup(method, path, &mut caps)?;
    Some((
        value.clone(),
        caps.iter().map(|c| path[c.clone()].to_string()).collect(),
    ))
}

fn assert_routes(r: &Router<String>, cases: &[(&str, &str, Option<&str>, &[&str])]) {
    for &(method, path, want, want_caps) in cases {
        let got = hit(r, method, path);
        let want = want.map(|w| {
            (
                w.to_string(),
                want_caps.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            )
        });
        assert_eq!(got, want, "{method} {path}");
    }
}

#[test]
fn literal_beats_param_beats_greedy() {
    let r = router(&[
        "GET /pets/dog",
        "GET /pets/{id}",
        "GET /pets/{proxy+}",
        "GET /pets/{id}/toys",
        "GET /pets/dog/toys",
    ]);
    assert_routes(
        &r,
        &[
            ("GET", "/pets/dog", Some("GET /pets/dog"), &[]),
            ("GET", "/pets/cat", Some("GET /pets/{id}"), &["cat"]),
            ("GET", "/pets/cat/x", Some("GET /pets/{proxy+}"), &["cat/x"]),
            ("GET", "/pets/dog/toys", Some("GET /pets/dog/toys"), &[]),
            (
                "GET",
                "/pets/cat/toys",
                Some("GET /pets/{id}/toys"),
                &["cat"],
            ),
            // literal `dog` leads nowhere for 3 segments: back off to {id}, then greedy.
            (
                "GET",
                "/pets/dog/toys/1",
                Some("GET /pets/{proxy+}"),
                &["dog/toys/1"],
            ),
            ("GET", "/pets", None, &[]),
        ],
    );
}

#[test]
fn method_beats_any_at_same_node_only() {
    let r = router(&[
        "ANY /pets/dog",
        "GET /pets/{id}",
        "ANY /pets/{id}",
        "POST /pets/{id}",
    ]);
    assert_routes(
        &r,
        &[
            // Path specificity first: ANY on the literal beats GET on the param.
            ("GET", "/pets/dog", Some("ANY /pets/dog"), &[]),
            ("GET", "/pets/cat", Some("GET /pets/{id}"), &["cat"]),
            ("POST", "/pets/cat", Some("POST /pets/{id}"), &["cat"]),
            ("PATCH", "/pets/cat", Some("ANY /pets/{id}"), &["cat"]),
            // Methods are case-sensitive tokens.
            ("get", "/pets/cat", Some("ANY /pets/{id}"), &["cat"]),
        ],
    );
}

#[test]
fn backtracks_when_specific_branch_lacks_method() {
    let r = router(&[
        "POST /pets/dog",
        "GET /pets/{id}",
        "PUT /pets/dog/toys",
        "GET /{proxy+}",
    ]);
    assert_routes(
        &r,
        &[
            ("GET", "/pets/dog", Some("GET /pets/{id}"), &["dog"]),
            ("POST", "/pets/dog", Some("POST /pets/dog"), &[]),
            // Dead end two levels down, then back to the root greedy.
            (
                "GET",
                "/pets/dog/toys",
                Some("GET /{proxy+}"),
                &["pets/dog/toys"],
            ),
            ("DELETE", "/pets/dog", None, &[]),
        ],
    );
}

#[test]
fn captures_are_cleared_after_backtracking() {
    // The {a} branch captures "x" then fails; the result must not keep it.
    let r = router(&["GET /{a}/y", "GET /{p+}"]);
    assert_routes(&r, &[("GET", "/x/z", Some("GET /{p+}"), &["x/z"])]);
    let mut caps = vec![0..1, 2..3];
    assert!(r.lookup("GET", "nope", &mut caps).is_none());
    assert!(caps.is_empty(), "captures cleared on failure");
}

#[test]
fn greedy_needs_one_or_more_segments() {
    let r = router(&["GET /pets/{proxy+}"]);
    assert_routes(
        &r,
        &[
            ("GET", "/pets", None, &[]),
            // Trailing slash: one empty segment, empty capture: no match.
            ("GET", "/pets/", None, &[]),
            ("GET", "/pets/a", Some("GET /pets/{proxy+}"), &["a"]),
            ("GET", "/pets/a/", Some("GET /pets/{proxy+}"), &["a/"]),
            ("GET", "/pets/a/b/c", Some("GET /pets/{proxy+}"), &["a/b/c"]),
            ("GET", "/pets//b", Some("GET /pets/{proxy+}"), &["/b"]),
        ],
    );
}

#[test]
fn empty_segments_do_not_match_params_or_literals() {
    let r = router(&["GET /pets", "GET /pets/{id}", "GET /{a}/{b}"]);
    assert_routes(
        &r,
        &[
            ("GET", "/pets", Some("GET /pets"), &[]),
            ("GET", "/pets/", None, &[]),
            ("GET", "//x", None, &[]),
            ("GET", "/x/", None, &[]),
        ],
    );
}

#[test]
fn root_and_default_route() {
    let mut r = router(&["GET /", "GET /pets", "POST /{x}", "GET /a/{p+}"]);
    // `$default` as the caller inserts it.
    r.insert(None, "/{proxy+}", "$default".to_string()).unwrap();
    r.insert(None, "/", "$default".to_string()).unwrap();
    assert_routes(
        &r,
        &[
            ("GET", "/", Some("GET /"), &[]),
            ("POST", "/", Some("$default"), &[]),
            ("GET", "/pets", Some("GET /pets"), &[]),
            ("POST", "/pets", Some("POST /{x}"), &["pets"]),
            ("PUT", "/pets", Some("$default"), &["pets"]),
            ("GET", "/pets/", Some("$default"), &["pets/"]),
            ("GET", "/a/b/c", Some("GET /a/{p+}"), &["b/c"]),
            ("POST", "/a/b/c", Some("$default"), &["a/b/c"]),
            ("GET", "//x", Some("$default"), &["/x"]),
            ("GET", "", None, &[]),
            ("GET", "pets", None, &[]),
        ],
    );
}

#[test]
fn percent_encoded_bytes_are_literal() {
    let r = router(&["GET /a%2Fb", "GET /{x}/{y}", "GET /caf%C3%A9"]);
    assert_routes(
        &r,
        &[
            ("GET", "/a%2Fb", Some("GET /a%2Fb"), &[]),
            ("GET", "/a%2fb", None, &[]),
            ("GET", "/a/b", Some("GET /{x}/{y}"), &["a", "b"]),
            ("GET", "/caf%C3%A9", Some("GET /caf%C3%A9"), &[]),
            ("GET", "/Caf%C3%A9", None, &[]),
        ],
    );
}

#[test]
fn captures_in_template_order_with_byte_offsets() {
    let r = router(&["GET /u/{user}/repos/{repo}/{path+}"]);
    let path = "/u/ann/repos/tollgate/src/lib.rs";
    let mut caps = Vec::with_capacity(4);
    let buf = caps.as_ptr();
    assert!(r.lookup("GET", path, &mut caps).is_some());
    assert_eq!(caps, vec![3..6, 13..21, 22..32]);
    assert_eq!(&path[caps[2].clone()], "src/lib.rs");
    assert_eq!(caps.as_ptr(), buf, "no reallocation with enough capacity");
}

#[test]
fn insert_returns_param_names_and_routes_lists_in_order() {
    let mut r = Router::new();
    assert!(r.is_empty());
    assert_eq!(
        r.insert(Some("GET"), "/a/{x}/b/{rest+}", 1).unwrap(),
        ["x", "rest"]
    );
    // Different names at the same trie position in a different route are fine.
    assert_eq!(r.insert(Some("POST"), "/a/{y}", 2).unwrap(), ["y"]);
    assert_eq!(r.insert(Some("ANY"), "/", 3).unwrap(), Vec::<String>::new());
    assert_eq!(r.len(), 3);
    let listed: Vec<_> = r.routes().collect();
    assert_eq!(
        listed,
        [
            (Some("GET"), "/a/{x}/b/{rest+}", &1),
            (Some("POST"), "/a/{y}", &2),
            (None, "/", &3),
        ]
    );
}

#[test]
fn conflicts() {
    let mut r = Router::new();
    r.insert(Some("GET"), "/a/{x}", ()).unwrap();
    r.insert(None, "/a/{x}", ()).unwrap();
    r.insert(Some("POST"), "/a/{x}", ()).unwrap();
    r.insert(Some("GET"), "/a/b", ()).unwrap();
    r.insert(Some("GET"), "/a/{x}/{p+}", ()).unwrap();
    let conflict = |m: &str, t: &str| RouteError::Conflict {
        method: m.into(),
        template: t.into(),
    };
    assert_eq!(
        r.insert(Some("GET"), "/a/{y}", ()),
        Err(conflict("GET", "/a/{y}"))
    );
    assert_eq!(r.insert(None, "/a/{z}", ()), Err(conflict("ANY", "/a/{z}")));
    assert_eq!(
        r.insert(Some("ANY"), "/a/{z}", ()),
        Err(conflict("ANY", "/a/{z}"))
    );
    assert_eq!(
        r.insert(Some("GET"), "/a/{q}/{rest+}", ()),
        Err(conflict("GET", "/a/{q}/{rest+}"))
    );
    assert_eq!(r.len(), 5, "failed inserts add nothing");
    let msg = conflict("GET", "/a/{y}").to_string();
    assert!(msg.contains("GET /a/{y}"), "{msg}");
}

#[test]
fn malformed_templates() {
    let cases: &[(Option<&str>, &str, &str)] = &[
        (None, "", "template must start with '/'"),
        (None, "pets", "template must start with '/'"),
        (None, "//", "empty path segment"),
        (None, "/pets/", "empty path segment"),
        (None, "/a//b", "empty path segment"),
        (None, "/{}", "empty parameter name"),
        (None, "/{+}", "empty parameter name"),
        (None, "/{a", "unbalanced braces"),
        (None, "/a}", "unbalanced braces"),
        (None, "/{a}}", "unbalanced braces"),
        (None, "/a{b}", "a parameter must be a whole segment"),
        (None, "/{b}c", "a parameter must be a whole segment"),
        (None, "/{a}{b}", "a parameter must be a whole segment"),
        (None, "/}a{", "a parameter must be a whole segment"),
        (
            None,
            "/{a++}",
            "'+' is only allowed at the end of a greedy parameter",
        ),
        (
            None,
            "/{a+b}",
            "'+' is only allowed at the end of a greedy parameter",
        ),
        (None, "/{p+}/x", "greedy parameter must be the last segment"),
        (
            None,
            "/{p+}/{q+}",
            "greedy parameter must be the last segment",
        ),
        (None, "/{a}/{a}", "duplicate parameter name"),
        (None, "/{a}/{a+}", "duplicate parameter name"),
        (Some(""), "/a", "method is not a valid HTTP token"),
        (Some("GE T"), "/a", "method is not a valid HTTP token"),
    ];
    for &(method, template, reason) in cases {
        let mut r = Router::new();
        let err = r.insert(method, template, ()).unwrap_err();
        assert_eq!(
            err,
            RouteError::Malformed {
                template: template.into(),
                reason
            },
            "{template}"
        );
        assert!(err.to_string().contains(reason));
        assert_eq!(r.nodes.len(), 1, "{template}: no nodes left behind");
    }
    // Custom methods are fine.
    Router::new()
        .insert(Some("PURGE"), "/cache/{key+}", ())
        .unwrap();
}

// ---------------------------------------------------------------------------
// Node-visit scaling

/// `groups` copies of a 10-route API under distinct literal prefixes, plus
/// optionally `$default`. Group 0 is always present, so requests aimed at it
/// exercise identical trie shapes whatever the size.
fn scaled_router(routes: usize, with_default: bool) -> Router<usize> {
    let mut r = Router::new();
    let mut add = |m: Option<&str>, t: String| {
        let n = r.len();
        r.insert(m, &t, n).unwrap();
    };
    for g in 0..routes / 10 {
        add(Some("GET"), format!("/api{g}/prod/users"));
        add(Some("GET"), format!("/api{g}/prod/users/{{id}}"));
        add(Some("GET"), format!("/api{g}/prod/users/{{id}}/orders"));
        add(Some("POST"), format!("/api{g}/prod/users/{{id}}/orders"));
        add(None, format!("/api{g}/prod/users/{{id}}/orders/{{oid}}"));
        add(Some("GET"), format!("/api{g}/{{stage}}/users/{{id}}"));
        add(None, format!("/api{g}/{{stage}}/{{proxy+}}"));
        add(Some("DELETE"), format!("/api{g}/prod/items/{{item}}"));
        add(Some("GET"), format!("/api{g}/prod/items/special"));
        // Shared prefix whose literal fan-out grows with the route count.
        add(Some("GET"), format!("/shared/res{g}/{{id}}"));
    }
    if with_default {
        add(None, "/{proxy+}".into());
        add(None, "/".into());
    }
    r
}

/// (method or None for ANY, template) of a matched route.
type RouteKey<'a> = (Option<&'a str>, &'a str);

const PROBES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/api0/prod/users"),
    ("GET", "/api0/prod/users/42"),
    ("GET", "/api0/prod/users/42/orders"),
    ("DELETE", "/api0/prod/users/42/orders"),
    ("PATCH", "/api0/prod/users/42/orders/7"),
    ("GET", "/api0/staging/users/9"),
    ("GET", "/api0/prod/items/special"),
    ("DELETE", "/api0/prod/items/special"),
    ("PUT", "/api0/prod/items/special"),
    ("GET", "/api0/prod/users/1/2/3/4/5/6/7/8/9"),
    ("GET", "/shared/res0/5"),
    ("GET", "/shared/zzz/5"),
    ("GET", "/nope/x/y"),
    ("GET", "/api0"),
    ("GET", "/api0/"),
    ("GET", "/api0/prod/users/"),
];

fn segments(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.split('/').count() - 1
    }
}

#[test]
fn visits_do_not_grow_with_route_count() {
    for with_default in [false, true] {
        let sizes = [10, 1_000, 10_000];
        let routers: Vec<_> = sizes
            .iter()
            .map(|&n| scaled_router(n, with_default))
            .collect();
        for (r, &n) in routers.iter().zip(&sizes) {
            assert_eq!(r.len(), n + if with_default { 2 } else { 0 });
        }
        let mut caps = Vec::new();
        for &(method, path) in PROBES {
            let counts: Vec<(usize, Option<RouteKey>)> = routers
                .iter()
                .map(|r| {
                    let mut visited = 0;
                    // Compare by route key: `$default`'s index depends on the size.
                    let found = r
                        .lookup_counting(method, path, &mut caps, &mut visited)
                        .and_then(|&i| r.routes().nth(i))
                        .map(|(m, t, _)| (m, t));
                    (visited, found)
                })
                .collect();
            assert!(
                counts.windows(2).all(|w| w[0] == w[1]),
                "{method} {path} (default={with_default}): {counts:?}"
            );
            let visited = counts[0].0;
            let bound = 3 * (segments(path) + 1);
            assert!(
                visited <= bound,
                "{method} {path}: {visited} visits > {bound}"
            );
        }
    }
}

#[test]
fn scaled_router_answers() {
    let r = scaled_router(1_000, true);
    let key = |i: usize| r.routes().nth(i).map(|(m, t, _)| (m, t));
    let mut caps = Vec::new();
    let mut find = |m: &str, p: &str| r.lookup(m, p, &mut caps).and_then(|&i| key(i));
    assert_eq!(
        find("DELETE", "/api0/prod/users/42/orders"),
        Some((None, "/api0/{stage}/{proxy+}"))
    );
    assert_eq!(
        find("GET", "/api57/prod/users/1/orders"),
        Some((Some("GET"), "/api57/prod/users/{id}/orders"))
    );
    assert_eq!(find("GET", "/shared/zzz/5"), Some((None, "/{proxy+}")));
}

// ---------------------------------------------------------------------------
// Property test against a naive matcher

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gen {
    Lit(usize),
    Param(usize),
    Greedy,
}

const LITS: &[&str] = &["a", "b", "c"];
const PATH_SEGS: &[&str] = &["a", "b", "c", "", "d"];
const METHODS: &[Option<&str>] = &[Some("GET"), Some("POST"), None];

fn render(segs: &[Gen]) -> String {
    if segs.is_empty() {
        return "/".into();
    }
    segs.iter()
        .enumerate()
        .map(|(i, s)| match s {
            Gen::Lit(l) => format!("/{}", LITS[*l]),
            // Names vary between routes (x0 vs y0) but are unique within one.
            Gen::Param(n) => format!("/{{{}{i}}}", ["x", "y"][*n]),
            Gen::Greedy => format!("/{{g{i}+}}"),
        })
        .collect()
}

/// Shape ignores parameter names, as conflicts do.
fn shape(segs: &[Gen]) -> Vec<Gen> {
    segs.iter()
        .map(|s| match s {
            Gen::Param(_) => Gen::Param(0),
            other => *other,
        })
        .collect()
}

/// Per-segment ranks (literal 0, param 1, greedy 2), then method rank
/// (exact 0, ANY 1); smaller is more specific.
type Specificity = (Vec<u8>, u8);

/// Naive AWS selection: scan every route, keep the matching one with the
/// smallest (per-segment ranks, method rank) key.
fn reference(
    routes: &[(Option<&str>, Vec<Gen>)],
    method: &str,
    path: &str,
) -> Option<(usize, Vec<Capture>)> {
    // (start, end) of each request segment.
    let mut segs = Vec::new();
    if path != "/" {
        let mut start = 1;
        for part in path[1..].split('/') {
            segs.push((start, start + part.len()));
            start += part.len() + 1;
        }
    }
    let mut best: Option<(Specificity, usize, Vec<Capture>)> = None;
    'routes: for (index, (m, template)) in routes.iter().enumerate() {
        let method_rank = match m {
            Some(m) if *m == method => 0,
            Some(_) => continue,
            None => 1,
        };
        let mut ranks = Vec::new();
        let mut caps = Vec::new();
        let mut consumed_all = false;
        for (i, g) in template.iter().enumerate() {
            let Some(&(s, e)) = segs.get(i) else {
                continue 'routes;
            };
            match g {
                Gen::Lit(l) if &path[s..e] == LITS[*l] => ranks.push(0),
                Gen::Param(_) if e > s => {
                    ranks.push(1);
                    caps.push(s..e);
                }
                Gen::Greedy if s < path.len() => {
                    ranks.push(2);
                    caps.push(s..path.len());
                    consumed_all = true;
                }
                _ => continue 'routes,
            }
        }
        if !consumed_all && template.len() != segs.len() {
            continue;
        }
        let key = (ranks, method_rank);
        if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
            best = Some((key, index, caps));
        }
    }
    best.map(|(_, index, caps)| (index, caps))
}

fn gen_template() -> impl Strategy<Value = Vec<Gen>> {
    let seg = prop_oneof![
        4 => (0..LITS.len()).prop_map(Gen::Lit),
        3 => (0..2usize).prop_map(Gen::Param),
        1 => Just(Gen::Greedy),
    ];
    prop::collection::vec(seg, 0..4)
}

fn gen_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PATH_SEGS), 0..5).prop_map(|segs| {
        if segs.is_empty() {
            "/".into()
        } else {
            segs.iter().map(|s| format!("/{s}")).collect()
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_naive_reference(
        templates in prop::collection::vec((prop::sample::select(METHODS), gen_template()), 0..24),
        requests in prop::collection::vec(
            (prop::sample::select(&["GET", "POST", "PUT"][..]), gen_path()),
            1..16,
        ),
    ) {
        let mut router = Router::new();
        let mut accepted: Vec<(Option<&str>, Vec<Gen>)> = Vec::new();
        for (method, segs) in &templates {
            let template = render(segs);
            let greedy_not_last = segs.iter().rev().skip(1).any(|s| *s == Gen::Greedy);
            let duplicate = accepted
                .iter()
                .any(|(m, s)| m == method && shape(s) == shape(segs));
            let result = router.insert(*method, &template, accepted.len());
            if greedy_not_last {
                prop_assert!(
                    matches!(result, Err(RouteError::Malformed { .. })),
                    "{template}: {result:?}"
                );
            } else if duplicate {
                prop_assert!(
                    matches!(result, Err(RouteError::Conflict { .. })),
                    "{template}: {result:?}"
                );
            } else {
                let names = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(
                    names.len(),
                    segs.iter().filter(|s| !matches!(s, Gen::Lit(_))).count()
                );
                accepted.push((*method, segs.clone()));
            }
        }
        prop_assert_eq!(router.len(), accepted.len());

        let mut caps = Vec::new();
        for (method, path) in &requests {
            let got = router.lookup(method, path, &mut caps).map(|&i| (i, caps.clone()));
            let want = reference(&accepted, method, path);
            prop_assert_eq!(
                &got,
                &want,
                "{} {} with routes {:?}",
                method,
                path,
                accepted.iter().map(|(m, s)| (m, render(s))).collect::<Vec<_>>()
            );
        }
    }
}
