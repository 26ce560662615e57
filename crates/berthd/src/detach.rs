//! Creates that finish even when their caller goes away.
//!
//! A tonic handler's future is dropped when the client cancels or its deadline passes; a create
//! dropped half-way would leave its steps undone. So a create runs in a task of its own, and when
//! it succeeds for a caller who has left, the new ID is kept under the object's name, so that the
//! caller's retry (with the same name) gets that ID instead of a "name reserved" error.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::blocking::TaskFailed;
use crate::sync::LockRecovered;

#[derive(Debug, Default)]
pub struct Unclaimed {
    by_name: Mutex<HashMap<String, String>>,
}

impl Unclaimed {
    /// The ID a create for `name` made after its caller left, if any; it is handed out once.
    pub fn claim(&self, name: &str) -> Option<String> {
        self.lock().remove(name)
    }

    /// Forgets an ID that is removed before anyone claimed it.
    pub fn forget_id(&self, id: &str) {
        self.lock().retain(|_, v| v != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.by_name.lock_recovered()
    }

    /// The create of the object `name` names: the ID an abandoned create made for it, if that
    /// object still `exists`; else `create` run to its end in a task of its own (see
    /// [`Unclaimed::run`]).
    pub async fn create<E, F>(
        self: &Arc<Self>,
        name: String,
        exists: impl FnOnce(&str) -> bool,
        create: F,
    ) -> Result<String, E>
    where
        E: From<TaskFailed> + Send + 'static,
        F: Future<Output = Result<String, E>> + Send + 'static,
    {
        if let Some(id) = self.claim(&name) {
            if exists(&id) {
                return Ok(id);
            }
        }
        self.run(name, create).await?
    }

    /// Runs `create` to its end in a task of its own and returns its result to the caller, if
    /// the caller is still there; else keeps the ID it made for a retry under `name`.
    pub async fn run<E, F>(
        self: &Arc<Self>,
        name: String,
        create: F,
    ) -> Result<Result<String, E>, TaskFailed>
    where
        E: Send + 'static,
        F: Future<Output = Result<String, E>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let unclaimed = self.clone();
        tokio::spawn(async move {
            let result = create.await;
            if let Err(Ok(id)) = tx.send(result) {
                tracing::info!(%id, "created for a caller that went away; kept for its retry");
                unclaimed.lock().insert(name, id);
            }
        });
        rx.await.map_err(|_| TaskFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_abandoned_create_is_kept_for_the_retry() {
        let unclaimed = Arc::new(Unclaimed::default());
        let slow = unclaimed.run::<(), _>("pod-a".into(), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok("id-1".to_owned())
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(5), slow)
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(unclaimed.claim("pod-a").as_deref(), Some("id-1"));
        assert_eq!(unclaimed.claim("pod-a"), None);

        let done = unclaimed
            .run::<(), _>("pod-b".into(), async { Ok("id-2".to_owned()) })
            .await;
        assert_eq!(done.unwrap().unwrap(), "id-2");
        assert_eq!(unclaimed.claim("pod-b"), None);
    }
}
