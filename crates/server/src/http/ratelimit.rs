//! Login rate limiting per client address (governor's keyed GCRA limiter).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<Option<IpAddr>>,
    clock: DefaultClock,
}

impl LoginLimiter {
    pub fn new(per_minute: u32) -> LoginLimiter {
        let n = NonZeroU32::new(per_minute.max(1)).expect("non-zero");
        LoginLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
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

    /// Forgets idle keys so the table does not grow without bound.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
