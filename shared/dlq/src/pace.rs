//! `--rate N/s`: interval pacing on a fixed schedule. Send k may start no earlier than
//! `start + k / rate`; a send that ran late is followed by quicker ones until the schedule
//! is met again (so request latency does not lower the average rate), but never more than
//! `MAX_BURST` at once after a long stall (so a pause is not followed by a flood).

use std::time::Duration;

use tokio::time::Instant;

use super::interrupt::Interrupt;

/// Sends allowed back to back to catch up with the schedule: one receive's worth. A replay
/// receives that many messages at a time, and each receive can hold the sends up for a
/// while; an allowance shorter than that loses the difference every batch, and the average
/// falls below the rate.
const MAX_BURST: u32 = super::queue::BATCH_LIMIT as u32;

/// Parses `--rate`: `50`, `50/s`, `2.5/s`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s").trim();
    match number.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: give messages per second, greater than 0, e.g. 50 or 50/s"
        )),
    }
}

#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Pacer {
    /// `None`: as fast as the queues answer.
    pub fn new(rate: Option<f64>) -> Self {
        Pacer {
            interval: rate.map(|rate| Duration::from_secs_f64(1.0 / rate)),
            next: None,
        }
    }

    /// Waits for the next slot. `false` when Ctrl-C came first: the caller stops.
    pub async fn wait(&mut self, interrupt: &mut Interrupt) -> bool {
        let now = Instant::now();
        let Some(slot) = self.take_slot(now) else {
            return !interrupt.is_set();
        };
        if slot > now {
            tokio::select! {
                () = tokio::time::sleep_until(slot) => {}
                () = interrupt.wait() => return false,
            }
        }
        !interrupt.is_set()
    }

    /// The start of the next slot as seen at `now`, and books it.
    fn take_slot(&mut self, now: Instant) -> Option<Instant> {
        let interval = self.interval?;
        let slot = match self.next {
            None => now,
            Some(next) => next.max(now.checked_sub(interval * MAX_BURST).unwrap_or(now)),
        };
        self.next = Some(slot + interval);
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_or_without_the_unit() {
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate("2.5/s"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn the_schedule_holds_the_rate_and_catches_up_after_a_late_send() {
        let mut pacer = Pacer::new(Some(100.0));
        let start = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        // Sends that take no time: one every 10 ms.
        let mut now = start;
        for k in 0..100 {
            let slot = pacer.take_slot(now).unwrap();
            assert_eq!(slot - start, ms(10 * k));
            now = slot;
        }
        // A send that took 35 ms: the next three slots are due already, the fourth is not.
        now += ms(35);
        let due: Vec<Duration> = (0..4)
            .map(|_| pacer.take_slot(now).unwrap() - start)
            .collect();
        assert_eq!(due, vec![ms(1000), ms(1010), ms(1020), ms(1030)]);
        // After a long stall only MAX_BURST slots are in the past.
        let later = now + Duration::from_secs(10);
        let past = (0..2 * MAX_BURST)
            .filter(|_| pacer.take_slot(later).unwrap() <= later)
            .count();
        assert_eq!(past, MAX_BURST as usize + 1);
        assert!(Pacer::new(None).take_slot(later).is_none());
    }
}
