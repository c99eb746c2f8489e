// Line charts as self-contained SVG files: axes with ticks, axis labels, a title and a legend.
// Used by kiln-cifar10 for the training curves and for the error-versus-batch-size plot.
#pragma once

#include <string>
#include <vector>

namespace kiln::apps {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; NaN points are skipped
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log2_x = false;         // batch sizes 2, 4, 8, ... read best on a log2 axis
  bool y_from_zero = false;    // start the y axis at 0 instead of the data minimum
  int width = 720, height = 440;
};

/// The chart as an SVG document (UTF-8 text). Text is XML-escaped.
std::string render_svg(const LineChart& chart);

/// Writes the chart to path atomically (temp file + rename); throws kiln::Error on failure.
void write_svg(const std::string& path, const LineChart& chart);

/// "a < b & c" -> "a &lt; b &amp; c".
std::string xml_escape(const std::string& text);

}  // namespace kiln::apps
