//! A small hand-written SVG line chart on a continuous x axis (time of day in minutes, days of
//! a year …), used by `compare`, the HTML report and the bench figures. A point whose value is
//! not a number breaks its line: a gap, never a drop to zero.

use std::fmt::Write as _;

/// One line of a chart: (x, y) points in x order.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Stroke colour.
    pub color: &'a str,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Dashed stroke (targets).
    pub dashed: bool,
}

impl<'a> Series<'a> {
    /// A series from its points.
    pub fn points(name: &'a str, color: &'a str, points: Vec<(f64, f64)>, dashed: bool) -> Self {
        Series {
            name,
            color,
            points,
            dashed,
        }
    }
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 40.0;
/// Ticks on the x axis.
const X_TICKS: usize = 12;

/// A chart over x in `x_range` and y in `0..=y_max` (y_max ≤ 0: from the data).
pub fn time_chart(
    title: &str,
    x_range: (f64, f64),
    y_max: f64,
    series: &[Series<'_>],
    x_label: &dyn Fn(f64) -> String,
) -> String {
    let (x_from, x_to) = if x_range.1 > x_range.0 {
        x_range
    } else {
        (x_range.0, x_range.0 + 1.0)
    };
    let data_max = series
        .iter()
        .flat_map(|line| line.points.iter().map(|(_, y)| *y))
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::max);
    let y_top = if y_max > 0.0 {
        y_max
    } else {
        nice_ceiling(data_max)
    };
    let right = WIDTH - RIGHT;
    let bottom = HEIGHT - BOTTOM;
    let x = |value: f64| LEFT + (right - LEFT) * (value - x_from) / (x_to - x_from);
    let y = |value: f64| bottom - (bottom - TOP) * (value.clamp(0.0, y_top) / y_top);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    for tick in 0..=4 {
        let value = y_top * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3}</text>",
            y(value),
            LEFT - 6.0,
            y(value) + 4.0,
            format_tick(value)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#444\"/>"
    );
    for tick in 0..=X_TICKS {
        let value = x_from + (x_to - x_from) * tick as f64 / X_TICKS as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(value),
            bottom + 16.0,
            escape(&x_label(value))
        );
    }
    for (number, line) in series.iter().enumerate() {
        let dash = if line.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        for run in line
            .points
            .split(|(_, value)| !value.is_finite())
            .filter(|run| !run.is_empty())
        {
            let points: Vec<String> = run
                .iter()
                .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
                .collect();
            if points.len() == 1 {
                let (px, py) = run[0];
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                    x(px),
                    y(py),
                    line.color
                );
            } else {
                let _ = writeln!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                    line.color,
                    points.join(" ")
                );
            }
        }
        let legend_y = TOP + 16.0 * number as f64;
        legend_entry(&mut svg, right, legend_y, line.color, dash, line.name);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The next readable bound at or above `value` (1, 2, 2.5, 5 × a power of ten).
/// One legend row right of the plot: a short stroke in the line's colour and dash, and its name.
pub fn legend_entry(svg: &mut String, right: f64, y: f64, color: &str, dash: &str, name: &str) {
    let _ = writeln!(
        svg,
        "<line x1=\"{0}\" y1=\"{1:.1}\" x2=\"{2}\" y2=\"{1:.1}\" stroke=\"{3}\" stroke-width=\"2\"{dash}/>\
         <text x=\"{4}\" y=\"{5:.1}\">{6}</text>",
        right + 12.0,
        y,
        right + 32.0,
        color,
        right + 38.0,
        y + 4.0,
        escape(name)
    );
}

/// The smallest of 1, 2, 2.5, 5 or 10 times a power of ten at or above `value`: a plot's
/// axis maximum (1 for zero, negative or non-finite values).
pub fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if value <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A tick label: whole numbers without decimals.
pub fn format_tick(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Text escaped for SVG and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_value_splits_the_line() {
        let chart = time_chart(
            "t <&>",
            (0.0, 10.0),
            100.0,
            &[Series::points(
                "sl",
                "#000",
                vec![
                    (1.0, 50.0),
                    (2.0, 60.0),
                    (3.0, f64::NAN),
                    (4.0, 70.0),
                    (5.0, 80.0),
                ],
                false,
            )],
            &|value| format!("{value:.0}"),
        );
        assert_eq!(chart.matches("<polyline").count(), 2, "{chart}");
        assert!(chart.contains("t &lt;&amp;&gt;"));
        assert!(!chart.contains("NaN"));
    }
}
