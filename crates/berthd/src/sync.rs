//! Locks whose holder panicked stay usable. Every lock in berthd guards data that is whole
//! between statements (a map, a record, a buffer), never an invariant spread over a critical
//! section, so the data a panicking holder left is still good to read and change; refusing it
//! would turn one failed request into a daemon that answers nothing.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub trait LockRecovered<T> {
    fn lock_recovered(&self) -> MutexGuard<'_, T>;
}

impl<T> LockRecovered<T> for Mutex<T> {
    fn lock_recovered(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub trait RwLockRecovered<T> {
    fn read_recovered(&self) -> RwLockReadGuard<'_, T>;
    fn write_recovered(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLockRecovered<T> for RwLock<T> {
    fn read_recovered(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_recovered(&self) -> RwLockWriteGuard<'_, T> {
        self.write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
