//! Bounds on long-running reads: live streams, exports and evidence bundles, and `as_of`
//! answers (each folds a workspace's history). Each kind has a cap for the whole server and a
//! smaller one per token, so one token cannot take every place: past the token's cap the
//! answer is 429, past the server's 503, each naming the limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// How many reads of one kind may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// On the whole server.
    pub server: usize,
    /// For one token.
    pub per_token: usize,
}

/// The bounds of each kind of long-running read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBounds {
    /// Live streams, SSE and WebSocket together.
    pub live: Concurrency,
    /// Exports and evidence bundles together; each holds a writer thread of the blocking pool,
    /// so slow readers cannot take the pool from the rest of the server.
    pub exports: Concurrency,
    /// `as_of` answers of the read models.
    pub as_of: Concurrency,
}

impl Default for ReadBounds {
    /// Returns 1,000 live streams (32 a token), 16 exports (4 a token) and 8 `as_of` folds (2 a
    /// token).
    fn default() -> ReadBounds {
        ReadBounds {
            live: Concurrency {
                server: 1_000,
                per_token: 32,
            },
            exports: Concurrency {
                server: 16,
                per_token: 4,
            },
            as_of: Concurrency {
                server: 8,
                per_token: 2,
            },
        }
    }
}

/// The places of one kind of read; cheap to clone.
#[derive(Clone)]
pub(crate) struct Admission {
    bounds: Concurrency,
    /// The error code a refusal carries, and what the reads are called in its message.
    code: &'static str,
    what: &'static str,
    server: Arc<Semaphore>,
    /// Places held per token id; a token holding none has no entry.
    tokens: Arc<Mutex<HashMap<String, usize>>>,
}

/// A place, given back when dropped.
pub(crate) struct Admitted {
    _server: OwnedSemaphorePermit,
    token: String,
    tokens: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(held) = tokens.get_mut(&self.token) {
            *held -= 1;
            if *held == 0 {
                tokens.remove(&self.token);
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(bounds: Concurrency, code: &'static str, what: &'static str) -> Admission {
        Admission {
            bounds,
            code,
            what,
            server: Arc::new(Semaphore::new(bounds.server)),
            tokens: Arc::default(),
        }
    }

    /// Takes a place for `token_id`: 429 when the token holds its share, 503 when the server
    /// holds every place.
    pub(crate) fn admit(&self, token_id: &str) -> Result<Admitted, ApiError> {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let held = tokens.get(token_id).copied().unwrap_or(0);
        if held >= self.bounds.per_token {
            let limit = self.bounds.per_token;
            tracing::warn!(limit, token = %token_id, what = self.what, "refused: the token holds its share");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                self.code,
                format!(
                    "this token already has {limit} {} open, its limit",
                    self.what
                ),
            )
            .with("limit", limit));
        }
        let server = Arc::clone(&self.server).try_acquire_owned().map_err(|_| {
            let limit = self.bounds.server;
            tracing::warn!(limit, what = self.what, "refused: every place is taken");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                self.code,
                format!("the server already serves {limit} {}, its limit", self.what),
            )
            .with("limit", limit)
        })?;
        tokens.insert(token_id.to_owned(), held + 1);
        Ok(Admitted {
            _server: server,
            token: token_id.to_owned(),
            tokens: Arc::clone(&self.tokens),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_takes_its_share_and_the_server_its_cap_and_both_come_back() {
        let admission = Admission::new(
            Concurrency {
                server: 3,
                per_token: 2,
            },
            "too_many_exports",
            "exports",
        );
        let first = admission.admit("tok_a").unwrap();
        let _second = admission.admit("tok_a").unwrap();
        let refused = admission.admit("tok_a").err().unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let _other = admission.admit("tok_b").unwrap();
        let full = admission.admit("tok_c").err().unwrap();
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        let _again = admission.admit("tok_a").unwrap();
        assert!(
            admission.admit("tok_c").is_err(),
            "the server is full again"
        );
    }

    #[test]
    fn a_token_holding_nothing_leaves_no_entry() {
        let admission = Admission::new(
            Concurrency {
                server: 2,
                per_token: 1,
            },
            "too_many_subscribers",
            "live streams",
        );
        drop(admission.admit("tok_a").unwrap());
        assert!(admission.tokens.lock().unwrap().is_empty());
    }
}
