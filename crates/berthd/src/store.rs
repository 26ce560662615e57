//! The metadata store: the only code that touches redb.
//!
//! Records (pods, containers, images) are typed: each kind implements [`Record`] and is kept as JSON
//! in its own table, wrapped in an envelope that carries the schema version it was written with.
//! Names (the CRI's "name already in use" rule) live in their own table, written in the same
//! transaction as the record that owns them. While an object is being made its name is claimed in
//! memory only: a create that dies with the daemon leaves no name behind, and a create costs one
//! commit. Every write is one redb transaction: it commits whole or not at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sync::LockRecovered;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::rollback::Rollback;

/// The version of the record layout written by this berthd.
pub const SCHEMA_VERSION: u32 = 1;

const META: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
const NAMES: TableDefinition<'static, &str, &str> = TableDefinition::new("names");
/// Records that could not be decoded, moved aside as they were (key `<table>/<key>`).
const QUARANTINE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("quarantine");
const SCHEMA_KEY: &str = "schema_version";

/// A kind of record kept in its own table, keyed by its id.
pub trait Record: Serialize + DeserializeOwned {
    /// The redb table holding this kind.
    const TABLE: &'static str;
    fn key(&self) -> &str;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open metadata store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error(
        "metadata store {} has schema version {found}; this berthd reads version {SCHEMA_VERSION}",
        path.display()
    )]
    Schema { path: PathBuf, found: String },
    #[error("metadata store: {0}")]
    Db(#[from] redb::Error),
    #[error("metadata record {table}/{key} is unreadable: {source}")]
    Decode {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "metadata record {table}/{key} has layout version {found}; this berthd reads up to {SCHEMA_VERSION}"
    )]
    RecordVersion {
        table: &'static str,
        key: String,
        found: u32,
    },
    #[error("name {name:?} is reserved for {owner}")]
    NameReserved { name: String, owner: String },
    #[error(transparent)]
    Task(#[from] crate::blocking::TaskFailed),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[derive(Serialize, Deserialize)]
struct Envelope<R> {
    v: u32,
    record: R,
}

pub struct Store {
    db: Database,
    /// Names claimed by creates under way, and their owners.
    claims: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the store at `path` and checks its schema version.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| v.value().to_owned());
            match found {
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_str())?;
                }
                Some(v) if v == SCHEMA_VERSION.to_string() => {}
                Some(found) => {
                    return Err(StoreError::Schema {
                        path: path.to_path_buf(),
                        found,
                    });
                }
            }
            txn.open_table(NAMES)?;
        }
        txn.commit()?;
        Ok(Store {
            db,
            claims: Mutex::new(HashMap::new()),
        })
    }

    fn table<R: Record>() -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(R::TABLE)
    }

    /// A record as written: a newer berthd's layout is refused rather than misread.
    fn decode<R: Record>(key: &str, bytes: &[u8]) -> Result<R, StoreError> {
        let envelope =
            serde_json::from_slice::<Envelope<R>>(bytes).map_err(|source| StoreError::Decode {
                table: R::TABLE,
                key: key.to_owned(),
                source,
            })?;
        if envelope.v > SCHEMA_VERSION {
            return Err(StoreError::RecordVersion {
                table: R::TABLE,
                key: key.to_owned(),
                found: envelope.v,
            });
        }
        Ok(envelope.record)
    }

    fn encode<R: Record>(record: &R) -> Vec<u8> {
        // Records are plain data with string map keys: encoding them cannot fail.
        serde_json::to_vec(&Envelope {
            v: SCHEMA_VERSION,
            record,
        })
        .unwrap_or_default()
    }

    /// Every record of a kind. One that cannot be decoded (damaged, or written by a berth that
    /// laid it out otherwise) is moved aside to the quarantine table with a warning, and its
    /// name released, rather than keep the daemon from starting.
    pub fn list<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let table = match txn.open_table(Self::table::<R>()) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            for entry in table.iter()? {
                let (k, v) = entry?;
                match Self::decode(k.value(), v.value()) {
                    Ok(record) => out.push(record),
                    Err(e @ StoreError::Decode { .. }) => {
                        tracing::warn!("{e}; moving the record aside to the quarantine table");
                        damaged.push((k.value().to_owned(), v.value().to_vec()));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !damaged.is_empty() {
            self.quarantine::<R>(&damaged)?;
        }
        Ok(out)
    }

    fn quarantine<R: Record>(&self, damaged: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut aside = txn.open_table(QUARANTINE)?;
            let mut table = txn.open_table(Self::table::<R>())?;
            let mut names = txn.open_table(NAMES)?;
            let owned: Vec<String> = names
                .iter()?
                .filter_map(|e| e.ok())
                .filter(|(_, owner)| damaged.iter().any(|(key, _)| key == owner.value()))
                .map(|(name, _)| name.value().to_owned())
                .collect();
            for name in owned {
                names.remove(name.as_str())?;
            }
            for (key, bytes) in damaged {
                aside.insert(format!("{}/{key}", R::TABLE).as_str(), bytes.as_slice())?;
                table.remove(key.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Runs store work on a blocking thread. A commit waits for the disk, and for any commit
    /// before it: done on an async worker, a burst of creates would hold every worker and stall
    /// the calls that only read.
    pub async fn off_worker<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        crate::blocking::run(move || work(&store)).await?
    }

    /// Runs `body` in one write transaction: everything it writes commits together, or nothing
    /// does (when it returns an error).
    pub fn write<T, E: From<StoreError>>(
        &self,
        body: impl FnOnce(&mut Writer<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let value = body(&mut Writer { txn: &txn })?;
        txn.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    /// Inserts or replaces a record.
    pub fn put<R: Record>(&self, record: &R) -> Result<(), StoreError> {
        self.write(|w| w.put(record))
    }

    /// Deletes a record and, in the same transaction, the name reservations it owns.
    pub fn delete<R: Record>(&self, key: &str) -> Result<bool, StoreError> {
        self.write(|w| w.delete::<R>(key))
    }

    /// Reserves `name` for `owner`. Reserving it again for the same owner succeeds (a retry).
    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.claims.lock_recovered()
    }

    /// Claims `name` for `owner` while it is being made (again: fine); NameReserved when a record
    /// or another create holds it.
    pub fn reserve_name(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut claims = self.claims();
        let holder = match claims.get(name) {
            Some(h) => Some(h.clone()),
            None => {
                let txn = self.db.begin_read()?;
                let names = txn.open_table(NAMES)?;
                names.get(name)?.map(|v| v.value().to_owned())
            }
        };
        match holder {
            Some(holder) if holder != owner => Err(StoreError::NameReserved {
                name: name.to_owned(),
                owner: holder,
            }),
            _ => {
                claims.insert(name.to_owned(), owner.to_owned());
                Ok(())
            }
        }
    }

    /// Claims `name` for a create under way, its release pushed on the create's undo stack.
    pub fn reserve_name_undoable(
        self: &Arc<Self>,
        name: &str,
        owner: &str,
        rb: &mut Rollback,
    ) -> Result<(), StoreError> {
        self.reserve_name(name, owner)?;
        let (store, claimed, owner) = (self.clone(), name.to_owned(), owner.to_owned());
        rb.push("release the name", move || async move {
            store.release_name(&claimed, &owner);
            Ok(())
        });
        Ok(())
    }

    /// Drops `owner`'s claim on `name` (a create that failed).
    pub fn release_name(&self, name: &str, owner: &str) {
        let mut claims = self.claims();
        if claims.get(name).is_some_and(|h| h == owner) {
            claims.remove(name);
        }
    }

    /// Writes a new record together with the name it was made under, in one commit.
    pub fn put_named<R: Record>(&self, name: &str, record: &R) -> Result<(), StoreError> {
        self.write(|w| {
            w.put(record)?;
            let mut names = w.txn.open_table(NAMES)?;
            names.insert(name, record.key())?;
            Ok::<_, StoreError>(())
        })?;
        self.release_name(name, record.key());
        Ok(())
    }

    /// Every written name as (name, owner).
    #[cfg(test)]
    fn names(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.db.begin_read()?;
        let names = txn.open_table(NAMES)?;
        let mut out = Vec::new();
        for entry in names.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_owned(), v.value().to_owned()));
        }
        Ok(out)
    }

    /// A daemon-wide setting kept across restarts (e.g. the pod CIDR from kubelet).
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(key)?.map(|v| v.value().to_owned()))
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(key, value)?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// The writes of one transaction (see [`Store::write`]).
pub struct Writer<'a> {
    txn: &'a redb::WriteTransaction,
}

impl Writer<'_> {
    pub fn put<R: Record>(&mut self, record: &R) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(Store::table::<R>())?;
        table.insert(record.key(), Store::encode(record).as_slice())?;
        Ok(())
    }

    /// Deletes a record and the name reservations it owns.
    pub fn delete<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        let mut table = self.txn.open_table(Store::table::<R>())?;
        let existed = table.remove(key)?.is_some();
        let mut names = self.txn.open_table(NAMES)?;
        names.retain(|_, owner| owner != key)?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing {
        id: String,
        n: u32,
    }

    impl Record for Thing {
        const TABLE: &'static str = "things";
        fn key(&self) -> &str {
            &self.id
        }
    }

    fn thing(id: &str, n: u32) -> Thing {
        Thing { id: id.into(), n }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        {
            let s = Store::open(&path).unwrap();
            assert!(s.list::<Thing>().unwrap().is_empty());
            s.put(&thing("a", 1)).unwrap();
            s.put(&thing("b", 2)).unwrap();
            s.put(&thing("a", 10)).unwrap();
            s.set_setting("pod_cidr", "10.0.0.0/16").unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.list::<Thing>().unwrap(), [thing("a", 10), thing("b", 2)]);
        assert_eq!(
            s.setting("pod_cidr").unwrap().as_deref(),
            Some("10.0.0.0/16")
        );
    }

    #[test]
    fn a_record_of_a_newer_layout_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("m.redb")).unwrap();
        s.write(|w| {
            let mut table = w.txn.open_table(Store::table::<Thing>())?;
            table.insert("a", br#"{"v":2,"record":{"id":"a","n":1}}"#.as_slice())?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert!(matches!(
            s.list::<Thing>(),
            Err(StoreError::RecordVersion { found: 2, .. })
        ));
    }

    #[test]
    fn names_are_exclusive_and_released_with_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("m.redb")).unwrap();
        s.reserve_name("pod_ns_uid_0", "a").unwrap();
        s.reserve_name("pod_ns_uid_0", "a").unwrap();
        let held_by_a = |r: Result<(), StoreError>| match r {
            Err(StoreError::NameReserved { owner, .. }) => assert_eq!(owner, "a"),
            other => panic!("{other:?}"),
        };
        held_by_a(s.reserve_name("pod_ns_uid_0", "b"));
        s.release_name("pod_ns_uid_0", "b");
        held_by_a(s.reserve_name("pod_ns_uid_0", "b"));
        assert!(s.names().unwrap().is_empty(), "a claim is not written");
        s.put_named("pod_ns_uid_0", &thing("a", 1)).unwrap();
        assert_eq!(
            s.names().unwrap(),
            [("pod_ns_uid_0".to_owned(), "a".to_owned())]
        );
        held_by_a(s.reserve_name("pod_ns_uid_0", "b"));
        s.release_name("pod_ns_uid_0", "c");
        s.reserve_name("other", "c").unwrap();
        s.release_name("other", "c");
        s.reserve_name("other", "d").unwrap();
        assert!(s.delete::<Thing>("a").unwrap());
        assert!(
            s.names().unwrap().is_empty(),
            "deleting a record frees its names"
        );
        assert!(!s.delete::<Thing>("a").unwrap());
        s.reserve_name("pod_ns_uid_0", "b").unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        drop(Store::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(SCHEMA_KEY, "99")
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}
