//! Route matching for tollgate, following Amazon API Gateway HTTP API route
//! selection.
//!
//! # Templates
//!
//! A route is a method (or `ANY`, passed as `None`) plus a path template such
//! as `/pets/{id}/toys/{rest+}`. The template must start with `/`; `/` alone
//! is the root (zero segments). Every other template is split on `/` into
//! segments, each of which is exactly one of:
//!
//! * literal text, compared byte-exact (case-sensitive, no percent-decoding,
//!   so `/a%2Fb` is one segment whose text is `a%2Fb`);
//! * `{name}`, matching exactly one non-empty request segment;
//! * `{name+}`, greedy, matching the whole non-empty rest of the path (one or
//!   more segments); only allowed as the last segment.
//!
//! Empty template segments (`/a//b`, `/a/`), empty or duplicate parameter
//! names, unbalanced braces, a parameter mixed with literal text (`a{b}`) and
//! a greedy parameter that is not last are rejected as
//! [`RouteError::Malformed`].
//!
//! # Request paths and empty segments
//!
//! The request path is raw (not decoded, no query) and must start with `/`.
//! `/` is the root; otherwise the text after the leading `/` is split on `/`,
//! so `/pets/` is `pets` followed by an empty segment. Empty request segments
//! match no literal (templates cannot contain one) and no `{param}`; they can
//! only be swallowed by a greedy parameter, whose capture must be non-empty:
//! `/pets/a/` matches `/pets/{p+}` with `p = "a/"`, but `/pets/` does not (it
//! falls through to e.g. a `$default` `/{proxy+}` with `proxy = "pets/"`).
//! Captured values are therefore never empty.
//!
//! # Precedence
//!
//! At each segment an exact literal beats `{param}`, which beats `{greedy+}`;
//! at the node where the path ends, a route for the request method beats
//! `ANY`. If the most specific branch has no route for the request method the
//! matcher backtracks into the less specific branches. Equivalently, the
//! winner is the matching route whose per-segment ranks (literal 0, param 1,
//! greedy 2), followed by the method rank (exact 0, ANY 1), are
//! lexicographically smallest; the property test checks exactly that.
//!
//! The `$default` route is inserted by the caller as `ANY /{proxy+}` plus
//! `ANY /`: a root greedy `ANY` ranks below every other route that can match.
//!
//! # Conflicts
//!
//! Two routes conflict when they have the same method (or are both `ANY`) and
//! the same template shape; parameter names do not count, so `/a/{x}` and
//! `/a/{y}` are the same template. Different routes may use different names
//! at the same trie position, because names live with the route (they are
//! returned by [`Router::insert`] for the caller to keep), not in the trie.
//!
//! # Data structure and cost
//!
//! A segment trie in an arena (`Vec<Node>`). Each node has literal children
//! in a hash map, at most one `{param}` child, at most one greedy child and a
//! small method table. Lookup walks the trie depth first in precedence order,
//! pushing capture ranges as it descends and popping them when it backtracks.
//! Each trie node sits at a fixed depth and is reached by a single path, so a
//! lookup visits every node at most once and only nodes whose template prefix
//! matches the request; the number of visits depends on the request's
//! segments and the shapes of the routes along them, never on how many
//! unrelated routes exist. Lookup does not allocate: segments are byte ranges
//! into the request path and captures go into the caller's vector.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

#[cfg(test)]
mod tests;

/// A value span captured from the request path: byte offsets into the path passed to `lookup`.
pub type Capture = Range<usize>;

/// Index into `Router::nodes`.
type NodeId = usize;

/// Literal children, keyed by the segment text.
///
/// A hash map rather than a sorted `Vec`: a root with thousands of distinct
/// first segments (`/api17/...`) would cost a dozen string comparisons with
/// scattered memory reads per binary search, while hashing costs one pass over
/// the (short) segment. The hasher is a fixed FNV-1a instead of SipHash
/// because SipHash's setup dominates for 3–10 byte keys; hash flooding is not
/// a concern since the keys come from trusted configuration, and a hostile
/// request can only probe the table, whose probe lengths are fixed by those
/// trusted keys.
type Literals = HashMap<Box<str>, NodeId, BuildHasherDefault<SegmentHasher>>;

/// FNV-1a with a final mix, for [`Literals`].
#[derive(Clone, Copy)]
struct SegmentHasher(u64);

impl Default for SegmentHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for SegmentHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and a tag from the top
        // seven; fold the halves and multiply so both ends depend on every
        // input byte.
        let h = self.0;
        (h ^ (h >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Why a route could not be inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The template (or method) is not valid; `reason` says what is wrong.
    Malformed {
        /// The template as written.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A route with the same method (`ANY` for the wildcard) and the same
    /// template shape already exists.
    Conflict {
        /// Method (or ANY) of the route.
        method: String,
        /// Template of the route.
        template: String,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Malformed { template, reason } => {
                write!(f, "malformed route `{template}`: {reason}")
            }
            RouteError::Conflict { method, template } => write!(
                f,
                "route `{method} {template}` conflicts with an existing route"
            ),
        }
    }
}

impl std::error::Error for RouteError {}

#[derive(Debug, Clone, Default)]
struct Node {
    literals: Literals,
    param: Option<NodeId>,
    /// A greedy child has no children of its own (greedy is always last), only
    /// routes.
    greedy: Option<NodeId>,
    /// Method → route index. Linear scan: a node rarely has more than a few
    /// methods, and a scan over a handful of short strings beats hashing.
    methods: Vec<(Box<str>, usize)>,
    any: Option<usize>,
}

impl Node {
    /// The route for `method` at this node: method-specific first, then ANY.
    fn route_for(&self, method: &str) -> Option<usize> {
        self.methods
            .iter()
            .find(|(m, _)| &**m == method)
            .map(|&(_, route)| route)
            .or(self.any)
    }
}

#[derive(Debug, Clone)]
struct Route<T> {
    method: Option<Box<str>>,
    template: Box<str>,
    value: T,
}

/// A parsed template segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'a> {
    Literal(&'a str),
    Param(&'a str),
    Greedy(&'a str),
}

/// Route table: a segment trie over an arena of nodes, plus the routes in
/// insertion order.
#[derive(Debug, Clone)]
pub struct Router<T> {
    /// `nodes[0]` is the root.
    nodes: Vec<Node>,
    routes: Vec<Route<T>>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Router<T> {
    /// An empty router.
    pub fn new() -> Self {
        Router {
            nodes: vec![Node::default()],
            routes: Vec::new(),
        }
    }

    /// `method`: None = ANY. Returns the param names of the template in order (the caller stores them with T).
    ///
    /// `Some("ANY")` is treated as `None`. Other methods must be HTTP tokens
    /// and are compared case-sensitively at lookup.
    pub fn insert(
        &mut self,
        method: Option<&str>,
        template: &str,
        value: T,
    ) -> Result<Vec<String>, RouteError> {
        let malformed = |reason| RouteError::Malformed {
            template: template.to_owned(),
            reason,
        };
        let method = match method {
            None | Some("ANY") => None,
            Some(m) if is_token(m) => Some(m),
            Some(_) => return Err(malformed("method is not a valid HTTP token")),
        };
        // Parse fully before touching the trie so a bad template leaves no
        // half-built branch behind.
        let segments = parse_template(template).map_err(malformed)?;

        let mut node = 0;
        for segment in &segments {
            node = self.child_or_insert(node, *segment);
        }

        let route = self.routes.len();
        let target = &mut self.nodes[node];
        let taken = match method {
            None => target.any.is_some(),
            Some(m) => target.methods.iter().any(|(have, _)| &**have == m),
        };
        if taken {
            // A conflict means the terminal node already held a route, so
            // every node on the way existed and nothing was created above.
            return Err(RouteError::Conflict {
                method: method.unwrap_or("ANY").to_owned(),
                template: template.to_owned(),
            });
        }
        match method {
            None => target.any = Some(route),
            Some(m) => target.methods.push((m.into(), route)),
        }
        self.routes.push(Route {
            method: method.map(Into::into),
            template: template.into(),
            value,
        });

        Ok(segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) | Segment::Greedy(name) => Some((*name).to_owned()),
                Segment::Literal(_) => None,
            })
            .collect())
    }

    fn child_or_insert(&mut self, parent: NodeId, segment: Segment<'_>) -> NodeId {
        let node = &self.nodes[parent];
        let existing = match segment {
            Segment::Literal(text) => node.literals.get(text).copied(),
            Segment::Param(_) => node.param,
            Segment::Greedy(_) => node.greedy,
        };
        if let Some(id) = existing {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        let node = &mut self.nodes[parent];
        match segment {
            Segment::Literal(text) => {
                node.literals.insert(text.into(), id);
            }
            Segment::Param(_) => node.param = Some(id),
            Segment::Greedy(_) => node.greedy = Some(id),
        }
        id
    }

    /// Match `path` (raw, without query; must start with '/'). On success returns the value and fills `captures`
    /// (cleared first) with one range per template param in template order; for a greedy param the range spans all
    /// remaining segments including inner '/' (e.g. "a/b/c"). No heap allocation when `captures` has capacity.
    ///
    /// On failure `captures` is left empty.
    pub fn lookup(&self, method: &str, path: &str, captures: &mut Vec<Capture>) -> Option<&T> {
        // Counting is a single add per node; not worth a second code path.
        let mut visited = 0;
        self.lookup_counting(method, path, captures, &mut visited)
    }

    /// Same as lookup, also adding the number of trie nodes visited (including backtracking) to `*visited`.
    pub fn lookup_counting(
        &self,
        method: &str,
        path: &str,
        captures: &mut Vec<Capture>,
        visited: &mut usize,
    ) -> Option<&T> {
        captures.clear();
        let first = match path.as_bytes() {
            [b'/'] => None,
            [b'/', ..] => Some(1),
            _ => return None,
        };
        let route = self.walk(0, method, path, first, captures, visited)?;
        Some(&self.routes[route].value)
    }

    /// Depth-first match from `node`, where `start` is the byte offset of the
    /// next request segment (None once the path is used up). Recursion depth
    /// is bounded by the trie depth, i.e. the longest template, not by the
    /// request.
    fn walk(
        &self,
        node: NodeId,
        method: &str,
        path: &str,
        start: Option<usize>,
        captures: &mut Vec<Capture>,
        visited: &mut usize,
    ) -> Option<usize> {
        *visited += 1;
        let here = &self.nodes[node];
        let Some(start) = start else {
            return here.route_for(method);
        };
        let (end, next) = match path.as_bytes()[start..].iter().position(|&b| b == b'/') {
            Some(i) => (start + i, Some(start + i + 1)),
            None => (path.len(), None),
        };
        // `start` and `end` sit next to '/' or at the ends, so both are char
        // boundaries.
        let segment = &path[start..end];

        if !segment.is_empty() {
            if !here.literals.is_empty() {
                if let Some(&child) = here.literals.get(segment) {
                    if let Some(route) = self.walk(child, method, path, next, captures, visited) {
                        return Some(route);
                    }
                }
            }
            if let Some(child) = here.param {
                captures.push(start..end);
                if let Some(route) = self.walk(child, method, path, next, captures, visited) {
                    return Some(route);
                }
                captures.pop();
            }
        }
        // Greedy only needs a non-empty rest, so `//x` still reaches a root
        // `{proxy+}` (capturing "/x") even though its first segment is empty.
        if start < path.len() {
            if let Some(child) = here.greedy {
                *visited += 1;
                if let Some(route) = self.nodes[child].route_for(method) {
                    captures.push(start..path.len());
                    return Some(route);
                }
            }
        }
        None
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no route was inserted.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// All inserted routes: (method or None for ANY, template, &T) in insertion order (used by `tollgate check` to print the plan).
    pub fn routes(&self) -> impl Iterator<Item = (Option<&str>, &str, &T)> {
        self.routes
            .iter()
            .map(|r| (r.method.as_deref(), &*r.template, &r.value))
    }
}

/// RFC 9110 `token`: the characters allowed in a method name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_template(template: &str) -> Result<Vec<Segment<'_>>, &'static str> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err("template must start with '/'");
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments: Vec<Segment<'_>> = Vec::new();
    for part in rest.split('/') {
        if let Some(Segment::Greedy(_)) = segments.last() {
            return Err("greedy parameter must be the last segment");
        }
        let segment = parse_segment(part)?;
        if let Segment::Param(name) | Segment::Greedy(name) = segment {
            let duplicate = segments
                .iter()
                .any(|s| matches!(s, Segment::Param(n) | Segment::Greedy(n) if *n == name));
            if duplicate {
                return Err("duplicate parameter name");
            }
        }
        segments.push(segment);
    }
    Ok(segments)
}

fn parse_segment(part: &str) -> Result<Segment<'_>, &'static str> {
    if part.is_empty() {
        return Err("empty path segment");
    }
    let opens = part.bytes().filter(|&b| b == b'{').count();
    let closes = part.bytes().filter(|&b| b == b'}').count();
    if opens == 0 && closes == 0 {
        return Ok(Segment::Literal(part));
    }
    if opens != closes {
        return Err("unbalanced braces");
    }
    if opens > 1 || !(part.starts_with('{') && part.ends_with('}')) {
        return Err("a parameter must be a whole segment");
    }
    let inner = &part[1..part.len() - 1];
    let (name, greedy) = match inner.strip_suffix('+') {
        Some(name) => (name, true),
        None => (inner, false),
    };
    if name.is_empty() {
        return Err("empty parameter name");
    }
    if name.contains('+') {
        return Err("'+' is only allowed at the end of a greedy parameter");
    }
    Ok(if greedy {
        Segment::Greedy(name)
    } else {
        Segment::Param(name)
    })
}
