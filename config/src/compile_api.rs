//! Compiles `[[apis]]` and `[[domains]]`: stages, routes, integrations, and the per-listener
//! routing tables that put every API stage at its address (`/stage/...` on the API's hosts,
//! no prefix for `$default`, `base_path` mappings on custom domains).

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::Spanned;

use crate::compile::{is_token, DEFAULT_INTEGRATION_TIMEOUT_MS};
use crate::error::{key_segment, ConfigError, Source};
use crate::file::{
    ApiSection, FileConfig, HeaderMappingSection, HttpIntegrationSection, IntegrationSection,
    MockIntegrationSection, RouteSection,
};
use crate::plan::{
    ApiKind, ApiPlan, HttpTarget, IntegrationPlan, ListenerPlan, MockResponse, RoutePlan,
    UpstreamPlan,
};
use crate::responses::{ResponseCatalogue, ResponseOverride, ResponseType};
use crate::router::{RouteError, Router};
use crate::template::{compile_params, substitute_stage_variables};
use crate::usage::RouteLimits;

/// The `$default` stage and route key.
pub const DEFAULT_KEY: &str = "$default";

pub(crate) struct Compiled {
    pub apis: Vec<ApiPlan>,
    pub routes: Vec<RoutePlan>,
    pub upstreams: Vec<UpstreamPlan>,
    /// Custom domains and the listeners their mappings put them on: (listener index, domain
    /// index, lowercase host), once each.
    pub domains_on: Vec<(usize, usize, String)>,
}

/// Where a route instance is inserted: listener index and host (None = any host).
type Placement = (usize, Option<String>);

struct Builder<'s, 'a> {
    src: &'s Source<'a>,
    out: Compiled,
}

pub(crate) fn compile_apis(
    src: &Source<'_>,
    file: &FileConfig,
    listeners: &mut [ListenerPlan],
) -> Result<Compiled, ConfigError> {
    let mut b = Builder {
        src,
        out: Compiled {
            apis: vec![],
            routes: vec![],
            upstreams: vec![],
            domains_on: vec![],
        },
    };
    let mut api_listeners = Vec::with_capacity(file.apis.len());
    for (a, api) in file.apis.iter().enumerate() {
        let id = api.id.get_ref();
        if !is_token(id) {
            return Err(src.error(
                Some(api.id.span()),
                format!("apis[{a}].id"),
                format!("{id:?} is not a valid id"),
                "letters, digits, '-' or '_'",
            ));
        }
        if b.out.apis.iter().any(|x| &x.id == id) {
            return Err(src.error(
                Some(api.id.span()),
                format!("apis[{a}].id"),
                format!("API {id:?} is defined twice"),
                "unique API ids",
            ));
        }
        let on = resolve_listeners(src, a, api, listeners)?;
        b.compile_api(a, api, &on, listeners)?;
        api_listeners.push(on);
    }
    for (d, domain) in file.domains.iter().enumerate() {
        let host = normalize_host(src, &domain.host, &format!("domains[{d}].host"))?;
        for (m, mapping) in domain.mappings.iter().enumerate() {
            let key = format!("domains[{d}].mappings[{m}]");
            let Some(a) = b
                .out
                .apis
                .iter()
                .position(|x| &x.id == mapping.api.get_ref())
            else {
                let known: Vec<_> = b.out.apis.iter().map(|x| x.id.as_str()).collect();
                return Err(src.error(
                    Some(mapping.api.span()),
                    format!("{key}.api"),
                    format!("unknown API {:?}", mapping.api.get_ref()),
                    format!("one of: {}", known.join(", ")),
                ));
            };
            let stage = mapping.stage.get_ref();
            if !b.out.apis[a].stages.contains(stage) {
                return Err(src.error(
                    Some(mapping.stage.span()),
                    format!("{key}.stage"),
                    format!("API {:?} has no stage {stage:?}", mapping.api.get_ref()),
                    format!("one of: {}", b.out.apis[a].stages.join(", ")),
                ));
            }
            let prefix = match &mapping.base_path {
                None => String::new(),
                Some(p) => normalize_base_path(src, p, &format!("{key}.base_path"))?,
            };
            let placements: Vec<Placement> = api_listeners[a]
                .iter()
                .map(|&l| (l, Some(host.clone())))
                .collect();
            for &l in &api_listeners[a] {
                if !b.out.domains_on.iter().any(|(x, y, _)| *x == l && *y == d) {
                    b.out.domains_on.push((l, d, host.clone()));
                }
            }
            b.place_stage(&file.apis[a], a, stage, &prefix, &placements, listeners)?;
        }
    }
    Ok(b.out)
}

fn resolve_listeners(
    src: &Source<'_>,
    a: usize,
    api: &ApiSection,
    listeners: &[ListenerPlan],
) -> Result<Vec<usize>, ConfigError> {
    if api.listeners.is_empty() {
        return Ok((0..listeners.len()).collect());
    }
    api.listeners
        .iter()
        .map(|name| {
            listeners
                .iter()
                .position(|l| &l.name == name.get_ref())
                .ok_or_else(|| {
                    let known: Vec<_> = listeners.iter().map(|l| l.name.as_str()).collect();
                    src.error(
                        Some(name.span()),
                        format!("apis[{a}].listeners"),
                        format!("unknown listener {:?}", name.get_ref()),
                        format!("one of: {}", known.join(", ")),
                    )
                })
        })
        .collect()
}

fn normalize_host(
    src: &Source<'_>,
    host: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigError> {
    let h = host.get_ref().to_ascii_lowercase();
    let valid = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    if !valid {
        return Err(src.error(
            Some(host.span()),
            key,
            format!("{:?} is not a host name", host.get_ref()),
            "a DNS name without port, such as \"api.example.com\"",
        ));
    }
    Ok(h)
}

/// `"/v1/shop/"` → `"/v1/shop"`; `""` or `"/"` → `""`.
fn normalize_base_path(
    src: &Source<'_>,
    p: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigError> {
    let trimmed = p.get_ref().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
    });
    if !ok {
        return Err(src.error(
            Some(p.span()),
            key,
            format!("{:?} is not a base path", p.get_ref()),
            "segments of letters, digits, '-', '.', '_' or '~', such as \"v1/shop\"",
        ));
    }
    Ok(format!("/{trimmed}"))
}

impl Builder<'_, '_> {
    fn compile_api(
        &mut self,
        a: usize,
        api: &ApiSection,
        on: &[usize],
        listeners: &mut [ListenerPlan],
    ) -> Result<(), ConfigError> {
        let src = self.src;
        let kind = match &api.kind {
            None => ApiKind::Http,
            Some(k) if k.get_ref() == "http" => ApiKind::Http,
            Some(k) if k.get_ref() == "rest" || k.get_ref() == "websocket" => {
                return Err(src.error(
                    Some(k.span()),
                    format!("apis[{a}].kind"),
                    format!("kind {:?} is not supported yet", k.get_ref()),
                    "\"http\"",
                ))
            }
            Some(k) => {
                return Err(src.error(
                    Some(k.span()),
                    format!("apis[{a}].kind"),
                    format!("unknown kind {:?}", k.get_ref()),
                    "\"http\"",
                ))
            }
        };
        let mut stages: Vec<String> = api.stages.keys().cloned().collect();
        for (name, stage) in &api.stages {
            let valid = name == DEFAULT_KEY
                || (!name.is_empty()
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            if !valid {
                return Err(src.error(
                    Some(stage.span()),
                    format!("apis[{a}].stages.{name}"),
                    format!("{name:?} is not a stage name"),
                    "\"$default\" or letters, digits, '-' and '_'",
                ));
            }
            if let Some(bad) = stage.get_ref().variables.keys().find(|k| {
                k.is_empty() || !k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            }) {
                return Err(src.error(
                    Some(stage.span()),
                    format!("apis[{a}].stages.{name}.variables"),
                    format!("{bad:?} is not a variable name"),
                    "letters, digits and '_'",
                ));
            }
        }
        if stages.is_empty() {
            stages.push(DEFAULT_KEY.to_string());
        }
        let responses = compile_responses(src, a, api)?;
        let client_throttle = crate::compile_usage::api_limits(src, a, api)?;
        self.out.apis.push(ApiPlan {
            id: api.id.get_ref().clone(),
            kind,
            stages: stages.clone(),
            responses,
            client_throttle,
        });
        for (r, route) in api.routes.iter().enumerate() {
            if !api.integrations.contains_key(route.integration.get_ref()) {
                let known: Vec<_> = api.integrations.keys().map(String::as_str).collect();
                return Err(src.error(
                    Some(route.integration.span()),
                    format!("apis[{a}].routes[{r}].integration"),
                    format!("unknown integration {:?}", route.integration.get_ref()),
                    format!("one of: {}", known.join(", ")),
                ));
            }
        }
        let base = match &api.base_path {
            None => String::new(),
            Some(p) => normalize_base_path(src, p, &format!("apis[{a}].base_path"))?,
        };
        let mut hosts = Vec::new();
        for (h, host) in api.hosts.iter().enumerate() {
            hosts.push(normalize_host(src, host, &format!("apis[{a}].hosts[{h}]"))?);
        }
        let mut placements: Vec<Placement> = Vec::new();
        for &l in on {
            if hosts.is_empty() {
                placements.push((l, None));
            }
            placements.extend(hosts.iter().map(|h| (l, Some(h.clone()))));
        }
        for stage in &stages {
            let prefix = if stage == DEFAULT_KEY {
                base.clone()
            } else {
                format!("{base}/{stage}")
            };
            self.place_stage(api, a, stage, &prefix, &placements, listeners)?;
        }
        Ok(())
    }

    /// Inserts every route of one API stage under `prefix` at each placement.
    fn place_stage(
        &mut self,
        api: &ApiSection,
        a: usize,
        stage: &str,
        prefix: &str,
        placements: &[Placement],
        listeners: &mut [ListenerPlan],
    ) -> Result<(), ConfigError> {
        let src = self.src;
        // One copy per stage, shared by its routes (events carry them as `stageVariables`).
        let vars: Arc<BTreeMap<String, String>> = Arc::new(
            api.stages
                .get(stage)
                .map(|s| s.get_ref().variables.clone())
                .unwrap_or_default(),
        );
        // Explicit routes first, `$default` last: the catch-all yields to any route it collides with.
        let mut order: Vec<&RouteSection> = api
            .routes
            .iter()
            .filter(|r| r.route.get_ref() != DEFAULT_KEY)
            .collect();
        order.extend(
            api.routes
                .iter()
                .filter(|r| r.route.get_ref() == DEFAULT_KEY),
        );
        for route in order {
            let r = api
                .routes
                .iter()
                .position(|x| std::ptr::eq(x, route))
                .unwrap_or(0);
            let key = format!("apis[{a}].routes[{r}].route");
            let text = route.route.get_ref();
            let (method, templates): (Option<String>, Vec<String>) = if text == DEFAULT_KEY {
                let root = if prefix.is_empty() {
                    "/".to_string()
                } else {
                    prefix.to_string()
                };
                (None, vec![root, format!("{prefix}/{{proxy+}}")])
            } else {
                let (m, path) = parse_route_key(src, &route.route, &key)?;
                let full = if path == "/" && !prefix.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{prefix}{path}")
                };
                ((m != "ANY").then_some(m), vec![full])
            };
            let index = self.out.routes.len();
            let mut params = None;
            for template in &templates {
                for (l, host) in placements {
                    let table = &mut listeners[*l].routes;
                    let router: &mut Router<usize> = match host {
                        Some(h) => table.by_host.entry(h.clone()).or_default(),
                        None => &mut table.any_host,
                    };
                    match router.insert(method.as_deref(), template, index) {
                        Ok(names) => params = Some(names),
                        Err(RouteError::Conflict { .. }) if text == DEFAULT_KEY => {}
                        Err(e) => return Err(src.error(Some(route.route.span()), &key, format!("{text:?}: {e}"), "a unique `METHOD /path` (parameters `{name}`, a final greedy `{name+}`)")),
                    }
                }
            }
            let Some(params) = params else { continue };
            let integration_id = route.integration.get_ref();
            let section = &api.integrations[integration_id];
            let integration =
                self.compile_integration(a, integration_id, section, stage, &vars, &params, text)?;
            let limits = crate::compile_usage::route_limits(src, a, api, stage, r, route)?;
            self.out.routes.push(RoutePlan {
                api: a,
                stage: stage.to_string(),
                route_key: text.clone(),
                prefix_len: prefix.len(),
                params,
                stage_variables: Arc::clone(&vars),
                integration,
                limits,
            });
        }
        if !api.routes.iter().any(|r| r.route.get_ref() == DEFAULT_KEY) {
            self.place_not_found(a, stage, prefix, placements, listeners);
        }
        Ok(())
    }

    /// Behind the routes of an API stage without `$default`, a catch-all that answers
    /// `RESOURCE_NOT_FOUND` with the API's own gateway responses. It yields to every route
    /// it collides with (conflicts are skipped).
    fn place_not_found(
        &mut self,
        a: usize,
        stage: &str,
        prefix: &str,
        placements: &[Placement],
        listeners: &mut [ListenerPlan],
    ) {
        let index = self.out.routes.len();
        let root = if prefix.is_empty() {
            "/".to_string()
        } else {
            prefix.to_string()
        };
        let mut placed = false;
        for template in [root, format!("{prefix}/{{proxy+}}")] {
            for (l, host) in placements {
                let table = &mut listeners[*l].routes;
                let router: &mut Router<usize> = match host {
                    Some(h) => table.by_host.entry(h.clone()).or_default(),
                    None => &mut table.any_host,
                };
                placed |= router.insert(None, &template, index).is_ok();
            }
        }
        if placed {
            self.out.routes.push(RoutePlan {
                api: a,
                stage: stage.to_string(),
                route_key: "(unmatched)".to_string(),
                prefix_len: prefix.len(),
                params: vec!["proxy".to_string()],
                stage_variables: Arc::default(),
                integration: IntegrationPlan::NotFound,
                limits: RouteLimits::default(),
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn compile_integration(
        &mut self,
        a: usize,
        id: &str,
        section: &Spanned<IntegrationSection>,
        stage: &str,
        vars: &BTreeMap<String, String>,
        params: &[String],
        route: &str,
    ) -> Result<IntegrationPlan, ConfigError> {
        let key = format!("apis[{a}].integrations.{}", key_segment(id));
        let lookup = |name: &str| vars.get(name).cloned();
        let sub = |text: &Spanned<String>, field: &str| {
            substitute_stage_variables(text.get_ref(), lookup).map_err(|missing| {
                self.src.error(
                    Some(text.span()),
                    format!("{key}.{field}"),
                    format!(
                        "uses ${{stageVariables.{missing}}}, which stage {stage:?} does not \
                         define"
                    ),
                    format!("a variable under [apis.stages.\"{stage}\"] variables"),
                )
            })
        };
        match section.get_ref() {
            IntegrationSection::Mock(m) => compile_mock(self.src, &key, m, &sub),
            IntegrationSection::Http(h) => {
                let url = sub(&h.url, "url")?;
                self.compile_http(&key, id, h, &url, params, route, &sub)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn compile_http(
        &mut self,
        key: &str,
        id: &str,
        h: &HttpIntegrationSection,
        url: &str,
        params: &[String],
        route: &str,
        sub: &Substitute<'_>,
    ) -> Result<IntegrationPlan, ConfigError> {
        let src = self.src;
        let url_err = |problem: String| {
            src.error(
                Some(h.url.span()),
                format!("{key}.url"),
                problem,
                "http(s)://HOST[:PORT][/PATH][?QUERY], e.g. \"http://pets.internal:9000/pets/{id}\"",
            )
        };
        let (secure, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(url_err(format!("{url:?} is not an http or https URL"))),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_query) = rest.split_at(end);
        let (host, port) = split_authority(authority, if secure { 443 } else { 80 })
            .ok_or_else(|| url_err(format!("{authority:?} is not HOST[:PORT]")))?;
        let tls = match (secure, &h.tls) {
            (true, section) => Some(crate::tls_client::upstream_tls(
                src,
                key,
                section.as_ref(),
                host,
                std::path::Path::new(src.path),
            )?),
            (false, Some(t)) => {
                return Err(src.error(
                    Some(t.span()),
                    format!("{key}.tls"),
                    "`tls` applies to https:// URLs only".to_string(),
                    "an https:// url, or no `tls`",
                ))
            }
            (false, None) => None,
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_query, None),
        };
        let compile = |text: &str| {
            compile_params(text, params).map_err(|name| {
                url_err(format!(
                    "refers to {{{name}}}, which route {route:?} does not capture (it has: {})",
                    params.join(", ")
                ))
            })
        };
        let path = if path.is_empty() {
            None
        } else {
            Some(compile(path)?)
        };
        let query = match query {
            Some(q) => Some(compile(q)?),
            None => None,
        };
        let timeout_ms = match &h.timeout_ms {
            None => DEFAULT_INTEGRATION_TIMEOUT_MS,
            Some(t) if (50..=3_600_000).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => {
                return Err(src.error(
                    Some(t.span()),
                    format!("{key}.timeout_ms"),
                    format!("{} is out of range", t.get_ref()),
                    "50 to 3600000 (AWS's default is 29000)",
                ))
            }
        };
        let buffered = match h
            .body_mode
            .as_ref()
            .map(|m| (m.get_ref().as_str(), m.span()))
        {
            None | Some(("stream", _)) => false,
            Some(("buffered", _)) => true,
            Some((m, span)) => {
                return Err(src.error(
                    Some(span),
                    format!("{key}.body_mode"),
                    format!("unknown body mode {m:?}"),
                    "\"stream\" or \"buffered\"",
                ))
            }
        };
        let authority = authority.to_ascii_lowercase();
        let candidate = UpstreamPlan {
            authority,
            host: host.to_ascii_lowercase(),
            port,
            addrs: vec![],
            tls,
        };
        let pool_key = candidate.pool_key();
        let upstream = match self
            .out
            .upstreams
            .iter()
            .position(|u| u.pool_key() == pool_key)
        {
            Some(i) => i,
            None => {
                self.out.upstreams.push(candidate);
                self.out.upstreams.len() - 1
            }
        };
        let (request_set, request_remove) =
            compile_headers(src, key, "request_headers", &h.request_headers, sub)?;
        let (response_set, response_remove) =
            compile_headers(src, key, "response_headers", &h.response_headers, sub)?;
        Ok(IntegrationPlan::Http(HttpTarget {
            id: id.to_string(),
            upstream,
            path,
            query,
            timeout_ms,
            buffered,
            request_set,
            request_remove,
            response_set,
            response_remove,
        }))
    }
}

/// `name:port`, `[v6]:port`, `name` (port 80).
fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest {
            "" => default_port,
            r => r.strip_prefix(':')?.parse().ok()?,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority, default_port)),
    }
}

type HeaderLists = (Vec<(String, String)>, Vec<String>);

/// Substitutes stage variables in a value; errors name it by its key below the integration.
type Substitute<'a> = dyn Fn(&Spanned<String>, &str) -> Result<String, ConfigError> + 'a;

/// `field` (`request_headers`, `response_headers`) of the integration at `key`.
fn compile_headers(
    src: &Source<'_>,
    key: &str,
    field: &str,
    m: &HeaderMappingSection,
    sub: &Substitute<'_>,
) -> Result<HeaderLists, ConfigError> {
    let mut set = Vec::new();
    for (name, value) in &m.set {
        let field = format!("{field}.set.{}", key_segment(name.get_ref()));
        check_header(src, &format!("{key}.{field}"), name, Some(value))?;
        set.push((name.get_ref().to_ascii_lowercase(), sub(value, &field)?));
    }
    let mut remove = Vec::new();
    for (i, name) in m.remove.iter().enumerate() {
        check_header(src, &format!("{key}.{field}.remove[{i}]"), name, None)?;
        remove.push(name.get_ref().to_ascii_lowercase());
    }
    Ok((set, remove))
}

/// A header name (and value) fit to send; errors point at the one that is not.
fn check_header(
    src: &Source<'_>,
    key: &str,
    name: &Spanned<String>,
    value: Option<&Spanned<String>>,
) -> Result<(), ConfigError> {
    if !is_token(name.get_ref()) {
        return Err(src.error(
            Some(name.span()),
            key,
            format!("{:?} is not a header name", name.get_ref()),
            "a token such as \"x-tenant\"",
        ));
    }
    if let Some(value) = value {
        if value
            .get_ref()
            .bytes()
            .any(|b| b < 0x20 && b != b'\t' || b == 0x7f)
        {
            return Err(src.error(
                Some(value.span()),
                key,
                format!("the value of {:?} has control characters", name.get_ref()),
                "printable text",
            ));
        }
    }
    Ok(())
}

fn compile_mock(
    src: &Source<'_>,
    key: &str,
    m: &MockIntegrationSection,
    sub: &Substitute<'_>,
) -> Result<IntegrationPlan, ConfigError> {
    let status = match &m.status {
        None => 200,
        Some(s) if (200..=599).contains(s.get_ref()) => *s.get_ref(),
        Some(s) => {
            return Err(src.error(
                Some(s.span()),
                format!("{key}.status"),
                format!("status {}", s.get_ref()),
                "200 to 599",
            ))
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &m.headers {
        let field = format!("headers.{}", key_segment(name.get_ref()));
        check_header(src, &format!("{key}.{field}"), name, Some(value))?;
        headers.push((name.get_ref().to_ascii_lowercase(), sub(value, &field)?));
    }
    let body = match &m.body {
        Some(body) => sub(body, "body")?,
        None => String::new(),
    };
    Ok(IntegrationPlan::Mock(MockResponse {
        status,
        headers,
        body,
    }))
}

fn compile_responses(
    src: &Source<'_>,
    a: usize,
    api: &ApiSection,
) -> Result<ResponseCatalogue, ConfigError> {
    let mut overrides = BTreeMap::new();
    for (name, section) in &api.gateway_responses {
        let key = format!("apis[{a}].gateway_responses.{name}");
        let kind = ResponseType::from_name(name).ok_or_else(|| {
            let all: Vec<_> = ResponseType::ALL.iter().map(|t| t.name()).collect();
            src.error(
                Some(section.span()),
                &key,
                format!("unknown gateway response type {name:?}"),
                format!("one of: {}", all.join(", ")),
            )
        })?;
        let s = section.get_ref();
        if let Some(status) = &s.status {
            if !(100..=599).contains(status.get_ref()) {
                return Err(src.error(
                    Some(status.span()),
                    format!("{key}.status"),
                    format!("status {}", status.get_ref()),
                    "100 to 599",
                ));
            }
        }
        let mut headers = Vec::new();
        for (h, v) in &s.headers {
            // Gateway response headers are not spanned: errors point at the response's table.
            let name = Spanned::new(section.span(), h.clone());
            let value = Spanned::new(section.span(), v.clone());
            check_header(src, &format!("{key}.headers"), &name, Some(&value))?;
            headers.push((h.to_ascii_lowercase(), v.clone()));
        }
        overrides.insert(
            kind,
            ResponseOverride {
                status: s.status.as_ref().map(|x| *x.get_ref()),
                headers,
                body: s.body.clone(),
            },
        );
    }
    Ok(ResponseCatalogue::new(overrides))
}

/// `"GET /pets/{id}"` → (`"GET"`, `"/pets/{id}"`).
fn parse_route_key(
    src: &Source<'_>,
    route: &Spanned<String>,
    key: &str,
) -> Result<(String, String), ConfigError> {
    let text = route.get_ref();
    let parsed = text.split_once(' ').filter(|(m, p)| {
        !m.is_empty()
            && m.bytes().all(|c| c.is_ascii_uppercase())
            && p.starts_with('/')
            && !p.contains(' ')
    });
    let Some((method, path)) = parsed else {
        return Err(src.error(Some(route.span()), key, format!("{text:?} is not a route key"), "\"$default\" or \"METHOD /path\" with an uppercase method or ANY, e.g. \"GET /pets/{id}\""));
    };
    Ok((method.to_string(), path.to_string()))
}
