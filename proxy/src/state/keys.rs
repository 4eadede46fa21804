//! API keys and plan ↔ key attachments created through the admin API.
//!
//! Keys and attachments from the config file are rebuilt from the config at
//! every start and are not stored; the ones made at run time through the
//! admin API must survive restarts, so they live here. Only the SHA-256 of a
//! key's value is stored, never the value itself.
//!
//! Tables: `api_key` keyed by id holding the JSON of [`StoredKey`], and
//! `attachment` keyed by `(key_id, plan_id)` with an empty value. The key id
//! comes first so that [`StateStore::delete_key`] finds a key's attachments
//! (and, in `quota`, its reservations) with one range scan each.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::quota::{QUOTA, QUOTA_TABLE};
use super::{
    abort, commit, open_read, open_write, second_keys, storage_err, StateError, StateStore,
};

pub(super) const API_KEY_TABLE: &str = "api_key";
pub(super) const API_KEY: TableDefinition<&str, &str> = TableDefinition::new(API_KEY_TABLE);
pub(super) const ATTACHMENT_TABLE: &str = "attachment";
pub(super) const ATTACHMENT: TableDefinition<(&str, &str), ()> =
    TableDefinition::new(ATTACHMENT_TABLE);

/// An API key created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Unique, non-empty id of the key.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// SHA-256 of the key's value: 64 lowercase hex digits.
    pub value_sha256: String,
    /// Whether requests carrying this key are accepted.
    pub enabled: bool,
    /// Creation time, unix milliseconds.
    pub created_ms: i64,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn invalid(op: &'static str, table: &'static str, key: String, reason: &'static str) -> StateError {
    StateError::InvalidInput {
        op,
        table,
        key,
        reason,
    }
}

impl StateStore {
    /// Durably inserts `key`, or replaces the stored key with the same id.
    ///
    /// Fails with [`StateError::InvalidInput`] if the id is empty or
    /// `value_sha256` is not 64 lowercase hex digits.
    pub fn put_key(&self, key: &StoredKey) -> Result<(), StateError> {
        const OP: &str = "put_key";
        let describe = || format!("id={:?}", key.id);
        if key.id.is_empty() {
            return Err(invalid(OP, API_KEY_TABLE, describe(), "empty key id"));
        }
        if !is_sha256_hex(&key.value_sha256) {
            return Err(invalid(
                OP,
                API_KEY_TABLE,
                describe(),
                "value_sha256 is not 64 lowercase hex digits",
            ));
        }
        let json = serde_json::to_string(key).map_err(|source| StateError::Encode {
            op: OP,
            table: API_KEY_TABLE,
            key: describe(),
            source,
        })?;
        let txn = self.begin_write(OP)?;
        {
            let mut table = open_write(&txn, API_KEY, API_KEY_TABLE, OP)?;
            table
                .insert(key.id.as_str(), json.as_str())
                .map_err(storage_err(OP, API_KEY_TABLE, describe))?;
        }
        commit(txn, OP)
    }

    /// Durably deletes the key `id` together with its attachments and quota
    /// reservations, in one transaction. Returns `false`, changing nothing,
    /// if no key with that id is stored (e.g. a config key: its attachments
    /// and reservations are left alone).
    pub fn delete_key(&self, id: &str) -> Result<bool, StateError> {
        const OP: &str = "delete_key";
        let txn = self.begin_write(OP)?;
        let existed = {
            let mut keys = open_write(&txn, API_KEY, API_KEY_TABLE, OP)?;
            let removed = keys
                .remove(id)
                .map_err(storage_err(OP, API_KEY_TABLE, || format!("id={id:?}")))?;
            removed.is_some()
        };
        if !existed {
            abort(txn, OP, API_KEY_TABLE)?;
            return Ok(false);
        }
        {
            let mut attachments = open_write(&txn, ATTACHMENT, ATTACHMENT_TABLE, OP)?;
            for plan_id in second_keys(&attachments, id, OP, ATTACHMENT_TABLE)? {
                attachments
                    .remove((id, plan_id.as_str()))
                    .map_err(storage_err(OP, ATTACHMENT_TABLE, || {
                        format!("(key_id={id:?}, plan_id={plan_id:?})")
                    }))?;
            }
        }
        {
            let mut quotas = open_write(&txn, QUOTA, QUOTA_TABLE, OP)?;
            for plan_id in second_keys(&quotas, id, OP, QUOTA_TABLE)? {
                quotas.remove((id, plan_id.as_str())).map_err(storage_err(
                    OP,
                    QUOTA_TABLE,
                    || format!("(key_id={id:?}, plan_id={plan_id:?})"),
                ))?;
            }
        }
        commit(txn, OP)?;
        Ok(true)
    }

    /// All stored keys, ordered by id.
    pub fn keys(&self) -> Result<Vec<StoredKey>, StateError> {
        const OP: &str = "keys";
        let txn = self.begin_read(OP)?;
        let table = open_read(&txn, API_KEY, API_KEY_TABLE, OP)?;
        let all = || "(all rows)".to_owned();
        let mut out = Vec::new();
        for row in table.iter().map_err(storage_err(OP, API_KEY_TABLE, all))? {
            let (id, json) = row.map_err(storage_err(OP, API_KEY_TABLE, all))?;
            let key: StoredKey =
                serde_json::from_str(json.value()).map_err(|err| StateError::Corrupt {
                    op: OP,
                    table: API_KEY_TABLE,
                    key: format!("id={:?}", id.value()),
                    reason: err.to_string(),
                })?;
            out.push(key);
        }
        Ok(out)
    }

    /// Durably attaches key `key_id` to usage plan `plan_id` (idempotent).
    /// The key need not be stored here: config keys may be attached too.
    /// Fails with [`StateError::InvalidInput`] if either id is empty.
    pub fn attach(&self, plan_id: &str, key_id: &str) -> Result<(), StateError> {
        const OP: &str = "attach";
        let describe = || format!("(key_id={key_id:?}, plan_id={plan_id:?})");
        if plan_id.is_empty() || key_id.is_empty() {
            return Err(invalid(OP, ATTACHMENT_TABLE, describe(), "empty id"));
        }
        let txn = self.begin_write(OP)?;
        {
            let mut table = open_write(&txn, ATTACHMENT, ATTACHMENT_TABLE, OP)?;
            table.insert((key_id, plan_id), ()).map_err(storage_err(
                OP,
                ATTACHMENT_TABLE,
                describe,
            ))?;
        }
        commit(txn, OP)
    }

    /// Durably removes the attachment of `key_id` to `plan_id`; returns
    /// `false`, changing nothing, if there was none. Quota reservations are
    /// not touched.
    pub fn detach(&self, plan_id: &str, key_id: &str) -> Result<bool, StateError> {
        const OP: &str = "detach";
        let txn = self.begin_write(OP)?;
        let existed = {
            let mut table = open_write(&txn, ATTACHMENT, ATTACHMENT_TABLE, OP)?;
            let removed = table.remove((key_id, plan_id)).map_err(storage_err(
                OP,
                ATTACHMENT_TABLE,
                || format!("(key_id={key_id:?}, plan_id={plan_id:?})"),
            ))?;
            removed.is_some()
        };
        if existed {
            commit(txn, OP)?;
        } else {
            abort(txn, OP, ATTACHMENT_TABLE)?;
        }
        Ok(existed)
    }

    /// All attachments as `(plan_id, key_id)`, ordered by plan then key.
    pub fn attachments(&self) -> Result<Vec<(String, String)>, StateError> {
        const OP: &str = "attachments";
        let txn = self.begin_read(OP)?;
        let table = open_read(&txn, ATTACHMENT, ATTACHMENT_TABLE, OP)?;
        let all = || "(all rows)".to_owned();
        let mut out = Vec::new();
        for row in table
            .iter()
            .map_err(storage_err(OP, ATTACHMENT_TABLE, all))?
        {
            let (key, _) = row.map_err(storage_err(OP, ATTACHMENT_TABLE, all))?;
            let (key_id, plan_id) = key.value();
            out.push((plan_id.to_owned(), key_id.to_owned()));
        }
        out.sort_unstable();
        Ok(out)
    }
}
