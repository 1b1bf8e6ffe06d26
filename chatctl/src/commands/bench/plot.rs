//! The sweep as an SVG: p50 and p99 latency against deliveries per second.

use std::path::Path;

use plotters::prelude::*;

use super::{BenchError, report::StepFigures};

/// Draws the steps of a sweep to `path`.
pub fn sweep_svg(path: &Path, title: &str, steps: &[StepFigures]) -> Result<(), BenchError> {
    draw(path, title, steps).map_err(|reason| BenchError::Plot { path: path.display().to_string(), reason })
}

fn draw(path: &Path, title: &str, steps: &[StepFigures]) -> Result<(), String> {
    let text = |error: &dyn std::fmt::Display| error.to_string();
    let p50: Vec<(f64, f64)> = steps.iter().map(|step| (step.deliveries_per_s, step.latency_ms.p50)).collect();
    let p99: Vec<(f64, f64)> = steps.iter().map(|step| (step.deliveries_per_s, step.latency_ms.p99)).collect();
    let x_max = p50.iter().map(|(x, _)| *x).fold(1.0, f64::max) * 1.05;
    let y_max = p99.iter().map(|(_, y)| *y).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| text(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| text(&e))?;
    chart
        .configure_mesh()
        .x_desc("deliveries per second")
        .y_desc("send → deliver latency (ms)")
        .draw()
        .map_err(|e| text(&e))?;
    for (points, label, colour) in [(p50, "p50", BLUE), (p99, "p99", RED)] {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| text(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(points.iter().map(|point| Circle::new(*point, 3, colour.filled()))).map_err(|e| text(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| text(&e))?;
    root.present().map_err(|e| text(&e))
}
