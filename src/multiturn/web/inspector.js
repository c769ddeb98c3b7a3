// The context inspector: one answer's request as multiturn planned it (GET .../context) —
// every history item's fate, the budget by component, the cached prefix and, when the prompt
// departs from the previous turn's, where and why — and the what-if re-plan (POST .../whatif).

import { call } from "./api.js";
import { formatCost, h } from "./dom.js";

const PARTS = [
  ["system", "system"],
  ["summary", "summary"],
  ["recalled", "recalled"],
  ["history", "window"],
  ["input", "new input"],
  ["template", "template"],
];
const FATES = ["kept", "summarized", "recalled", "dropped"];
const POLICIES = ["full", "window", "summary", "retrieval", "auto"];
const CAUSES = {
  none: "prefix kept",
  model_change: "model change",
  summary_update: "summary update",
  recall_change: "recall change",
  system_edit: "system edit",
  window_drop: "window drop",
  history_rewritten: "history re-rendered",
  answer_rewritten: "answer re-rendered",
};

let current = null; // {root, onClose}

export function closeInspector() {
  if (!current) return;
  current.root.hidden = true;
  current.root.replaceChildren();
  const done = current.onClose;
  current = null;
  if (done) done();
}

export async function openInspector(root, conversationId, itemId, { onClose } = {}) {
  if (current && current.root === root) current.onClose = null;
  current = { root, onClose };
  root.hidden = false;
  root.replaceChildren(h("p", { class: "muted", text: "Loading the context…" }));
  let ctx;
  try {
    ctx = await call("GET", `/v1/inspector/conversations/${conversationId}/items/${itemId}/context`);
  } catch (err) {
    root.replaceChildren(
      h("button", { type: "button", class: "close", onclick: closeInspector, text: "Close" }),
      h("p", { class: "error inspect-error", text: String(err.message || err) }),
    );
    return;
  }
  const parts = [
    h("button", { type: "button", class: "close", onclick: closeInspector, text: "Close" }),
    h("h3", { text: "Context of this answer" }),
    overview(ctx),
    budgetView(ctx),
    cacheView(ctx),
    ctx.summary ? summaryView(ctx.summary) : null,
    whatIfView(ctx, conversationId, itemId),
    fatesView(ctx),
  ];
  root.replaceChildren(...parts.filter(Boolean));
  root.dataset.answer = itemId;
}

function overview(ctx) {
  const counts = FATES.map((fate) => h("span", { class: `count fate fate-${fate}`, dataset: { fate }, text: `${fate} ${ctx.counts[fate]}` }));
  return h(
    "div",
    { class: "overview" },
    h("p", {}, `policy `, h("strong", { class: "policy", text: ctx.policy }), ` · model ${ctx.model ?? "?"} · `, `budget ${ctx.budget ?? "none"} · planned ${ctx.tokens} tokens`, ctx.over_budget ? " · over budget" : ""),
    h("p", { class: "counts" }, ...counts.flatMap((c) => [c, " "])),
  );
}

function stack(parts, total, marker) {
  const bar = h("div", { class: "stack" });
  for (const [key, tokens] of parts) {
    if (!tokens) continue;
    bar.append(h("span", { class: `part-${key}`, title: `${key}: ${tokens}`, style: `width:${(100 * tokens) / total}%` }));
  }
  if (marker !== undefined && total > 0) bar.append(h("span", { class: "marker", style: `left:${Math.min(100, (100 * marker) / total)}%` }));
  return bar;
}

function budgetView(ctx) {
  const split = PARTS.map(([key]) => [key, ctx.tokens_by_part[key] || 0]);
  const total = Math.max(ctx.budget || 0, ctx.tokens, 1);
  return h(
    "section",
    { class: "budget" },
    h("h3", { text: "Budget by component" }),
    stack(split, total),
    h(
      "ul",
      { class: "legend" },
      PARTS.map(([key, label]) =>
        h("li", { dataset: { part: key } }, h("i", { class: `part-${key}` }), `${label} `, h("strong", { text: String(ctx.tokens_by_part[key] || 0) })),
      ),
      h("li", { class: "muted", text: ctx.budget ? `of ${ctx.budget}` : "no budget" }),
    ),
  );
}

function excerpt(text, at) {
  // the server's excerpts hold 60 characters either side of the difference (at `at`)
  const cut = at > 60 ? 61 : at;
  return h("pre", { class: "excerpt" }, text.slice(0, cut), h("mark", { text: text.slice(cut, cut + 1) || "⏎" }), text.slice(cut + 1));
}

function cacheView(ctx) {
  const section = h("section", { class: "cache" }, h("h3", { text: "Cached prefix" }));
  const usage = ctx.usage;
  if (usage) {
    const share = usage.prompt_tokens ? Math.round((100 * usage.cached_tokens) / usage.prompt_tokens) : 0;
    section.append(h("p", { class: "cached-line" }, `the backend reused `, h("strong", { class: "cached-tokens", text: String(usage.cached_tokens) }), ` of ${usage.prompt_tokens} prompt tokens (${share} %)`));
    const cost = formatCost(usage.cost);
    if (cost) section.append(h("p", { class: "cost-line", text: `cost ${cost} (input ${usage.cost.input.toFixed(6)}, cached ${usage.cost.cached_input.toFixed(6)}, output ${usage.cost.output.toFixed(6)})` }));
  }
  const diff = ctx.diff;
  if (!diff) {
    section.append(h("p", { class: "muted diff-none", text: "No earlier answer on this branch has a stored context report: there is no previous prompt to compare with." }));
    return section;
  }
  section.append(
    h("p", { class: "diff", dataset: { cause: diff.cause } }, h("span", { class: `cause ${diff.cause === "none" ? "none" : "break"}`, text: CAUSES[diff.cause] || diff.cause }), " ", h("span", { class: "explanation", text: diff.explanation })),
    h("p", { class: "muted", text: `Rendered with multiturn's ChatML: this prompt shares ${diff.common_tokens} token${diff.common_tokens === 1 ? "" : "s"} with the previous prompt and answer (${diff.previous_tokens} tokens); at best a prefix cache reuses that much.` }),
    stack(diff.segments.map((s) => [s.kind, s.tokens]), Math.max(diff.current_tokens, 1), diff.common_tokens),
  );
  if (diff.cause !== "none") {
    section.append(
      h("p", { class: "muted", text: `First difference: the previous rendering's ${diff.previous_segment ?? "end"} part against this one's ${diff.current_segment ?? "end"} part.` }),
      h("div", { class: "excerpts" }, h("div", { class: "muted", text: "previous turn" }), excerpt(diff.previous_excerpt, diff.common_chars), h("div", { class: "muted", text: "this turn" }), excerpt(diff.current_excerpt, diff.common_chars)),
    );
    if (diff.dropped_ids.length) {
      const at = new Map(ctx.items.map((item) => [item.id, item.position]));
      const where = diff.dropped_ids.map((id) => `#${at.get(id)}`);
      const shown = where.length > 8 ? [...where.slice(0, 8), "…"] : where;
      section.append(h("p", { class: "dropped-ids muted", text: `No longer sent verbatim since the previous turn: ${where.length} item${where.length === 1 ? "" : "s"} (${shown.join(", ")})` }));
    }
  }
  return section;
}

function summaryView(summary) {
  return h("section", { class: "summary" }, h("h3", { text: "Summary sent in place of the summarized items" }), h("div", { class: "summary-text", text: summary.text }));
}

function fatesView(ctx) {
  const rows = ctx.items.map((item) =>
    h(
      "tr",
      { dataset: { id: item.id, fate: item.fate, position: String(item.position) } },
      h("td", { text: `#${item.position}` }),
      h("td", { text: item.role }),
      h("td", { class: "text", title: item.text, text: item.text || (item.status === "failed" ? "[failed]" : "") }),
      h("td", {}, h("span", { class: `fate fate-${item.fate}`, text: item.fate })),
      h("td", { class: "score", text: item.score === null || item.score === undefined ? "" : item.score.toFixed(3) }),
      h("td", { class: "whatif-fate" }),
      h("td", { class: "why", text: item.why || "" }),
    ),
  );
  return h(
    "section",
    { class: "fates-section" },
    h("h3", { text: `History: ${ctx.items.length} items` }),
    ctx.query_words.length ? h("p", { class: "muted", text: `Recall searched for: ${ctx.query_words.join(" ")}` }) : null,
    h("table", { class: "fates" }, h("thead", {}, h("tr", {}, ["#", "role", "text", "fate", "score", "what-if", "why"].map((t) => h("th", { text: t })))), h("tbody", {}, rows)),
  );
}

function whatIfView(ctx, conversationId, itemId) {
  const policy = h("select", { class: "whatif-policy", "aria-label": "What-if policy" }, POLICIES.map((p) => h("option", { value: p, text: p })));
  policy.value = POLICIES.includes(ctx.policy) ? ctx.policy : "window";
  const budget = h("input", { type: "number", min: "1", class: "whatif-budget", placeholder: "budget", "aria-label": "What-if budget" });
  const result = h("div", { class: "whatif-result" });
  const run = async (event) => {
    event.preventDefault();
    result.replaceChildren(h("p", { class: "muted", text: "Re-planning…" }));
    const body = { policy: policy.value };
    const n = parseInt(budget.value, 10);
    if (n > 0) body.budget = n;
    try {
      const plan = await call("POST", `/v1/inspector/conversations/${conversationId}/items/${itemId}/whatif`, body);
      showWhatIf(ctx, plan, result);
    } catch (err) {
      result.replaceChildren(h("p", { class: "error", text: String(err.message || err) }));
    }
  };
  return h(
    "section",
    { class: "whatif" },
    h("h3", { text: "What if: re-plan this turn (no model call)" }),
    h("form", { onsubmit: run }, h("label", {}, "policy ", policy), h("label", {}, "budget ", budget), h("button", { type: "submit", class: "replan", text: "Re-plan" })),
    result,
  );
}

function showWhatIf(ctx, plan, result) {
  const row = (label, was, now, cls) => h("tr", { class: cls }, h("th", { text: label }), h("td", { class: "was", text: was }), h("td", { text: "→" }), h("td", { class: "now", text: now }));
  const storedCost = formatCost(plan.stored_cost) ?? "no price";
  const planCost = formatCost(plan.cost) ?? "no price";
  result.replaceChildren(
    h("table", { class: "compare", dataset: { policy: plan.policy } },
      h("tr", {}, h("th"), h("th", { text: `stored (${ctx.policy})` }), h("th"), h("th", { text: `${plan.policy}${plan.budget ? ` @ ${plan.budget}` : ""}` })),
      row("tokens", String(plan.stored_tokens ?? ctx.tokens), String(plan.tokens), "row-tokens"),
      row("cached tokens", ctx.usage ? String(ctx.usage.cached_tokens) : "?", String(plan.cached_tokens), "row-cached"),
      row("cost", storedCost, planCost, "row-cost"),
      ...FATES.map((fate) => row(fate, String(ctx.counts[fate]), String(plan.counts[fate]), `row-${fate}`)),
    ),
    h("p", { class: "muted", text: "Cached tokens: the stored turn's as its backend reported them; the plan's simulated against the previous turn planned the same way." }),
    h("p", { class: "muted evidence", text: `Evidence the stored turn sent and this plan loses: ${plan.evidence_dropped.length}; gains: ${plan.evidence_gained.length}.` }),
  );
  const byId = new Map(plan.items.map((item) => [item.id, item]));
  for (const tr of document.querySelectorAll("#inspector table.fates tbody tr")) {
    const planned = byId.get(tr.dataset.id);
    const cell = tr.querySelector(".whatif-fate");
    cell.replaceChildren();
    if (!planned) continue;
    cell.append(h("span", { class: `fate fate-${planned.fate}`, text: planned.fate }));
    tr.dataset.whatif = planned.fate;
    tr.classList.toggle("changed", planned.fate !== tr.dataset.fate);
  }
}
