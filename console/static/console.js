// Crescendo console: the little the pages need a script for. Everything else
// works without it.
"use strict";

// A problem's "line N, column M" button puts the caret there in the editor.
function goTo(line, col) {
  const ta = document.getElementById("source");
  if (!ta) return;
  const lines = ta.value.split("\n");
  let pos = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
  pos += Math.max(col - 1, 0);
  ta.focus();
  ta.setSelectionRange(pos, pos);
  const lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 20;
  ta.scrollTop = Math.max((line - 3) * lineHeight, 0);
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button.goto");
  if (b) goTo(Number(b.dataset.line), Number(b.dataset.col));
});

// Focus what a post produced: the problems, or the dry run's result.
document.addEventListener("DOMContentLoaded", () => {
  const first = document.getElementById("problems") || document.getElementById("dry-run-result");
  if (first) first.focus();
  const table = document.getElementById("live-table");
  if (table) live(table);
});

// The live view: offers from the server's event stream, upserted by id.
function live(table) {
  const rows = document.getElementById("live-rows");
  const status = document.getElementById("live-status");
  const empty = document.getElementById("live-empty");
  const byID = new Map();
  const maxRows = 200;
  let count = 0;
  const cell = (tr, text, cls) => {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  };
  const fmt = (iso) => {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toISOString().slice(11, 19);
  };
  const render = (o) => {
    const tr = document.createElement("tr");
    tr.dataset.offer = o.offer_id;
    tr.dataset.status = o.status;
    cell(tr, fmt(o.issued_at));
    const rule = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/console/rules/" + encodeURIComponent(o.rule_id);
    a.textContent = o.rule_id + " v" + o.rule_version;
    rule.appendChild(a);
    tr.appendChild(rule);
    cell(tr, String(o.tier));
    cell(tr, (Math.round(o.index * 10) / 10).toString());
    cell(tr, o.status + (o.status_reason ? " (" + o.status_reason + ")" : ""), "status status-" + o.status);
    cell(tr, o.channel || "—");
    const fan = document.createElement("td");
    const why = document.createElement("a");
    why.href = "/console/fans/" + o.fan_id + "?performer=" + encodeURIComponent(o.performer_id);
    why.textContent = "Why?";
    why.setAttribute("aria-label", "Why: fan " + o.fan_id.slice(0, 8) + ", tier " + o.tier + " of " + o.rule_id);
    fan.appendChild(why);
    const short = document.createElement("span");
    short.className = "fanid";
    short.textContent = " " + o.fan_id.slice(0, 8);
    fan.appendChild(short);
    tr.appendChild(fan);
    return tr;
  };
  const upsert = (o) => {
    const tr = render(o);
    const old = byID.get(o.offer_id);
    if (old) {
      if (old.dataset.status === o.status) return;
      old.replaceWith(tr);
    } else {
      rows.prepend(tr);
      count++;
      if (rows.children.length > maxRows) {
        const last = rows.lastElementChild;
        byID.delete(last.dataset.offer);
        last.remove();
      }
    }
    tr.classList.add("fresh");
    byID.set(o.offer_id, tr);
    empty.hidden = true;
  };
  const es = new EventSource(table.dataset.stream);
  es.addEventListener("open", () => { status.textContent = "Live: connected."; });
  es.addEventListener("error", () => { status.textContent = "Disconnected; reconnecting…"; });
  es.addEventListener("offer", (e) => {
    try { upsert(JSON.parse(e.data)); } catch (err) { return; }
    status.textContent = "Live: " + byID.size + " offer" + (byID.size === 1 ? "" : "s") + " shown.";
  });
  es.addEventListener("signed-out", () => { es.close(); window.location = "/console/signin?expired=1"; });
}
