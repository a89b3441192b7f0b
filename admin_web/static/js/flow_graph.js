// Draws the flow graph of the editor page (cytoscape + dagre layout).  Data comes from the
// JSON block #flow-data; clicking a node opens its form.  No inline script (CSP).
(function () {
  "use strict";

  function style() {
    return [
      { selector: "node", style: {
          "shape": "round-rectangle", "background-color": "#e8eef7", "border-width": 2,
          "border-color": "#6b7c93", "label": "data(label)", "text-wrap": "wrap",
          "text-valign": "center", "font-size": 11, "width": 130, "height": 44 } },
      { selector: "node.start", style: { "border-color": "#1b7a35", "border-width": 3 } },
      { selector: "node.enqueue, node.transfer, node.hangup", style: { "background-color": "#eef6ea" } },
      { selector: "node.menu, node.ask, node.collect_digits, node.survey", style: { "background-color": "#fff6df" } },
      { selector: "node.invalid", style: { "background-color": "#fdd9d9", "border-color": "#d32f2f", "border-width": 4 } },
      { selector: "node.selected", style: { "overlay-color": "#1f6feb", "overlay-opacity": 0.18, "overlay-padding": 6 } },
      { selector: "edge", style: {
          "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 1.5,
          "line-color": "#8a97a8", "target-arrow-color": "#8a97a8", "label": "data(label)",
          "font-size": 9, "text-background-color": "#fff", "text-background-opacity": 1 } }
    ];
  }

  function draw() {
    var container = document.getElementById("flow-graph");
    var data = document.getElementById("flow-data");
    if (!container || !data || typeof cytoscape === "undefined") { return; }
    if (typeof cytoscapeDagre !== "undefined") { cytoscape.use(cytoscapeDagre); }
    var graph = JSON.parse(data.textContent);
    var cy = cytoscape({
      container: container, elements: graph.elements, style: style(),
      layout: { name: "dagre", rankDir: "TB", nodeSep: 30, rankSep: 50 },
      wheelSensitivity: 0.3
    });
    cy.on("tap", "node", function (event) {
      var url = new URL(container.dataset.editUrl, window.location.href);
      url.searchParams.set("node", event.target.id());
      window.location.assign(url.toString());
    });
    container.dataset.ready = "true";
    window.callpilotFlowGraph = cy;   // for the browser tests and the console
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
