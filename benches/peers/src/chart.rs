//! A horizontal bar chart of jobs/s per workload and contender, as a self-contained SVG, on a log scale:
//! the contenders span four orders of magnitude.

use std::fmt::Write as _;

pub fn svg(rows: &[(&str, &str, f64)]) -> String {
    let (bar_h, gap, left, width) = (18.0, 6.0, 330.0, 420.0);
    let max = rows.iter().map(|r| r.2).fold(1.0, f64::max).log10().ceil();
    let min = rows.iter().map(|r| r.2).fold(f64::INFINITY, f64::min).max(1.0).log10().floor().min(max - 1.0);
    let height = rows.len() as f64 * (bar_h + gap) + 60.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
        w = left + width + 120.0
    );
    let _ = write!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">jobs per second, log scale from {:.0} (longer is faster)</text>"#,
        10f64.powf(min)
    );
    for (i, (workload, contender, rate)) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar_h + gap);
        let w = ((rate.max(1.0).log10() - min) / (max - min) * width).max(1.0);
        let color = match *contender {
            c if c.starts_with("leasequeue") => "#2b7bb9",
            c if c.starts_with("effectum") => "#c9a227",
            _ => "#9aa5b1",
        };
        let _ = write!(
            s,
            r#"<text x="{tx}" y="{ty}" text-anchor="end">{workload} · {contender}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{color}"/><text x="{lx:.1}" y="{ty}">{label}</text>"#,
            tx = left - 6.0,
            ty = y + 13.0,
            lx = left + w + 4.0,
            label = human(*rate)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}
