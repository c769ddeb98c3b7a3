// The multiturn web app: conversations, a streaming chat on the gateway's own Responses API,
// the conversation tree (branches, fork, undo, retry, edit and resend) and the context
// inspector (inspector.js). No build step, no dependency: modern JS modules served as they are.

import { ApiError, apiKey, call, events, setApiKey } from "./api.js";
import { branch, index, leafCount, newestLeaf, siblings } from "./tree.js";
import { closeInspector, openInspector } from "./inspector.js";
import { formatCost, h } from "./dom.js";

const $ = (id) => document.getElementById(id);

const state = {
  conversationId: null,
  data: null, // TreeObject
  tree: null, // index(data.items)
  busy: false,
  inspected: null,
  turns: 0, // turns this page has run to their end (body[data-turns], for tests and scripts)
};

function turnEnded() {
  state.turns += 1;
  document.body.dataset.turns = String(state.turns);
}

// -- status ------------------------------------------------------------------------------------

function status(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

function fail(err) {
  if (err instanceof ApiError && err.status === 401) {
    status("The gateway needs an API key.", true);
    askKey();
  } else {
    status(String(err.message || err), true);
  }
}

function askKey() {
  const dialog = $("key-dialog");
  $("key-input").value = apiKey();
  if (!dialog.open) dialog.showModal();
}

// -- conversations -----------------------------------------------------------------------------

let searchTimer = null;

async function loadConversations() {
  const q = $("search").value.trim();
  const found = await call("GET", `/v1/inspector/conversations?limit=100${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  const list = $("conversations");
  list.replaceChildren(
    ...found.data.map((c) =>
      h(
        "li",
        {
          dataset: { id: c.id },
          class: c.id === state.conversationId ? "current" : undefined,
          onclick: () => openConversation(c.id).catch(fail),
        },
        h("span", { class: "title", text: c.preview || c.id }),
        c.matched ? h("span", { class: "matched", text: c.matched }) : null,
      ),
    ),
  );
  if (!found.data.length) list.append(h("li", { class: "muted", text: q ? "No match." : "No conversations yet." }));
}

async function openConversation(id) {
  state.conversationId = id;
  closeInspector();
  state.inspected = null;
  await refresh();
  for (const li of $("conversations").children) li.classList.toggle("current", li.dataset.id === id);
}

async function refresh() {
  if (!state.conversationId) {
    state.data = null;
    state.tree = null;
    render();
    return;
  }
  state.data = await call("GET", `/v1/inspector/conversations/${state.conversationId}`);
  state.tree = index(state.data.items);
  render();
}

function newConversation() {
  state.conversationId = null;
  state.data = null;
  state.tree = null;
  closeInspector();
  render();
  for (const li of $("conversations").children) li.classList.remove("current");
  $("input").focus();
}

// -- rendering ---------------------------------------------------------------------------------

function render() {
  const data = state.data;
  $("title").textContent = data ? data.title || data.id : "New conversation";
  $("undo").disabled = !data || !data.head_item_id;
  const path = data ? branch(state.tree, data.head_item_id) : [];
  const leaves = data ? leafCount(state.tree) : 0;
  $("branches").textContent = leaves > 1 ? `${leaves} branches` : "";
  $("messages").replaceChildren(...path.map(messageView));
  renderTree(path);
  const last = $("messages").lastElementChild;
  if (last) last.scrollIntoView({ block: "end" });
}

function renderTree(path) {
  const box = $("tree");
  if (!state.data) {
    box.replaceChildren();
    return;
  }
  const onBranch = new Set(path.map((item) => item.id));
  const node = (item) => {
    const kids = state.tree.children.get(item.id) || [];
    const label = `${item.role[0].toUpperCase()}: ${item.text.slice(0, 60) || (item.tool_calls.length ? "[tool call]" : "…")}`;
    const classes = [onBranch.has(item.id) ? "on-branch" : "", item.id === state.data.head_item_id ? "head" : ""];
    return h(
      "li",
      { dataset: { id: item.id } },
      h("span", {
        class: classes.join(" ").trim() || undefined,
        title: "Switch to this branch",
        text: label,
        onclick: () => switchTo(item.id).catch(fail),
      }),
      kids.length ? h("ul", {}, kids.map(node)) : null,
    );
  };
  box.replaceChildren(h("ul", {}, (state.tree.children.get("") || []).map(node)));
}

function usageLine(item) {
  const u = item.usage;
  if (!u) return null;
  const parts = [
    h("span", { class: "tokens", text: `prompt ${u.prompt_tokens}` }),
    h("span", { class: "cached", text: `cached ${u.cached_tokens}` }),
    h("span", { class: "completion", text: `completion ${u.completion_tokens}` }),
  ];
  const cost = formatCost(u.cost);
  if (cost) parts.push(h("span", { class: "cost", text: `cost ${cost}` }));
  if (item.policy) parts.push(h("span", { class: "policy", text: `policy ${item.policy}` }));
  return parts;
}

function switcher(item) {
  const { all, at } = siblings(state.tree, item);
  if (all.length < 2) return null;
  const go = (to) => () => switchTo(all[to].id).catch(fail);
  return h(
    "span",
    { class: "switcher" },
    h("button", { type: "button", class: "prev-branch", disabled: at === 0, onclick: go(at - 1), text: "‹" }),
    h("span", { class: "branch-position", text: `${at + 1}/${all.length}` }),
    h("button", { type: "button", class: "next-branch", disabled: at === all.length - 1, onclick: go(at + 1), text: "›" }),
  );
}

function messageView(item) {
  const li = h("li", {
    class: `message${state.inspected === item.id ? " inspected" : ""}`,
    dataset: { id: item.id, role: item.role, status: item.status },
  });
  if (item.reasoning) {
    li.append(h("details", { class: "reasoning" }, h("summary", { text: "Reasoning" }), h("div", { class: "reasoning-text", text: item.reasoning })));
  }
  const calls = item.tool_calls.map((c) => `[called ${c.name}(${c.arguments})]`).join(" ");
  li.append(h("div", { class: "text", text: [item.text, calls].filter(Boolean).join(" ") }));
  li.append(h("div", { class: "meta" }, switcher(item), usageLine(item)));
  const actions = h("div", { class: "actions" });
  if (item.role === "user") {
    actions.append(
      h("button", { type: "button", class: "edit", onclick: () => editView(li, item), text: "Edit" }),
      h("button", { type: "button", class: "retry", onclick: () => retry(item).catch(fail), text: "Answer again" }),
    );
  }
  if (item.role === "assistant") {
    actions.append(
      h("button", { type: "button", class: "retry", onclick: () => retry(item).catch(fail), text: "Retry" }),
      h("button", { type: "button", class: "inspect", onclick: () => inspect(item), text: "Inspect" }),
    );
  }
  actions.append(
    h("button", { type: "button", class: "branch-here", onclick: () => branchHere(item).catch(fail), text: "Continue from here" }),
    h("button", { type: "button", class: "fork", onclick: () => fork(item).catch(fail), text: "Fork" }),
  );
  li.append(actions);
  return li;
}

function editView(li, item) {
  const area = h("textarea", { rows: 3, class: "edit-text" });
  area.value = item.text;
  const form = h(
    "form",
    {
      class: "edit-form",
      onsubmit: (event) => {
        event.preventDefault();
        editAndResend(item, area.value).catch(fail);
      },
    },
    area,
    h("button", { type: "submit", class: "resend", text: "Send as a new branch" }),
    h("button", { type: "button", onclick: () => render(), text: "Cancel" }),
  );
  li.querySelector(".text").replaceWith(form);
  area.focus();
}

// -- actions -----------------------------------------------------------------------------------

function options() {
  const out = { model: $("model").value };
  const policy = $("policy").value;
  const max = parseInt($("max-tokens").value, 10);
  if (policy) out.context_policy = policy;
  if (max > 0) out.max_output_tokens = max;
  return out;
}

function setBusy(busy) {
  state.busy = busy;
  $("send").disabled = busy;
  for (const button of document.querySelectorAll("#messages button, #undo")) button.disabled = busy;
}

/** Stream a turn's Responses events into a new answer bubble; returns when it has ended. */
async function streamInto(path, body, userText) {
  if (userText !== undefined) {
    $("messages").append(h("li", { class: "message pending", dataset: { role: "user" } }, h("div", { class: "text", text: userText })));
  }
  const text = h("div", { class: "text" });
  const reasoning = h("div", { class: "reasoning-text" });
  const details = h("details", { class: "reasoning", hidden: true }, h("summary", { text: "Reasoning" }), reasoning);
  const bubble = h("li", { class: "message streaming", dataset: { role: "assistant", status: "in_progress" } }, details, text);
  $("messages").append(bubble);
  bubble.scrollIntoView({ block: "end" });
  for await (const { event, data } of events(path, body)) {
    if (event === "response.output_text.delta") {
      text.textContent += data.delta;
    } else if (event === "response.reasoning_text.delta") {
      details.hidden = false;
      reasoning.textContent += data.delta;
    } else if (event === "response.created" && data.response?.conversation?.id) {
      state.conversationId = data.response.conversation.id;
    } else if (event === "error") {
      throw new Error(data.message || "the answer failed");
    } else if (event === "response.completed" || event === "response.incomplete") {
      bubble.dataset.status = data.response.status;
    }
  }
}

async function send(text) {
  if (!text.trim() || state.busy) return;
  setBusy(true);
  status("answering…");
  try {
    if (!state.conversationId) {
      const made = await call("POST", "/v1/conversations", {});
      state.conversationId = made.id;
    }
    $("input").value = "";
    await streamInto("/v1/responses", { ...options(), input: text, conversation: state.conversationId, stream: true }, text);
    status("");
  } finally {
    setBusy(false);
    await refresh().catch(fail);
    await loadConversations().catch(fail);
    turnEnded();
  }
}

async function editAndResend(item, text) {
  await call("POST", `/v1/inspector/conversations/${state.conversationId}/head`, { item_id: item.parent_id });
  await send(text);
}

async function retry(item) {
  if (state.busy) return;
  setBusy(true);
  status("answering again…");
  try {
    const body = { item_id: item.id, ...options() };
    delete body.model;
    if ($("model").value) body.model = $("model").value;
    // the answer starts a new branch at the user message: show the branch up to it
    const path = branch(state.tree, item.role === "user" ? item.id : item.parent_id);
    $("messages").replaceChildren(...path.map(messageView));
    await streamInto(`/v1/inspector/conversations/${state.conversationId}/retry`, body);
    status("");
  } finally {
    setBusy(false);
    await refresh().catch(fail);
    turnEnded();
  }
}

async function switchTo(itemId) {
  const leaf = newestLeaf(state.tree, itemId);
  await call("POST", `/v1/inspector/conversations/${state.conversationId}/head`, { item_id: leaf });
  await refresh();
}

async function branchHere(item) {
  await call("POST", `/v1/inspector/conversations/${state.conversationId}/head`, { item_id: item.id });
  await refresh();
  status("The next message continues from there (a new branch).");
  $("input").focus();
}

async function fork(item) {
  const made = await call("POST", `/v1/conversations/${state.conversationId}/fork`, { item_id: item.id });
  await loadConversations();
  await openConversation(made.id);
  status("Forked into a new conversation.");
}

async function undo() {
  await call("POST", `/v1/inspector/conversations/${state.conversationId}/undo`, {});
  await refresh();
}

function inspect(item) {
  state.inspected = item.id;
  for (const li of $("messages").children) li.classList.toggle("inspected", li.dataset.id === item.id);
  openInspector($("inspector"), state.conversationId, item.id, {
    onClose: () => {
      state.inspected = null;
      for (const li of $("messages").children) li.classList.remove("inspected");
    },
  }).catch(fail);
}

// -- start -------------------------------------------------------------------------------------

async function loadModels() {
  const models = await call("GET", "/v1/models");
  const select = $("model");
  select.replaceChildren(...models.data.map((m) => h("option", { value: m.id, text: m.id })));
}

function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send($("input").value).catch(fail);
  });
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      send($("input").value).catch(fail);
    }
  });
  $("new-conversation").addEventListener("click", newConversation);
  $("undo").addEventListener("click", () => undo().catch(fail));
  $("toggle-tree").addEventListener("click", () => {
    const box = $("tree");
    box.hidden = !box.hidden;
    $("toggle-tree").setAttribute("aria-expanded", String(!box.hidden));
  });
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadConversations().catch(fail), 250);
  });
  $("key-button").addEventListener("click", askKey);
  $("key-dialog").addEventListener("close", () => {
    if ($("key-dialog").returnValue === "save") {
      setApiKey($("key-input").value.trim());
      start().catch(fail);
    }
  });
}

async function start() {
  await loadModels();
  await loadConversations();
  const wanted = new URLSearchParams(location.search).get("conversation");
  if (wanted) await openConversation(wanted);
  else render();
  status("");
  document.body.dataset.ready = "true";
  document.body.dataset.turns = String(state.turns);
}

wire();
start().catch(fail);
