//! Per-API-key request rate limits (`KYC_RATE_LIMIT_PER_SECOND`), with
//! governor's GCRA: a key may send `per_second` requests in a burst and
//! then one every `1/per_second` s.
//!
//! The state is in process: with several replicas behind a load balancer
//! each replica allows the rate, so a key can reach `replicas x rate` in
//! all. That keeps every request free of a database round trip; put the
//! limit at the load balancer when the total matters more.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

type KeyLimiter = RateLimiter<
    [u8; 32],
    DefaultKeyedStateStore<[u8; 32]>,
    DefaultClock,
    StateInformationMiddleware,
>;

pub struct RateLimits {
    limiter: KeyLimiter,
    per_second: NonZeroU32,
    checks: AtomicU64,
}

/// What the `RateLimit-*` headers say about a request that was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full burst is available again.
    pub reset_seconds: u64,
}

/// A request over the limit, and when the key may send the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub limit: u32,
    pub retry_after: Duration,
}

/// Keys whose state is dropped once idle: pruned every this many checks.
const PRUNE_EVERY: u64 = 10_000;

impl RateLimits {
    pub fn per_second(per_second: NonZeroU32) -> Self {
        RateLimits {
            limiter: RateLimiter::keyed(Quota::per_second(per_second))
                .with_middleware::<StateInformationMiddleware>(),
            per_second,
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request of the key presented as `api_key` (only its hash
    /// is kept).
    pub fn check(&self, api_key: &str) -> Result<Allowance, Refusal> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let key: [u8; 32] = Sha256::digest(api_key.as_bytes()).into();
        let limit = self.per_second.get();
        match self.limiter.check_key(&key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let missing = u64::from(limit.saturating_sub(remaining));
                Ok(Allowance {
                    limit,
                    remaining,
                    reset_seconds: missing.div_ceil(u64::from(limit)),
                })
            }
            Err(not_until) => Err(Refusal {
                limit,
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_then_refusals_per_key() {
        let limits = RateLimits::per_second(NonZeroU32::new(5).unwrap());
        for left in (0..5).rev() {
            assert_eq!(limits.check("key-a").unwrap().remaining, left);
        }
        let refused = limits.check("key-a").unwrap_err();
        assert_eq!(refused.limit, 5);
        assert!(refused.retry_after <= Duration::from_millis(200));
        assert!(limits.check("key-b").is_ok(), "keys are counted apart");
    }
}
