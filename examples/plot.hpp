#pragma once

// Line plots drawn with OpenCV, for the examples' ROC and DET pictures: rates on the y axis
// (0 to 1), a rate on the x axis (linear, or logarithmic from `min_x` to 1), grid, ticks,
// labels, a legend and marked points.

#include <siamese/errors.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace example {

struct PlotSeries {
  std::vector<cv::Point2d> points;  ///< (x, y), x in [0, 1] (or (0, 1] on a log axis), y in [0, 1]
  cv::Scalar colour;
  std::string label;
};

struct PlotMark {
  cv::Point2d at;
  std::string text;
};

struct PlotAxes {
  std::string title, x_label, y_label;
  bool log_x = true;
  double min_x = 1e-4;        ///< the left end of a log axis; smaller x (and 0) sit there
  bool legend_at_top = true;  ///< the legend's corner: top right, else bottom right
};

/// The colours of successive series.
inline cv::Scalar series_colour(std::size_t i) {
  static const cv::Scalar colours[] = {{200, 80, 0}, {0, 140, 0}, {0, 0, 200}, {160, 0, 160}, {0, 130, 200}, {90, 90, 90}};
  return colours[i % (sizeof colours / sizeof colours[0])];
}

/// Draws `series` and `marks` on `axes` into the PNG `file`. Throws FileError when it cannot be written.
inline void draw_plot(const PlotAxes& axes, const std::vector<PlotSeries>& series, const std::vector<PlotMark>& marks,
                      const std::filesystem::path& file) {
  constexpr int width = 640, height = 520, left = 70, right = 20, top = 40, bottom = 60;
  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar::all(255));
  const int plot_w = width - left - right, plot_h = height - top - bottom;
  const double decades = -std::log10(axes.min_x);
  auto x_of = [&](double x) {
    const double u = axes.log_x ? (std::log10(std::max(x, axes.min_x)) + decades) / decades : x;
    return left + static_cast<int>(std::clamp(u, 0.0, 1.0) * plot_w);
  };
  auto y_of = [&](double y) { return top + static_cast<int>((1.0 - std::clamp(y, 0.0, 1.0)) * plot_h); };
  const cv::Scalar black(0, 0, 0), grey(200, 200, 200), red(0, 0, 200);
  const auto text = [&](const std::string& s, cv::Point at, double size, const cv::Scalar& colour) {
    cv::putText(canvas, s, at, cv::FONT_HERSHEY_SIMPLEX, size, colour, 1, cv::LINE_AA);
  };
  for (int i = 0; i <= 10; i += 2) {
    const double v = i / 10.0;
    cv::line(canvas, {left, y_of(v)}, {left + plot_w, y_of(v)}, grey, 1);
    text(cv::format("%.1f", v), {left - 36, y_of(v) + 5}, 0.45, black);
  }
  std::vector<double> x_ticks;
  if (axes.log_x) {
    for (double x = axes.min_x; x <= 1.0 + 1e-9; x *= 10) x_ticks.push_back(x);
  } else {
    x_ticks = {0, 0.2, 0.4, 0.6, 0.8, 1.0};
  }
  for (double x : x_ticks) {
    cv::line(canvas, {x_of(x), top}, {x_of(x), top + plot_h}, grey, 1);
    text(axes.log_x ? cv::format("1e%d", static_cast<int>(std::lround(std::log10(x)))) : cv::format("%.1f", x),
         {x_of(x) - 15, top + plot_h + 20}, 0.45, black);
  }
  cv::rectangle(canvas, {left, top}, {left + plot_w, top + plot_h}, black, 1);
  for (const auto& s : series) {
    std::vector<cv::Point> curve;
    for (const auto& p : s.points) curve.emplace_back(x_of(p.x), y_of(p.y));
    cv::polylines(canvas, curve, false, s.colour, 2, cv::LINE_AA);
  }
  for (const auto& mark : marks) {
    const cv::Point at(x_of(mark.at.x), y_of(mark.at.y));
    cv::circle(canvas, at, 5, red, 2, cv::LINE_AA);
    text(mark.text, at + cv::Point(8, 18), 0.45, red);
  }
  text(axes.x_label, {left + plot_w / 2 - 110, height - 15}, 0.55, black);
  cv::Mat label(24, plot_h, CV_8UC3, cv::Scalar::all(255));
  cv::putText(label, axes.y_label, {plot_h / 2 - 80, 18}, cv::FONT_HERSHEY_SIMPLEX, 0.55, black, 1, cv::LINE_AA);
  cv::rotate(label, label, cv::ROTATE_90_COUNTERCLOCKWISE);
  label.copyTo(canvas(cv::Rect(4, top, 24, plot_h)));
  text(axes.title, {left, 25}, 0.55, black);
  const int legend_height = 20 * static_cast<int>(series.size());
  cv::Point legend(left + plot_w - 250, axes.legend_at_top ? top + 20 : top + plot_h - legend_height);
  for (const auto& s : series) {
    cv::line(canvas, legend, legend + cv::Point(30, 0), s.colour, 2);
    text(s.label, legend + cv::Point(38, 5), 0.45, black);
    legend.y += 20;
  }
  if (!cv::imwrite(file.string(), canvas)) throw siamese::FileError("cannot write '" + file.string() + "'");
}

}  // namespace example
