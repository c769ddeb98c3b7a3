// DOM and formatting helpers shared by the page's modules. User text only ever goes in as
// text nodes (never as HTML).

/** An element: h("li", {class: "x", dataset: {id}, onclick: f, text: "t"}, child, "text", ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SYMBOLS = { CNY: "¥", USD: "$" };

/** A cost object ({currency, total, ...}) as text, or null when there is none. */
export function formatCost(cost) {
  if (!cost) return null;
  const symbol = SYMBOLS[cost.currency] ?? `${cost.currency} `;
  return `${symbol}${cost.total.toFixed(6)}`;
}
