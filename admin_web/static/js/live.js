// Wallboard and agent page: server-sent events from /wallboard/stream or /agent/stream,
// rendered with textContent only (no HTML from data).  No inline script (CSP).
(function () {
  "use strict";

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function pct(v) { return v === null || v === undefined ? null : Math.round(v * 100) + " %"; }
  function secs(v) { return v === null || v === undefined ? null : Math.round(v) + " s"; }
  function clock(s) {
    var m = Math.floor(s / 60), r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function fill(tbody, rows, build) {
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    rows.forEach(function (item) {
      var tr = document.createElement("tr");
      build(tr, item);
      tbody.appendChild(tr);
    });
  }

  function renderBoard(board) {
    document.getElementById("serve-state").textContent =
      board.serve === "up" ? "live" : "serve is not running";
    fill(document.querySelector("#queue-board tbody"), board.queues, function (tr, q) {
      tr.dataset.queue = q.queue;
      if (q.waiting > 0) { tr.className = "waiting"; }
      cell(tr, q.queue);
      cell(tr, q.waiting, "num waiting-count");
      cell(tr, secs(q.longest_wait), "num");
      cell(tr, q.agents_available, "num");
      cell(tr, q.offered, "num");
      cell(tr, pct(q.service_level), "num");
      cell(tr, secs(q.asa), "num");
      cell(tr, pct(q.abandon_rate), "num");
      cell(tr, q.callbacks_pending, "num");
    });
    fill(document.querySelector("#agent-board tbody"), board.agents, function (tr, a) {
      tr.dataset.agent = a.agent;
      cell(tr, a.agent);
      cell(tr, a.state + (a.pause_reason ? " (" + a.pause_reason + ")" : ""), "state-" + a.state);
      cell(tr, (a.exact ? "" : "≥ ") + clock(a.seconds_in_state), "num");
      cell(tr, a.device);
      cell(tr, (a.queues || []).join(", "));
    });
  }

  function term(dl, name, value) {
    if (value === null || value === undefined || value === "") { return; }
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value;
    dd.dataset.field = name;
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  var KINDS = {callback: "callback to ", campaign: "campaign contact "};
  var SOURCES = {ivr: "asked while waiting in line", web: "'call me' on the web site", app: "'call me' in the app"};

  // A callback's or a campaign call's context (admin_web/pop_context.py), before the profile.
  function renderContext(dl, context) {
    if (!context) { return; }
    if (context.kind === "callback") {
      term(dl, "callback", SOURCES[context.source] || context.source);
      term(dl, "reason", context.reason);
      term(dl, "requested at", context.requested_at);
      term(dl, "requested window", context.window);
      term(dl, "in line since", context.in_line_since);
      term(dl, "attempt", context.attempt);
    } else if (context.kind === "campaign") {
      term(dl, "campaign", context.campaign + (context.purpose ? " (" + context.purpose + ")" : ""));
      term(dl, "reply", context.reply);
      term(dl, "contact", context.contact);
    }
    Object.keys(context.details || {}).sort().forEach(function (key) {
      term(dl, key, context.details[key]);
    });
  }

  function renderAgent(view) {
    var state = view.state ? view.state.state + (view.state.pause_reason ? " (" + view.state.pause_reason + ")" : "")
                           : (view.serve === "up" ? "not in serve" : "serve is not running");
    document.getElementById("agent-state").textContent = state;
    var pop = document.getElementById("screen-pop"), dl = document.getElementById("pop-details");
    while (dl.firstChild) { dl.removeChild(dl.firstChild); }
    var call = view.call;
    pop.className = "pop " + (call ? call.state : "idle");
    if (!call) { document.getElementById("pop-title").textContent = "No call"; return; }
    var who = call.customer ? call.customer.name || call.caller_id : call.caller_id;
    document.getElementById("pop-title").textContent =
      (call.state === "ringing" ? "Ringing: " : "On call: ") + (KINDS[call.kind] || "") + who;
    renderContext(dl, call.context);
    term(dl, "caller", call.caller_id);
    if (call.customer) {
      term(dl, "name", call.customer.name);
      term(dl, "age band", call.customer.age_band);
      term(dl, "segment", call.customer.segment);
      term(dl, "language", call.customer.language);
    } else {
      term(dl, "profile", "unknown caller");
    }
    term(dl, "queue", call.queue);
    term(dl, "queued at", call.queued_at);
    term(dl, "waited", secs(call.waited));
    term(dl, "IVR path", (call.ivr_path || []).join(" → "));
    term(dl, "said", (call.said || []).map(function (s) {
      return s.kind === "speech" ? "“" + s.value + "”" : "key " + s.value;
    }).join(", "));
  }

  // The server caps open streams (503 + Retry-After beyond it): EventSource gives up on a
  // non-200 answer, so the page opens a new one after a while (jittered, growing to 60 s).
  // A page left (pagehide, also into the back-forward cache) closes its stream at once: the
  // server's slot is free for another page; coming back (pageshow) opens it again.
  var live = { source: null, timer: null };

  function stop() {
    if (live.timer !== null) { window.clearTimeout(live.timer); live.timer = null; }
    if (live.source !== null) { live.source.close(); live.source = null; }
  }

  function listen(element, render, delay) {
    var source = new EventSource(element.dataset.stream);
    var wait = delay || 5000;
    live.source = source;
    source.onopen = function () { wait = 5000; element.dataset.streamState = "open"; };
    source.onmessage = function (event) {
      render(JSON.parse(event.data));
      element.dataset.updated = String(Date.now());
    };
    source.onerror = function () {
      if (source.readyState !== EventSource.CLOSED || live.source !== source) { return; }
      element.dataset.streamState = "retrying";     // the browser retries other errors itself
      live.timer = window.setTimeout(function () {
        live.timer = null;
        listen(element, render, Math.min(wait * 2, 60000));
      }, wait + Math.floor(Math.random() * 2000));
    };
    window.callpilotStream = source;
  }

  function start() {
    stop();
    var board = document.getElementById("wallboard");
    if (board) { listen(board, renderBoard); }
    var pop = document.getElementById("screen-pop");
    if (pop) { listen(pop, renderAgent); }
  }

  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", function (event) { if (event.persisted) { start(); } });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
