//! The stylesheet and the sorting script every page inlines. Both are constants, so their
//! sha256 (in the page's Content-Security-Policy) is the same for every build of a version,
//! and pages need no file but themselves.

/// The page style: system fonts only (no web fonts), CSS variables for a dark variant.
pub const STYLE: &str = r#"
:root{--fg:#1c2330;--muted:#5a6475;--bg:#fff;--panel:#f4f6f9;--line:#d9dee6;--accent:#2356a8;
--accent2:#7a8699;--warn:#a23b1f;--ok:#1f7a4d;--bar:#3b73c9;--barref:#8a96a8;--mono:ui-monospace,"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#a3acba;--bg:#14171c;--panel:#1d2129;
--line:#343a46;--accent:#8db4ff;--accent2:#8a94a6;--warn:#ff9c7a;--ok:#6fd3a0;--bar:#5b8fe0;--barref:#6b7587}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans","DejaVu Sans",sans-serif}
.wrap{max-width:1200px;margin:0 auto;padding:0 24px}
header.top{background:var(--panel);border-bottom:1px solid var(--line);padding:18px 0 22px}
header.top nav{font-size:14px;margin-bottom:8px}
h1{font-size:30px;line-height:1.2;margin:4px 0 6px}
h1 .ver{font-size:16px;font-weight:500;color:var(--muted);margin-left:8px}
h2{font-size:22px;margin:36px 0 10px;padding-top:8px;border-top:1px solid var(--line)}
h3{font-size:17px;margin:0 0 6px}
a{color:var(--accent)}
p.lead{font-size:18px;margin:6px 0 10px;max-width:820px}
.meta{color:var(--muted);font-size:14px;margin:0}
.badge{display:inline-block;font-size:12px;font-weight:600;padding:1px 8px;border-radius:10px;border:1px solid var(--line);background:var(--bg);color:var(--muted);vertical-align:middle;margin-left:6px}
.badge.ref{color:var(--accent);border-color:var(--accent)}
.badge.warn{color:var(--warn);border-color:var(--warn)}
.badge.ok{color:var(--ok);border-color:var(--ok)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:12px 0;max-width:940px}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:15px}
th,td{padding:7px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:var(--panel);white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#board td{white-space:nowrap}
td.primary{font-weight:700}
.nowrap{white-space:nowrap}
table.narrow{width:auto;min-width:50%}
p.intro{max-width:860px;margin:10px 0 12px;font-size:15px}
tbody tr:hover{background:var(--panel)}
tr.unlisted td{color:var(--muted)}
td.note{font-style:italic}
#board td.note{white-space:normal;min-width:9em}
.sd{color:var(--muted);font-size:13px}
th button{font:inherit;font-weight:700;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th button::after{content:" \2195";color:var(--accent2);font-weight:400}
th[aria-sort=ascending] button::after{content:" \25B2";color:var(--accent)}
th[aria-sort=descending] button::after{content:" \25BC";color:var(--accent)}
th button:focus-visible,summary:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.hint{color:var(--muted);font-size:14px;margin:4px 0 8px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:18px}
figure{margin:0;padding:12px 14px;border:1px solid var(--line);border-radius:8px;background:var(--bg)}
figcaption{font-size:14px;color:var(--muted);margin-bottom:6px}
figcaption strong{color:var(--fg);font-size:15px}
svg.chart{display:block;width:100%;height:auto}
svg .bar{fill:var(--bar)}
svg .bar.ref{fill:var(--barref)}
svg .whisker{stroke:var(--fg);stroke-width:1.5}
svg .dot{fill:var(--bg);stroke:var(--fg);stroke-width:1.3}
svg .grid{stroke:var(--line);stroke-width:1}
svg .axis{stroke:var(--muted);stroke-width:1}
svg text{fill:var(--fg);font-size:12px;font-family:system-ui,"Liberation Sans","DejaVu Sans",sans-serif}
svg text.tick{fill:var(--muted);font-size:11px}
svg text.val{font-size:11.5px;font-variant-numeric:tabular-nums}
.legend{font-size:13px;color:var(--muted);margin:6px 0 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:16px}
.card{border:1px solid var(--line);border-radius:8px;padding:14px 16px;background:var(--bg)}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 12px;margin:8px 0 0;font-size:14px}
.card dt{color:var(--muted)}
.card dd{margin:0;min-width:0}
.card ul{margin:6px 0 0;padding-left:18px;font-size:14px}
.failures li{color:var(--warn)}
code,pre{font-family:var(--mono);font-size:13px}
code.hash{word-break:break-all}
pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px 12px;overflow-x:auto;white-space:pre}
details{border:1px solid var(--line);border-radius:8px;padding:8px 14px;margin:10px 0;background:var(--bg)}
details[open]{padding-bottom:14px}
summary{cursor:pointer;font-weight:600}
ol.steps li{margin:0 0 12px}
footer{margin:48px 0 0;padding:18px 0 30px;border-top:1px solid var(--line);color:var(--muted);font-size:13px}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
p.intro-after{display:none;max-width:860px;font-size:15px}
@media (max-width:640px){.charts{grid-template-columns:1fr}dl.facts{grid-template-columns:1fr}h1{font-size:24px}p.lead{font-size:16px}p.intro{display:none}p.intro-after{display:block}.wrap{padding:0 12px}th,td{padding:6px 5px}#board td.model{white-space:normal;min-width:8em}}
"#;

/// Sorts `table.sortable` by a header's column when its button is pressed (mouse or keyboard):
/// cells carry `data-v` (numbers or text); empty values always sort last; ties keep the
/// original order (`data-i`). Updates `aria-sort` and announces the order in a live region.
pub const SCRIPT: &str = r#"
(function () {
  "use strict";
  function key(cell, numeric) {
    var v = cell.getAttribute("data-v");
    if (v === null || v === "") { return null; }
    return numeric ? parseFloat(v) : v.toLowerCase();
  }
  function sortBy(table, index, th) {
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var dir = current === "ascending" ? "descending"
      : current === "descending" ? "ascending"
      : (th.getAttribute("data-first") || "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index], numeric), y = key(b.cells[index], numeric);
      var order = parseInt(a.getAttribute("data-i"), 10) - parseInt(b.getAttribute("data-i"), 10);
      if (x === null && y === null) { return order; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = numeric ? x - y : (x < y ? -1 : x > y ? 1 : 0);
      if (dir === "descending") { c = -c; }
      return c || order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      if (h !== th) { h.removeAttribute("aria-sort"); }
    });
    th.setAttribute("aria-sort", dir);
    var status = document.getElementById(table.id + "-status");
    if (status) { status.textContent = "Sorted by " + th.textContent.trim() + ", " + dir + "."; }
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      if (button) {
        button.addEventListener("click", function () { sortBy(table, index, th); });
      }
    });
  });
}());
"#;
