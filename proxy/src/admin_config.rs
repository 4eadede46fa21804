//! `GET /config` on the admin listener: the running plan as JSON, with the plan generation
//! each worker runs, so an operator can see what a reload actually applied.
//!
//! Secrets are never shown: the admin token is redacted, and so are the values of header
//! mappings (an integration commonly sets an upstream `Authorization` or API key header);
//! their names are kept.

use serde_json::{json, Value};
use tollgate_config::access_log::LineFormat;
use tollgate_config::plan::{IntegrationPlan, ProxyProtocol};
use tollgate_config::Plan;

use crate::metrics::Snapshot;

/// Shown instead of a secret value.
const REDACTED: &str = "<redacted>";

/// The plan and the workers' generations as a JSON document.
pub fn render(plan: &Plan, generation: u64, workers: &[Snapshot]) -> String {
    let doc = json!({
        "generation": generation,
        "source": plan.source.display().to_string(),
        "workers": workers.iter().map(|s| json!({
            "worker": s.worker,
            "generation": s.generation,
            "driver": s.driver,
        })).collect::<Vec<_>>(),
        "settings": {
            "workers": plan.settings.workers,
            "shutdown_timeout_ms": plan.settings.shutdown_timeout_ms,
            "request_id_header": plan.settings.request_id_header,
        },
        "limits": limits(plan),
        "upstream": {
            "connect_timeout_ms": plan.upstream.connect_timeout_ms,
            "idle_per_upstream_max": plan.upstream.idle_per_upstream_max,
            "idle_timeout_ms": plan.upstream.idle_timeout_ms,
            "lifetime_ms": plan.upstream.lifetime_ms,
            "dns_ttl_ms": plan.upstream.dns_ttl_ms,
        },
        "listeners": plan.listeners.iter().map(|l| json!({
            "name": l.name,
            "bind": l.addr.to_string(),
            "backlog": l.backlog,
            "proxy_protocol": match l.proxy_protocol {
                ProxyProtocol::Off => "off",
                ProxyProtocol::Optional => "optional",
                ProxyProtocol::Required => "required",
            },
            "proxy_protocol_from": l.proxy_protocol_from.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "client_address": {
            "trusted_proxies": plan.client_address.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "header": format!("{:?}", plan.client_address.header),
        },
        "access_log": plan.access_log.as_ref().map(|a| json!({
            "path": a.target.to_string(),
            "fields": match &a.format {
                LineFormat::Fields(f) => Value::from(f.iter().map(|f| f.name()).collect::<Vec<_>>()),
                LineFormat::Template(_) => Value::from("template"),
            },
            "buffer_bytes": a.buffer_bytes,
        })),
        "admin": plan.admin.as_ref().map(|a| json!({
            "bind": a.addr.to_string(),
            "token": a.token.as_ref().map(|_| REDACTED),
        })),
        "apis": plan.apis.iter().map(|a| json!({
            "id": a.id,
            "kind": format!("{:?}", a.kind).to_lowercase(),
            "stages": a.stages,
        })).collect::<Vec<_>>(),
        "routes": plan.routes.iter().filter_map(|r| route(plan, r)).collect::<Vec<_>>(),
        "upstreams": plan.upstreams.iter().map(|u| json!({
            "authority": u.authority,
            "addrs": u.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

fn limits(plan: &Plan) -> Value {
    let l = &plan.limits;
    json!({
        "header_bytes_max": l.header_bytes_max,
        "url_bytes_max": l.url_bytes_max,
        "headers_count_max": l.headers_count_max,
        "body_bytes_max": l.body_bytes_max,
        "body_buffer_bytes": l.body_buffer_bytes,
        "header_read_timeout_ms": l.header_read_timeout_ms,
        "body_read_timeout_ms": l.body_read_timeout_ms,
        "idle_timeout_ms": l.idle_timeout_ms,
        "response_write_timeout_ms": l.response_write_timeout_ms,
        "request_timeout_ms": l.request_timeout_ms,
        "requests_per_connection_max": l.requests_per_connection_max,
        "connections_per_worker_max": l.connections_per_worker_max,
        "tunnel_idle_timeout_ms": l.tunnel_idle_timeout_ms,
        "tunnel_duration_max_ms": l.tunnel_duration_max_ms,
    })
}

/// One route (the catch-alls behind API stages are left out).
fn route(plan: &Plan, r: &tollgate_config::plan::RoutePlan) -> Option<Value> {
    let integration = match &r.integration {
        IntegrationPlan::NotFound => return None,
        IntegrationPlan::Mock(m) => json!({ "type": "mock", "status": m.status }),
        IntegrationPlan::Http(h) => {
            let names = |set: &[(String, String)]| -> Value {
                set.iter()
                    .map(|(n, _)| (n.clone(), Value::from(REDACTED)))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            json!({
                "type": "http",
                "id": h.id,
                "upstream": plan.upstreams[h.upstream].authority,
                "timeout_ms": h.timeout_ms,
                "body_mode": if h.buffered { "buffered" } else { "stream" },
                "request_headers": { "set": names(&h.request_set), "remove": h.request_remove },
                "response_headers": { "set": names(&h.response_set), "remove": h.response_remove },
            })
        }
    };
    Some(json!({
        "api": plan.apis[r.api].id,
        "stage": r.stage,
        "route": r.route_key,
        "integration": integration,
    }))
}
