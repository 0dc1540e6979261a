// The event log grows live: new events are fetched from /api/events/?after=<id>
// and appended, oldest first, as the web server and the worker record them.
"use strict";

(function () {
  const table = document.querySelector("[data-events]");
  if (!table) return;
  const body = table.tBodies[0];
  let lastId = Number(table.dataset.lastId) || 0;

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text ?? "";
    return td;
  }

  function row(event) {
    const tr = document.createElement("tr");
    tr.dataset.kind = event.kind;
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
    const error = event.error + (event.will_retry ? " (will retry)" : "");
    tr.append(
      when, kind, cell(event.name, "file"), cell(event.process, "process"),
      cell(event.attempt), cell(duration), cell(error, "error")
    );
    return tr;
  }

  async function poll() {
    try {
      const sep = table.dataset.rowsUrl.includes("?") ? "&" : "?";
      const response = await fetch(`${table.dataset.rowsUrl}${sep}after=${lastId}`, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const { events } = await response.json();
        if (events.length) body.querySelector(".empty-row")?.remove();
        for (const event of events) {
          body.append(row(event));
          lastId = event.id;
        }
      }
    } catch (error) {
      console.warn("Could not fetch new events:", error);
    }
    setTimeout(poll, 1000);
  }

  setTimeout(poll, 1000);
})();
