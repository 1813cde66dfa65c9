// The live calls table refreshes itself every few seconds (no script elsewhere: every
// page works without it). Rows are built with textContent: nothing from a visitor is HTML.
const table = document.getElementById("live-calls");
const REFRESH_MS = 3000;

function when(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

async function refresh() {
  try {
    const response = await fetch("/admin/live.json", { credentials: "same-origin" });
    if (!response.ok) return;
    const { calls } = await response.json();
    const body = table.tBodies[0];
    const rows = calls.map((c) =>
      row([c.site, c.state, when(c.started_at), c.kind, c.visitor_name || c.client, c.page,
           c.destination || "", c.worker]));
    if (!rows.length) {
      const empty = row(["No call in progress."]);
      empty.firstChild.colSpan = 8;
      rows.push(empty);
    }
    body.replaceChildren(...rows);
    document.getElementById("live-count").textContent = String(calls.length);
  } catch {
    // The next round tries again.
  }
}

if (table) setInterval(refresh, REFRESH_MS);

// A form that forgets something for good asks first.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
