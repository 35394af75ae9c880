//! SVG charts for the web UI, drawn on the server by `plotters` (its SVG backend, no fonts, no
//! bitmaps): the browser shows them as images, so the UI ships no charting code and loads
//! nothing from another host. Text in the SVG is escaped by the backend; the UI loads the SVG as
//! an `<img>`, where no script in it could run anyway.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::{Error, Result};

/// Chart width in pixels.
const WIDTH: u32 = 720;
/// Chart height in pixels.
const HEIGHT: u32 = 260;
/// The series colour: a blue with a contrast ratio above 4.5:1 on white.
const INK: RGBColor = RGBColor(31, 94, 160);
/// Axis and label colour.
const TEXT: RGBColor = RGBColor(40, 40, 40);

/// One labelled value of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The category or x-axis label (a week, a team).
    pub label: String,
    /// The value.
    pub value: f64,
}

/// What kind of chart to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Vertical bars, one per point.
    Bars,
    /// A line through the points, each marked.
    Line,
}

fn failed<E: std::fmt::Display>(e: E) -> Error {
    Error::Internal(format!("drawing a chart failed: {e}"))
}

/// The top of the y axis: a little above the largest value, and never an empty range.
fn y_top(points: &[Point]) -> f64 {
    let max = points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// A y-axis tick: no decimals for whole numbers, at most two otherwise.
fn axis_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `points` as an SVG document titled `title`, with `y_label` on the value axis. An
/// empty series gives an empty chart with its axes (the UI says "no data" beside it).
pub fn render(kind: Kind, title: &str, y_label: &str, points: &[Point]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let n = points.len().max(1);
        let top = y_top(points);
        // `0..k` segmented has k + 1 segments: one per point.
        let last = n - 1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16).into_font().color(&TEXT))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((0..last).into_segmented(), 0.0..top)
            .map_err(failed)?;
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                points.get(*i).map(|p| p.label.clone()).unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(14))
            .x_label_formatter(&label_of)
            .y_label_formatter(&|v: &f64| axis_number(*v))
            .y_desc(y_label)
            .axis_desc_style(("sans-serif", 13).into_font().color(&TEXT))
            .label_style(("sans-serif", 12).into_font().color(&TEXT))
            .draw()
            .map_err(failed)?;
        match kind {
            Kind::Bars => {
                chart
                    .draw_series(points.iter().enumerate().map(|(i, p)| {
                        let mut bar = Rectangle::new(
                            [
                                (SegmentValue::Exact(i), 0.0),
                                (SegmentValue::Exact(i + 1), p.value),
                            ],
                            INK.filled(),
                        );
                        bar.set_margin(0, 0, 6, 6);
                        bar
                    }))
                    .map_err(failed)?;
            }
            Kind::Line => {
                let at = |i: usize, p: &Point| (SegmentValue::CenterOf(i), p.value);
                chart
                    .draw_series(LineSeries::new(
                        points.iter().enumerate().map(|(i, p)| at(i, p)),
                        INK.stroke_width(2),
                    ))
                    .map_err(failed)?;
                chart
                    .draw_series(
                        points
                            .iter()
                            .enumerate()
                            .map(|(i, p)| Circle::new(at(i, p), 4, INK.filled())),
                    )
                    .map_err(failed)?;
            }
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                label: format!("w{i}"),
                value: *v,
            })
            .collect()
    }

    #[test]
    fn bars_draw_one_rectangle_per_point_and_label_them() {
        let svg = render(
            Kind::Bars,
            "Calls per week",
            "calls",
            &points(&[3.0, 5.0, 1.0]),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Calls per week"));
        for label in ["w0", "w1", "w2"] {
            assert!(svg.contains(label), "label {label} missing");
        }
        // The background is one rect; the bars are filled with the series colour.
        let bars = svg.matches("fill=\"#1F5EA0\"").count();
        assert_eq!(bars, 3, "{svg}");
    }

    #[test]
    fn lines_mark_every_point() {
        let svg = render(Kind::Line, "Active", "principals", &points(&[1.0, 2.0])).unwrap();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
    }

    #[test]
    fn labels_are_escaped_and_empty_series_still_draw() {
        let hostile = vec![Point {
            label: "<script>alert(1)</script>".into(),
            value: 1.0,
        }];
        let svg = render(Kind::Bars, "t", "v", &hostile).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        let empty = render(Kind::Line, "nothing", "v", &[]).unwrap();
        assert!(empty.contains("nothing"));
        assert_eq!(empty.matches("<circle").count(), 0);
    }
}
