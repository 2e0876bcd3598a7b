//! Per-client rate limits (`--req-limit`, `--char-budget`), as LibreTranslate offers:
//! requests and characters per minute, each a token bucket that refills evenly over the
//! minute. A client is its API key when the server checks keys, its address otherwise
//! (a key the server does not check could be changed at will to dodge the limit).
//!
//! A request larger than the whole character budget passes when the bucket is full and
//! leaves it in debt, so it is delayed, never refused forever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The per-minute limits; `None`: no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub requests_per_minute: Option<u64>,
    pub chars_per_minute: Option<u64>,
}

impl RateLimits {
    pub fn is_off(&self) -> bool {
        self.requests_per_minute.is_none() && self.chars_per_minute.is_none()
    }
}

/// Which limit a request ran into, and when it may come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// `--req-limit`.
    Requests { limit: u64, retry_after_s: u64 },
    /// `--char-budget`.
    Characters { limit: u64, retry_after_s: u64 },
}

impl Limited {
    pub fn retry_after_s(&self) -> u64 {
        match self {
            Limited::Requests { retry_after_s, .. } | Limited::Characters { retry_after_s, .. } => {
                *retry_after_s
            }
        }
    }
}

/// A token bucket of `capacity` tokens refilled at `capacity` per minute.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: u64, now: Instant) -> Self {
        Self {
            tokens: capacity as f64,
            updated: now,
        }
    }

    fn refill(&mut self, capacity: u64, now: Instant) {
        let per_second = capacity as f64 / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity as f64);
        self.updated = now;
    }

    /// Seconds until `cost` (at most the capacity) may be taken; 0 when it may now.
    fn wait_s(&self, capacity: u64, cost: u64) -> f64 {
        let needed = cost.min(capacity) as f64;
        if self.tokens >= needed {
            0.0
        } else {
            (needed - self.tokens) / (capacity as f64 / 60.0)
        }
    }

    fn is_full(&self, capacity: u64) -> bool {
        self.tokens >= capacity as f64
    }
}

/// One client's buckets.
#[derive(Clone, Copy, Debug)]
struct Client {
    requests: Bucket,
    chars: Bucket,
}

/// The buckets of every client seen lately.
pub struct RateLimiter {
    limits: RateLimits,
    clients: Mutex<Clients>,
}

struct Clients {
    map: HashMap<String, Client>,
    /// Clients whose buckets are full again are forgotten when the map reaches this size.
    prune_at: usize,
}

const MIN_PRUNE_AT: usize = 1024;

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            clients: Mutex::new(Clients {
                map: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Counts one request of `chars` characters for `client`, or says which limit it
    /// exceeds (then nothing is counted).
    pub fn check(&self, client: &str, chars: u64) -> Result<(), Limited> {
        self.check_at(client, chars, Instant::now())
    }

    fn check_at(&self, client: &str, chars: u64, now: Instant) -> Result<(), Limited> {
        if self.limits.is_off() {
            return Ok(());
        }
        let req_cap = self.limits.requests_per_minute.unwrap_or(0);
        let char_cap = self.limits.chars_per_minute.unwrap_or(0);
        // A poisoned lock only means another thread panicked mid-update; the buckets are
        // still numbers, so carry on with them.
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if !clients.map.contains_key(client) {
            if clients.map.len() >= clients.prune_at {
                clients.map.retain(|_, c| {
                    let mut c = *c;
                    c.requests.refill(req_cap, now);
                    c.chars.refill(char_cap, now);
                    !(c.requests.is_full(req_cap) && c.chars.is_full(char_cap))
                });
                clients.prune_at = (clients.map.len() * 2).max(MIN_PRUNE_AT);
            }
            clients.map.insert(
                client.to_string(),
                Client {
                    requests: Bucket::full(req_cap, now),
                    chars: Bucket::full(char_cap, now),
                },
            );
        }
        let Some(c) = clients.map.get_mut(client) else {
            return Ok(());
        };
        if let Some(limit) = self.limits.requests_per_minute {
            c.requests.refill(limit, now);
            let wait = c.requests.wait_s(limit, 1);
            if wait > 0.0 {
                return Err(Limited::Requests {
                    limit,
                    retry_after_s: wait.ceil() as u64,
                });
            }
        }
        if let Some(limit) = self.limits.chars_per_minute {
            c.chars.refill(limit, now);
            let wait = c.chars.wait_s(limit, chars);
            if wait > 0.0 {
                return Err(Limited::Characters {
                    limit,
                    retry_after_s: wait.ceil() as u64,
                });
            }
            c.chars.tokens -= chars as f64;
        }
        if self.limits.requests_per_minute.is_some() {
            c.requests.tokens -= 1.0;
        }
        Ok(())
    }

    /// Clients remembered now (for tests).
    pub fn clients(&self) -> usize {
        self.clients.lock().map(|c| c.map.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(requests: Option<u64>, chars: Option<u64>) -> RateLimiter {
        RateLimiter::new(RateLimits {
            requests_per_minute: requests,
            chars_per_minute: chars,
        })
    }

    #[test]
    fn requests_per_minute_refill_evenly_and_per_client() {
        let l = limiter(Some(6), None);
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(l.check_at("a", 10, t0), Ok(()));
        }
        // The seventh waits for one token: 60 s / 6 = 10 s.
        assert_eq!(
            l.check_at("a", 10, t0),
            Err(Limited::Requests {
                limit: 6,
                retry_after_s: 10
            })
        );
        // Another client has its own bucket.
        assert_eq!(l.check_at("b", 10, t0), Ok(()));
        assert!(l.check_at("a", 10, t0 + Duration::from_secs(9)).is_err());
        assert_eq!(l.check_at("a", 10, t0 + Duration::from_secs(10)), Ok(()));
        assert!(l.check_at("a", 10, t0 + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn characters_are_a_budget_and_a_refusal_costs_nothing() {
        let l = limiter(Some(100), Some(600));
        let t0 = Instant::now();
        assert_eq!(l.check_at("a", 500, t0), Ok(()));
        // 100 left; 300 more need 200 at 10 per second.
        assert_eq!(
            l.check_at("a", 300, t0),
            Err(Limited::Characters {
                limit: 600,
                retry_after_s: 20
            })
        );
        assert_eq!(l.check_at("a", 100, t0), Ok(()));
        // A text larger than the whole budget passes with a full bucket, then waits.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(l.check_at("a", 1000, t1), Ok(()));
        let Err(Limited::Characters { retry_after_s, .. }) = l.check_at("a", 1, t1) else {
            panic!("the debt should refuse the next request");
        };
        assert_eq!(retry_after_s, 41);
    }

    #[test]
    fn off_limits_count_nothing_and_idle_clients_are_forgotten() {
        let off = limiter(None, None);
        assert_eq!(off.check("a", u64::MAX), Ok(()));
        assert_eq!(off.clients(), 0);
        let l = limiter(Some(60), None);
        let t0 = Instant::now();
        for i in 0..MIN_PRUNE_AT {
            l.check_at(&format!("c{i}"), 1, t0).unwrap();
        }
        assert_eq!(l.clients(), MIN_PRUNE_AT);
        // A minute later every bucket is full again: the next new client prunes them.
        l.check_at("new", 1, t0 + Duration::from_secs(61)).unwrap();
        assert_eq!(l.clients(), 1);
    }
}
