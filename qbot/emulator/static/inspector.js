// The inspector pane: per exchange, the webhook the emulator sent and the REST calls the bot made.

import { el } from "./render.js";

function statusClass(status) {
  if (status === null || status === undefined) return "status failed";
  return status < 300 ? "status ok" : "status failed";
}

// A user's text: what the bot's intents make of it (top three with scores, then entities).
async function renderIntents(text, into) {
  try {
    const response = await fetch(`/emulator/api/intents?text=${encodeURIComponent(text)}`);
    if (!response.ok) return;
    const found = await response.json();
    if (!found.intents?.length && !found.entities?.length) return;
    const line = el("div", "intents");
    for (const m of found.intents) {
      const below = m.score < found.threshold ? " below" : "";
      line.append(el("span", `intent${below}`, `${m.name} ${m.score.toFixed(2)}`));
    }
    for (const e of found.entities) line.append(el("span", "entity", `${e.type}: ${e.value}`));
    into.append(line);
  } catch {
    // The emulator alone (no bot in this process) has no intents to show.
  }
}

function renderTraffic(entry) {
  const li = el("li", `traffic ${entry.kind}`);
  const details = el("details");
  const summary = el("summary");
  const arrow = entry.kind === "webhook" ? "→ bot" : "← bot";
  summary.append(el("span", "arrow", arrow));
  const label = entry.kind === "webhook" ? `webhook ${entry.body?.type ?? ""}` : `${entry.method} ${entry.path}`;
  summary.append(el("span", "label", label));
  summary.append(el("span", statusClass(entry.status), entry.status ?? "no answer"));
  details.append(summary);
  details.append(el("pre", "json", JSON.stringify(entry.body, null, 2)));
  if (entry.detail) details.append(el("pre", "detail", entry.detail));
  li.append(details);
  const text = entry.kind === "webhook" ? entry.body?.payload?.message?.text : null;
  if (text) renderIntents(text, li);
  return li;
}

export class Inspector {
  constructor(list) {
    this.list = list;
    this.items = new Map();
  }

  clear() {
    this.list.replaceChildren();
    this.items.clear();
  }

  addExchange(exchange) {
    if (this.items.has(exchange.id)) {
      for (const entry of exchange.traffic || []) this.addTraffic(entry);
      return;
    }
    const li = el("li", "exchange");
    li.dataset.id = exchange.id;
    li.append(el("div", "exchange-title", exchange.title));
    const traffic = el("ol", "traffic-list");
    li.append(traffic);
    this.items.set(exchange.id, traffic);
    for (const entry of exchange.traffic || []) this.addTraffic(entry);
    // Newest first, whichever source (history or live) delivered it first.
    const older = [...this.list.children].find((item) => Number(item.dataset.id) < exchange.id);
    this.list.insertBefore(li, older ?? null);
  }

  // A webhook is listed when sent and replaced when its answer arrives.
  addTraffic(entry) {
    const traffic = this.items.get(entry.exchange_id);
    if (!traffic) return;
    const item = renderTraffic(entry);
    item.dataset.id = entry.id;
    const existing = traffic.querySelector(`[data-id="${entry.id}"]`);
    if (existing) existing.replaceWith(item);
    else traffic.append(item);
  }
}
