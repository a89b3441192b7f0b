// Report charts (chart.js): offered calls per interval per queue, and service level.
(function () {
  "use strict";
  var COLOURS = ["#1f6feb", "#1b7a35", "#9a6700", "#8250df", "#cf222e", "#0a7ea4"];

  function series(map, type) {
    return Object.keys(map).map(function (queue, i) {
      return { label: queue, data: map[queue], type: type, borderColor: COLOURS[i % COLOURS.length],
               backgroundColor: COLOURS[i % COLOURS.length], spanGaps: true };
    });
  }

  function draw() {
    var data = JSON.parse(document.getElementById("chart-data").textContent);
    if (typeof Chart === "undefined") { return; }
    new Chart(document.getElementById("offered-chart"), {
      type: "bar", data: { labels: data.labels, datasets: series(data.offered, "bar") },
      options: { animation: false, plugins: { title: { display: true, text: "Offered calls" } },
                 scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }
    });
    new Chart(document.getElementById("sl-chart"), {
      type: "line", data: { labels: data.labels, datasets: series(data.service_level, "line") },
      options: { animation: false, plugins: { title: { display: true, text: "Service level %" } },
                 scales: { y: { min: 0, max: 100 } } }
    });
    document.body.dataset.chartsReady = "true";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
