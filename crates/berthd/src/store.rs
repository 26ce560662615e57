//! The metadata store: the only code that touches redb.
//!
//! Records (pods, containers, images) are typed: each kind implements [`Record`] and is kept as JSON
//! in its own table, wrapped in an envelope that carries the schema version it was written with.
//! Name reservations (the CRI's "name already in use" rule) live in their own table so that a
//! reservation can be taken before the object it names exists, and both can be written in one
//! transaction. Every write is one redb transaction: it commits whole or not at all.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version of the record layout written by this berthd.
pub const SCHEMA_VERSION: u32 = 1;

const META: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
const NAMES: TableDefinition<'static, &str, &str> = TableDefinition::new("names");
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
    #[error("name {name:?} is reserved for {owner}")]
    NameReserved { name: String, owner: String },
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
        Ok(Store { db })
    }

    fn table<R: Record>() -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(R::TABLE)
    }

    fn decode<R: Record>(key: &str, bytes: &[u8]) -> Result<R, StoreError> {
        serde_json::from_slice::<Envelope<R>>(bytes)
            .map(|e| e.record)
            .map_err(|source| StoreError::Decode {
                table: R::TABLE,
                key: key.to_owned(),
                source,
            })
    }

    fn encode<R: Record>(record: &R) -> Vec<u8> {
        // Records are plain data with string map keys: encoding them cannot fail.
        serde_json::to_vec(&Envelope {
            v: SCHEMA_VERSION,
            record,
        })
        .unwrap_or_default()
    }

    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(Self::table::<R>()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let value = table.get(key)?;
        value.map(|v| Self::decode(key, v.value())).transpose()
    }

    pub fn list<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(Self::table::<R>()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(Self::decode(k.value(), v.value())?);
        }
        Ok(out)
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

    /// Reads, changes and writes back one record in a single transaction; `None` if it is absent.
    pub fn update<R: Record>(
        &self,
        key: &str,
        change: impl FnOnce(&mut R),
    ) -> Result<Option<R>, StoreError> {
        self.write(|w| {
            let Some(mut record) = w.get::<R>(key)? else {
                return Ok(None);
            };
            change(&mut record);
            w.put(&record)?;
            Ok(Some(record))
        })
    }

    /// Deletes a record and, in the same transaction, the name reservations it owns.
    pub fn delete<R: Record>(&self, key: &str) -> Result<bool, StoreError> {
        self.write(|w| w.delete::<R>(key))
    }

    /// Reserves `name` for `owner`. Reserving it again for the same owner succeeds (a retry).
    pub fn reserve_name(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut names = txn.open_table(NAMES)?;
            let holder = names.get(name)?.map(|v| v.value().to_owned());
            match holder {
                Some(holder) if holder != owner => {
                    return Err(StoreError::NameReserved {
                        name: name.to_owned(),
                        owner: holder,
                    });
                }
                Some(_) => {}
                None => {
                    names.insert(name, owner)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Releases `name` if `owner` holds it.
    pub fn release_name(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut names = txn.open_table(NAMES)?;
            let held = names.get(name)?.is_some_and(|v| v.value() == owner);
            if held {
                names.remove(name)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every reservation as (name, owner).
    pub fn names(&self) -> Result<Vec<(String, String)>, StoreError> {
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

    pub fn get<R: Record>(&mut self, key: &str) -> Result<Option<R>, StoreError> {
        let table = self.txn.open_table(Store::table::<R>())?;
        let value = table.get(key)?;
        value.map(|v| Store::decode(key, v.value())).transpose()
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
            assert_eq!(s.get::<Thing>("a").unwrap(), None);
            assert!(s.list::<Thing>().unwrap().is_empty());
            s.put(&thing("a", 1)).unwrap();
            s.put(&thing("b", 2)).unwrap();
            s.update::<Thing>("a", |t| t.n = 10).unwrap();
            s.set_setting("pod_cidr", "10.0.0.0/16").unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.get::<Thing>("a").unwrap(), Some(thing("a", 10)));
        assert_eq!(s.list::<Thing>().unwrap().len(), 2);
        assert_eq!(
            s.setting("pod_cidr").unwrap().as_deref(),
            Some("10.0.0.0/16")
        );
        assert_eq!(s.update::<Thing>("zz", |t| t.n = 1).unwrap(), None);
    }

    #[test]
    fn names_are_exclusive_and_released_with_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("m.redb")).unwrap();
        s.reserve_name("pod_ns_uid_0", "a").unwrap();
        s.reserve_name("pod_ns_uid_0", "a").unwrap();
        match s.reserve_name("pod_ns_uid_0", "b") {
            Err(StoreError::NameReserved { owner, .. }) => assert_eq!(owner, "a"),
            other => panic!("{other:?}"),
        }
        s.release_name("pod_ns_uid_0", "b").unwrap();
        assert_eq!(s.names().unwrap().len(), 1, "only the owner releases");
        s.put(&thing("a", 1)).unwrap();
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
