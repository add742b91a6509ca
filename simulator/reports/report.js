// The report's drill-down and call filter. Untrusted strings only ever go through
// textContent / createTextNode, never innerHTML, attributes or URLs.
(function () {
  "use strict";
  var blob = document.getElementById("callsim-data");
  var data = JSON.parse(blob.textContent);
  var detail = data.calls_detail || {};
  var rows = {};
  (data.calls || []).forEach(function (c) { rows[String(c.idx)] = c; });
  var panel = document.getElementById("drill");
  var table = document.getElementById("calls-table");
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined && text !== null) { n.textContent = String(text); }
    return n;
  }
  function num(v, d) { return (v === null || v === undefined) ? "\u2014" : Number(v).toFixed(d); }
  function badge(text, kind) { return el("span", "badge " + (kind || ""), text); }
  function words(s) { return String(s || "").split(/(\s+)/); }
  function diffInto(node, sent, clean) {
    // Mark the words of what was sent that are not in the clean text (LCS on words).
    var a = words(sent), b = words(clean), n = a.length, m = b.length, i, j;
    if (n * m > 250000) { node.textContent = sent; return; }
    var L = [];
    for (i = 0; i <= n; i++) { L.push(new Array(m + 1).fill(0)); }
    for (i = n - 1; i >= 0; i--) {
      for (j = m - 1; j >= 0; j--) {
        L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
      }
    }
    i = 0; j = 0;
    while (i < n) {
      if (j < m && a[i] === b[j]) { node.appendChild(document.createTextNode(a[i])); i++; j++; }
      else if (j < m && L[i][j + 1] >= L[i + 1][j]) { j++; }
      else if (/^\s+$/.test(a[i])) { node.appendChild(document.createTextNode(a[i])); i++; }
      else { node.appendChild(el("mark", null, a[i])); i++; }
    }
  }
  function kvTable(headers, list) {
    var t = el("table"), thead = el("thead"), tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", h[2] ? "r" : null, h[0])); });
    thead.appendChild(tr); t.appendChild(thead);
    var tb = el("tbody");
    list.forEach(function (item) {
      var r = el("tr");
      headers.forEach(function (h) {
        var v = h[1](item);
        var td = el("td", h[2] ? "r" : null);
        if (v instanceof Node) { td.appendChild(v); } else { td.textContent = v; }
        r.appendChild(td);
      });
      tb.appendChild(r);
    });
    t.appendChild(tb);
    return t;
  }
  function pre(v) {
    var s = (typeof v === "string") ? v : JSON.stringify(v, null, 1);
    return el("pre", null, s === undefined ? "" : s);
  }
  function show(key) {
    var c = rows[key], dt = detail[key];
    if (!c) { return; }
    Array.prototype.forEach.call(table.querySelectorAll("tr.sel"), function (r) {
      r.classList.remove("sel");
    });
    var tr = table.querySelector('tr[data-idx="' + Number(c.idx) + '"]');
    if (tr) { tr.classList.add("sel"); }
    panel.textContent = "";
    panel.appendChild(el("h3", null, "call " + c.call_id + " \u00b7 " + c.pack + " \u00b7 " +
      c.intent + " \u00b7 " + c.profile));
    var b = el("div", "badges");
    b.appendChild(c.ok ? badge("ok", "ok") : badge(c.error || "error", "bad"));
    b.appendChild(badge(c.strict_pass ? "strict pass" : "not strict", c.strict_pass ? "ok" : "warn"));
    b.appendChild(badge("args " + c.arg_correct + "/" + c.arg_total,
      c.arg_correct === c.arg_total ? "ok" : "warn"));
    b.appendChild(badge(c.record_exists ? "record exists" : "record missing"));
    if (c.refused) { b.appendChild(badge("refused", c.record_exists ? "bad" : "ok")); }
    if (c.fabricated) { b.appendChild(badge("fabricated", "bad")); }
    b.appendChild(badge("$" + num(c.cost_usd, 5) + (c.cost_estimated ? " (est.)" : "")));
    if (c.injected_wer !== null && c.injected_wer !== undefined) {
      b.appendChild(badge("WER " + num(100 * c.injected_wer, 1) + "%"));
    }
    panel.appendChild(b);
    panel.appendChild(el("div", "note", "script " + c.script_id + " \u00b7 started " +
      num(c.started_s, 3) + " s \u00b7 finished " + num(c.finished_s, 3) + " s" +
      (c.warmup ? " \u00b7 warm-up (not measured)" : "")));
    if (!dt) {
      panel.appendChild(el("p", "note", "Transcript not embedded: this report keeps at most " +
        data.max_transcripts + " (calls with problems first). callsim export RUN has them all."));
      return;
    }
    var t = dt.transcript || {};
    if (t.error_detail) { panel.appendChild(el("p", "err", t.error_detail)); }
    var callers = t.caller || [], agents = t.agent || [];
    panel.appendChild(el("h4", null, "conversation"));
    if (callers.length !== agents.length) {
      panel.appendChild(el("p", "note", callers.length + " caller turns, " + agents.length +
        " agent replies: paired in order, so replies around tool calls may shift."));
    }
    for (var i = 0; i < Math.max(callers.length, agents.length); i++) {
      var turn = el("div", "turn");
      if (i < callers.length) {
        var ct = callers[i] || {};
        turn.appendChild(el("div", "who", "caller" + (ct.kind ? " \u00b7 " + ct.kind : "")));
        var said = el("div", "said");
        if (ct.clean_text && ct.clean_text !== ct.text) {
          diffInto(said, ct.text, ct.clean_text);
          said.appendChild(el("div", "clean", "clean: " + ct.clean_text));
        } else { said.textContent = ct.text || ""; }
        turn.appendChild(said);
      }
      if (i < agents.length) {
        turn.appendChild(el("div", "who agent", "agent"));
        turn.appendChild(el("div", "said", agents[i]));
      }
      panel.appendChild(turn);
    }
    var tools = t.tool_calls || [];
    panel.appendChild(el("h4", null, "tool calls (" + tools.length + ")"));
    if (tools.length) {
      panel.appendChild(kvTable([
        ["#", function (x) { return x.k; }],
        ["tool", function (x) { return x.name; }],
        ["arguments", function (x) { return pre(x.arguments !== null && x.arguments !== undefined ? x.arguments : x.raw); }],
        ["result", function (x) { return pre(x.result); }],
        ["fault", function (x) { return x.fault ? pre(x.fault) : ""; }]
      ], tools));
    }
    var g = t.grading || {};
    var mism = g.mismatches || [], fab = g.fabricated || [];
    panel.appendChild(el("h4", null, "grading"));
    if (!mism.length && !fab.length) { panel.appendChild(el("p", "note", "No mismatches, nothing fabricated.")); }
    if (mism.length) {
      panel.appendChild(kvTable([
        ["tool call", function (x) { return x.call; }],
        ["argument", function (x) { return x.argument === null ? "\u2014" : x.argument; }],
        ["problem", function (x) { return x.problem; }],
        ["expected", function (x) { return x.expected === undefined ? "" : JSON.stringify(x.expected); }],
        ["got", function (x) { return x.got === undefined ? "" : JSON.stringify(x.got); }]
      ], mism));
    }
    if (fab.length) {
      panel.appendChild(el("p", "err", "Fabricated record details (in no tool result or caller turn):"));
      panel.appendChild(kvTable([
        ["kind", function (x) { return x.kind; }],
        ["value", function (x) { return x.value; }],
        ["as said", function (x) { return x.text; }]
      ], fab));
    }
    var ex = dt.exchanges || [];
    panel.appendChild(el("h4", null, "timings (" + ex.length + " exchanges)"));
    if (ex.length) {
      panel.appendChild(kvTable([
        ["#", function (x) { return x.seq; }],
        ["turn", function (x) { return x.caller_turn; }],
        ["phase", function (x) { return x.phase; }],
        ["sent s", function (x) { return num(x.sent_s, 3); }, 1],
        ["ttft ms", function (x) { return num(x.ttft_ms, 1); }, 1],
        ["from sched ms", function (x) { return num(x.ttft_from_schedule_ms, 1); }, 1],
        ["last byte ms", function (x) { return num(x.last_byte_ms, 1); }, 1],
        ["stalls", function (x) { return x.stalls === null ? "\u2014" : x.stalls; }, 1],
        ["loop lag ms", function (x) { return num(x.loop_lag_ms, 1); }, 1],
        ["tokens in/out", function (x) { return (x.prompt_tokens === null ? "\u2014" : x.prompt_tokens) + "/" + (x.completion_tokens === null ? "\u2014" : x.completion_tokens); }, 1],
        ["", function (x) { return (x.interrupted ? "interrupted " : "") + (x.error || ""); }]
      ], ex));
    } else { panel.appendChild(el("p", "note", "No exchanges recorded.")); }
    if (t.usage) {
      panel.appendChild(el("h4", null, "usage" + (t.usage_estimated ? " (estimated)" : "")));
      panel.appendChild(pre(t.usage));
    }
    if (t.backend_outcome !== undefined && t.backend_outcome !== null) {
      panel.appendChild(el("h4", null, "backend outcome"));
      panel.appendChild(pre(t.backend_outcome));
    }
  }
  table.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr[data-idx]");
    if (tr) { show(tr.getAttribute("data-idx")); }
  });
  table.addEventListener("keydown", function (ev) {
    var tr = ev.target.closest("tr[data-idx]");
    if (tr && ev.key === "Enter") { show(tr.getAttribute("data-idx")); }
  });
  var filter = document.getElementById("call-filter");
  var only = document.getElementById("problems-only");
  var count = document.getElementById("shown-count");
  function applyFilter() {
    var q = filter.value.toLowerCase(), shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      var ok = (!only.checked || r.getAttribute("data-problem") === "1") &&
        (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.style.display = ok ? "" : "none";
      if (ok) { shown++; }
    });
    count.textContent = shown + " calls shown";
  }
  filter.addEventListener("input", applyFilter);
  only.addEventListener("change", applyFilter);
  var m = /^#call-(\d+)$/.exec(window.location.hash);
  var first = (data.calls || []).filter(function (c) { return c.problems.length; })[0] ||
    (data.calls || [])[0];
  if (m && rows[m[1]]) { show(m[1]); } else if (first) { show(String(first.idx)); }
  document.body.setAttribute("data-ready", "1");
})();
