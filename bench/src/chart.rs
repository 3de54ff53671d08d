//! SVG bar charts of the results: one chart per metric, bars grouped by runtime flavour,
//! one bar per system.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::model::{Flavour, Metric};
use crate::report::{Results, format_value};

/// One colour per system, in column order.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xda, 0x8b, 0xc3),
    RGBColor(0x8c, 0x8c, 0x8c),
];

/// Writes one SVG per metric into `dir`; returns the files written, by metric.
pub(crate) fn write_all(results: &Results, dir: &Path) -> std::io::Result<Vec<(Metric, PathBuf)>> {
    std::fs::create_dir_all(dir)?;
    let mut metrics: Vec<Metric> = results.rows().into_iter().map(|(m, _)| m).collect();
    metrics.dedup();
    let mut written = Vec::new();
    for metric in metrics {
        let path = dir.join(format!("{}.svg", metric.slug()));
        draw(results, metric, &path).map_err(|e| std::io::Error::other(e.to_string()))?;
        written.push((metric, path));
    }
    Ok(written)
}

/// The bars of one flavour: (system index, median), only for measured systems.
fn bars(results: &Results, metric: Metric, flavour: Flavour) -> Vec<(usize, Option<f64>)> {
    (0..results.systems.len())
        .map(|i| (i, results.median(metric, flavour, i)))
        .collect()
}

fn draw(results: &Results, metric: Metric, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let flavours: Vec<Flavour> = Flavour::ALL
        .into_iter()
        .filter(|f| results.rows().contains(&(metric, *f)))
        .collect();
    let systems = results.systems.len();
    let max = flavours
        .iter()
        .flat_map(|&f| bars(results, metric, f))
        .filter_map(|(_, v)| v)
        .fold(0.0f64, f64::max);
    // Head room above the tallest bar for the legend.
    let top = if max > 0.0 { max * 1.5 } else { 1.0 };
    let groups = flavours.len().max(1) as f64;

    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let better = if metric.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    };
    let caption = format!(
        "{} ({}, {better})",
        metric.name(&results.scale),
        metric.unit()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..groups, 0.0..top)?;
    let names: Vec<&str> = flavours.iter().map(|f| f.name()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(flavours.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let g = x.floor();
            if (x - g - 0.5).abs() < 1e-6 {
                names
                    .get(g as usize)
                    .map_or(String::new(), |n| (*n).to_owned())
            } else {
                String::new()
            }
        })
        .y_desc(metric.unit())
        .y_label_formatter(&|y| format_value(*y))
        .draw()?;

    let width = 0.8 / systems as f64;
    for (i, (name, _)) in results.systems.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut rects = Vec::new();
        let mut labels = Vec::new();
        for (g, &flavour) in flavours.iter().enumerate() {
            let x0 = g as f64 + 0.1 + i as f64 * width;
            let x1 = x0 + width * 0.9;
            match results.median(metric, flavour, i) {
                Some(v) => {
                    rects.push(Rectangle::new([(x0, 0.0), (x1, v)], colour.filled()));
                    labels.push(Text::new(
                        format_value(v),
                        (x0, v + top * 0.01),
                        ("sans-serif", 10),
                    ));
                }
                None => labels.push(Text::new(
                    "n/a".to_owned(),
                    (x0, top * 0.01),
                    ("sans-serif", 10),
                )),
            }
        }
        chart
            .draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        chart.draw_series(labels)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
