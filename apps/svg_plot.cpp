#include "svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <kiln/core/error.h>
#include <kiln/core/safetensors.h>

namespace kiln::apps {

namespace {

// Colour-blind-safe palette (Okabe and Ito).
const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string number(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3)) std::snprintf(buf, sizeof buf, "%.2g", v);
  else std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// About `count` round tick values covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int count) {
  const double span = hi - lo;
  const double raw = span / std::max(count, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) { step = m * magnitude; break; }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const LineChart& chart) {
  const double left = 72, right = 170, top = 48, bottom = 60;
  const double plot_w = chart.width - left - right, plot_h = chart.height - top - bottom;
  auto tx = [&](double x) { return chart.log2_x ? std::log2(x) : x; };

  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const Series& s : chart.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (chart.log2_x && s.x[i] <= 0) continue;
      x_lo = std::min(x_lo, tx(s.x[i]));
      x_hi = std::max(x_hi, tx(s.x[i]));
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  if (!std::isfinite(x_lo)) { x_lo = 0; x_hi = 1; y_lo = 0; y_hi = 1; }
  if (chart.y_from_zero) y_lo = std::min(0.0, y_lo);
  if (x_hi - x_lo < 1e-12) { x_lo -= 1; x_hi += 1; }
  if (y_hi - y_lo < 1e-12) { y_lo -= 1; y_hi += 1; }
  const double y_pad = (y_hi - y_lo) * 0.05;
  if (!chart.y_from_zero || y_lo < 0) y_lo -= y_pad;
  y_hi += y_pad;

  auto px = [&](double x) { return left + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return top + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h; };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << chart.width << "\" height=\""
      << chart.height << "\" viewBox=\"0 0 " << chart.width << ' ' << chart.height
      << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << left + plot_w / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">"
      << xml_escape(chart.title) << "</text>\n";

  // Grid and ticks.
  svg << "<g stroke=\"#dddddd\" stroke-width=\"1\">\n";
  std::vector<double> x_ticks;
  if (chart.log2_x) {
    for (double e = std::ceil(x_lo - 1e-9); e <= x_hi + 1e-9; e += 1) x_ticks.push_back(std::exp2(e));
  } else {
    x_ticks = nice_ticks(x_lo, x_hi, 6);
  }
  std::vector<double> y_ticks = nice_ticks(y_lo, y_hi, 6);
  for (double t : x_ticks)
    svg << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\""
        << top + plot_h << "\"/>\n";
  for (double t : y_ticks)
    svg << "<line x1=\"" << left << "\" y1=\"" << py(t) << "\" x2=\"" << left + plot_w
        << "\" y2=\"" << py(t) << "\"/>\n";
  svg << "</g>\n";
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << plot_w << "\" height=\""
      << plot_h << "\" fill=\"none\" stroke=\"#333333\"/>\n";
  for (double t : x_ticks)
    svg << "<text x=\"" << px(t) << "\" y=\"" << top + plot_h + 18
        << "\" text-anchor=\"middle\">" << number(t) << "</text>\n";
  for (double t : y_ticks)
    svg << "<text x=\"" << left - 8 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">"
        << number(t) << "</text>\n";
  svg << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << chart.height - 16
      << "\" text-anchor=\"middle\">" << xml_escape(chart.x_label) << "</text>\n";
  svg << "<text transform=\"translate(20," << top + plot_h / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(chart.y_label) << "</text>\n";

  // Series and legend.
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& s = chart.series[k];
    const char* colour = kColours[k % (sizeof kColours / sizeof kColours[0])];
    std::ostringstream points;
    std::ostringstream markers;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (chart.log2_x && s.x[i] <= 0)) continue;
      points << px(s.x[i]) << ',' << py(s.y[i]) << ' ';
      markers << "<circle cx=\"" << px(s.x[i]) << "\" cy=\"" << py(s.y[i]) << "\" r=\"3.5\" fill=\""
              << colour << "\"/>\n";
    }
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\""
        << points.str() << "\"/>\n"
        << markers.str();
    const double ly = top + 12 + 22 * static_cast<double>(k);
    svg << "<line x1=\"" << left + plot_w + 16 << "\" y1=\"" << ly << "\" x2=\"" << left + plot_w + 40
        << "\" y2=\"" << ly << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n"
        << "<text x=\"" << left + plot_w + 46 << "\" y=\"" << ly + 4 << "\">" << xml_escape(s.name)
        << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

void write_svg(const std::string& path, const LineChart& chart) {
  write_file_atomic(path, render_svg(chart));
}

}  // namespace kiln::apps
