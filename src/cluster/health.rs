//! An engine's health: the Pending → Healthy ⇄ Unhealthy → Disconnected state machine, failure
//! counting and the refresh back-off (SPEC §3.2, §3.4). Pure: no I/O, no clocks read here; the
//! engine feeds outcomes in and acts on the transitions that come out.
use std::time::{Duration, SystemTime};

/// Where an engine stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Discovered, not validated yet (or sent back to pending by an ID change).
    Pending,
    /// Validated and answering.
    Healthy,
    /// Validated, but `--engine-failure-retry` connections in a row failed.
    Unhealthy,
    /// Removed from discovery; its tasks are stopped.
    Disconnected,
}

impl EngineState {
    /// The word `/info` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::Pending => "Pending",
            EngineState::Healthy => "Healthy",
            EngineState::Unhealthy => "Unhealthy",
            EngineState::Disconnected => "Disconnected",
        }
    }
}

/// What one call to the engine ended with, as far as health is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The engine answered (whatever the HTTP status).
    Answered,
    /// The engine could not be reached: refused, reset, DNS failure.
    Unreachable(String),
    /// The engine accepted the call but did not answer within its deadline (a frozen or
    /// overloaded daemon). Counts as a failure, and the engine is not scheduled onto until it
    /// answers again.
    TimedOut(String),
}

/// A change of state the engine must act on (log, emit a cluster event, wake the refresh loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Healthy → Unhealthy after `failures` connection failures: emits `engine_disconnect`.
    BecameUnhealthy { failures: u32 },
    /// Unhealthy → Healthy: emits `engine_reconnect`.
    CameBack { after_failures: u32 },
}

/// The health record of one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub state: EngineState,
    /// Connection failures in a row.
    pub failures: u32,
    /// The last connection error, shown as `└ Error` in `/info`.
    pub error: String,
    /// When the last outcome was recorded.
    pub updated_at: SystemTime,
    /// The last failure was a call that timed out, and nothing has answered since.
    pub timing_out: bool,
}

impl Health {
    /// A freshly discovered engine.
    pub fn pending(now: SystemTime) -> Health {
        Health {
            state: EngineState::Pending,
            failures: 0,
            error: String::new(),
            updated_at: now,
            timing_out: false,
        }
    }

    /// Records the outcome of one call. `retry` is `--engine-failure-retry`.
    pub fn record(&mut self, outcome: Outcome, now: SystemTime, retry: u32) -> Option<Transition> {
        self.updated_at = now;
        match outcome {
            Outcome::Answered => {
                let failures = self.failures;
                self.failures = 0;
                self.error.clear();
                self.timing_out = false;
                if self.state == EngineState::Unhealthy {
                    self.state = EngineState::Healthy;
                    return Some(Transition::CameBack {
                        after_failures: failures,
                    });
                }
                None
            }
            Outcome::Unreachable(err) => self.failed(err, false, retry),
            Outcome::TimedOut(err) => self.failed(err, true, retry),
        }
    }

    /// Counts one failure; turns a Healthy engine Unhealthy at `retry` failures in a row.
    fn failed(&mut self, err: String, timed_out: bool, retry: u32) -> Option<Transition> {
        self.timing_out = timed_out;
        self.failures = self.failures.saturating_add(1);
        self.error = err;
        if self.state == EngineState::Healthy && self.failures >= retry {
            self.state = EngineState::Unhealthy;
            return Some(Transition::BecameUnhealthy {
                failures: self.failures,
            });
        }
        None
    }

    /// Marks a validated engine healthy (end of validation).
    pub fn validated(&mut self, now: SystemTime) {
        self.state = EngineState::Healthy;
        self.failures = 0;
        self.timing_out = false;
        self.error.clear();
        self.updated_at = now;
    }

    /// Validation refused the engine (`msg` says why): it stays where it is, and the failure
    /// counts towards its re-validation back-off.
    pub fn rejected(&mut self, msg: &str, now: SystemTime) {
        self.error = msg.to_string();
        self.failures = self.failures.saturating_add(1);
        self.updated_at = now;
    }

    /// The address now answers with another daemon (`msg` says which): back to Pending until
    /// it is removed from the cluster and added again.
    pub fn other_daemon(&mut self, msg: &str) {
        self.state = EngineState::Pending;
        self.error = msg.to_string();
    }

    /// The engine was removed from the cluster; returns the state it was in.
    pub fn disconnected(&mut self) -> EngineState {
        std::mem::replace(&mut self.state, EngineState::Disconnected)
    }

    /// The scheduler's health indicator: 0 when not schedulable (not Healthy, or its calls are
    /// timing out), else `100 - failures*100/retry`.
    pub fn indicator(&self, retry: u32) -> i64 {
        if self.state != EngineState::Healthy || self.failures >= retry || self.timing_out {
            return 0;
        }
        let retry = i64::from(retry.max(1));
        100 - i64::from(self.failures) * 100 / retry
    }
}

/// How long the refresh loop sleeps before its next iteration (SPEC §3.4): `min * (1 + backoff)`
/// plus a random part in `[0, max - min)`, where `backoff = clamp(failures - retry, 0, 1000)`.
/// `jitter` is a number in `[0, 1)`.
pub fn refresh_delay(
    min: Duration,
    max: Duration,
    failures: u32,
    retry: u32,
    jitter: f64,
) -> Duration {
    let backoff = failures.saturating_sub(retry).min(1000);
    let base = min.saturating_mul(1 + backoff);
    let spread = max.saturating_sub(min);
    base + spread.mul_f64(jitter.clamp(0.0, 0.999_999))
}

/// When a pending engine is validated again: `2^failures` seconds plus the minimum refresh
/// interval after its last attempt, and never later than four hours.
pub fn revalidation_due(failures: u32, refresh_min: Duration) -> Duration {
    let exp = Duration::from_secs(1u64 << failures.min(14));
    (exp + refresh_min).min(Duration::from_secs(4 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_counts_a_failure_and_an_id_change_sends_a_healthy_engine_back_to_pending() {
        let now = SystemTime::UNIX_EPOCH;
        let mut h = Health::pending(now);
        h.rejected("no resources", now);
        assert_eq!(
            (h.state, h.failures, h.error.as_str()),
            (EngineState::Pending, 1, "no resources")
        );
        h.validated(now);
        h.other_daemon("another ID");
        assert_eq!(
            (h.state, h.error.as_str()),
            (EngineState::Pending, "another ID")
        );
        h.validated(now);
        assert_eq!(h.disconnected(), EngineState::Healthy);
        assert_eq!(h.state, EngineState::Disconnected);
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn healthy() -> Health {
        let mut h = Health::pending(t0());
        h.validated(t0());
        h
    }

    #[test]
    fn a_healthy_engine_turns_unhealthy_after_retry_failures() {
        let mut h = healthy();
        let down = || Outcome::Unreachable("refused".into());
        assert_eq!(h.record(down(), t0(), 3), None);
        assert_eq!(h.record(down(), t0(), 3), None);
        assert_eq!(h.state, EngineState::Healthy);
        assert_eq!(
            h.record(down(), t0(), 3),
            Some(Transition::BecameUnhealthy { failures: 3 })
        );
        assert_eq!(h.state, EngineState::Unhealthy);
        assert_eq!(h.error, "refused");
        // Further failures do not transition again.
        assert_eq!(h.record(down(), t0(), 3), None);
        assert_eq!(h.failures, 4);
    }

    #[test]
    fn an_answer_resets_failures_and_brings_an_unhealthy_engine_back() {
        let mut h = healthy();
        for _ in 0..5 {
            h.record(Outcome::Unreachable("x".into()), t0(), 2);
        }
        assert_eq!(
            h.record(Outcome::Answered, t0(), 2),
            Some(Transition::CameBack { after_failures: 5 })
        );
        assert_eq!(h.state, EngineState::Healthy);
        assert_eq!(h.failures, 0);
        assert!(h.error.is_empty());
        assert_eq!(h.record(Outcome::Answered, t0(), 2), None);
    }

    #[test]
    fn pending_engines_count_failures_without_changing_state() {
        let mut h = Health::pending(t0());
        assert_eq!(h.record(Outcome::Unreachable("x".into()), t0(), 1), None);
        assert_eq!(h.state, EngineState::Pending);
        assert_eq!(h.failures, 1);
    }

    #[test]
    fn http_errors_do_not_count_against_health() {
        let mut h = healthy();
        h.record(Outcome::Unreachable("x".into()), t0(), 3);
        h.record(Outcome::Answered, t0(), 3);
        assert_eq!(h.failures, 0);
    }

    #[test]
    fn health_indicator_follows_the_classic_formula() {
        let mut h = healthy();
        assert_eq!(h.indicator(3), 100);
        h.record(Outcome::Unreachable("x".into()), t0(), 3);
        assert_eq!(h.indicator(3), 67);
        h.record(Outcome::Unreachable("x".into()), t0(), 3);
        assert_eq!(h.indicator(3), 34);
        h.record(Outcome::Unreachable("x".into()), t0(), 3);
        assert_eq!(h.indicator(3), 0);
        assert_eq!(Health::pending(t0()).indicator(3), 0);
    }

    #[test]
    fn an_engine_whose_calls_time_out_is_not_scheduled_until_it_answers() {
        let mut h = healthy();
        h.record(Outcome::TimedOut("no answer within 30s".into()), t0(), 3);
        assert_eq!(h.state, EngineState::Healthy, "one failure of three");
        assert_eq!(h.indicator(3), 0, "but not chosen while it does not answer");
        h.record(Outcome::Unreachable("refused".into()), t0(), 3);
        assert_eq!(h.indicator(3), 34, "a refusal is not a timeout");
        h.record(Outcome::TimedOut("again".into()), t0(), 3);
        assert_eq!(h.state, EngineState::Unhealthy);
        h.record(Outcome::Answered, t0(), 3);
        assert_eq!(h.indicator(3), 100);
    }

    #[test]
    fn refresh_delay_backs_off_past_the_retry_count() {
        let s = Duration::from_secs;
        assert_eq!(refresh_delay(s(30), s(60), 0, 3, 0.0), s(30));
        assert_eq!(refresh_delay(s(30), s(60), 3, 3, 0.0), s(30));
        assert_eq!(refresh_delay(s(30), s(60), 4, 3, 0.0), s(60));
        assert_eq!(refresh_delay(s(30), s(60), 5, 3, 0.5), s(105));
        assert_eq!(refresh_delay(s(1), s(1), 5000, 3, 0.9), s(1001));
    }

    #[test]
    fn revalidation_backs_off_exponentially_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(revalidation_due(0, s(30)), s(31));
        assert_eq!(revalidation_due(3, s(30)), s(38));
        assert_eq!(revalidation_due(40, s(30)), s(4 * 3600));
    }
}
