//! The daemon's live objects of one kind (pods, containers) in memory: each an [`Object`] holding
//! its record, and an [`Objects`] map finding them by ID or unique ID prefix. Readers never wait
//! for the disk: a changed record replaces the old one only once it is committed, and changes
//! are ordered by a lock of their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use crate::blocking::TaskFailed;
use crate::detach::Unclaimed;
use crate::ids::{self, Lookup};
use crate::store::{Record, Store, StoreError};
use crate::sync::RwLockRecovered;

/// An ID prefix that more than one object has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ID prefix `{prefix}` is ambiguous: {matches} match")]
pub struct Ambiguous {
    pub prefix: String,
    pub matches: usize,
}

/// One object: its record, the lock that orders the operations on it (stop, remove, update:
/// one at a time), and `extra`, what only its kind keeps.
#[derive(Debug)]
pub struct Object<R, E = ()> {
    record: RwLock<R>,
    /// Orders changes of the record (and what is announced of them) without making readers
    /// wait for a commit.
    updating: tokio::sync::Mutex<()>,
    pub op: tokio::sync::Mutex<()>,
    pub extra: E,
}

impl<R: Record + Clone + Send + 'static, E> Object<R, E> {
    pub fn new(record: R, extra: E) -> Arc<Self> {
        Arc::new(Object {
            record: RwLock::new(record),
            updating: tokio::sync::Mutex::new(()),
            op: tokio::sync::Mutex::new(()),
            extra,
        })
    }

    /// A copy of the current record.
    pub fn record(&self) -> R {
        self.record.read_recovered().clone()
    }

    /// What `pick` takes from the record, read in place.
    pub fn with<T>(&self, pick: impl FnOnce(&R) -> T) -> T {
        pick(&self.record.read_recovered())
    }

    /// Reads, changes and persists the record as one step (no other change slips between);
    /// readers see the old record until the new one is committed. The records before and after.
    pub async fn update(
        &self,
        store: &Arc<Store>,
        change: impl FnOnce(&mut R),
    ) -> Result<(R, R), StoreError> {
        let _updating = self.updating.lock().await;
        let before = self.record();
        let mut next = before.clone();
        change(&mut next);
        let written = next.clone();
        store.off_worker(move |s| s.put(&written)).await?;
        *self.record.write_recovered() = next.clone();
        Ok((before, next))
    }
}

/// The live objects of one kind, by ID, and the IDs of those made for callers that left.
#[derive(Debug)]
pub struct Objects<T> {
    by_id: RwLock<BTreeMap<String, Arc<T>>>,
    unclaimed: Arc<Unclaimed>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects {
            by_id: RwLock::new(BTreeMap::new()),
            unclaimed: Arc::new(Unclaimed::default()),
        }
    }
}

impl<T> Objects<T> {
    /// Makes the object `name` names with `create`, in a task of its own that finishes even if
    /// the caller leaves; a retry after that gets the object made (see [`crate::detach`]).
    pub async fn create<E, F>(&self, name: String, create: F) -> Result<String, E>
    where
        E: From<TaskFailed> + Send + 'static,
        F: Future<Output = Result<String, E>> + Send + 'static,
    {
        let exists = |id: &str| self.find(id).ok().flatten().is_some();
        self.unclaimed.create(name, exists, create).await
    }

    /// Forgets a removed object.
    pub fn forget(&self, id: &str) {
        self.remove(id);
        self.unclaimed.forget_id(id);
    }

    /// The object with this ID or unique ID prefix.
    pub fn find(&self, id: &str) -> Result<Option<Arc<T>>, Ambiguous> {
        match ids::lookup(&self.by_id.read_recovered(), id) {
            Lookup::Found(o) => Ok(Some(o.clone())),
            Lookup::NotFound => Ok(None),
            Lookup::Ambiguous(matches) => Err(Ambiguous {
                prefix: id.to_owned(),
                matches,
            }),
        }
    }

    /// Like [`Objects::find`], but an unknown ID is the caller's `not_found` error.
    pub fn get<E: From<Ambiguous>>(
        &self,
        id: &str,
        not_found: impl FnOnce(String) -> E,
    ) -> Result<Arc<T>, E> {
        self.find(id)?.ok_or_else(|| not_found(id.to_owned()))
    }

    pub fn insert(&self, id: String, object: Arc<T>) {
        self.by_id.write_recovered().insert(id, object);
    }

    pub fn remove(&self, id: &str) {
        self.by_id.write_recovered().remove(id);
    }

    pub fn all(&self) -> Vec<Arc<T>> {
        self.by_id.read_recovered().values().cloned().collect()
    }

    /// What `pick` takes from each object, in ID order, without copying the others (a relist
    /// copies only what it answers).
    pub fn scan<V>(&self, pick: impl FnMut(&T) -> Option<V>) -> Vec<V> {
        let map = self.by_id.read_recovered();
        map.values().map(|o| o.as_ref()).filter_map(pick).collect()
    }
}

impl<R: Record + Clone + Send + 'static, E> Objects<Object<R, E>> {
    /// What `pick` takes from each object's record, read in place.
    pub fn scan_records<V>(&self, mut pick: impl FnMut(&R) -> Option<V>) -> Vec<V> {
        self.scan(|o| o.with(&mut pick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_by_id_or_unique_prefix() {
        let objects: Objects<u8> = Objects::default();
        objects.insert("abc1".into(), Arc::new(1));
        objects.insert("abc2".into(), Arc::new(2));
        assert_eq!(objects.find("abc1").unwrap().as_deref(), Some(&1));
        assert_eq!(
            objects.find("abc"),
            Err(Ambiguous {
                prefix: "abc".into(),
                matches: 2
            })
        );
        objects.remove("abc1");
        assert_eq!(objects.find("abc").unwrap().as_deref(), Some(&2));
        assert_eq!(objects.scan(|v| (*v > 1).then_some(*v)), [2]);
    }
}
