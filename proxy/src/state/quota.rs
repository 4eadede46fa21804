//! Durable quota reservations and usage-plan origins.
//!
//! The gateway spends quota in chunks: before it grants the requests of a new
//! chunk it makes the enlarged reservation durable here, so that after a crash
//! or restart it resumes from a count that is never below what was actually
//! granted (at worst it loses the unspent rest of one chunk). A plan's origin
//! is the moment it started counting; the quota offset's first period is
//! derived from it, so it must never change once stored.
//!
//! Tables: `quota` keyed by `(key_id, plan_id)` holding
//! `(period_start, reserved, extra)`, and `plan_origin` keyed by `plan_id`
//! holding unix seconds.

use redb::{ReadableTable, TableDefinition};

use super::{abort, commit, open_read, open_write, storage_err, StateError, StateStore};

pub(super) const QUOTA_TABLE: &str = "quota";
pub(super) const QUOTA: TableDefinition<(&str, &str), (i64, u64, i64)> =
    TableDefinition::new(QUOTA_TABLE);
pub(super) const PLAN_ORIGIN_TABLE: &str = "plan_origin";
pub(super) const PLAN_ORIGIN: TableDefinition<&str, i64> = TableDefinition::new(PLAN_ORIGIN_TABLE);

/// The durable reservation of one (key, plan) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRecord {
    /// Start of the quota period this reservation belongs to (unix seconds).
    pub period_start: i64,
    /// Requests reserved (granted or about to be granted) in that period.
    pub reserved: u64,
    /// Admin extension (+) or reduction (-) of the limit for that period.
    pub extra: i64,
}

impl QuotaRecord {
    fn to_row(self) -> (i64, u64, i64) {
        (self.period_start, self.reserved, self.extra)
    }

    fn from_row((period_start, reserved, extra): (i64, u64, i64)) -> QuotaRecord {
        QuotaRecord {
            period_start,
            reserved,
            extra,
        }
    }
}

fn quota_key(key_id: &str, plan_id: &str) -> String {
    format!("(key_id={key_id:?}, plan_id={plan_id:?})")
}

impl StateStore {
    /// The durable reservation of (key_id, plan_id): the period it belongs to and how many
    /// requests have been reserved (granted or about to be granted) in that period.
    pub fn quota(&self, key_id: &str, plan_id: &str) -> Result<Option<QuotaRecord>, StateError> {
        const OP: &str = "quota";
        let txn = self.begin_read(OP)?;
        let table = open_read(&txn, QUOTA, QUOTA_TABLE, OP)?;
        let row = table
            .get((key_id, plan_id))
            .map_err(storage_err(OP, QUOTA_TABLE, || quota_key(key_id, plan_id)))?;
        Ok(row.map(|guard| QuotaRecord::from_row(guard.value())))
    }

    /// Durably sets the reservation of (key_id, plan_id), overwriting any
    /// previous one. Called before the gateway spends a new chunk.
    pub fn set_quota(
        &self,
        key_id: &str,
        plan_id: &str,
        rec: QuotaRecord,
    ) -> Result<(), StateError> {
        const OP: &str = "set_quota";
        let txn = self.begin_write(OP)?;
        {
            let mut table = open_write(&txn, QUOTA, QUOTA_TABLE, OP)?;
            table
                .insert((key_id, plan_id), rec.to_row())
                .map_err(storage_err(OP, QUOTA_TABLE, || quota_key(key_id, plan_id)))?;
        }
        commit(txn, OP)
    }

    /// Durably sets several reservations `(key_id, plan_id, record)` in ONE
    /// transaction: either all are stored or none. Later entries for the same
    /// pair win. An empty slice does nothing.
    pub fn set_quotas(&self, recs: &[(String, String, QuotaRecord)]) -> Result<(), StateError> {
        const OP: &str = "set_quotas";
        if recs.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write(OP)?;
        {
            let mut table = open_write(&txn, QUOTA, QUOTA_TABLE, OP)?;
            for (key_id, plan_id, rec) in recs {
                table
                    .insert((key_id.as_str(), plan_id.as_str()), rec.to_row())
                    .map_err(storage_err(OP, QUOTA_TABLE, || quota_key(key_id, plan_id)))?;
            }
        }
        commit(txn, OP)
    }

    /// All reservations as `(key_id, plan_id, record)`, ordered by key then
    /// plan (start-up load).
    pub fn quotas(&self) -> Result<Vec<(String, String, QuotaRecord)>, StateError> {
        const OP: &str = "quotas";
        let txn = self.begin_read(OP)?;
        let table = open_read(&txn, QUOTA, QUOTA_TABLE, OP)?;
        let all = || "(all rows)".to_owned();
        let mut out = Vec::new();
        for row in table.iter().map_err(storage_err(OP, QUOTA_TABLE, all))? {
            let (key, value) = row.map_err(storage_err(OP, QUOTA_TABLE, all))?;
            let (key_id, plan_id) = key.value();
            out.push((
                key_id.to_owned(),
                plan_id.to_owned(),
                QuotaRecord::from_row(value.value()),
            ));
        }
        Ok(out)
    }

    /// Durably deletes the reservation of (key_id, plan_id); deleting a
    /// missing one is not an error.
    pub fn delete_quota(&self, key_id: &str, plan_id: &str) -> Result<(), StateError> {
        const OP: &str = "delete_quota";
        let txn = self.begin_write(OP)?;
        let removed = {
            let mut table = open_write(&txn, QUOTA, QUOTA_TABLE, OP)?;
            let removed =
                table
                    .remove((key_id, plan_id))
                    .map_err(storage_err(OP, QUOTA_TABLE, || quota_key(key_id, plan_id)))?;
            removed.is_some()
        };
        if removed {
            commit(txn, OP)
        } else {
            abort(txn, OP, QUOTA_TABLE)
        }
    }

    /// Returns the stored origin (unix seconds) of `plan_id`, durably storing
    /// `now_secs` first if there is none. The first stored value is kept forever.
    pub fn plan_origin(&self, plan_id: &str, now_secs: i64) -> Result<i64, StateError> {
        const OP: &str = "plan_origin";
        let key = || format!("plan_id={plan_id:?}");
        // Fast path: a read transaction, no fsync, when the origin exists.
        {
            let txn = self.begin_read(OP)?;
            let table = open_read(&txn, PLAN_ORIGIN, PLAN_ORIGIN_TABLE, OP)?;
            let row = table
                .get(plan_id)
                .map_err(storage_err(OP, PLAN_ORIGIN_TABLE, key))?;
            if let Some(origin) = row.map(|guard| guard.value()) {
                return Ok(origin);
            }
        }
        // Re-check inside the write transaction so the first value always wins.
        let txn = self.begin_write(OP)?;
        let existing = {
            let mut table = open_write(&txn, PLAN_ORIGIN, PLAN_ORIGIN_TABLE, OP)?;
            let existing = table
                .get(plan_id)
                .map_err(storage_err(OP, PLAN_ORIGIN_TABLE, key))?
                .map(|guard| guard.value());
            if existing.is_none() {
                table
                    .insert(plan_id, now_secs)
                    .map_err(storage_err(OP, PLAN_ORIGIN_TABLE, key))?;
            }
            existing
        };
        match existing {
            Some(origin) => {
                abort(txn, OP, PLAN_ORIGIN_TABLE)?;
                Ok(origin)
            }
            None => {
                commit(txn, OP)?;
                Ok(now_secs)
            }
        }
    }
}
