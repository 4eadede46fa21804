//! Tests of the state store against real files in a temporary directory.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

/// A unique directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tollgate-state-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rec(period_start: i64, reserved: u64, extra: i64) -> QuotaRecord {
    QuotaRecord {
        period_start,
        reserved,
        extra,
    }
}

fn counts(served: u64, throttled: u64, quota_rejected: u64) -> UsageCounts {
    UsageCounts {
        served,
        throttled,
        quota_rejected,
    }
}

fn delta(subject: &str, day: i64, c: UsageCounts) -> UsageDelta {
    UsageDelta {
        subject: subject.to_owned(),
        day,
        counts: c,
    }
}

fn key(id: &str) -> StoredKey {
    StoredKey {
        id: id.to_owned(),
        name: format!("name of {id}"),
        value_sha256: "ab".repeat(32),
        enabled: true,
        created_ms: 1_700_000_000_123,
    }
}

#[test]
fn quota_round_trip_overwrite_and_delete() {
    let dir = TempDir::new("quota");
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.quota("k1", "p1").unwrap(), None);
    store.set_quota("k1", "p1", rec(100, 5, -2)).unwrap();
    assert_eq!(store.quota("k1", "p1").unwrap(), Some(rec(100, 5, -2)));
    assert_eq!(store.quota("k1", "p2").unwrap(), None);
    assert_eq!(store.quota("k2", "p1").unwrap(), None);
    store.set_quota("k1", "p1", rec(200, 7, 3)).unwrap();
    assert_eq!(store.quota("k1", "p1").unwrap(), Some(rec(200, 7, 3)));
    store.delete_quota("k1", "p1").unwrap();
    assert_eq!(store.quota("k1", "p1").unwrap(), None);
    // Deleting a missing record is fine.
    store.delete_quota("k1", "p1").unwrap();
}

#[test]
fn set_quotas_batch_and_list_all() {
    let dir = TempDir::new("quotas");
    let store = StateStore::open(dir.path()).unwrap();
    store.set_quotas(&[]).unwrap();
    assert!(store.quotas().unwrap().is_empty());
    store
        .set_quotas(&[
            ("k2".into(), "p1".into(), rec(1, 10, 0)),
            ("k1".into(), "p2".into(), rec(2, 20, 1)),
            ("k1".into(), "p1".into(), rec(3, 30, 2)),
            ("k1".into(), "p1".into(), rec(3, 31, 2)), // later entry wins
        ])
        .unwrap();
    assert_eq!(
        store.quotas().unwrap(),
        vec![
            ("k1".into(), "p1".into(), rec(3, 31, 2)),
            ("k1".into(), "p2".into(), rec(2, 20, 1)),
            ("k2".into(), "p1".into(), rec(1, 10, 0)),
        ]
    );
    assert_eq!(store.quota("k1", "p2").unwrap(), Some(rec(2, 20, 1)));
}

#[test]
fn plan_origin_keeps_the_first_value() {
    let dir = TempDir::new("origin");
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.plan_origin("p1", 1000).unwrap(), 1000);
    assert_eq!(store.plan_origin("p1", 2000).unwrap(), 1000);
    assert_eq!(store.plan_origin("p2", 3000).unwrap(), 3000);
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.plan_origin("p1", 4000).unwrap(), 1000);
    assert_eq!(store.plan_origin("p2", 4000).unwrap(), 3000);
}

#[test]
fn add_usage_accumulates_per_subject_and_day() {
    let dir = TempDir::new("usage-acc");
    let store = StateStore::open(dir.path()).unwrap();
    store
        .add_usage(&[
            delta("key:a", 10, counts(1, 2, 3)),
            delta("key:a", 11, counts(5, 0, 0)),
            delta("key:b", 10, counts(7, 0, 1)),
            delta("key:a", 10, counts(1, 0, 0)), // same row twice in one batch
        ])
        .unwrap();
    store
        .add_usage(&[delta("key:a", 10, counts(10, 10, 10))])
        .unwrap();
    // All-zero deltas create no row.
    store
        .add_usage(&[delta("key:a", 12, UsageCounts::default())])
        .unwrap();
    assert_eq!(
        store.usage("key:a", 0, 100).unwrap(),
        vec![(10, counts(12, 12, 13)), (11, counts(5, 0, 0))]
    );
    assert_eq!(
        store.usage("key:b", 0, 100).unwrap(),
        vec![(10, counts(7, 0, 1))]
    );
    assert!(store.usage("key:c", 0, 100).unwrap().is_empty());
}

#[test]
fn add_usage_saturates() {
    let dir = TempDir::new("usage-sat");
    let store = StateStore::open(dir.path()).unwrap();
    store
        .add_usage(&[delta("s", 1, counts(u64::MAX - 1, 1, 0))])
        .unwrap();
    store.add_usage(&[delta("s", 1, counts(5, 0, 2))]).unwrap();
    assert_eq!(
        store.usage("s", 1, 1).unwrap(),
        vec![(1, counts(u64::MAX, 1, 2))]
    );
}

#[test]
fn usage_range_bounds_are_inclusive() {
    let dir = TempDir::new("usage-range");
    let store = StateStore::open(dir.path()).unwrap();
    let batch: Vec<UsageDelta> = [-1, 0, 1, 5, 9, 10, 11]
        .iter()
        .map(|&day| delta("route:x", day, counts(day.unsigned_abs() + 1, 0, 0)))
        .collect();
    store.add_usage(&batch).unwrap();
    let days = |from, to| -> Vec<i64> {
        store
            .usage("route:x", from, to)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    };
    assert_eq!(days(1, 10), vec![1, 5, 9, 10]);
    assert_eq!(days(5, 5), vec![5]);
    assert_eq!(days(2, 4), Vec::<i64>::new());
    assert_eq!(days(10, 1), Vec::<i64>::new());
    assert_eq!(days(i64::MIN, i64::MAX), vec![-1, 0, 1, 5, 9, 10, 11]);
    assert_eq!(
        store.usage("route:x", 11, 11).unwrap(),
        vec![(11, counts(12, 0, 0))]
    );
}

#[test]
fn usage_by_prefix_filters_by_prefix_and_range() {
    let dir = TempDir::new("usage-prefix");
    let store = StateStore::open(dir.path()).unwrap();
    store
        .add_usage(&[
            delta("key", 5, counts(100, 0, 0)), // shorter than the prefix
            delta("key:a", 4, counts(1, 0, 0)),
            delta("key:a", 5, counts(2, 0, 0)),
            delta("key:a", 7, counts(3, 0, 0)),
            delta("key:a\0x", 5, counts(4, 0, 0)),
            delta("key:b", 9, counts(5, 0, 0)), // outside the range
            delta("key:c", 6, counts(6, 0, 0)),
            delta("key;", 5, counts(7, 0, 0)), // sorts right after "key:"
            delta("route:key:a", 5, counts(8, 0, 0)),
        ])
        .unwrap();
    assert_eq!(
        store.usage_by_prefix("key:", 5, 7).unwrap(),
        vec![
            (
                "key:a".to_owned(),
                vec![(5, counts(2, 0, 0)), (7, counts(3, 0, 0))]
            ),
            ("key:a\0x".to_owned(), vec![(5, counts(4, 0, 0))]),
            ("key:c".to_owned(), vec![(6, counts(6, 0, 0))]),
        ]
    );
    let all: Vec<String> = store
        .usage_by_prefix("", 5, 5)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(all, vec!["key", "key:a", "key:a\0x", "key;", "route:key:a"]);
    assert!(store.usage_by_prefix("zzz", 0, 100).unwrap().is_empty());
    assert!(store.usage_by_prefix("key:", 7, 5).unwrap().is_empty());
}

#[test]
fn keys_round_trip_replace_and_validate() {
    let dir = TempDir::new("keys");
    let store = StateStore::open(dir.path()).unwrap();
    assert!(store.keys().unwrap().is_empty());
    store.put_key(&key("b")).unwrap();
    store.put_key(&key("a")).unwrap();
    let mut b2 = key("b");
    b2.enabled = false;
    b2.name = "renamed".into();
    store.put_key(&b2).unwrap();
    assert_eq!(store.keys().unwrap(), vec![key("a"), b2]);

    let mut bad = key("c");
    bad.value_sha256 = "AB".repeat(32);
    let err = store.put_key(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::InvalidInput {
                table: "api_key",
                ..
            }
        ),
        "{err}"
    );
    bad.value_sha256 = "ab".repeat(31);
    assert!(store.put_key(&bad).is_err());
    assert!(store.put_key(&key("")).is_err());
    assert_eq!(store.keys().unwrap().len(), 2);
}

#[test]
fn attach_detach_round_trip() {
    let dir = TempDir::new("attach");
    let store = StateStore::open(dir.path()).unwrap();
    store.attach("p2", "k1").unwrap();
    store.attach("p1", "k2").unwrap();
    store.attach("p1", "k1").unwrap();
    store.attach("p1", "k1").unwrap(); // idempotent
    assert_eq!(
        store.attachments().unwrap(),
        vec![
            ("p1".to_owned(), "k1".to_owned()),
            ("p1".to_owned(), "k2".to_owned()),
            ("p2".to_owned(), "k1".to_owned()),
        ]
    );
    assert!(store.detach("p1", "k1").unwrap());
    assert!(!store.detach("p1", "k1").unwrap());
    assert!(!store.detach("p9", "k9").unwrap());
    assert_eq!(
        store.attachments().unwrap(),
        vec![
            ("p1".to_owned(), "k2".to_owned()),
            ("p2".to_owned(), "k1".to_owned())
        ]
    );
    assert!(store.attach("", "k1").is_err());
}

#[test]
fn delete_key_removes_its_attachments_and_quotas_only() {
    let dir = TempDir::new("delete-key");
    let store = StateStore::open(dir.path()).unwrap();
    for id in ["k", "k2", "k\0"] {
        store.put_key(&key(id)).unwrap();
        store.attach("p1", id).unwrap();
        store.attach("p2", id).unwrap();
        store.set_quota(id, "p1", rec(1, 1, 0)).unwrap();
        store.set_quota(id, "p2", rec(1, 2, 0)).unwrap();
    }
    // A config key (not stored) with an attachment and a reservation.
    store.attach("p1", "cfg").unwrap();
    store.set_quota("cfg", "p1", rec(1, 3, 0)).unwrap();

    assert!(store.delete_key("k").unwrap());
    assert!(!store.delete_key("k").unwrap());
    assert!(!store.delete_key("cfg").unwrap());

    let ids: Vec<String> = store.keys().unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, vec!["k\0", "k2"]);
    let attached: Vec<(String, String)> = store.attachments().unwrap();
    assert!(attached.iter().all(|(_, k)| k != "k"), "{attached:?}");
    assert_eq!(attached.len(), 5);
    let quotas = store.quotas().unwrap();
    assert!(quotas.iter().all(|(k, _, _)| k != "k"), "{quotas:?}");
    assert_eq!(quotas.len(), 5);
    assert_eq!(store.quota("cfg", "p1").unwrap(), Some(rec(1, 3, 0)));
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = TempDir::new("reopen");
    {
        let store = StateStore::open(dir.path()).unwrap();
        store.set_quota("k1", "p1", rec(10, 11, 12)).unwrap();
        store.plan_origin("p1", 77).unwrap();
        store
            .add_usage(&[delta("key:k1", 3, counts(1, 2, 3))])
            .unwrap();
        store.put_key(&key("k1")).unwrap();
        store.attach("p1", "k1").unwrap();
    }
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(
        store.quotas().unwrap(),
        vec![("k1".to_owned(), "p1".to_owned(), rec(10, 11, 12))]
    );
    assert_eq!(store.plan_origin("p1", 99).unwrap(), 77);
    assert_eq!(
        store.usage("key:k1", 3, 3).unwrap(),
        vec![(3, counts(1, 2, 3))]
    );
    assert_eq!(store.keys().unwrap(), vec![key("k1")]);
    assert_eq!(
        store.attachments().unwrap(),
        vec![("p1".to_owned(), "k1".to_owned())]
    );
}

#[test]
fn open_creates_missing_directories() {
    let dir = TempDir::new("mkdir");
    let nested = dir.path().join("a").join("b");
    let store = StateStore::open(&nested).unwrap();
    store.set_quota("k", "p", rec(0, 1, 0)).unwrap();
    assert!(nested.join(FILE_NAME).is_file());
}

#[test]
fn second_open_in_same_process_is_a_clear_error() {
    let dir = TempDir::new("locked");
    let store = StateStore::open(dir.path()).unwrap();
    let err = StateStore::open(dir.path()).unwrap_err();
    match &err {
        StateError::AlreadyOpen { path } => assert_eq!(path, &dir.path().join(FILE_NAME)),
        other => panic!("expected AlreadyOpen, got {other:?}"),
    }
    assert!(err.to_string().contains("already open"), "{err}");
    // The first store still works, and the lock is released on drop.
    store.set_quota("k", "p", rec(0, 1, 0)).unwrap();
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.quota("k", "p").unwrap(), Some(rec(0, 1, 0)));
}

#[test]
fn schema_version_is_stamped_and_a_mismatch_is_rejected() {
    let dir = TempDir::new("schema");
    let path = dir.path().join(FILE_NAME);
    drop(StateStore::open(dir.path()).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            let stored = meta.get(SCHEMA_VERSION_KEY).unwrap().map(|g| g.value());
            assert_eq!(stored, Some(SCHEMA_VERSION));
            meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = StateStore::open(dir.path()).unwrap_err();
    match &err {
        StateError::SchemaMismatch {
            path: p,
            found,
            expected,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*expected, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("schema version 2"), "{err}");
}

#[test]
fn errors_are_send_sync_and_static() {
    fn assert_traits<T: std::error::Error + Send + Sync + 'static>() {}
    assert_traits::<StateError>();
}
