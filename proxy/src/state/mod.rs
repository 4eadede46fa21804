//! The gateway's embedded, ACID state store.
//!
//! # Why this exists
//!
//! Some of tollgate's state must survive restarts and crashes: quota
//! reservations (so a restart cannot hand out a quota twice), the moment a
//! usage plan started counting, per-day usage counters, and the API keys and
//! plan attachments created through the admin API (keys from the config file
//! are not stored here). This module keeps all of it in one [redb] file,
//! `state.redb`, inside the configured state directory.
//!
//! # Threading and durability
//!
//! A [`StateStore`] is meant to be owned by the gateway's single state thread
//! and does blocking disk I/O. Every write method runs exactly one redb write
//! transaction committed with [`redb::Durability::Immediate`] (set explicitly,
//! it is also redb's default): when a write method returns `Ok`, the change
//! has been fsynced and survives a SIGKILL or a power loss. Read methods use
//! one read transaction each, so each sees a consistent snapshot.
//!
//! # Tables
//!
//! | table         | key                              | value                                         | purpose |
//! |---------------|----------------------------------|-----------------------------------------------|---------|
//! | `meta`        | `&str` (`"schema_version"`)      | `u32`                                         | [`SCHEMA_VERSION`] of the file, checked at open |
//! | `quota`       | `(&str key_id, &str plan_id)`    | `(i64 period_start, u64 reserved, i64 extra)` | durable quota reservations (`quota.rs`) |
//! | `plan_origin` | `&str plan_id`                   | `i64` unix seconds                            | when a usage plan started counting (`quota.rs`) |
//! | `usage`       | `(&str subject, i64 day)`        | `(u64 served, u64 throttled, u64 quota_rejected)` | per-subject per-UTC-day counters (`usage.rs`) |
//! | `api_key`     | `&str id`                        | `&str`, JSON of [`StoredKey`]                 | admin-created API keys (`keys.rs`) |
//! | `attachment`  | `(&str key_id, &str plan_id)`    | `()`                                          | admin-made plan ↔ key attachments (`keys.rs`) |
//!
//! Fixed-width integer tuples keep the hot values (quota, usage) cheap to
//! encode and explicit; keys are stored as JSON because they are rare, small
//! and may gain fields. `quota` and `attachment` put `key_id` first so that
//! deleting a key removes its rows with one range scan, and `usage` puts the
//! subject first so that a subject's days are one contiguous range.
//!
//! All tables are created when the store is opened, so read transactions can
//! always open them.

mod keys;
mod quota;
mod usage;

#[cfg(test)]
mod tests;

pub use keys::StoredKey;
pub use quota::QuotaRecord;
pub use usage::{DailyUsage, UsageCounts, UsageDelta};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, Durability, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTable, Table, TableDefinition, Value, WriteTransaction,
};

/// Version of the table layout described in the module documentation.
///
/// It is written to the `meta` table when a file is created; opening a file
/// that carries another version fails with [`StateError::SchemaMismatch`].
pub const SCHEMA_VERSION: u32 = 1;

/// Name of the database file inside the state directory.
pub const FILE_NAME: &str = "state.redb";

const META_TABLE: &str = "meta";
const META: TableDefinition<&str, u32> = TableDefinition::new(META_TABLE);
const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Everything that can go wrong in the state store.
///
/// `op` is the [`StateStore`] method that failed (e.g. `"set_quota"`),
/// `table` the redb table involved and `key` a readable rendering of the
/// row(s) involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        /// Directory that was to be created.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The database file is locked by another open [`StateStore`], in this
    /// process or in another one (e.g. a second gateway on the same directory).
    #[error(
        "state file {path} is already open: another StateStore (in this or another process) holds its lock"
    )]
    AlreadyOpen {
        /// Path of the database file.
        path: PathBuf,
    },
    /// The database file could not be opened or created.
    #[error("cannot open state file {path}: {source}")]
    Open {
        /// Path of the database file.
        path: PathBuf,
        /// Underlying redb error.
        source: DatabaseError,
    },
    /// The file was written with another table layout.
    #[error(
        "state file {path} has schema version {found}, but this build supports only version {expected}"
    )]
    SchemaMismatch {
        /// Path of the database file.
        path: PathBuf,
        /// Version stored in the file.
        found: u32,
        /// [`SCHEMA_VERSION`] of this build.
        expected: u32,
    },
    /// A transaction could not be started.
    #[error("{op}: cannot begin a transaction: {source}")]
    Transaction {
        /// Store method that failed.
        op: &'static str,
        /// Underlying redb error.
        source: redb::TransactionError,
    },
    /// The commit durability could not be set.
    #[error("{op}: cannot set commit durability: {source}")]
    Durability {
        /// Store method that failed.
        op: &'static str,
        /// Underlying redb error.
        source: redb::SetDurabilityError,
    },
    /// A table could not be opened (or created).
    #[error("{op}: cannot open table `{table}`: {source}")]
    Table {
        /// Store method that failed.
        op: &'static str,
        /// Table name.
        table: &'static str,
        /// Underlying redb error.
        source: redb::TableError,
    },
    /// Reading or writing rows failed.
    #[error("{op}: storage error in table `{table}` at {key}: {source}")]
    Storage {
        /// Store method that failed.
        op: &'static str,
        /// Table name.
        table: &'static str,
        /// Row(s) involved.
        key: String,
        /// Underlying redb error.
        source: redb::StorageError,
    },
    /// The transaction could not be committed; nothing it wrote is durable.
    #[error("{op}: cannot commit: {source}")]
    Commit {
        /// Store method that failed.
        op: &'static str,
        /// Underlying redb error.
        source: redb::CommitError,
    },
    /// A value could not be serialized.
    #[error("{op}: cannot encode value for table `{table}` at {key}: {source}")]
    Encode {
        /// Store method that failed.
        op: &'static str,
        /// Table name.
        table: &'static str,
        /// Row involved.
        key: String,
        /// Underlying serde_json error.
        source: serde_json::Error,
    },
    /// A stored value could not be decoded.
    #[error("{op}: corrupt value in table `{table}` at {key}: {reason}")]
    Corrupt {
        /// Store method that failed.
        op: &'static str,
        /// Table name.
        table: &'static str,
        /// Row involved.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller passed a value the store refuses to write.
    #[error("{op}: invalid input for table `{table}` at {key}: {reason}")]
    InvalidInput {
        /// Store method that failed.
        op: &'static str,
        /// Table name.
        table: &'static str,
        /// Row involved.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The gateway's durable state: quota reservations, plan origins, usage,
/// admin-created API keys and plan attachments. See the module documentation.
pub struct StateStore {
    db: Database,
    dir: PathBuf,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens (creating the directory and the file `state.redb` if missing) the store in `dir`.
    ///
    /// Errors name the path and what went wrong: [`StateError::AlreadyOpen`]
    /// if another store (in this or another process) holds the file lock,
    /// [`StateError::SchemaMismatch`] if the file has another
    /// [`SCHEMA_VERSION`].
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StateError::AlreadyOpen { path })
            }
            Err(source) => return Err(StateError::Open { path, source }),
        };
        let store = StateStore {
            db,
            dir: dir.to_path_buf(),
        };
        store.init_schema(&path)?;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks or stamps the schema version and creates all tables, in one
    /// write transaction.
    fn init_schema(&self, path: &Path) -> Result<(), StateError> {
        const OP: &str = "open";
        let txn = self.begin_write(OP)?;
        let found = {
            let mut meta = open_write(&txn, META, META_TABLE, OP)?;
            let found = meta
                .get(SCHEMA_VERSION_KEY)
                .map_err(storage_err(OP, META_TABLE, || SCHEMA_VERSION_KEY.into()))?
                .map(|guard| guard.value());
            if found.is_none() {
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
                    .map_err(storage_err(OP, META_TABLE, || SCHEMA_VERSION_KEY.into()))?;
            }
            found
        };
        if let Some(found) = found.filter(|v| *v != SCHEMA_VERSION) {
            // Nothing was written; the mismatch is the error worth reporting
            // even if abandoning the transaction fails too.
            let _ = abort(txn, OP, META_TABLE);
            return Err(StateError::SchemaMismatch {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        open_write(&txn, quota::QUOTA, quota::QUOTA_TABLE, OP)?;
        open_write(&txn, quota::PLAN_ORIGIN, quota::PLAN_ORIGIN_TABLE, OP)?;
        open_write(&txn, usage::USAGE, usage::USAGE_TABLE, OP)?;
        open_write(&txn, keys::API_KEY, keys::API_KEY_TABLE, OP)?;
        open_write(&txn, keys::ATTACHMENT, keys::ATTACHMENT_TABLE, OP)?;
        commit(txn, OP)
    }

    /// Starts a write transaction that commits with immediate (fsync) durability.
    fn begin_write(&self, op: &'static str) -> Result<WriteTransaction, StateError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|source| StateError::Transaction { op, source })?;
        txn.set_durability(Durability::Immediate)
            .map_err(|source| StateError::Durability { op, source })?;
        Ok(txn)
    }

    /// Starts a read transaction.
    fn begin_read(&self, op: &'static str) -> Result<ReadTransaction, StateError> {
        self.db
            .begin_read()
            .map_err(|source| StateError::Transaction { op, source })
    }
}

/// Commits `txn` durably.
fn commit(txn: WriteTransaction, op: &'static str) -> Result<(), StateError> {
    txn.commit()
        .map_err(|source| StateError::Commit { op, source })
}

/// Abandons `txn` (used when a write method finds nothing to change or must fail).
fn abort(txn: WriteTransaction, op: &'static str, table: &'static str) -> Result<(), StateError> {
    txn.abort()
        .map_err(storage_err(op, table, || "(abort)".into()))
}

/// Opens (creating if needed) `def` in a write transaction.
fn open_write<'t, K: Key + 'static, V: Value + 'static>(
    txn: &'t WriteTransaction,
    def: TableDefinition<K, V>,
    table: &'static str,
    op: &'static str,
) -> Result<Table<'t, K, V>, StateError> {
    txn.open_table(def)
        .map_err(|source| StateError::Table { op, table, source })
}

/// Opens `def` in a read transaction.
fn open_read<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    table: &'static str,
    op: &'static str,
) -> Result<ReadOnlyTable<K, V>, StateError> {
    txn.open_table(def)
        .map_err(|source| StateError::Table { op, table, source })
}

/// Builds a mapper from a redb storage error to [`StateError::Storage`]; the
/// key description is only rendered when an error actually happens.
fn storage_err(
    op: &'static str,
    table: &'static str,
    key: impl FnOnce() -> String,
) -> impl FnOnce(redb::StorageError) -> StateError {
    move |source| StateError::Storage {
        op,
        table,
        key: key(),
        source,
    }
}

/// The smallest string greater than every string equal to `s`, i.e. `s` + NUL.
///
/// For a tuple key `(&str, X)`, the range `(s, MIN) .. (successor(s), MIN)`
/// holds exactly the rows whose first element is `s`.
fn successor(s: &str) -> String {
    let mut next = String::with_capacity(s.len() + 1);
    next.push_str(s);
    next.push('\0');
    next
}

/// For a table keyed by `(&str, &str)`, the second key elements of the rows
/// whose first key element is `first` (e.g. the plan ids of one key id).
fn second_keys<V: Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    first: &str,
    op: &'static str,
    name: &'static str,
) -> Result<Vec<String>, StateError> {
    let upper = successor(first);
    let err = || format!("({first:?}, *)");
    let mut out = Vec::new();
    for row in table
        .range((first, "")..(upper.as_str(), ""))
        .map_err(storage_err(op, name, err))?
    {
        let (key, _) = row.map_err(storage_err(op, name, err))?;
        out.push(key.value().1.to_owned());
    }
    Ok(out)
}
