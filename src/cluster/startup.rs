//! Start-up progress: while the first engines validate, a line every few seconds says how far
//! validation has got (`Validated 734/1000 engines, 3 failing`), and one line says when all are
//! done and how long it took (`All 1000 engines validated in 3.1s`). Reporting stops once every
//! engine is validated, at shutdown, or after [`REPORT_LIMIT`] (engines that never answer keep
//! being retried, but no longer summarised). This module only counts and words; it changes no
//! engine and no membership.
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::membership::EngineMaps;

/// How often a progress line is written while engines are still validating.
pub const PROGRESS_PERIOD: Duration = Duration::from_secs(5);
/// How often the counts are looked at: the "all validated" line comes this soon after the last
/// engine, so the time it reports is accurate to about this much.
const POLL_PERIOD: Duration = Duration::from_millis(200);
/// How long progress is reported at most. Past it the reporter says how far validation got and
/// stops: engines that keep failing are retried forever and already log each failure.
pub const REPORT_LIMIT: Duration = Duration::from_secs(300);

/// Engine counts at one moment of start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Engines known, pending or validated.
    pub total: usize,
    /// Engines validated.
    pub validated: usize,
    /// Pending engines whose last validation attempt failed.
    pub failing: usize,
}

impl Tally {
    /// Counts `maps`.
    pub fn of(maps: &EngineMaps) -> Tally {
        let failing = maps
            .pending
            .values()
            .filter(|engine| {
                let health = engine.health();
                health.failures > 0 || !health.error.is_empty()
            })
            .count();
        Tally {
            total: maps.pending.len() + maps.validated.len(),
            validated: maps.validated.len(),
            failing,
        }
    }
}

/// What the reporter does after one look at the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Nothing to say yet.
    Quiet,
    /// Validation goes on: log this line and keep watching.
    Progress(String),
    /// Every engine is validated: log this line and stop.
    Done(String),
    /// [`REPORT_LIMIT`] has passed first: log this line and stop.
    GaveUp(String),
}

/// Decides what to report. `elapsed` runs from when the first engines were seen (from start-up
/// when none were); `line_due` says whether a progress line is due.
pub fn report(tally: Tally, elapsed: Duration, line_due: bool) -> Report {
    let Tally {
        total,
        validated,
        failing,
    } = tally;
    if total > 0 && validated == total {
        let secs = elapsed.as_secs_f64();
        return Report::Done(if total == 1 {
            format!("The only engine validated in {secs:.1}s")
        } else {
            format!("All {total} engines validated in {secs:.1}s")
        });
    }
    if elapsed >= REPORT_LIMIT {
        let limit = REPORT_LIMIT.as_secs();
        return Report::GaveUp(if total == 0 {
            format!("No engines discovered after {limit}s; no longer reporting start-up progress")
        } else {
            format!(
                "Validated {validated}/{total} engines after {limit}s, {failing} failing; no \
                 longer reporting start-up progress (failing engines are still retried)"
            )
        });
    }
    if line_due && total > 0 {
        return Report::Progress(format!(
            "Validated {validated}/{total} engines, {failing} failing"
        ));
    }
    Report::Quiet
}

/// Watches membership through `engines` until every engine is validated, [`REPORT_LIMIT`]
/// passes or `cancel` fires, logging as [`report`] decides.
pub async fn report_progress(
    engines: impl Fn() -> std::sync::Arc<EngineMaps>,
    cancel: CancellationToken,
) {
    let started = Instant::now();
    // Until discovery has named an engine, time counts from start-up (for the limit only).
    let mut first_seen: Option<Instant> = None;
    let mut last_line = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(POLL_PERIOD) => {}
        }
        let tally = Tally::of(&engines());
        let now = Instant::now();
        if tally.total > 0 && first_seen.is_none() {
            first_seen = Some(now);
        }
        let elapsed = now.duration_since(first_seen.unwrap_or(started));
        let line_due = now.duration_since(last_line) >= PROGRESS_PERIOD;
        let Tally {
            total,
            validated,
            failing,
        } = tally;
        match report(tally, elapsed, line_due) {
            Report::Quiet => {}
            Report::Progress(line) => {
                last_line = now;
                tracing::info!(total, validated, failing, "{line}");
            }
            Report::Done(line) => {
                tracing::info!(total, elapsed_ms = elapsed.as_millis() as u64, "{line}");
                return;
            }
            Report::GaveUp(line) => {
                tracing::warn!(total, validated, failing, "{line}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(total: usize, validated: usize, failing: usize) -> Tally {
        Tally {
            total,
            validated,
            failing,
        }
    }

    #[test]
    fn progress_lines_say_how_many_are_validated_and_failing_when_due() {
        let secs = Duration::from_secs(7);
        assert_eq!(
            report(tally(1000, 734, 3), secs, true),
            Report::Progress("Validated 734/1000 engines, 3 failing".into())
        );
        assert_eq!(report(tally(1000, 734, 3), secs, false), Report::Quiet);
    }

    #[test]
    fn nothing_is_said_before_discovery_names_an_engine() {
        assert_eq!(
            report(tally(0, 0, 0), Duration::from_secs(30), true),
            Report::Quiet
        );
    }

    #[test]
    fn the_last_validation_ends_reporting_with_the_time_taken_even_between_lines() {
        assert_eq!(
            report(tally(1000, 1000, 0), Duration::from_millis(3140), false),
            Report::Done("All 1000 engines validated in 3.1s".into())
        );
        assert_eq!(
            report(tally(1, 1, 0), Duration::from_millis(250), false),
            Report::Done("The only engine validated in 0.2s".into())
        );
    }

    #[test]
    fn engines_that_keep_failing_end_reporting_at_the_limit_and_say_so() {
        assert_eq!(
            report(tally(1000, 998, 2), REPORT_LIMIT, true),
            Report::GaveUp(
                "Validated 998/1000 engines after 300s, 2 failing; no longer reporting \
                 start-up progress (failing engines are still retried)"
                    .into()
            )
        );
        assert!(matches!(
            report(tally(0, 0, 0), REPORT_LIMIT, false),
            Report::GaveUp(line) if line.starts_with("No engines discovered after 300s")
        ));
        // Done wins when the last engine validates right at the limit.
        assert!(matches!(
            report(tally(5, 5, 0), REPORT_LIMIT, false),
            Report::Done(_)
        ));
    }

    fn no_engines() -> std::sync::Arc<EngineMaps> {
        std::sync::Arc::new(EngineMaps::default())
    }

    #[tokio::test(start_paused = true)]
    async fn the_reporter_stops_at_the_limit_when_no_engine_ever_validates() {
        let reporter = tokio::spawn(report_progress(no_engines, CancellationToken::new()));
        tokio::time::sleep(REPORT_LIMIT - Duration::from_secs(1)).await;
        assert!(!reporter.is_finished());
        let ended = tokio::time::timeout(Duration::from_secs(2), reporter).await;
        assert!(ended.is_ok(), "the reporter outlived its limit");
    }

    #[tokio::test(start_paused = true)]
    async fn the_reporter_stops_on_shutdown() {
        let cancel = CancellationToken::new();
        let reporter = tokio::spawn(report_progress(no_engines, cancel.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        let ended = tokio::time::timeout(Duration::from_millis(1), reporter).await;
        assert!(ended.is_ok(), "the reporter outlived shutdown");
    }
}
