/* The quality pages' charts: each .chart-plot[data-chart] names a json_script element holding
   {title, kind: "time"|"bars", format, x, labels, series: [{label, values}]}; uPlot (vendored)
   draws it. No inline script or style: uPlot sets element styles through the CSSOM, which the
   strict CSP allows. The table view beside each chart holds the same numbers. */
(function () {
  "use strict";
  var PALETTE = ["#2450b2", "#b3261e", "#1f7a3d", "#8a5a00", "#6b3fa0", "#00727a", "#a0446a", "#4d5b70"];

  function format(kind, value) {
    if (value === null || value === undefined) return "no data";
    if (kind === "percent") return (value * 100).toFixed(1) + " %";
    if (kind === "seconds") return value < 120 ? value.toFixed(0) + " s" : (value / 60).toFixed(1) + " min";
    if (kind === "ratio") return value.toFixed(2);
    return Math.round(value * 10) / 10 + "";
  }

  function draw(plot) {
    var source = document.getElementById(plot.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") return;
    var spec = JSON.parse(source.textContent);
    if (!spec.x.length || !spec.series.length) {
      plot.textContent = "No data for this period.";
      plot.classList.add("chart-empty");
      plot.setAttribute("data-drawn", "empty");
      return;
    }
    var bars = spec.kind === "bars";
    var series = [{ label: bars ? "" : "Day (UTC)", value: function (u, v) { return bars ? spec.labels[v] : (v === null ? "" : new Date(v * 1000).toISOString().slice(0, 10)); } }];
    spec.series.forEach(function (line, index) {
      var colour = PALETTE[index % PALETTE.length];
      var entry = {
        label: line.label,
        stroke: colour,
        width: 2,
        spanGaps: false,
        value: function (u, v) { return format(spec.format, v); }
      };
      if (!bars) entry.points = { show: true, size: 6 };  // a day alone is still seen
      if (bars) {
        entry.fill = colour + "99";
        entry.paths = uPlot.paths.bars({ size: [0.6, 64] });
        entry.points = { show: false };
      }
      series.push(entry);
    });
    var axes = [
      bars
        ? { splits: function () { return spec.x; }, values: function (u, splits) { return splits.map(function (i) { return spec.labels[i] || ""; }); } }
        : {},
      { values: function (u, splits) { return splits.map(function (v) { return format(spec.format, v); }); }, size: 70 }
    ];
    var scales = bars
      ? { x: { time: false, range: function () { return [-0.5, spec.x.length - 0.5]; } }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } }
      : { x: { time: true }, y: { range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max * 1.1 : 1]; } } };
    var data = [spec.x].concat(spec.series.map(function (line) { return line.values; }));
    var width = Math.max(plot.clientWidth, 280);
    var chart = new uPlot({ width: width, height: 240, series: series, axes: axes, scales: scales, legend: { live: true } }, data, plot);
    plot.setAttribute("data-drawn", "true");
    window.addEventListener("resize", function () { chart.setSize({ width: Math.max(plot.clientWidth, 280), height: 240 }); });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".chart-plot[data-chart]"), draw);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
