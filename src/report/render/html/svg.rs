//! Inline SVG bar charts: one horizontal bar per ranked model (the mean across datasets),
//! whiskers from the lowest to the highest dataset where the release shows the spread, and
//! one dot per dataset for cross-product releases. Drawn by hand (no library, no script) so
//! the bytes are deterministic and the page needs nothing else.

use std::fmt::Write;

use super::E;
use crate::report::render::value;

/// One model's bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// (dataset label, value) for cross-product releases.
    pub dots: Vec<(String, f64)>,
    pub reference: bool,
}

// Close to the width a chart gets in the page's two-column grid, so text renders near its
// nominal size.
const WIDTH: f64 = 500.0;
const LEFT: f64 = 132.0;
const RIGHT: f64 = 52.0;
const TOP: f64 = 10.0;
const ROW: f64 = 30.0;
const BAR: f64 = 16.0;
const AXIS: f64 = 30.0;

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about five ticks.
fn nice_step(range: f64) -> f64 {
    let raw = range / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The axis range: [0, 1] when every value is a proportion (most metrics), otherwise from
/// zero (or the lowest negative value) to the highest value, widened to whole ticks.
fn domain(bars: &[Bar]) -> (f64, f64, f64) {
    let values = bars.iter().flat_map(|b| {
        [Some(b.mean), b.min, b.max]
            .into_iter()
            .flatten()
            .chain(b.dots.iter().map(|d| d.1))
    });
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo >= 0.0 && hi <= 1.0 {
        return (0.0, 1.0, 0.2);
    }
    let range = if hi - lo > 0.0 { hi - lo } else { 1.0 };
    let step = nice_step(range);
    let lo = (lo / step).floor() * step;
    let hi = ((hi / step).ceil() * step).max(lo + step);
    (lo, hi, step)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// The chart as an `<svg>` element. `id` must be unique in the page; `title` names the metric.
pub fn bar_chart(id: &str, title: &str, description: &str, bars: &[Bar]) -> String {
    let (lo, hi, step) = domain(bars);
    let plot = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + (v - lo) / (hi - lo) * plot;
    let height = TOP + ROW * bars.len() as f64 + AXIS;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        r#"<svg class="chart" id="{id}" role="img" aria-labelledby="{id}-t {id}-d" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        E(title),
        E(description),
    );
    let bottom = TOP + ROW * bars.len() as f64;
    let ticks = ((hi - lo) / step).round() as i64;
    for k in 0..=ticks {
        let v = lo + step * k as f64;
        let tx = x(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{tx:.1}" y1="{TOP:.1}" x2="{tx:.1}" y2="{bottom:.1}"/><text class="tick" x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 16.0,
            E(&tick_label(v, step)),
        );
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{:.1}" y1="{TOP:.1}" x2="{:.1}" y2="{bottom:.1}"/>"#,
        x(lo.max(0.0).min(hi)),
        x(lo.max(0.0).min(hi)),
    );
    for (i, b) in bars.iter().enumerate() {
        let cy = TOP + ROW * i as f64 + ROW / 2.0;
        let zero = x(0f64.clamp(lo, hi));
        let end = x(b.mean);
        let (bx, bw) = if end >= zero {
            (zero, end - zero)
        } else {
            (end, zero - end)
        };
        let mut tip = format!("{}: mean {}", b.label, value(b.mean));
        if let (Some(min), Some(max)) = (b.min, b.max) {
            let _ = write!(
                tip,
                ", lowest dataset {}, highest {}",
                value(min),
                value(max)
            );
        }
        for (label, v) in &b.dots {
            let _ = write!(tip, "; {label} {}", value(*v));
        }
        let _ = write!(
            s,
            r#"<g class="row"><title>{}</title><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="bar{}" x="{bx:.1}" y="{:.1}" width="{:.1}" height="{BAR:.1}" rx="2"/>"#,
            E(&tip),
            LEFT - 8.0,
            cy + 4.0,
            E(&shorten(&b.label, 20)),
            if b.reference { " ref" } else { "" },
            cy - BAR / 2.0,
            bw.max(0.5),
        );
        if let (Some(min), Some(max)) = (b.min, b.max) {
            let (x1, x2) = (x(min), x(max));
            let _ = write!(
                s,
                r#"<line class="whisker" x1="{x1:.1}" y1="{cy:.1}" x2="{x2:.1}" y2="{cy:.1}"/><line class="whisker" x1="{x1:.1}" y1="{:.1}" x2="{x1:.1}" y2="{:.1}"/><line class="whisker" x1="{x2:.1}" y1="{:.1}" x2="{x2:.1}" y2="{:.1}"/>"#,
                cy - 6.0,
                cy + 6.0,
                cy - 6.0,
                cy + 6.0,
            );
        }
        for (_, v) in &b.dots {
            let _ = write!(
                s,
                r#"<circle class="dot" cx="{:.1}" cy="{cy:.1}" r="3.5"/>"#,
                x(*v)
            );
        }
        let _ = write!(
            s,
            r#"<text class="val" x="{:.1}" y="{:.1}" text-anchor="end">{}</text></g>"#,
            WIDTH - 4.0,
            cy + 4.0,
            E(&value(b.mean)),
        );
    }
    s.push_str("</svg>");
    s
}

fn tick_label(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(mean: f64) -> Bar {
        Bar {
            label: "m v1".into(),
            mean,
            min: None,
            max: None,
            dots: vec![],
            reference: false,
        }
    }

    #[test]
    fn domains() {
        assert_eq!(domain(&[bar(0.8)]), (0.0, 1.0, 0.2));
        let (lo, hi, step) = domain(&[bar(210.0)]);
        assert_eq!((lo, hi, step), (0.0, 250.0, 50.0));
        let (lo, hi, _) = domain(&[bar(-0.3), bar(2.0)]);
        assert!(lo <= -0.3 && hi >= 2.0);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(50.0, 50.0), "50");
    }

    #[test]
    fn hostile_labels_are_escaped() {
        let mut b = bar(0.5);
        b.label = "<script>alert(1)</script>".into();
        let svg = bar_chart("c", "auc", "d", &[b]);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }
}
