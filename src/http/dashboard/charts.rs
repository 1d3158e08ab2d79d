//! Charts as SVG, drawn here: a tunnel's status bar over time, and hourly device counts by
//! status as stacked bars. Each is an image with a title and a description for screen
//! readers; the pages also show the same numbers as text. Colours come from the stylesheet
//! (`.st-{status}` classes), so the markup holds no style.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Duration, Timelike, Utc};

use super::format::{percent, stamp};
use crate::fleet::StatusCount;
use crate::tunnels::timeline::Timeline;

/// Text for SVG and HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A status as a CSS class name part: lowercase letters, digits and dashes only.
pub fn class_of(status: &str) -> String {
    status
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect()
}

const BAR_WIDTH: f64 = 1000.0;

/// The tunnel's states across the window as one horizontal bar, a rectangle per state.
pub fn timeline(timeline: &Timeline, label: &str) -> String {
    let total = (timeline.end - timeline.start).num_milliseconds().max(1) as f64;
    let uptime = timeline
        .uptime()
        .map_or("no time in this window".to_owned(), |u| {
            format!("uptime {}", percent(u))
        });
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="timeline" viewBox="0 0 {BAR_WIDTH} 32" preserveAspectRatio="none" role="img" aria-labelledby="tl-title tl-desc"><title id="tl-title">{}</title><desc id="tl-desc">{} from {} to {}</desc><rect class="st-none" x="0" y="0" width="{BAR_WIDTH}" height="32"/>"#,
        escape(label),
        escape(&uptime),
        stamp(timeline.start),
        stamp(timeline.end),
    );
    for segment in &timeline.segments {
        let x = (segment.from - timeline.start).num_milliseconds() as f64 / total * BAR_WIDTH;
        let width = segment.millis() as f64 / total * BAR_WIDTH;
        let status = segment.status.as_str();
        let _ = write!(
            svg,
            r#"<rect class="st-{status}" x="{x:.2}" y="0" width="{:.2}" height="32"><title>{status} from {} to {}</title></rect>"#,
            width.max(0.5),
            stamp(segment.from),
            stamp(segment.to),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Statuses in the order they stack, bottom up: the common ones first, the rest by name.
pub fn status_order(counts: &[StatusCount]) -> Vec<String> {
    const KNOWN: [&str; 4] = ["connected", "disconnected", "paused", "reconnecting"];
    let mut statuses: Vec<String> = counts.iter().map(|c| c.status.clone()).collect();
    statuses.sort_by_key(|s| {
        (
            KNOWN.iter().position(|k| k == s).unwrap_or(KNOWN.len()),
            s.clone(),
        )
    });
    statuses.dedup();
    statuses
}

/// Hours with their counts by status, one column per hour of the window (empty hours too).
pub fn hours(
    counts: &[StatusCount],
    now: DateTime<Utc>,
    window: i64,
) -> Vec<(DateTime<Utc>, BTreeMap<String, i64>)> {
    let last = crate::fleet::hourly::hour_of(now);
    let mut columns: Vec<(DateTime<Utc>, BTreeMap<String, i64>)> = (0..window)
        .rev()
        .map(|back| (last - Duration::hours(back), BTreeMap::new()))
        .collect();
    for count in counts {
        if let Some((_, column)) = columns.iter_mut().find(|(hour, _)| *hour == count.hour) {
            *column.entry(count.status.clone()).or_default() += count.devices;
        }
    }
    columns
}

const COL: f64 = 24.0;
/// Room left of the bars for the scale.
const LEFT: f64 = 28.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 22.0;

/// Hourly device counts as stacked bars (one per hour, statuses in `order`).
pub fn hourly_bars(
    columns: &[(DateTime<Utc>, BTreeMap<String, i64>)],
    order: &[String],
    label: &str,
) -> String {
    let max = columns
        .iter()
        .map(|(_, c)| c.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = LEFT + COL * columns.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="bars" viewBox="0 0 {width} {}" role="img" aria-labelledby="bars-title bars-desc"><title id="bars-title">{}</title><desc id="bars-desc">At most {max} devices in one hour</desc><line class="axis" x1="{LEFT}" y1="{HEIGHT}" x2="{width}" y2="{HEIGHT}"/>"#,
        HEIGHT + AXIS,
        escape(label),
    );
    for (i, (hour, column)) in columns.iter().enumerate() {
        let x = LEFT + i as f64 * COL + 3.0;
        let mut y = HEIGHT;
        for status in order {
            let Some(&n) = column.get(status) else {
                continue;
            };
            let h = n as f64 / max as f64 * (HEIGHT - 8.0);
            y -= h;
            let _ = write!(
                svg,
                r#"<rect class="st-{}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}"><title>{}: {n} {}</title></rect>"#,
                class_of(status),
                COL - 6.0,
                hour.format("%Y-%m-%d %H:00 UTC"),
                escape(status),
            );
        }
        if hour.hour() % 6 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + (COL - 6.0) / 2.0,
                HEIGHT + 16.0,
                hour.format("%H:00"),
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{scale}" y="12" text-anchor="end">{max}</text><text x="{scale}" y="{HEIGHT}" text-anchor="end">0</text></svg>"#,
        scale = LEFT - 4.0,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnels::timeline::{Timeline, Transition};
    use crate::tunnels::Status;
    use chrono::TimeZone;

    #[test]
    fn the_timeline_draws_one_rectangle_per_state_and_escapes_its_label() {
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let end = start + Duration::hours(1);
        let log = [Transition {
            from: Status::Creating,
            to: Status::Active,
            at: start + Duration::minutes(30),
        }];
        let svg = timeline(&Timeline::build(start, &log, start, end), "a <b>");
        assert!(
            svg.contains(r#"<rect class="st-creating" x="0.00" y="0" width="500.00""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect class="st-active" x="500.00""#),
            "{svg}"
        );
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.contains("uptime 50.0 %"));
    }

    #[test]
    fn hourly_bars_have_a_column_per_hour_and_stack_known_statuses_first() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let hour = crate::fleet::hourly::hour_of(now);
        let counts = vec![
            StatusCount {
                hour,
                status: "weird<x>".into(),
                devices: 1,
            },
            StatusCount {
                hour,
                status: "connected".into(),
                devices: 3,
            },
        ];
        let order = status_order(&counts);
        assert_eq!(order, ["connected", "weird<x>"]);
        let columns = hours(&counts, now, 24);
        assert_eq!(columns.len(), 24);
        assert_eq!(columns[23].1["connected"], 3);
        let svg = hourly_bars(&columns, &order, "devices");
        assert!(svg.contains("st-weird-x-"));
        assert!(svg.contains("weird&lt;x&gt;"));
        assert!(!svg.contains("<x>"));
    }
}
