//! Rate limiting per client address (governor's keyed GCRA limiters): login attempts, and
//! failed unauthenticated requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;
use crate::http::conn_limit::client_key;
use crate::http::peer::Peer;

pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<Option<IpAddr>>,
    clock: DefaultClock,
    /// Addresses whose failed `?token=`/`?hash=` attempts ran over the budget, and until when
    /// they are refused without their credential being tried.
    blocked: Mutex<HashMap<Option<IpAddr>, Instant>>,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> LoginLimiter {
        let n = NonZeroU32::new(per_minute.max(1)).expect("non-zero");
        LoginLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// One attempt from `who` (None = the unix socket). 429 with Retry-After when over.
    pub fn check(&self, who: Option<IpAddr>) -> Result<(), ApiError> {
        self.limiter.check_key(&who).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::TooManyRequests {
                retry_after: wait.as_secs() + 1,
            }
        })
    }

    /// 429 while `who` is blocked for failed credential attempts (see [`LoginLimiter::failed`]).
    pub fn check_blocked(&self, who: Option<IpAddr>) -> Result<(), ApiError> {
        let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&who) {
            Some(until) if *until > Instant::now() => Err(ApiError::TooManyRequests {
                retry_after: until.saturating_duration_since(Instant::now()).as_secs() + 1,
            }),
            _ => Ok(()),
        }
    }

    /// Counts one failed `?token=`/`?hash=` attempt against the login budget of `who`. Over
    /// the budget, `who` is blocked (no credential of its is tried) until the budget refills,
    /// and the answer is 429: guessing the admin-API token is as slow as guessing a password.
    pub fn failed(&self, who: Option<IpAddr>) -> Result<(), ApiError> {
        if let Err(not_until) = self.limiter.check_key(&who) {
            let wait = not_until.wait_time_from(self.clock.now());
            self.blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(who, Instant::now() + wait);
            return Err(ApiError::TooManyRequests {
                retry_after: wait.as_secs() + 1,
            });
        }
        Ok(())
    }

    /// Forgets idle keys so the table does not grow without bound.
    pub fn shrink(&self) {
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Failed unauthenticated requests per client address (no credential, or one that does not
/// authenticate). Once an address is over its budget its failures answer 429 `rate_limited`
/// instead of 401/403. Only failures count and only failures are refused: a request with a
/// valid credential is never looked up here, so an admin behind the same address keeps working
/// while a flood from it is throttled. The unix socket is never limited. Addresses are keyed
/// like connections (IPv6 per /64, see `conn_limit::client_key`).
pub struct AnonLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl AnonLimiter {
    pub fn new(per_minute: u32) -> AnonLimiter {
        let n = NonZeroU32::new(per_minute.max(1)).expect("non-zero");
        AnonLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one refused unauthenticated request from `peer` and returns the error to answer
    /// with: `refusal` itself while the address is within its budget, else 429.
    pub fn limit(&self, peer: &Peer, refusal: ApiError) -> ApiError {
        let Some(ip) = peer.ip() else {
            return refusal;
        };
        match self.limiter.check_key(&client_key(ip)) {
            Ok(()) => refusal,
            Err(not_until) => {
                metrics::counter!("hostplane_anonymous_rate_limited_total").increment(1);
                ApiError::TooManyRequests {
                    retry_after: not_until.wait_time_from(self.clock.now()).as_secs() + 1,
                }
            }
        }
    }

    /// Forgets idle keys so the table does not grow without bound.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_failures_over_budget_are_429_and_unix_never() {
        let l = AnonLimiter::new(3);
        let tcp = Peer::Tcp("192.0.2.9:4000".parse().unwrap());
        let unauth = || ApiError::Unauthenticated("x".into());
        for _ in 0..3 {
            assert_eq!(l.limit(&tcp, unauth()).code(), "unauthenticated");
        }
        let e = l.limit(&tcp, unauth());
        assert!(
            matches!(e, ApiError::TooManyRequests { retry_after } if (1..=61).contains(&retry_after))
        );
        // Another address has its own budget; the unix socket has none.
        let other = Peer::Tcp("192.0.2.10:4000".parse().unwrap());
        assert_eq!(l.limit(&other, unauth()).code(), "unauthenticated");
        let unix = Peer::Unix {
            uid: Some(1000),
            pid: None,
            conn: 0,
        };
        for _ in 0..10 {
            assert_eq!(l.limit(&unix, unauth()).code(), "unauthenticated");
        }
    }
}
