//! Resource arithmetic shared by the cluster and the scheduler: CPU shares versus whole CPUs
//! (SPEC §4.5) and overcommitted totals (SPEC §3.6). Integer arithmetic as in the classic manager.

/// Real CPU shares to send to an engine for a reservation of `cpus` CPUs:
/// `ceil(cpus * 1024 / engine_cpus)`. An engine reporting no CPUs is never validated; for one the
/// result is 0.
pub fn cpus_to_shares(cpus: i64, engine_cpus: i64) -> i64 {
    if engine_cpus <= 0 {
        return 0;
    }
    let numerator = i128::from(cpus) * 1024;
    let divisor = i128::from(engine_cpus);
    // Ceiling division that also rounds negative values up, like math.Ceil.
    let quotient = numerator.div_euclid(divisor) + i128::from(numerator.rem_euclid(divisor) != 0);
    saturate(quotient)
}

/// CPUs counted for a container created with `shares` real CPU shares on an engine with
/// `engine_cpus` CPUs: `shares * engine_cpus / 1024`, truncated.
pub fn shares_to_cpus(shares: i64, engine_cpus: i64) -> i64 {
    saturate(i128::from(shares) * i128::from(engine_cpus) / 1024)
}

/// A node total with `swarm.overcommit` applied: `value + value * p / 100` where
/// `p = trunc(overcommit * 100)`.
pub fn total_with_overcommit(value: i64, overcommit: f64) -> i64 {
    // `as` truncates toward zero and saturates, like Go's float-to-int conversion for sane input.
    let percent = (overcommit * 100.0) as i64;
    saturate(i128::from(value) + i128::from(value) * i128::from(percent) / 100)
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: i64 = 1 << 30;

    #[test]
    fn cpus_become_shares_rounded_up() {
        assert_eq!(cpus_to_shares(1, 2), 512);
        assert_eq!(cpus_to_shares(1, 3), 342);
        assert_eq!(cpus_to_shares(0, 4), 0);
        assert_eq!(cpus_to_shares(2, 0), 0);
        assert_eq!(cpus_to_shares(-1, 3), -341);
    }

    #[test]
    fn shares_become_cpus_truncated() {
        assert_eq!(shares_to_cpus(512, 2), 1);
        assert_eq!(shares_to_cpus(1024, 4), 4);
        assert_eq!(shares_to_cpus(100, 4), 0);
        assert_eq!(shares_to_cpus(342, 3), 1);
    }

    #[test]
    fn overcommit_adds_a_truncated_percentage() {
        assert_eq!(total_with_overcommit(100 * GIB, 0.05), 105 * GIB);
        assert_eq!(total_with_overcommit(2, 0.05), 2);
        assert_eq!(total_with_overcommit(100, 0.999), 199);
        assert_eq!(total_with_overcommit(100, -0.5), 50);
        assert_eq!(total_with_overcommit(100, 0.0), 100);
    }

    #[test]
    fn engine_reported_extremes_saturate_instead_of_wrapping() {
        assert_eq!(total_with_overcommit(i64::MAX, 0.05), i64::MAX);
        assert_eq!(total_with_overcommit(i64::MAX, f64::MAX), i64::MAX);
        assert_eq!(total_with_overcommit(i64::MIN, 0.05), i64::MIN);
        assert_eq!(shares_to_cpus(i64::MAX, i64::MAX), i64::MAX);
        assert_eq!(shares_to_cpus(i64::MIN, i64::MAX), i64::MIN);
        assert_eq!(cpus_to_shares(i64::MAX, 1), i64::MAX);
        assert_eq!(cpus_to_shares(i64::MIN, 1), i64::MIN);
    }
}
