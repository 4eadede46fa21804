//! The admin API over keys, usage plans, quotas and usage (served on the admin listener; see
//! docs/usage-plans.md). Every change is written to the state directory first, then the
//! keeper builds a new runtime that the admin thread sends to the workers.
//!
//! - `GET /apikeys`, `GET /apikeys/{id}`: keys from the file and the admin API (never values).
//! - `POST /apikeys` `{"name", "id"?, "value"?, "enabled"?}` → 201 with the value, shown once.
//! - `PATCH /apikeys/{id}` `{"enabled": bool}`; `DELETE /apikeys/{id}` (admin-made keys only).
//! - `POST /usageplans/{plan}/keys` `{"keyId"}`; `DELETE /usageplans/{plan}/keys/{key}`.
//! - `GET /usageplans/{plan}/keys/{key}/quota`; `POST` the same with `{"extend": N}` or
//!   `{"reset": true}` (the current period only).
//! - `GET /usageplans/{plan}/usage?startDate=YYYY-MM-DD&endDate=YYYY-MM-DD[&keyId=][&format=csv]`
//!   in the shape of API Gateway's GetUsage.
//! - `GET /usage/routes?startDate=…&endDate=…[&format=csv]`: per route (`API/STAGE/ROUTE KEY`)
//!   per day: served, throttled, quota-rejected (routes with a key requirement or a throttle).

use std::sync::Arc;

use serde_json::{json, Value};
use tollgate_config::period::{day_number, format_day, parse_day};
use tollgate_config::usage::{hex, sha256, KEY_VALUE_LEN_MAX};

use super::keeper::{wall_ms, Keeper};
use super::quota::ALLOWANCE_MAX;
use super::runtime::LimitsRuntime;
use crate::clock::now_secs;
use crate::state::{QuotaRecord, StoredKey};

/// An admin request for this module.
#[derive(Debug)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query string (after `?`).
    pub query: &'a str,
    /// Body.
    pub body: &'a [u8],
}

/// An answer, and the runtime to send the workers when something changed.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
    /// New limits for the workers.
    pub changed: Option<Arc<LimitsRuntime>>,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body: body.to_string(),
        changed: None,
    }
}

fn csv_answer(body: String) -> Answer {
    Answer {
        status: 200,
        content_type: "text/csv",
        body,
        changed: None,
    }
}

fn error(status: u16, message: impl Into<String>) -> Answer {
    answer(status, json!({ "message": message.into() }))
}

/// True for paths this module serves.
pub fn serves(path: &str) -> bool {
    path == "/apikeys"
        || path.starts_with("/apikeys/")
        || path.starts_with("/usageplans/")
        || path == "/usage/routes"
}

/// True for methods that change state (they always need the admin token).
pub fn changes_state(method: &str) -> bool {
    method != "GET" && method != "HEAD"
}

/// Serves one request.
pub fn handle(keeper: &mut Keeper, req: &Request<'_>) -> Answer {
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let result = match (req.method, parts.as_slice()) {
        ("GET", ["apikeys"]) => Ok(list_keys(keeper)),
        ("POST", ["apikeys"]) => create_key(keeper, req.body),
        ("GET", ["apikeys", id]) => get_key(keeper, id),
        ("PATCH", ["apikeys", id]) => update_key(keeper, id, req.body),
        ("DELETE", ["apikeys", id]) => delete_key(keeper, id),
        ("POST", ["usageplans", plan, "keys"]) => attach(keeper, plan, req.body),
        ("DELETE", ["usageplans", plan, "keys", key]) => detach(keeper, plan, key),
        ("GET", ["usageplans", plan, "keys", key, "quota"]) => quota(keeper, plan, key),
        ("POST", ["usageplans", plan, "keys", key, "quota"]) => {
            change_quota(keeper, plan, key, req.body)
        }
        ("GET", ["usageplans", plan, "usage"]) => usage(keeper, plan, req.query),
        ("GET", ["usage", "routes"]) => route_usage(keeper, req.query),
        (_, ["apikeys", ..]) | (_, ["usageplans", ..]) => Err(error(
            405,
            format!("{} is not allowed on {}", req.method, req.path),
        )),
        _ => Err(error(404, "Not Found")),
    };
    result.unwrap_or_else(|e| e)
}

type Result<T> = std::result::Result<T, Answer>;

fn parse_body(body: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error(400, format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(error(400, "the body must be a JSON object"));
    }
    Ok(v)
}

fn store_needed(keeper: &Keeper) -> Result<()> {
    if keeper.store.is_none() {
        return Err(error(
            409,
            "changes need a `[state]` directory to persist them; none is configured",
        ));
    }
    Ok(())
}

/// Rebuilds the runtime after a change (the change is already durable).
fn changed(keeper: &mut Keeper, mut a: Answer) -> Result<Answer> {
    match keeper.reassemble() {
        Ok(rt) => {
            a.changed = Some(rt);
            Ok(a)
        }
        Err(e) => Err(error(409, e)),
    }
}

fn key_json(
    keeper: &Keeper,
    id: &str,
    name: &str,
    enabled: bool,
    created_ms: Option<i64>,
    source: &str,
) -> Value {
    let mut plans: Vec<&str> = keeper
        .plan
        .usage
        .plans
        .iter()
        .filter(|p| {
            p.keys.iter().any(|k| k == id)
                || keeper
                    .attachments
                    .iter()
                    .any(|(plan, key)| *plan == p.id && key == id)
        })
        .map(|p| p.id.as_str())
        .collect();
    plans.dedup();
    json!({
        "id": id,
        "name": name,
        "enabled": enabled,
        "createdDate": created_ms,
        "source": source,
        "usagePlans": plans,
    })
}

fn all_keys(keeper: &Keeper) -> Vec<Value> {
    let file = keeper
        .plan
        .usage
        .keys
        .iter()
        .map(|k| key_json(keeper, &k.id, &k.name, k.enabled, None, "config"));
    let admin = keeper.admin_keys.iter().map(|k| {
        key_json(
            keeper,
            &k.id,
            &k.name,
            k.enabled,
            Some(k.created_ms),
            "admin",
        )
    });
    file.chain(admin).collect()
}

fn list_keys(keeper: &Keeper) -> Answer {
    answer(200, json!({ "items": all_keys(keeper) }))
}

fn get_key(keeper: &Keeper, id: &str) -> Result<Answer> {
    all_keys(keeper)
        .into_iter()
        .find(|k| k["id"] == id)
        .map(|k| answer(200, k))
        .ok_or_else(|| error(404, format!("no API key {id:?}")))
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// 40 random characters from [A-Za-z0-9].
fn random_text(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| error(500, format!("no randomness: {e}")))?;
    // 256 % 62 != 0: the slight bias (≤ 1.6 %) does not matter at this length.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

fn create_key(keeper: &mut Keeper, body: &[u8]) -> Result<Answer> {
    store_needed(keeper)?;
    let v = parse_body(body)?;
    let id = match v.get("id") {
        Some(Value::String(s)) if is_id(s) => s.clone(),
        Some(_) => {
            return Err(error(
                400,
                "`id` must be 1 to 128 letters, digits or `-._~`",
            ))
        }
        None => random_text(10)?.to_lowercase(),
    };
    let name = match v.get("name") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => s.clone(),
        None => id.clone(),
        Some(_) => {
            return Err(error(
                400,
                "`name` must be a non-empty string of at most 1024 characters",
            ))
        }
    };
    let value = match v.get("value") {
        Some(Value::String(s))
            if s.len() >= 20
                && s.len() <= KEY_VALUE_LEN_MAX
                && s.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            s.clone()
        }
        Some(_) => return Err(error(
            400,
            "`value` must be 20 to 256 visible ASCII characters (API Gateway requires at least 20)",
        )),
        None => random_text(40)?,
    };
    let enabled = match v.get("enabled") {
        Some(Value::Bool(b)) => *b,
        None => true,
        Some(_) => return Err(error(400, "`enabled` must be true or false")),
    };
    let taken = keeper.plan.usage.keys.iter().any(|k| k.id == id)
        || keeper.admin_keys.iter().any(|k| k.id == id);
    if taken {
        return Err(error(409, format!("an API key with id {id:?} exists")));
    }
    let hash = sha256(value.as_bytes());
    let same_value = keeper
        .plan
        .usage
        .keys
        .iter()
        .any(|k| k.value_sha256 == hash)
        || keeper
            .admin_keys
            .iter()
            .any(|k| k.value_sha256 == hex(&hash));
    if same_value {
        return Err(error(409, "another API key has this value"));
    }
    let created_ms = wall_ms();
    let key = StoredKey {
        id: id.clone(),
        name: name.clone(),
        value_sha256: hex(&hash),
        enabled,
        created_ms,
    };
    persist_key(keeper, key)?;
    let mut body = key_json(keeper, &id, &name, enabled, Some(created_ms), "admin");
    body["value"] = Value::String(value);
    match changed(keeper, answer(201, body)) {
        Ok(a) => Ok(a),
        Err(e) => {
            // Not usable after all: undone, on disk and in memory.
            if let Some(store) = &keeper.store {
                let _ = store.delete_key(&id);
            }
            keeper.admin_keys.retain(|k| k.id != id);
            let _ = keeper.reassemble();
            Err(e)
        }
    }
}

/// Writes a key and keeps the keeper's list in step (undone if the runtime rejects it).
fn persist_key(keeper: &mut Keeper, key: StoredKey) -> Result<()> {
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    store.put_key(&key).map_err(|e| error(500, e.to_string()))?;
    keeper.admin_keys.retain(|k| k.id != key.id);
    keeper.admin_keys.push(key);
    Ok(())
}

fn update_key(keeper: &mut Keeper, id: &str, body: &[u8]) -> Result<Answer> {
    store_needed(keeper)?;
    let v = parse_body(body)?;
    let Some(Value::Bool(enabled)) = v.get("enabled") else {
        return Err(error(400, "expected {\"enabled\": true|false}"));
    };
    let Some(mut key) = keeper.admin_keys.iter().find(|k| k.id == id).cloned() else {
        return Err(missing_admin_key(keeper, id));
    };
    key.enabled = *enabled;
    let shown = key_json(
        keeper,
        &key.id,
        &key.name,
        key.enabled,
        Some(key.created_ms),
        "admin",
    );
    persist_key(keeper, key)?;
    changed(keeper, answer(200, shown))
}

fn missing_admin_key(keeper: &Keeper, id: &str) -> Answer {
    if keeper.plan.usage.keys.iter().any(|k| k.id == id) {
        error(
            409,
            format!("API key {id:?} is defined in the config file; change it there"),
        )
    } else {
        error(404, format!("no API key {id:?}"))
    }
}

fn delete_key(keeper: &mut Keeper, id: &str) -> Result<Answer> {
    store_needed(keeper)?;
    if !keeper.admin_keys.iter().any(|k| k.id == id) {
        return Err(missing_admin_key(keeper, id));
    }
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    store
        .delete_key(id)
        .map_err(|e| error(500, e.to_string()))?;
    keeper.admin_keys.retain(|k| k.id != id);
    keeper.attachments.retain(|(_, k)| k != id);
    keeper.forget_key(id);
    changed(keeper, answer(200, json!({ "id": id, "deleted": true })))
}

fn plan_exists(keeper: &Keeper, plan: &str) -> Result<()> {
    if keeper.plan.usage.plans.iter().any(|p| p.id == plan) {
        Ok(())
    } else {
        Err(error(404, format!("no usage plan {plan:?}")))
    }
}

fn key_exists(keeper: &Keeper, key: &str) -> Result<()> {
    if keeper.plan.usage.keys.iter().any(|k| k.id == key)
        || keeper.admin_keys.iter().any(|k| k.id == key)
    {
        Ok(())
    } else {
        Err(error(404, format!("no API key {key:?}")))
    }
}

fn attach(keeper: &mut Keeper, plan: &str, body: &[u8]) -> Result<Answer> {
    store_needed(keeper)?;
    plan_exists(keeper, plan)?;
    let v = parse_body(body)?;
    let Some(Value::String(key)) = v.get("keyId") else {
        return Err(error(400, "expected {\"keyId\": \"...\"}"));
    };
    key_exists(keeper, key)?;
    let pair = (plan.to_string(), key.clone());
    if keeper.attachments.contains(&pair) {
        return Ok(answer(200, json!({ "usagePlanId": plan, "keyId": key })));
    }
    keeper.attachments.push(pair.clone());
    if let Err(e) = keeper.reassemble() {
        keeper.attachments.retain(|p| *p != pair);
        return Err(error(409, e));
    }
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    if let Err(e) = store.attach(plan, key) {
        keeper.attachments.retain(|p| *p != pair);
        let _ = keeper.reassemble();
        return Err(error(500, e.to_string()));
    }
    changed(
        keeper,
        answer(201, json!({ "usagePlanId": plan, "keyId": key })),
    )
}

fn detach(keeper: &mut Keeper, plan: &str, key: &str) -> Result<Answer> {
    store_needed(keeper)?;
    plan_exists(keeper, plan)?;
    let pair = (plan.to_string(), key.to_string());
    if !keeper.attachments.contains(&pair) {
        if keeper
            .plan
            .usage
            .plans
            .iter()
            .any(|p| p.id == plan && p.keys.iter().any(|k| k == key))
        {
            return Err(error(
                409,
                format!("key {key:?} is in plan {plan:?} in the config file; change it there"),
            ));
        }
        return Err(error(
            404,
            format!("key {key:?} is not attached to plan {plan:?}"),
        ));
    }
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    store
        .detach(plan, key)
        .map_err(|e| error(500, e.to_string()))?;
    keeper.attachments.retain(|p| *p != pair);
    changed(
        keeper,
        answer(
            200,
            json!({ "usagePlanId": plan, "keyId": key, "deleted": true }),
        ),
    )
}

fn counter(keeper: &Keeper, plan: &str, key: &str) -> Result<Arc<super::quota::QuotaCounter>> {
    plan_exists(keeper, plan)?;
    keeper
        .counters
        .quotas
        .get(&(key.to_string(), plan.to_string()))
        .cloned()
        .ok_or_else(|| error(404, format!("key {key:?} has no quota in plan {plan:?}")))
}

fn quota(keeper: &Keeper, plan: &str, key: &str) -> Result<Answer> {
    let q = counter(keeper, plan, key)?;
    let s = q.snapshot();
    Ok(answer(
        200,
        json!({
            "usagePlanId": plan,
            "keyId": key,
            "period": q.spec.period.name(),
            "periodStart": format_day(day_number(s.period_start)),
            "limit": s.allowance,
            "used": s.used,
            "remaining": s.remaining(),
        }),
    ))
}

fn change_quota(keeper: &mut Keeper, plan: &str, key: &str, body: &[u8]) -> Result<Answer> {
    store_needed(keeper)?;
    let q = counter(keeper, plan, key)?;
    let v = parse_body(body)?;
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    let s = q.snapshot();
    let record = store
        .quota(key, plan)
        .map_err(|e| error(500, e.to_string()))?;
    let extra = record
        .filter(|r| r.period_start == s.period_start)
        .map_or(0, |r| r.extra);
    match (v.get("extend"), v.get("reset")) {
        (Some(n), None) => {
            let Some(n) = n
                .as_i64()
                .filter(|n| *n != 0 && n.unsigned_abs() <= u64::from(u32::MAX))
            else {
                return Err(error(
                    400,
                    "`extend` must be a non-zero integer (negative shrinks)",
                ));
            };
            let allowance = s.allowance.saturating_add_signed(n);
            if s.allowance
                .checked_add_signed(n)
                .is_none_or(|a| a > ALLOWANCE_MAX)
            {
                return Err(error(
                    400,
                    format!("the period would allow {allowance} requests; at most {ALLOWANCE_MAX} and at least 0"),
                ));
            }
            let record = QuotaRecord {
                period_start: s.period_start,
                reserved: s.reserved,
                extra: extra + n,
            };
            store
                .set_quota(key, plan, record)
                .map_err(|e| error(500, e.to_string()))?;
            q.set_allowance(allowance);
        }
        (None, Some(Value::Bool(true))) => {
            let record = QuotaRecord {
                period_start: s.period_start,
                reserved: 0,
                extra,
            };
            store
                .set_quota(key, plan, record)
                .map_err(|e| error(500, e.to_string()))?;
            q.reset_used();
        }
        _ => return Err(error(400, "expected {\"extend\": N} or {\"reset\": true}")),
    }
    // The change is durable and applied: a failed top-up is retried by the keeper's tick.
    if let Err(e) = keeper.refill(&[Arc::clone(&q)], now_secs()) {
        tracing::warn!(error = %e, "cannot reserve quota after an admin change");
    }
    quota(keeper, plan, key)
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn usage(keeper: &mut Keeper, plan_id: &str, query: &str) -> Result<Answer> {
    plan_exists(keeper, plan_id)?;
    let only = query_param(query, "keyId");
    let prefix = format!("plan/{plan_id}/key/");
    let (start, end, rows) = stored_usage(keeper, query, &prefix)?;
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    let plan = keeper
        .plan
        .usage
        .plans
        .iter()
        .find(|p| p.id == plan_id)
        .ok_or_else(|| error(404, "no plan"))?;
    let csv = query_param(query, "format") == Some("csv");
    let mut items = serde_json::Map::new();
    let mut lines = String::from("keyId,date,served,throttled,quotaRejected,remaining\n");
    for (subject, days) in rows {
        let key = &subject[prefix.len()..];
        if only.is_some_and(|k| k != key) {
            continue;
        }
        let mut per_day = Vec::new();
        // Remaining after each day, from what was served since its quota period began.
        let mut period = i64::MIN;
        let mut spent = 0u64;
        // History from the start of the quota period that holds `start`, not all time.
        let from = plan
            .quota
            .map_or(start, |spec| day_number(spec.period.start(start * 86_400)));
        let history = store
            .usage(&subject, from, end)
            .map_err(|e| error(500, e.to_string()))?;
        for d in start..=end {
            let counts = days
                .iter()
                .find(|(x, _)| *x == d)
                .map(|(_, c)| *c)
                .unwrap_or_default();
            let remaining = plan.quota.map(|spec| {
                let ps = spec.period.start(d * 86_400);
                if ps != period {
                    period = ps;
                    spent = history
                        .iter()
                        .filter(|(x, _)| *x * 86_400 >= ps && *x < d)
                        .map(|(_, c)| c.served)
                        .sum();
                }
                spent += counts.served;
                spec.limit.saturating_sub(spent)
            });
            per_day.push(json!([counts.served, remaining]));
            lines.push_str(&format!(
                "{key},{},{},{},{},{}\n",
                format_day(d),
                counts.served,
                counts.throttled,
                counts.quota_rejected,
                remaining.map_or(String::new(), |r| r.to_string())
            ));
        }
        items.insert(key.to_string(), Value::Array(per_day));
    }
    if csv {
        return Ok(csv_answer(lines));
    }
    Ok(answer(
        200,
        json!({
            "usagePlanId": plan_id,
            "startDate": format_day(start),
            "endDate": format_day(end),
            "items": items,
        }),
    ))
}

/// The usage rows under `prefix` for the query's date range (its day numbers first), after
/// writing out what the workers counted so far.
#[allow(clippy::type_complexity)]
fn stored_usage(
    keeper: &mut Keeper,
    query: &str,
    prefix: &str,
) -> Result<(i64, i64, Vec<(String, crate::state::DailyUsage)>)> {
    if keeper.store.is_none() {
        return Err(error(
            409,
            "usage is kept in the `[state]` directory; none is configured",
        ));
    }
    let (start, end) = date_range(query)?;
    keeper.flush_usage(now_secs());
    let store = keeper
        .store
        .as_ref()
        .ok_or_else(|| error(409, "no state directory"))?;
    let rows = store
        .usage_by_prefix(prefix, start, end)
        .map_err(|e| error(500, e.to_string()))?;
    Ok((start, end, rows))
}

/// `startDate` and `endDate` of a usage query, as day numbers.
fn date_range(query: &str) -> Result<(i64, i64)> {
    let day = |name: &str| -> Result<i64> {
        let text = query_param(query, name)
            .ok_or_else(|| error(400, format!("`{name}` is required (YYYY-MM-DD)")))?;
        parse_day(text).ok_or_else(|| {
            error(
                400,
                format!("`{name}` = {text:?} is not a date; expected YYYY-MM-DD"),
            )
        })
    };
    let (start, end) = (day("startDate")?, day("endDate")?);
    if end < start || end - start > 366 {
        return Err(error(
            400,
            "`endDate` must be on or after `startDate`, at most 366 days later",
        ));
    }
    Ok((start, end))
}

fn route_usage(keeper: &mut Keeper, query: &str) -> Result<Answer> {
    let (start, end, rows) = stored_usage(keeper, query, "route/")?;
    let mut items = serde_json::Map::new();
    let mut lines = String::from("route,date,served,throttled,quotaRejected\n");
    for (subject, days) in rows {
        let route = &subject["route/".len()..];
        let mut per_day = Vec::new();
        for (d, c) in days {
            per_day.push(json!({
                "date": format_day(d),
                "served": c.served,
                "throttled": c.throttled,
                "quotaRejected": c.quota_rejected,
            }));
            // Route keys hold spaces and slashes but no quotes or commas: quoted for CSV.
            lines.push_str(&format!(
                "\"{route}\",{},{},{},{}\n",
                format_day(d),
                c.served,
                c.throttled,
                c.quota_rejected
            ));
        }
        items.insert(route.to_string(), Value::Array(per_day));
    }
    if query_param(query, "format") == Some("csv") {
        return Ok(csv_answer(lines));
    }
    Ok(answer(
        200,
        json!({ "startDate": format_day(start), "endDate": format_day(end), "items": items }),
    ))
}
