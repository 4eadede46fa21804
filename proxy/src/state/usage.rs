//! Usage counters per subject per UTC day.
//!
//! The gateway aggregates request outcomes in memory and periodically flushes
//! them here in one batch, so usage reports (per API key, per route, ...)
//! survive restarts. A subject is a free-form string such as `"key:ID"` or
//! `"route:API/STAGE/GET /x"`; a day is the number of days since 1970-01-01 UTC.
//!
//! Table: `usage` keyed by `(subject, day)` holding
//! `(served, throttled, quota_rejected)`. Because the subject comes first, all
//! days of a subject are contiguous and a day range is a single `range` call;
//! subjects sharing a prefix are contiguous too.

use redb::{ReadOnlyTable, ReadableTable, TableDefinition};

use super::{commit, open_read, open_write, storage_err, successor, StateError, StateStore};

pub(super) const USAGE_TABLE: &str = "usage";
pub(super) const USAGE: TableDefinition<(&str, i64), (u64, u64, u64)> =
    TableDefinition::new(USAGE_TABLE);

/// Request outcome counters of one subject on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    /// Requests let through to the backend.
    pub served: u64,
    /// Requests rejected by rate limiting.
    pub throttled: u64,
    /// Requests rejected because the quota was exhausted.
    pub quota_rejected: u64,
}

impl UsageCounts {
    /// Field-wise saturating sum.
    #[must_use]
    pub fn saturating_add(self, other: UsageCounts) -> UsageCounts {
        UsageCounts {
            served: self.served.saturating_add(other.served),
            throttled: self.throttled.saturating_add(other.throttled),
            quota_rejected: self.quota_rejected.saturating_add(other.quota_rejected),
        }
    }

    /// True when every counter is zero.
    pub fn is_zero(self) -> bool {
        self == UsageCounts::default()
    }

    fn to_row(self) -> (u64, u64, u64) {
        (self.served, self.throttled, self.quota_rejected)
    }

    fn from_row((served, throttled, quota_rejected): (u64, u64, u64)) -> UsageCounts {
        UsageCounts {
            served,
            throttled,
            quota_rejected,
        }
    }
}

/// The days (ascending) of one subject that have data, with their counts.
pub type DailyUsage = Vec<(i64, UsageCounts)>;

/// Counts to add to one subject on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// Who the counts belong to, e.g. `"key:ID"` or `"route:API/STAGE/GET /x"`.
    pub subject: String,
    /// Days since 1970-01-01 UTC.
    pub day: i64,
    /// The counts to add.
    pub counts: UsageCounts,
}

impl StateStore {
    /// Adds the counts of `batch` (saturating) in ONE transaction: either the
    /// whole batch is durable or none of it. Deltas whose counts are all zero
    /// are skipped, so only days with data get a row. An empty batch does nothing.
    pub fn add_usage(&self, batch: &[UsageDelta]) -> Result<(), StateError> {
        const OP: &str = "add_usage";
        if batch.iter().all(|delta| delta.counts.is_zero()) {
            return Ok(());
        }
        let txn = self.begin_write(OP)?;
        {
            let mut table = open_write(&txn, USAGE, USAGE_TABLE, OP)?;
            for delta in batch.iter().filter(|delta| !delta.counts.is_zero()) {
                let key = (delta.subject.as_str(), delta.day);
                let describe = || format!("(subject={:?}, day={})", delta.subject, delta.day);
                let current = table
                    .get(key)
                    .map_err(storage_err(OP, USAGE_TABLE, describe))?
                    .map(|guard| UsageCounts::from_row(guard.value()))
                    .unwrap_or_default();
                table
                    .insert(key, current.saturating_add(delta.counts).to_row())
                    .map_err(storage_err(OP, USAGE_TABLE, describe))?;
            }
        }
        commit(txn, OP)
    }

    /// Counts of `subject` for the days in `[from_day, to_day]` (both
    /// inclusive), only days with data, in ascending day order. Empty when
    /// `from_day > to_day`.
    pub fn usage(
        &self,
        subject: &str,
        from_day: i64,
        to_day: i64,
    ) -> Result<DailyUsage, StateError> {
        const OP: &str = "usage";
        if from_day > to_day {
            return Ok(Vec::new());
        }
        let txn = self.begin_read(OP)?;
        let table = open_read(&txn, USAGE, USAGE_TABLE, OP)?;
        days_of(&table, subject, from_day, to_day, OP)
    }

    /// Every subject starting with `prefix` (e.g. `"key:"`; `""` means all)
    /// that has data in `[from_day, to_day]`, with its days as in
    /// [`StateStore::usage`]; subjects in ascending byte order.
    pub fn usage_by_prefix(
        &self,
        prefix: &str,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<(String, DailyUsage)>, StateError> {
        const OP: &str = "usage_by_prefix";
        if from_day > to_day {
            return Ok(Vec::new());
        }
        let txn = self.begin_read(OP)?;
        let table = open_read(&txn, USAGE, USAGE_TABLE, OP)?;
        let describe = || format!("(subject={prefix:?}*, any day)");
        let mut out = Vec::new();
        // Skip-scan: find the next subject >= `lower`, read its day range,
        // then continue just past it. Subjects strictly increase, so this
        // ends after at most (number of subjects with the prefix) + 1 seeks.
        let mut lower = prefix.to_owned();
        loop {
            let next_subject = {
                let mut rows = table
                    .range((lower.as_str(), i64::MIN)..)
                    .map_err(storage_err(OP, USAGE_TABLE, describe))?;
                match rows.next() {
                    None => None,
                    Some(row) => {
                        let (key, _) = row.map_err(storage_err(OP, USAGE_TABLE, describe))?;
                        let subject = key.value().0;
                        subject.starts_with(prefix).then(|| subject.to_owned())
                    }
                }
            };
            let Some(subject) = next_subject else {
                break;
            };
            let days = days_of(&table, &subject, from_day, to_day, OP)?;
            lower = successor(&subject);
            if !days.is_empty() {
                out.push((subject, days));
            }
        }
        Ok(out)
    }
}

/// The rows of `subject` with a day in `[from_day, to_day]`.
fn days_of(
    table: &ReadOnlyTable<(&'static str, i64), (u64, u64, u64)>,
    subject: &str,
    from_day: i64,
    to_day: i64,
    op: &'static str,
) -> Result<DailyUsage, StateError> {
    let describe = || format!("(subject={subject:?}, day={from_day}..={to_day})");
    let mut out = Vec::new();
    for row in table
        .range((subject, from_day)..=(subject, to_day))
        .map_err(storage_err(op, USAGE_TABLE, describe))?
    {
        let (key, value) = row.map_err(storage_err(op, USAGE_TABLE, describe))?;
        out.push((key.value().1, UsageCounts::from_row(value.value())));
    }
    Ok(out)
}
