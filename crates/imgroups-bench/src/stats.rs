//! Latency samples, round summaries and the table printer.

use std::fmt::Write as _;

/// Percentile of an already sorted slice (nearest rank).
pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// One measured round of one system.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Round {
    /// Operations (or deliveries, or events) per second.
    pub(crate) rate: f64,
    /// Latency percentiles in microseconds.
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    /// Server CPU seconds spent during the round.
    pub(crate) cpu_s: f64,
    /// Operations completed in the round (for CPU per operation).
    pub(crate) ops: f64,
}

impl Round {
    pub(crate) fn from_samples(ops: u64, secs: f64, mut lat_us: Vec<u32>, cpu_s: f64) -> Self {
        lat_us.sort_unstable();
        Round {
            rate: ops as f64 / secs.max(1e-9),
            p50: percentile(&lat_us, 50.0),
            p99: percentile(&lat_us, 99.0),
            p999: percentile(&lat_us, 99.9),
            cpu_s,
            ops: ops as f64,
        }
    }
}

/// Median, min and max.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) med: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

pub(crate) fn spread(values: impl IntoIterator<Item = f64>) -> Spread {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return Spread {
            med: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        med,
        min: v[0],
        max: v[n - 1],
    }
}

/// Human number: 1234567 -> "1.23M".
pub(crate) fn num(x: f64) -> String {
    if x.is_nan() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Microseconds, shown as µs or ms.
pub(crate) fn dur_us(us: f64) -> String {
    if us.is_nan() {
        "–".into()
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

pub(crate) fn show(s: Spread, f: fn(f64) -> String) -> String {
    if s.med.is_nan() {
        return "–".into();
    }
    if (s.max - s.min).abs() < f64::EPSILON {
        return f(s.med);
    }
    format!("{} ({}–{})", f(s.med), f(s.min), f(s.max))
}

fn ratio(x: f64) -> String {
    if x.is_nan() || x.is_infinite() {
        "–".into()
    } else {
        format!("{x:.2}")
    }
}

/// A markdown table of `system` rounds against `baseline` rounds, pair by pair.
pub(crate) struct Table {
    out: String,
}

impl Table {
    pub(crate) fn new(title: &str, unit: &str) -> Self {
        let mut out = String::new();
        let _ = writeln!(out, "\n### {title}\n");
        let _ = writeln!(
            out,
            "| config | system | {unit} median (min–max) | p50 | p99 | p99.9 | server CPU s/round | CPU µs/op | ratio {unit} (min–max) | ratio p99 |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        Table { out }
    }

    /// One row for the system (with ratios against `base`), one for the baseline.
    pub(crate) fn pair(&mut self, config: &str, sys: (&str, &[Round]), base: (&str, &[Round])) {
        let (sys_name, a) = sys;
        let (base_name, b) = base;
        let ratios = spread(a.iter().zip(b).map(|(x, y)| x.rate / y.rate));
        let p99 = spread(a.iter().zip(b).map(|(x, y)| x.p99 / y.p99));
        self.row(config, sys_name, a, &show(ratios, ratio), &ratio(p99.med));
        self.row("", base_name, b, "1", "1");
    }

    pub(crate) fn single(&mut self, config: &str, sys: &str, a: &[Round]) {
        self.row(config, sys, a, "", "");
    }

    fn row(&mut self, config: &str, name: &str, r: &[Round], ratio_rate: &str, ratio_p99: &str) {
        let rate = spread(r.iter().map(|x| x.rate));
        let p50 = spread(r.iter().map(|x| x.p50));
        let p99 = spread(r.iter().map(|x| x.p99));
        let p999 = spread(r.iter().map(|x| x.p999));
        let cpu = spread(r.iter().map(|x| x.cpu_s));
        let per_op = spread(r.iter().map(|x| x.cpu_s * 1e6 / x.ops.max(1.0)));
        let _ = writeln!(
            self.out,
            "| {config} | {name} | {} | {} | {} | {} | {:.2} | {:.1} | {ratio_rate} | {ratio_p99} |",
            show(rate, num),
            dur_us(p50.med),
            dur_us(p99.med),
            dur_us(p999.med),
            cpu.med,
            per_op.med,
        );
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}
