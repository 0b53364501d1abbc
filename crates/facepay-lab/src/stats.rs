//! Order statistics over timing samples.

/// Median and 99th percentile (nearest rank) of milliseconds.
pub fn median_p99(samples_ms: &mut [f64]) -> (f64, f64) {
    if samples_ms.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples_ms.sort_by(f64::total_cmp);
    let n = samples_ms.len();
    let median = if n % 2 == 1 {
        samples_ms[n / 2]
    } else {
        (samples_ms[n / 2 - 1] + samples_ms[n / 2]) / 2.0
    };
    let rank = ((0.99 * n as f64).ceil() as usize).clamp(1, n);
    (median, samples_ms[rank - 1])
}

/// The end-to-end latency and each server stage's, median and p99, as
/// the pay benchmarks print them.
pub fn print_stages(end_to_end: (&str, &mut [f64]), stages: &[&str], stages_ms: &mut [Vec<f64>]) {
    println!("{:<22} {:>10} {:>10}", "stage", "median ms", "p99 ms");
    let (median, p99) = median_p99(end_to_end.1);
    println!("{:<22} {median:>10.2} {p99:>10.2}", end_to_end.0);
    for (stage, samples) in stages.iter().zip(stages_ms.iter_mut()) {
        let (median, p99) = median_p99(samples);
        let name = format!("server: {stage}");
        println!("{name:<22} {median:>10.2} {p99:>10.2}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99() {
        let mut odd = [3.0, 1.0, 2.0];
        assert_eq!(median_p99(&mut odd), (2.0, 3.0));
        let mut hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median_p99(&mut hundred), (50.5, 99.0));
    }
}
