//! Single-use, short-lived tokens for the requests the RPCs accept: the token is the only thing
//! that authorizes a streaming connection, so it is random (128 bits), expires, and is consumed by
//! its first use whatever follows.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::backend::Request;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("maximum number of in-flight streaming requests exceeded")]
    Full,
    /// Never a guessable token: without the kernel's randomness there is none.
    #[error("no randomness for a streaming token: {0}")]
    Random(String),
}

#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_token: HashMap<String, (Request, Instant)>,
    /// Tokens in insertion order, for collecting the expired ones oldest first.
    order: VecDeque<String>,
}

impl TokenCache {
    pub fn new(ttl: Duration, capacity: usize) -> TokenCache {
        TokenCache {
            ttl,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a request; its token.
    pub fn insert(&self, request: Request) -> Result<String, TokenError> {
        self.insert_at(request, Instant::now())
    }

    fn insert_at(&self, request: Request, now: Instant) -> Result<String, TokenError> {
        let mut inner = self.lock();
        while let Some(oldest) = inner.order.front().cloned() {
            match inner.by_token.get(&oldest) {
                Some((_, expires)) if *expires >= now => break,
                _ => {
                    inner.order.pop_front();
                    inner.by_token.remove(&oldest);
                }
            }
        }
        if inner.by_token.len() >= self.capacity {
            return Err(TokenError::Full);
        }
        let token = loop {
            let token = new_token()?;
            if !inner.by_token.contains_key(&token) {
                break token;
            }
        };
        inner
            .by_token
            .insert(token.clone(), (request, now + self.ttl));
        inner.order.push_back(token.clone());
        Ok(token)
    }

    /// Takes the request of `token` out of the cache; None when unknown, expired or of another
    /// kind (the token is spent either way).
    pub fn consume(&self, token: &str, kind: &str) -> Option<Request> {
        self.consume_at(token, kind, Instant::now())
    }

    fn consume_at(&self, token: &str, kind: &str, now: Instant) -> Option<Request> {
        let mut inner = self.lock();
        let (request, expires) = inner.by_token.remove(token)?;
        inner.order.retain(|t| t != token);
        (now <= expires && request.kind() == kind).then_some(request)
    }
}

fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(TokenError::Random(e.to_string())),
        }
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::StreamOpts;

    fn exec() -> Request {
        Request::Exec {
            container_id: "c".into(),
            cmd: vec!["sh".into()],
            opts: StreamOpts::default(),
        }
    }

    #[test]
    fn tokens_are_single_use_and_of_their_kind() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let t = cache.insert(exec()).unwrap();
        assert_eq!(t.len(), 22);
        assert_eq!(cache.consume(&t, "exec"), Some(exec()));
        assert_eq!(cache.consume(&t, "exec"), None, "single use");
        let t = cache.insert(exec()).unwrap();
        assert_eq!(cache.consume(&t, "attach"), None, "wrong kind");
        assert_eq!(cache.consume(&t, "exec"), None, "and consumed all the same");
    }

    #[test]
    fn tokens_expire_at_their_ttl() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let a = cache.insert_at(exec(), now).unwrap();
        let b = cache.insert_at(exec(), now).unwrap();
        assert!(
            cache
                .consume_at(&a, "exec", now + Duration::from_secs(60))
                .is_some(),
            "valid at exactly the TTL"
        );
        assert!(
            cache
                .consume_at(&b, "exec", now + Duration::from_secs(61))
                .is_none()
        );
    }

    #[test]
    fn a_full_cache_refuses_until_entries_expire() {
        let cache = TokenCache::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        cache.insert_at(exec(), now).unwrap();
        cache.insert_at(exec(), now).unwrap();
        assert_eq!(cache.insert_at(exec(), now), Err(TokenError::Full));
        assert!(
            cache
                .insert_at(exec(), now + Duration::from_secs(61))
                .is_ok(),
            "expired ones are collected"
        );
    }
}
