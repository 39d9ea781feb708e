//! The minimum-rate rule for downloads: once a grace period has passed, a download must have
//! received at least `min_rate` bytes per second of its whole duration (retries and waits
//! included). Per-read timeouts alone let a server that sends one byte every two seconds, or
//! stalls and recovers, hold a download open for ever.

use std::time::{Duration, Instant};

use super::error::StorageError;
use super::net::NetConfig;

pub(crate) struct Pace {
    started: Instant,
    grace: Duration,
    min_rate: u64,
    received: u64,
}

impl Pace {
    pub(crate) fn new(net: &NetConfig) -> Pace {
        Pace {
            started: Instant::now(),
            grace: net.rate_grace,
            min_rate: net.min_rate,
            received: 0,
        }
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.received = self.received.saturating_add(n);
    }

    /// Fails when the download has fallen below the minimum rate.
    pub(crate) fn check(&self, url: &str) -> Result<(), StorageError> {
        let elapsed = self.started.elapsed();
        if self.min_rate == 0 || elapsed <= self.grace {
            return Ok(());
        }
        let due = (elapsed - self.grace).as_secs_f64() * self.min_rate as f64;
        if (self.received as f64) < due {
            return Err(StorageError::TooSlow {
                url: url.to_string(),
                received: self.received,
                elapsed_secs: elapsed.as_secs(),
                min_rate: self.min_rate,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_after_the_grace() {
        let net = NetConfig {
            min_rate: 1000,
            rate_grace: Duration::from_millis(20),
            ..NetConfig::default()
        };
        let mut p = Pace::new(&net);
        assert!(p.check("u").is_ok(), "within the grace");
        std::thread::sleep(Duration::from_millis(60));
        let e = p.check("u").unwrap_err().to_string();
        assert!(e.contains("under the minimum rate of 1000 bytes/s"), "{e}");
        p.add(1_000_000);
        assert!(p.check("u").is_ok());
        let off = Pace::new(&NetConfig {
            min_rate: 0,
            rate_grace: Duration::ZERO,
            ..NetConfig::default()
        });
        assert!(off.check("u").is_ok());
    }
}
