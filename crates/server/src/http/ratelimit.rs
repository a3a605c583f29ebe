//! Login rate limiting per client address (governor's keyed GCRA limiter).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

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
