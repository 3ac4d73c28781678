/**
 * The script inlined in every report page: it reads the report's JSON from the page and draws each
 * `[data-chart]` container as inline SVG (axes, ticks, legend, title, and a `<title>` tooltip on every
 * mark), then marks it `data-drawn="true"`. No libraries and no network: the page works from a file.
 *
 * It is plain ES2019 in a string, not compiled TypeScript, because it runs in the browser as it is.
 * The renderers (`lineChart`, `barChart`, `heatMap`) return SVG text and touch no DOM, so tests can
 * call them through `globalThis.DistilleryCharts` in Node's `vm`; only `boot` needs a document.
 */
export const CHART_SCRIPT = String.raw`
(function (root) {
  "use strict";
  var PALETTE = ["#2563eb", "#e11d48", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
    "#475569", "#ea580c", "#4f46e5", "#0d9488", "#a16207", "#be123c", "#1d4ed8", "#15803d"];
  var ROLE_COLORS = { teacher: "#475569", distilled: "#2563eb", scratch: "#d97706" };
  var METRIC_NAMES = { train_loss: "train loss", val_loss: "validation loss", val_accuracy: "validation accuracy" };

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  /** A number for a label: integers whole, others with 4 significant digits. */
  function fmt(x) {
    if (x === null || x === undefined || typeof x !== "number" || !isFinite(x)) return "–";
    var a = Math.abs(x);
    if (Number.isInteger(x)) return a >= 1e6 ? x.toExponential(2) : String(x);
    if (a >= 1e6 || a < 1e-4) return x.toExponential(2);
    if (a >= 1000) return x.toFixed(0);
    return String(Number(x.toPrecision(4)));
  }

  function niceStep(span, count, integer) {
    var raw = span / Math.max(1, count);
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / p;
    var nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 && !integer ? 2.5 : f <= 5 ? 5 : 10;
    var step = nice * p;
    return integer ? Math.max(1, Math.round(step)) : step;
  }

  /** Round tick values covering [lo, hi] in steps of 1, 2, 2.5 or 5 times a power of ten. */
  function niceTicks(lo, hi, count, integer) {
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (lo > hi) { var t = lo; lo = hi; hi = t; }
    if (hi - lo <= 1e-9 * Math.max(1, Math.abs(lo), Math.abs(hi))) { var pad = lo === 0 ? 1 : Math.abs(lo) * 0.1; lo -= pad; hi += pad; }
    var step = niceStep(hi - lo, count || 5, integer);
    var start = Math.floor(lo / step + 1e-9) * step;
    var end = Math.ceil(hi / step - 1e-9) * step;
    var ticks = [];
    for (var i = 0; start + i * step <= end + step * 1e-9 && i < 100; i++) ticks.push(Number((start + i * step).toPrecision(12)));
    return { lo: start, hi: end, ticks: ticks };
  }

  function svgOpen(w, h, title) {
    return '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' + w + " " + h + '" width="' + w + '" height="' + h + '" role="img" aria-label="' +
      esc(title) + '" font-family="inherit">' + '<text class="chart-title" x="12" y="20">' + esc(title) + "</text>";
  }

  /**
   * A line chart. spec: { title, xLabel, yLabel, series: [{ label, color, dash, points: [{ x, y, lo, hi, tip }] }],
   * xTicks: [{ value, label }] (else round ticks), xLog, integerX, yDomain: [lo, hi], references: [{ y, label }],
   * width, height, dodge }.
   */
  function lineChart(spec) {
    var W = spec.width || 560, H = spec.height || 330;
    var m = { l: 62, r: 20, t: 38, b: 50 };
    var iw = W - m.l - m.r, ih = H - m.t - m.b;
    var tx = spec.xLog ? function (v) { return Math.log(v); } : function (v) { return v; };
    var xs = [], ys = [];
    spec.series.forEach(function (s) {
      s.points.forEach(function (p) {
        xs.push(p.x); ys.push(p.y);
        if (p.lo !== null && p.lo !== undefined) ys.push(p.lo);
        if (p.hi !== null && p.hi !== undefined) ys.push(p.hi);
      });
    });
    (spec.references || []).forEach(function (r) { ys.push(r.y); });
    var xTicks, x0, x1;
    if (spec.xTicks && spec.xTicks.length > 0) {
      xTicks = spec.xTicks;
      var tv = xTicks.map(function (t) { return tx(t.value); });
      x0 = Math.min.apply(null, tv); x1 = Math.max.apply(null, tv);
      var padX = x1 > x0 ? (x1 - x0) * 0.06 : 1;
      x0 -= padX; x1 += padX;
    } else {
      var nx = niceTicks(Math.min.apply(null, xs), Math.max.apply(null, xs), 6, spec.integerX);
      xTicks = nx.ticks.map(function (v) { return { value: v, label: fmt(v) }; });
      x0 = nx.lo; x1 = nx.hi;
    }
    var ny = spec.yDomain ? { lo: spec.yDomain[0], hi: spec.yDomain[1], ticks: niceTicks(spec.yDomain[0], spec.yDomain[1], 5).ticks }
      : niceTicks(ys.length ? Math.min.apply(null, ys) : 0, ys.length ? Math.max.apply(null, ys) : 1, 5);
    var y0 = ny.lo, y1 = ny.hi;
    function sx(v) { return m.l + (tx(v) - x0) / (x1 - x0 || 1) * iw; }
    function sy(v) { return m.t + ih - (v - y0) / (y1 - y0 || 1) * ih; }
    var out = [svgOpen(W, H, spec.title)];
    out.push('<g class="grid">');
    ny.ticks.forEach(function (v) {
      if (v < y0 - 1e-12 || v > y1 + 1e-12) return;
      out.push('<line x1="' + m.l + '" x2="' + (m.l + iw) + '" y1="' + sy(v).toFixed(1) + '" y2="' + sy(v).toFixed(1) + '"/>');
    });
    out.push("</g>");
    out.push('<g class="axis y-axis">');
    ny.ticks.forEach(function (v) {
      if (v < y0 - 1e-12 || v > y1 + 1e-12) return;
      out.push('<text x="' + (m.l - 8) + '" y="' + (sy(v) + 4).toFixed(1) + '" text-anchor="end">' + esc(fmt(v)) + "</text>");
    });
    out.push('<line x1="' + m.l + '" x2="' + m.l + '" y1="' + m.t + '" y2="' + (m.t + ih) + '"/>');
    out.push("</g>");
    out.push('<g class="axis x-axis">');
    out.push('<line x1="' + m.l + '" x2="' + (m.l + iw) + '" y1="' + (m.t + ih) + '" y2="' + (m.t + ih) + '"/>');
    xTicks.forEach(function (t) {
      var x = sx(t.value);
      if (x < m.l - 0.5 || x > m.l + iw + 0.5) return;
      out.push('<line x1="' + x.toFixed(1) + '" x2="' + x.toFixed(1) + '" y1="' + (m.t + ih) + '" y2="' + (m.t + ih + 5) + '"/>');
      out.push('<text x="' + x.toFixed(1) + '" y="' + (m.t + ih + 18) + '" text-anchor="middle">' + esc(t.label) + "</text>");
    });
    out.push("</g>");
    out.push('<text class="axis-label" x="' + (m.l + iw / 2) + '" y="' + (H - 8) + '" text-anchor="middle">' + esc(spec.xLabel || "") + "</text>");
    out.push('<text class="axis-label" transform="translate(14 ' + (m.t + ih / 2) + ') rotate(-90)" text-anchor="middle">' + esc(spec.yLabel || "") + "</text>");
    (spec.references || []).forEach(function (r, ri) {
      var ry = sy(r.y);
      out.push('<g class="reference"><line x1="' + m.l + '" x2="' + (m.l + iw) + '" y1="' + ry.toFixed(1) + '" y2="' + ry.toFixed(1) + '"/>' +
        '<text x="' + (m.l + iw - 4) + '" y="' + (ry + (ri % 2 === 0 ? -5 : 13)).toFixed(1) + '" text-anchor="end">' + esc(r.label + ": " + fmt(r.y)) + "</text>" +
        "<title>" + esc(r.label + ": " + fmt(r.y)) + "</title></g>");
    });
    var k = spec.series.length;
    spec.series.forEach(function (s, si) {
      var dx = spec.dodge ? (si - (k - 1) / 2) * Math.min(6, 24 / Math.max(1, k)) : 0;
      var pts = s.points.filter(function (p) { return isFinite(p.y); });
      out.push('<g class="series" data-series="' + esc(s.label) + '">');
      if (pts.length > 1) {
        var d = pts.map(function (p, i) { return (i === 0 ? "M" : "L") + (sx(p.x) + dx).toFixed(1) + " " + sy(p.y).toFixed(1); }).join(" ");
        out.push('<path d="' + d + '" fill="none" stroke="' + s.color + '" stroke-width="2"' +
          (s.dash ? ' stroke-dasharray="6 4"' : "") + ' stroke-linejoin="round" stroke-linecap="round"><title>' + esc(s.label) + "</title></path>");
      }
      pts.forEach(function (p) {
        var cx = (sx(p.x) + dx).toFixed(1);
        if (p.lo !== null && p.lo !== undefined && p.hi !== null && p.hi !== undefined) {
          var a = sy(p.lo).toFixed(1), b = sy(p.hi).toFixed(1);
          out.push('<path class="ci" d="M' + cx + " " + a + " V" + b + " M" + (cx - 4) + " " + a + " h8 M" + (cx - 4) + " " + b + ' h8" stroke="' + s.color + '"/>');
        }
        out.push('<circle cx="' + cx + '" cy="' + sy(p.y).toFixed(1) + '" r="' + (pts.length > 20 ? 2.5 : 3.5) + '" fill="' + (s.dash ? "#fff" : s.color) +
          '" stroke="' + s.color + '" stroke-width="1.5"><title>' + esc(p.tip || s.label + ": " + fmt(p.x) + ", " + fmt(p.y)) + "</title></circle>");
      });
      out.push("</g>");
    });
    out.push("</svg>");
    return out.join("");
  }

  /** Horizontal bars. spec: { title, xLabel, domain: [lo, hi], bars: [{ label, sublabel, value, lo, hi, color, tip }] }. */
  function barChart(spec) {
    var W = spec.width || 560, rowH = 34;
    var m = { l: 150, r: 64, t: 40, b: 44 };
    var H = m.t + m.b + rowH * spec.bars.length;
    var iw = W - m.l - m.r;
    var lo = spec.domain ? spec.domain[0] : 0, hi = spec.domain ? spec.domain[1] : Math.max.apply(null, spec.bars.map(function (b) { return b.hi || b.value; }));
    var ticks = niceTicks(lo, hi, 5).ticks.filter(function (v) { return v >= lo - 1e-12 && v <= hi + 1e-12; });
    function sx(v) { return m.l + (Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo || 1) * iw; }
    var out = [svgOpen(W, H, spec.title)];
    out.push('<g class="grid">');
    ticks.forEach(function (v) { out.push('<line x1="' + sx(v).toFixed(1) + '" x2="' + sx(v).toFixed(1) + '" y1="' + m.t + '" y2="' + (H - m.b) + '"/>'); });
    out.push('</g><g class="axis x-axis">');
    out.push('<line x1="' + m.l + '" x2="' + (m.l + iw) + '" y1="' + (H - m.b) + '" y2="' + (H - m.b) + '"/>');
    ticks.forEach(function (v) { out.push('<text x="' + sx(v).toFixed(1) + '" y="' + (H - m.b + 18) + '" text-anchor="middle">' + esc(fmt(v)) + "</text>"); });
    out.push("</g>");
    out.push('<text class="axis-label" x="' + (m.l + iw / 2) + '" y="' + (H - 8) + '" text-anchor="middle">' + esc(spec.xLabel || "") + "</text>");
    spec.bars.forEach(function (b, i) {
      var y = m.t + i * rowH + 6, h = rowH - 12;
      out.push('<g class="bar">');
      out.push('<text class="bar-label" x="' + (m.l - 10) + '" y="' + (y + h / 2 - (b.sublabel ? 2 : -4)) + '" text-anchor="end">' + esc(b.label) + "</text>");
      if (b.sublabel) out.push('<text class="bar-sublabel" x="' + (m.l - 10) + '" y="' + (y + h / 2 + 11) + '" text-anchor="end">' + esc(b.sublabel) + "</text>");
      out.push('<rect x="' + m.l + '" y="' + y + '" width="' + Math.max(1, sx(b.value) - m.l).toFixed(1) + '" height="' + h + '" rx="3" fill="' + b.color + '"><title>' + esc(b.tip || b.label + ": " + fmt(b.value)) + "</title></rect>");
      if (b.lo !== null && b.lo !== undefined && b.hi !== null && b.hi !== undefined) {
        var cy = y + h / 2;
        out.push('<path class="ci" d="M' + sx(b.lo).toFixed(1) + " " + cy + " H" + sx(b.hi).toFixed(1) + " M" + sx(b.lo).toFixed(1) + " " + (cy - 5) + " v10 M" + sx(b.hi).toFixed(1) + " " + (cy - 5) + ' v10" stroke="#111827"/>');
      }
      out.push('<text class="bar-value" x="' + (sx(b.hi !== null && b.hi !== undefined ? b.hi : b.value) + 6).toFixed(1) + '" y="' + (y + h / 2 + 4) + '">' + esc(fmt(b.value)) + "</text>");
      out.push("</g>");
    });
    out.push("</svg>");
    return out.join("");
  }

  var gradients = 0;

  /** Sequential colour for t in [0, 1]: near-white to deep red. */
  function heat(t) {
    var a = [255, 241, 242], b = [159, 18, 57];
    return "rgb(" + a.map(function (c, i) { return Math.round(c + (b[i] - c) * t); }).join(",") + ")";
  }

  /**
   * A heat map of counts. spec: { title, rowLabel, colLabel, classes: [n...], cells: [{ row, col, count, tip }],
   * diagonal: text for the (empty) diagonal }.
   */
  function heatMap(spec) {
    var k = spec.classes.length;
    var cell = Math.max(14, Math.min(44, Math.floor(360 / Math.max(1, k))));
    var m = { l: 78, r: 20, t: 70, b: 58 };
    var W = Math.max(360, m.l + k * cell + m.r), H = m.t + k * cell + m.b;
    var index = {};
    spec.classes.forEach(function (c, i) { index[c] = i; });
    var max = 0;
    spec.cells.forEach(function (c) { if (c.count > max) max = c.count; });
    var out = [svgOpen(W, H, spec.title)];
    out.push('<text class="axis-label" x="' + (m.l + k * cell / 2) + '" y="' + (m.t - 28) + '" text-anchor="middle">' + esc(spec.colLabel) + "</text>");
    out.push('<text class="axis-label" transform="translate(16 ' + (m.t + k * cell / 2) + ') rotate(-90)" text-anchor="middle">' + esc(spec.rowLabel) + "</text>");
    spec.classes.forEach(function (c, i) {
      out.push('<text class="tick" x="' + (m.l + i * cell + cell / 2) + '" y="' + (m.t - 8) + '" text-anchor="middle">' + esc(c) + "</text>");
      out.push('<text class="tick" x="' + (m.l - 8) + '" y="' + (m.t + i * cell + cell / 2 + 4) + '" text-anchor="end">' + esc(c) + "</text>");
    });
    for (var r = 0; r < k; r++) {
      for (var q = 0; q < k; q++) {
        out.push('<rect class="' + (r === q ? "diagonal" : "empty") + '" x="' + (m.l + q * cell) + '" y="' + (m.t + r * cell) + '" width="' + cell + '" height="' + cell + '">' +
          (r === q ? "<title>" + esc(spec.diagonal || "correct") + "</title>" : "") + "</rect>");
      }
    }
    spec.cells.forEach(function (c) {
      var r = index[c.row], q = index[c.col];
      if (r === undefined || q === undefined) return;
      var t = max > 0 ? c.count / max : 0;
      var x = m.l + q * cell, y = m.t + r * cell;
      out.push('<g class="cell"><rect x="' + x + '" y="' + y + '" width="' + cell + '" height="' + cell + '" fill="' + heat(0.15 + 0.85 * t) + '"><title>' + esc(c.tip) + "</title></rect>");
      if (cell >= 20) {
        out.push('<text x="' + (x + cell / 2) + '" y="' + (y + cell / 2 + 4) + '" text-anchor="middle" class="count" style="fill:' + (t > 0.5 ? "#fff" : "#4c0519") + '" pointer-events="none">' + c.count + "</text>");
      }
      out.push("</g>");
    });
    // Legend: the colour scale from 1 to the largest count.
    var lx = m.l, ly = m.t + k * cell + 22, lw = Math.min(160, Math.max(80, k * cell - 60));
    var gid = "heat-scale-" + (++gradients);
    out.push('<defs><linearGradient id="' + gid + '"><stop offset="0" stop-color="' + heat(0.15) + '"/><stop offset="1" stop-color="' + heat(1) + '"/></linearGradient></defs>');
    out.push('<g class="legend-scale"><rect x="' + lx + '" y="' + ly + '" width="' + lw + '" height="10" fill="url(#' + gid + ')"/>' +
      '<text x="' + lx + '" y="' + (ly + 24) + '">' + (max > 0 ? 1 : 0) + "</text>" +
      '<text x="' + (lx + lw) + '" y="' + (ly + 24) + '" text-anchor="end">' + max + "</text>" +
      '<text x="' + (lx + lw + 10) + '" y="' + (ly + 9) + '">examples</text></g>');
    out.push("</svg>");
    return out.join("");
  }

  function legend(items) {
    return '<div class="legend">' + items.map(function (it) {
      return '<span class="legend-item"><svg width="26" height="12" aria-hidden="true"><line x1="1" x2="25" y1="6" y2="6" stroke="' + it.color +
        '" stroke-width="2.5"' + (it.dash ? ' stroke-dasharray="5 3"' : "") + "/>" +
        (it.marker === false ? "" : '<circle cx="13" cy="6" r="3" fill="' + (it.dash ? "#fff" : it.color) + '" stroke="' + it.color + '" stroke-width="1.5"/>') +
        "</svg>" + esc(it.label) + "</span>";
    }).join("") + "</div>";
  }

  function colorFor(labels) {
    var map = {};
    labels.forEach(function (l, i) { map[l] = PALETTE[i % PALETTE.length]; });
    return function (l) { return map[l] || "#6b7280"; };
  }

  function unique(xs) {
    var seen = {}, out = [];
    xs.forEach(function (x) { if (!seen[x]) { seen[x] = true; out.push(x); } });
    return out;
  }

  // --- drawing the report's containers ------------------------------------------------------------

  function drawCurves(el, data, index) {
    var curves = data.curves, view = curves.views[index], unit = curves.unit || "epoch";
    var labels = unique(view.series.map(function (s) { return s.label; }));
    var color = colorFor(labels);
    function panel(metrics, title, yLabel) {
      var series = view.series.filter(function (s) { return metrics.indexOf(s.metric) >= 0; }).map(function (s) {
        return {
          label: s.label + " · " + (METRIC_NAMES[s.metric] || s.metric), color: color(s.label), dash: s.metric === "val_loss",
          points: s.points.map(function (p) {
            return { x: p[0], y: p[1], tip: s.label + " · " + (METRIC_NAMES[s.metric] || s.metric) + "\n" + unit + " " + p[0] + ": " + fmt(p[1]) + (s.n > 1 ? " (mean of " + s.n + " runs)" : "") };
          })
        };
      });
      if (series.length === 0) return "";
      return '<div class="panel">' + lineChart({ title: title, xLabel: unit, yLabel: yLabel, series: series, integerX: true }) + "</div>";
    }
    var html = "";
    if (curves.views.length > 1) {
      html += '<label class="control">train node <select data-role="curve-view">' + curves.views.map(function (v, i) {
        return '<option value="' + i + '"' + (i === index ? " selected" : "") + ">" + esc(v.name) + "</option>";
      }).join("") + "</select></label>";
    }
    html += '<p class="hint">' + esc(view.name + ": " + view.description) + "</p>";
    html += '<div class="panels">' + panel(["train_loss", "val_loss"], "Loss per " + unit, "loss") +
      panel(["val_accuracy"], "Validation accuracy per " + unit, "accuracy") + "</div>";
    var items = labels.map(function (l) { return { label: l, color: color(l) }; });
    if (view.series.some(function (s) { return s.metric === "val_loss"; })) {
      items.push({ label: "train loss", color: "#9ca3af", marker: false }, { label: "validation loss", color: "#9ca3af", dash: true, marker: false });
    }
    html += legend(items);
    el.innerHTML = html;
    var select = el.querySelector("select");
    if (select) select.addEventListener("change", function () { drawCurves(el, data, Number(select.value)); });
  }

  function drawSweep(el, data, index) {
    var sweep = data.sweep, chart = sweep.charts[index];
    var labels = chart.series.map(function (s) { return s.label; });
    var color = colorFor(labels);
    var cats = sweep.xCategories;
    var distinct = unique([].concat.apply([], chart.series.map(function (s) { return s.points.map(function (p) { return p.x; }); }))).sort(function (a, b) { return a - b; });
    var xTicks = cats ? cats.map(function (c, i) { return { value: i, label: c }; })
      : distinct.length <= 12 || sweep.xLog ? distinct.map(function (v) { return { value: v, label: fmt(v) }; }) : null;
    var series = chart.series.map(function (s) {
      return {
        label: s.label, color: color(s.label),
        points: s.points.map(function (p) {
          var sm = p.summary, xl = cats ? cats[p.x] : fmt(p.x);
          return {
            x: p.x, y: sm.mean, lo: sm.lo, hi: sm.hi,
            tip: s.label + "\n" + sweep.xLabel + " = " + xl + "\n" + chart.metric + ": mean " + fmt(sm.mean) +
              (sm.lo !== null ? " (95% CI " + fmt(sm.lo) + " – " + fmt(sm.hi) + ")" : "") +
              "\nn = " + sm.n + (sm.n > 1 ? " trials: " + p.values.map(fmt).join(", ") : " trial")
          };
        })
      };
    });
    var title = chart.node + (chart.subject ? " (" + chart.subject + ")" : "") + " · " + chart.metric + " vs " + sweep.xLabel;
    var html = lineChart({
      title: title, xLabel: sweep.xLabel + (sweep.xLog ? " (log scale)" : ""), yLabel: chart.metric, series: series,
      xTicks: xTicks, xLog: sweep.xLog, dodge: true,
      references: chart.references.map(function (r) { return { y: r.value, label: r.label }; })
    });
    var groupName = sweep.group.length ? sweep.group.map(function (g) { return sweep.paramLabels[g] || g; }).join(", ") : "";
    html += legend(series.map(function (s) { return { label: s.label, color: s.color }; }));
    html += '<p class="hint">Mean over seeds with 95% confidence bars (Student t)' + (groupName ? "; one line per " + esc(groupName) : "") + ".</p>";
    el.innerHTML = html;
  }

  function roleColor(role, i) { return ROLE_COLORS[role] || PALETTE[i % PALETTE.length]; }

  function drawAgreement(el, data) {
    var bars = data.agreement.map(function (b, i) {
      var s = b.summary;
      return {
        label: b.node, sublabel: b.subject + (b.role ? " · " + b.role : ""), value: s.mean, lo: s.lo, hi: s.hi, color: roleColor(b.role, i),
        tip: b.node + " (" + b.subject + "): top-1 agreement with the teacher " + fmt(s.mean) +
          (s.lo !== null ? " (95% CI " + fmt(s.lo) + " – " + fmt(s.hi) + ", n = " + s.n + ")" : "")
      };
    });
    el.innerHTML = barChart({ title: "Teacher-student agreement", xLabel: "fraction of examples where the model's top-1 class is the teacher's", domain: [0, 1], bars: bars });
  }

  function drawConfusion(el, data, index) {
    var c = data.confusion[index];
    var runs = c.runs > 1 ? " over " + c.runs + " runs" : "";
    var cells = c.cells.map(function (x) {
      return {
        row: x.label, col: x.prediction, count: x.count,
        tip: "label " + x.label + " → predicted " + x.prediction + ": " + x.count + " example" + (x.count === 1 ? "" : "s") + runs +
          (x.teacherRight === null ? "" : "\nthe teacher (" + c.teacherNode + ") got " + x.teacherRight + " of them right")
      };
    });
    var title = c.node + " (" + c.subject + "): " + c.wrong + " wrong of " + c.total;
    var html = c.cells.length === 0
      ? '<p class="empty">' + esc(c.node) + ": no mistakes" + esc(runs) + ".</p>" + '<svg class="empty-mark" viewBox="0 0 10 10" width="1" height="1"><circle cx="5" cy="5" r="1"/></svg>'
      : heatMap({ title: title, rowLabel: "true label", colLabel: "predicted", classes: c.classes, cells: cells, diagonal: "correct predictions are not counted" });
    var right = 0, seen = false;
    c.cells.forEach(function (x) { if (x.teacherRight !== null) { seen = true; right += x.teacherRight; } });
    if (seen) html += '<p class="hint">The teacher (' + esc(c.teacherNode) + ") got " + right + " of these " + c.wrong + " right.</p>";
    el.innerHTML = html;
  }

  var DRAWERS = {
    "learning-curves": function (el, data) { drawCurves(el, data, data.curves.initial || 0); },
    "sweep-metric": function (el, data) { drawSweep(el, data, Number(el.getAttribute("data-index") || 0)); },
    "agreement": drawAgreement,
    "confusion": function (el, data) { drawConfusion(el, data, Number(el.getAttribute("data-index") || 0)); }
  };

  function boot() {
    var source = document.getElementById("report-data");
    if (!source) return;
    var data = JSON.parse(source.textContent || "{}");
    var els = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i], draw = DRAWERS[el.getAttribute("data-chart")];
      if (!draw) continue;
      try {
        draw(el, data);
        el.setAttribute("data-drawn", "true");
      } catch (e) {
        el.setAttribute("data-drawn", "error");
        el.innerHTML = '<p class="error">Could not draw this chart: ' + esc(e && e.message ? e.message : e) + "</p>";
      }
    }
  }

  root.DistilleryCharts = { niceTicks: niceTicks, fmt: fmt, lineChart: lineChart, barChart: barChart, heatMap: heatMap, legend: legend };
  if (typeof document !== "undefined") {
    // The page puts this script after the charts and the data, so they are parsed: draw now.
    if (document.getElementById("report-data")) boot();
    else document.addEventListener("DOMContentLoaded", boot);
  }
})(typeof window !== "undefined" ? window : globalThis);
`
