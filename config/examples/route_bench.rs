//! Harness-free lookup benchmark: ns per lookup with 10, 1k and 10k routes.
//! Run with `cargo run --release --example route_bench`.

use std::hint::black_box;
use std::time::Instant;
use tollgate_config::router::Router;

/// Same shape as the node-visit test: `routes / 10` groups of ten routes under
/// distinct literal prefixes, plus `$default`.
fn build(routes: usize) -> Router<usize> {
    let mut r = Router::new();
    let mut add = |m: Option<&str>, t: String| {
        let n = r.len();
        if let Err(e) = r.insert(m, &t, n) {
            panic!("{t}: {e}");
        }
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
        add(Some("GET"), format!("/shared/res{g}/{{id}}"));
    }
    add(None, "/{proxy+}".into());
    add(None, "/".into());
    r
}

fn main() {
    const LOOKUPS: usize = 2_000_000;
    for routes in [10, 1_000, 10_000] {
        let router = build(routes);
        // Spread requests over the groups that exist, so larger tables are
        // not just hammering one hot branch.
        let groups = routes / 10;
        let requests: Vec<(&str, String)> = (0..64)
            .map(|i| {
                let g = (i * 7919) % groups;
                match i % 6 {
                    0 => ("GET", format!("/api{g}/prod/users/{i}")),
                    1 => ("POST", format!("/api{g}/prod/users/{i}/orders")),
                    2 => ("DELETE", format!("/api{g}/prod/users/{i}/orders")),
                    3 => ("GET", format!("/api{g}/staging/users/{i}")),
                    4 => ("GET", format!("/shared/res{g}/{i}")),
                    _ => ("GET", format!("/unknown/{i}/x")),
                }
            })
            .collect();
        let mut caps = Vec::with_capacity(8);
        let mut hits = 0usize;
        // Warm up caches and branch predictors.
        for (m, p) in requests.iter().cycle().take(100_000) {
            hits += router.lookup(m, p, &mut caps).is_some() as usize;
        }
        let start = Instant::now();
        for (m, p) in requests.iter().cycle().take(LOOKUPS) {
            hits +=
                black_box(router.lookup(black_box(m), black_box(p), &mut caps)).is_some() as usize;
        }
        let elapsed = start.elapsed();
        assert_eq!(hits, LOOKUPS + 100_000, "every request should match");
        println!(
            "{:>6} routes: {:>6.1} ns/lookup",
            router.len(),
            elapsed.as_nanos() as f64 / LOOKUPS as f64
        );
    }
}
