//! The admin API of the pre-filter (served on the admin listener):
//!
//! - `GET /prefilter`: mode, lists, guarded ports and the current blocks.
//! - `POST /prefilter/blocks` `{"ip": "192.0.2.7", "block_ms": 600000}`: blocks a source.
//! - `DELETE /prefilter/blocks/{ip}`: lifts a block.

use std::net::IpAddr;

use serde_json::{json, Value};
use tollgate_config::Plan;

use super::blocks::{Block, BlockReason, PrefilterState};
use crate::clock::now_ms;

/// True for paths this module serves.
pub fn serves(path: &str) -> bool {
    path == "/prefilter" || path.starts_with("/prefilter/")
}

/// Serves one request: (status, JSON body).
pub fn handle(
    plan: &Plan,
    state: &PrefilterState,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, value) = match (method, parts.as_slice()) {
        ("GET", ["prefilter"]) => (200, describe(plan, state)),
        ("POST", ["prefilter", "blocks"]) => add_block(plan, state, body),
        ("DELETE", ["prefilter", "blocks", ip]) => match ip.parse::<IpAddr>() {
            Ok(ip) if state.remove_block(client_of(plan, ip)) => {
                (200, json!({ "ip": ip.to_string(), "deleted": true }))
            }
            Ok(ip) => (404, json!({ "message": format!("{ip} is not blocked") })),
            Err(_) => (
                400,
                json!({ "message": format!("{ip:?} is not an IP address") }),
            ),
        },
        _ => (404, json!({ "message": "Not Found" })),
    };
    (status, value.to_string())
}

fn describe(plan: &Plan, state: &PrefilterState) -> Value {
    let Some(p) = &plan.prefilter else {
        return json!({ "enabled": false });
    };
    let now = now_ms();
    let mut blocks: Vec<(IpAddr, Block)> = state.blocks();
    blocks.sort_by_key(|(ip, _)| *ip);
    let kernel = state
        .kernel
        .lock()
        .map(|v| v.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let xdp = kernel.unavailable.is_none();
    json!({
        "enabled": true,
        "mode": if xdp { "xdp" } else { "userspace" },
        "xdpUnavailable": kernel.unavailable,
        "interfaces": kernel.interfaces.iter().map(|i| json!({
            "iface": i.iface, "mode": i.mode, "reason": i.reason,
        })).collect::<Vec<_>>(),
        "xdpRuns": kernel.runs.map(|(n, ns)| json!({ "count": n, "timeNs": ns })),
        "xdpStats": kernel.stats.map(|s| json!({
            "pass": s.pass, "passUnparsed": s.pass_unparsed, "passOtherPort": s.pass_other_port,
            "passAllow": s.pass_allow, "dropDeny": s.drop_deny, "dropBlock": s.drop_block,
            "dropSynRate": s.drop_syn_rate, "dropPacketRate": s.drop_pkt_rate,
        })),
        "ports": p.ports,
        "allow": p.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "deny": p.deny.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "blocks": blocks.iter().map(|(ip, b)| json!({
            "ip": ip.to_string(),
            "reason": b.reason.label(),
            "remainingMs": b.expiry_ms.saturating_sub(now),
        })).collect::<Vec<_>>(),
    })
}

fn add_block(plan: &Plan, state: &PrefilterState, body: &[u8]) -> (u16, Value) {
    let Some(p) = &plan.prefilter else {
        return (409, json!({ "message": "no `[prefilter]` is configured" }));
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                json!({ "message": format!("the body is not JSON: {e}") }),
            )
        }
    };
    let ip = match v
        .get("ip")
        .and_then(Value::as_str)
        .map(str::parse::<IpAddr>)
    {
        Some(Ok(ip)) => ip,
        _ => {
            return (
                400,
                json!({ "message": "expected {\"ip\": \"<address>\", \"block_ms\": N}" }),
            )
        }
    };
    let Some(block_ms) = v
        .get("block_ms")
        .and_then(Value::as_u64)
        .filter(|ms| *ms > 0)
    else {
        return (
            400,
            json!({ "message": "`block_ms` must be a positive number of milliseconds" }),
        );
    };
    if p.allowed(ip) {
        return (
            409,
            json!({ "message": format!("{ip} is in the allow list and is never blocked") }),
        );
    }
    let block = Block {
        expiry_ms: now_ms().saturating_add(block_ms),
        reason: BlockReason::Admin,
    };
    // A block holds the whole client (the address's prefix), as escalation's blocks do.
    let client = client_of(plan, ip);
    state.insert_block(client, block);
    (
        201,
        json!({ "ip": ip.to_string(), "client": client.to_string(), "blockMs": block_ms }),
    )
}

/// The client (prefix) an address belongs to under the plan's keying.
fn client_of(plan: &Plan, ip: IpAddr) -> IpAddr {
    plan.client_address.keying.key(ip)
}
