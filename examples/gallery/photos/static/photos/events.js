// The event log grows live: /api/events/?since=<time> returns the events
// recorded since then (and a little before: an event recorded inside a
// transaction appears when it commits, after later ones). Each new event is
// put in its place in time order; the ones already shown are skipped.
"use strict";

(function () {
  const table = document.querySelector("[data-events]");
  if (!table) return;
  const body = table.tBodies[0];
  const shown = new Set([...body.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id));
  let since = table.dataset.since || "";

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text ?? "";
    return td;
  }

  function row(event) {
    const tr = document.createElement("tr");
    tr.dataset.kind = event.kind;
    tr.dataset.id = event.id;
    tr.className = "is-new";
    const time = document.createElement("time");
    time.dateTime = event.time;
    time.textContent = event.time.slice(11, 23);
    const when = cell("");
    when.append(time);
    const kind = cell("");
    const label = document.createElement("span");
    label.className = `event event-${event.kind}`;
    label.textContent = event.label;
    kind.append(label);
    const duration = event.duration == null ? "" : `${event.duration.toFixed(3)} s`;
    const details = (event.error || event.note) + (event.will_retry ? " (will retry)" : "");
    tr.append(
      when, kind, cell(event.name, "file"), cell(event.process, "process"),
      cell(event.attempt), cell(duration), cell(details, event.error ? "details error" : "details")
    );
    return tr;
  }

  // Time order, then id: the order the server sorts by.
  const key = (tr) => [tr.querySelector("time").dateTime, Number(tr.dataset.id)];
  const before = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

  function insert(tr) {
    const mine = key(tr);
    let next = null;
    for (let other = body.lastElementChild; other; other = other.previousElementSibling) {
      if (!other.dataset.id || !before(mine, key(other))) break;
      next = other;
    }
    body.insertBefore(tr, next);
  }

  async function poll() {
    try {
      const sep = table.dataset.rowsUrl.includes("?") ? "&" : "?";
      const query = since ? `${sep}since=${encodeURIComponent(since)}` : "";
      const response = await fetch(`${table.dataset.rowsUrl}${query}`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const { events } = await response.json();
        for (const event of events) {
          if (shown.has(String(event.id))) continue;
          shown.add(String(event.id));
          body.querySelector(".empty-row")?.remove();
          insert(row(event));
          if (event.time > since) since = event.time;
        }
      }
    } catch (error) {
      console.warn("Could not fetch new events:", error);
    }
    setTimeout(poll, 1000);
  }

  setTimeout(poll, 1000);
})();
