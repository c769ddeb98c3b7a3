// The conversation tree as the page sees it: pure functions over the items of
// GET /v1/inspector/conversations/{id} (every branch, oldest first).

/** Index items by id and by parent (children oldest first). */
export function index(items) {
  const byId = new Map();
  const children = new Map();
  for (const item of items) {
    byId.set(item.id, item);
    const key = item.parent_id ?? "";
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(item);
  }
  return { byId, children };
}

/** The items from the root down to `leafId` (empty for none). */
export function branch(tree, leafId) {
  const out = [];
  let at = leafId ? tree.byId.get(leafId) : undefined;
  while (at) {
    out.push(at);
    at = at.parent_id ? tree.byId.get(at.parent_id) : undefined;
  }
  return out.reverse();
}

/** The newest leaf under `itemId` (following the newest child at each step). */
export function newestLeaf(tree, itemId) {
  let at = tree.byId.get(itemId);
  while (at) {
    const kids = tree.children.get(at.id);
    if (!kids || kids.length === 0) return at.id;
    at = kids[kids.length - 1];
  }
  return itemId;
}

/** An item's siblings (its parent's children, itself included) and its place among them. */
export function siblings(tree, item) {
  const all = tree.children.get(item.parent_id ?? "") || [item];
  return { all, at: all.findIndex((x) => x.id === item.id) };
}

/** How many leaves (branches) the tree has. */
export function leafCount(tree) {
  let n = 0;
  for (const item of tree.byId.values()) if (!tree.children.has(item.id)) n += 1;
  return n;
}
