// catalog_core's local dashboard: plain JavaScript, no build step, nothing from elsewhere.
// Every read and write goes through the server's HTTP API with the key of this tab's session
// (sessionStorage, sent as x-api-key, never in a URL). Text from the catalog is only ever put
// in the page as text (textContent), never as HTML.
"use strict";

const API = document.body.dataset.api;
const LOCAL = API + "/local";
const KEY_NAME = "catalog_core.apiKey";
const PAGE_SIZE = 50;
const POLL_LIVE_MS = 1000; // while a generation on the page is PENDING or PROCESSING
const POLL_IDLE_MS = 3000; // the first page of the generations page, for new try-ons
const POLL_MAX_MS = 30000; // the longest wait between two reads after failures

const objectUrls = [];

// -- small helpers ----------------------------------------------------------------------------

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function key() {
  return sessionStorage.getItem(KEY_NAME);
}

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || `HTTP_${status}`;
    this.details = (body && body.details) || [];
    this.retryAfter = retryAfter || 0; // seconds, from Retry-After (429, 503)
  }
}

async function call(method, path, { body, headers, raw } = {}) {
  const given = key();
  if (!given) throw new ApiError(401, { code: "SIGNED_OUT", message: "signed out" });
  // no-store: the browser neither keeps nor reuses what the account's requests answer.
  const init = { method, headers: { "x-api-key": given, ...(headers || {}) }, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (key() !== given) {
    // Signed out, or in with another key, while this was on its way: its answer is not shown.
    throw new ApiError(401, { code: "SIGNED_OUT", message: "signed out" });
  }
  if (response.status === 401) {
    signOut("The server refused this key: " + (await errorText(response)));
    throw new ApiError(401, { code: "UNAUTHORIZED", message: "signed out" });
  }
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (_) {
      parsed = null;
    }
    throw new ApiError(response.status, parsed, Number(response.headers.get("Retry-After")) || 0);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${body.code}: ${body.message}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

function describe(error) {
  if (!(error instanceof ApiError)) return String(error);
  const details = error.details.map((d) => `${d.path}: ${d.message}`).join("; ");
  return `${error.code} (${error.status}): ${error.message}${details ? " — " + details : ""}`;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

const RELATIVE = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const UNITS = [
  ["year", 365 * 86400e3],
  ["month", 30 * 86400e3],
  ["day", 86400e3],
  ["hour", 3600e3],
  ["minute", 60e3],
  ["second", 1e3],
];

function relative(iso) {
  if (!iso) return "never";
  const delta = Date.parse(iso) - Date.now();
  for (const [unit, ms] of UNITS) {
    if (Math.abs(delta) >= ms || unit === "second") {
      return RELATIVE.format(Math.round(delta / ms), unit);
    }
  }
  return iso;
}

function time(iso) {
  return iso ? el("time", { datetime: iso, title: iso, text: relative(iso) }) : el("span", { text: "—" });
}

function message(text, kind) {
  return el("p", { class: kind || "note", role: kind === "error" ? "alert" : "status", text });
}

// -- images -----------------------------------------------------------------------------------

function placeholder(text) {
  return el("span", { class: "placeholder", text: text || "no image" });
}

// An image the browser loads itself (a URL image of a product, a result URL): a placeholder
// when it does not load.
function urlImage(url, alt, large) {
  const image = el("img", { src: url, alt, class: large ? "large" : "thumb" });
  image.addEventListener("error", () => image.replaceWith(placeholder("image did not load")));
  return image;
}

// An image only the key may read (an uploaded one): fetched with the key, shown from a blob URL.
function keyedImage(path, alt, large) {
  const holder = el("span", { class: "loading" }, placeholder("loading…"));
  call("GET", path, { raw: true })
    .then((response) => response.blob())
    .then((blob) => {
      const url = URL.createObjectURL(blob);
      objectUrls.push(url);
      const image = el("img", { src: url, alt, class: large ? "large" : "thumb" });
      image.addEventListener("error", () => image.replaceWith(placeholder("not an image")));
      holder.replaceWith(image);
    })
    .catch((error) => holder.replaceWith(placeholder("unavailable: " + describe(error))));
  return holder;
}

function productImage(product, image, large) {
  const alt = `image ${image.order} of ${product.externalId}`;
  if (image.sourceUrl.startsWith("upload://")) {
    const path = LOCAL + "/product-image" + query({ externalId: product.externalId, order: image.order });
    return keyedImage(path, alt, large);
  }
  return urlImage(image.sourceUrl, alt, large);
}

// -- views ------------------------------------------------------------------------------------

function productLink(id) {
  return el("a", { href: "#/product/" + encodeURIComponent(id), class: "product-link", text: id });
}

async function productsView(view, params, alive) {
  const prefix = params.get("prefix") || "";
  const trail = []; // the cursors of the pages before this one
  let cursor = null;
  let reading = 0; // the latest read: an earlier one's late answer is dropped

  const filter = el("input", { id: "prefix", placeholder: "id prefix", value: prefix });
  const open = el("input", { id: "open-id", placeholder: "open by id (one-shot ids too)" });
  const table = el("table", { id: "products" });
  const status = el("p", { id: "products-status", class: "note", role: "status" });
  const previous = el("button", { type: "button", id: "previous", disabled: true, text: "Previous page" });
  const next = el("button", { type: "button", id: "next", disabled: true, text: "Next page" });
  view.append(
    el("h2", { text: "Products" }),
    el(
      "div",
      { class: "tools" },
      el("form", { id: "filter", onsubmit: (event) => {
        event.preventDefault();
        location.hash = "#/products" + query({ prefix: filter.value });
      } }, filter, el("button", { type: "submit", text: "Filter" })),
      el("form", { id: "open", onsubmit: (event) => {
        event.preventDefault();
        if (open.value) location.hash = "#/product/" + encodeURIComponent(open.value);
      } }, open, el("button", { type: "submit", text: "Open" })),
    ),
    table,
    el("div", { class: "pager" }, previous, status, next),
  );

  async function load(at, before) {
    const mine = ++reading;
    previous.disabled = next.disabled = true;
    status.className = "note";
    status.textContent = "Loading…";
    let page;
    try {
      page = await call("GET", LOCAL + "/products" + query({ limit: PAGE_SIZE, cursor: at, prefix }));
    } catch (error) {
      if (!alive() || mine !== reading) return;
      status.className = "error";
      status.textContent = describe(error);
      previous.disabled = trail.length === 0;
      next.disabled = false; // try again
      next.onclick = () => load(at, before);
      return;
    }
    if (!alive() || mine !== reading) return;
    if (before !== undefined) trail.push(before);
    cursor = at;
    table.replaceChildren(
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...["Images", "externalId", "Title", "validForDays", "Expires", "Last used", "Version"].map(
            (name) => el("th", { text: name }),
          ),
        ),
      ),
      el(
        "tbody",
        {},
        ...page.items.map((product) =>
          el(
            "tr",
            { "data-id": product.externalId },
            el("td", {}, el("div", { class: "thumbs" }, ...(product.images.length
              ? product.images.slice(0, 4).map((image) => productImage(product, image, false))
              : [placeholder()]))),
            el("td", {}, productLink(product.externalId)),
            el("td", { text: product.title ?? "" }),
            el("td", { text: product.validForDays ?? "forever" }),
            el("td", {}, product.expiresAt ? time(product.expiresAt) : "never"),
            el("td", {}, time(product.lastUsedAt)),
            el("td", { class: "version", text: String(product.version) }),
          ),
        ),
      ),
    );
    const first = trail.length * PAGE_SIZE + 1;
    status.textContent = page.count
      ? `Products ${first}–${first + page.count - 1}${page.hasMore ? "" : " (the last page)"}`
      : prefix ? `No product id starts with "${prefix}".` : "No products yet.";
    previous.disabled = trail.length === 0;
    next.disabled = !page.hasMore;
    next.onclick = () => load(page.nextCursor, cursor);
  }
  previous.onclick = () => load(trail.pop() ?? null);
  await load(null);
}

function field(name, value) {
  return [el("dt", { text: name }), el("dd", { "data-field": name }, value)];
}

async function productView(view, id, alive) {
  view.append(el("h2", {}, "Product ", el("code", { text: id })));
  if (id === "." || id === "..") {
    // A browser takes /products/. and /products/.. (and their %2E forms) for dot segments.
    view.append(message(
      `A browser cannot name the id "${id}" in a URL path, so this page cannot read it: use ` +
        "a client that keeps %2E as it is (curl, httpx), as docs/server.md says.",
      "error",
    ));
    return;
  }
  let response;
  let product;
  try {
    response = await call("GET", API + "/products/" + encodeURIComponent(id), { raw: true });
    product = await response.json();
  } catch (error) {
    if (alive()) view.append(message(describe(error), "error"));
    return;
  }
  if (!alive()) return;
  const version = (response.headers.get("ETag") || "").replaceAll('"', "");
  const outcome = el("p", { id: "delete-outcome", role: "status" });
  view.append(
    el(
      "dl",
      { id: "product-fields" },
      ...field("externalId", product.externalId),
      ...field("version", version),
      ...field("title", product.title ?? "null"),
      ...field("description", product.description ?? "null"),
      ...field("validForDays", String(product.validForDays ?? "null")),
      ...field("expiresAt", product.expiresAt ? el("span", {}, product.expiresAt, " (", time(product.expiresAt), ")") : "null"),
      ...field("lastUsedAt", product.lastUsedAt ? el("span", {}, product.lastUsedAt, " (", time(product.lastUsedAt), ")") : "null"),
      ...field("createdAt", product.createdAt),
      ...field("updatedAt", product.updatedAt),
      ...field("metadata", el("pre", { id: "metadata", text: JSON.stringify(product.metadata, null, 2) })),
    ),
    el("h3", { text: "Images" }),
    el(
      "div",
      { id: "product-images", class: "gallery" },
      ...product.images.map((image) =>
        el(
          "figure",
          {},
          productImage(product, image, true),
          el(
            "figcaption",
            {},
            el("span", { text: `order ${image.order}: ` }),
            el("code", { text: image.sourceUrl }),
            image.classifications
              ? el("pre", { class: "classifications", text: JSON.stringify(image.classifications, null, 2) })
              : null,
          ),
        ),
      ),
    ),
    el(
      "form",
      { id: "delete", onsubmit: async (event) => {
        event.preventDefault();
        outcome.className = "note";
        outcome.textContent = "Deleting…";
        try {
          await call("DELETE", API + "/products/" + encodeURIComponent(id), { headers: { "If-Match": `"${version}"` } });
          outcome.textContent = `Deleted ${id}.`;
          event.target.querySelector("button").disabled = true;
        } catch (error) {
          outcome.className = "error";
          outcome.textContent = error.status === 412
            ? `Not deleted (412 ${error.code}): the product changed since this page loaded it at version ${version}; ` +
              "someone wrote it since. Reload the page to see its current version, then delete again. " +
              `(${error.message})`
            : describe(error);
        }
      } },
      el("button", { type: "submit", id: "delete-button", text: `Delete (If-Match version ${version})` }),
    ),
    outcome,
    el("h3", { text: "Generations of this product" }),
  );
  const list = el("div", { id: "product-generations" });
  view.append(list);
  // Read again only while one of them runs: a product's page is not a feed.
  await generationsList(list, { productExternalId: id }, alive, false);
}

function statusBadge(status) {
  return el("span", { class: "status " + status.toLowerCase(), "data-status": status, text: status });
}

function personImage(generation) {
  const person = generation.personImage;
  if (!person) return placeholder("erased");
  if (person.path) return keyedImage(person.path, "person image", false);
  return urlImage(person.sourceUrl, "person image", false);
}

function resultCell(generation) {
  if (generation.resultImageUrl) return urlImage(generation.resultImageUrl, "result image", false);
  if (generation.status === "FAILED") return placeholder("failed");
  return placeholder(generation.status === "COMPLETED" ? "no result kept" : "not yet");
}

function generationRow(generation) {
  return el(
    "tr",
    { "data-generation": generation.generationId },
    el("td", {}, el("code", { text: generation.generationId })),
    el("td", {}, statusBadge(generation.status)),
    el("td", {}, productLink(generation.productExternalId)),
    el("td", {}, personImage(generation)),
    el("td", {}, resultCell(generation)),
    el("td", { class: "error", title: generation.errorMessage, text: generation.errorCode ?? "" }),
    el("td", {}, time(generation.createdAt)),
    el("td", {}, time(generation.updatedAt)),
  );
}

const LIVE = new Set(["PENDING", "PROCESSING"]);

// A paged table of generations, newest first. A generation still PENDING or PROCESSING is read
// again every second until it ends; with ``follow``, the first page is also read again every few
// seconds, so new try-ons appear. A failed read is tried again later (after Retry-After, when the
// server gives one), and nothing is read while the tab is hidden.
async function generationsList(holder, filter, alive, follow) {
  const trail = [];
  let cursor = null;
  let timer = null;
  let reading = 0; // the latest read: an earlier one's late answer is dropped
  let failures = 0;
  const table = el("table", { class: "generations" });
  const status = el("p", { class: "note", role: "status" });
  const previous = el("button", { type: "button", disabled: true, text: "Previous page" });
  const next = el("button", { type: "button", disabled: true, text: "Next page" });
  holder.append(table, el("div", { class: "pager" }, previous, status, next));
  const shown = new Map();

  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!alive()) return;
      if (document.hidden) document.addEventListener("visibilitychange", refresh, { once: true });
      else refresh();
    }, ms);
  }

  async function refresh() {
    const mine = ++reading;
    const at = cursor;
    let page;
    try {
      page = await call("GET", LOCAL + "/generations" + query({ limit: PAGE_SIZE, cursor: at, ...filter }));
    } catch (error) {
      if (!alive() || mine !== reading) return;
      failures += 1;
      status.className = "error";
      status.textContent = describe(error) + " — trying again shortly.";
      const wait = Math.max(error.retryAfter * 1000, Math.min(POLL_MAX_MS, 1000 * 2 ** failures));
      later(wait);
      return;
    }
    if (!alive() || mine !== reading) return; // left, or another page was asked for since
    failures = 0;
    status.className = "note";
    const rows = page.items.map((generation) => {
      const before = shown.get(generation.generationId);
      if (before && before.status === generation.status && before.updatedAt === generation.updatedAt) {
        return before.row;
      }
      const row = generationRow(generation);
      shown.set(generation.generationId, { status: generation.status, updatedAt: generation.updatedAt, row });
      return row;
    });
    table.replaceChildren(
      el(
        "thead",
        {},
        el("tr", {}, ...["Generation", "Status", "Product", "Person", "Result", "Error", "Created", "Updated"].map(
          (name) => el("th", { text: name }),
        )),
      ),
      el("tbody", {}, ...rows),
    );
    status.textContent = page.count ? `${page.count} on this page` : "No generations yet.";
    previous.disabled = trail.length === 0;
    next.disabled = !page.hasMore;
    next.onclick = () => {
      trail.push(at);
      cursor = page.nextCursor;
      previous.disabled = next.disabled = true;
      refresh();
    };
    const live = page.items.some((generation) => LIVE.has(generation.status));
    clearTimeout(timer);
    if (live) later(POLL_LIVE_MS);
    else if (follow && at === null) later(POLL_IDLE_MS);
  }
  previous.onclick = () => {
    cursor = trail.pop() ?? null;
    previous.disabled = next.disabled = true;
    refresh();
  };
  await refresh();
}

async function generationsView(view, alive) {
  view.append(el("h2", { text: "Generations" }));
  const holder = el("div", { id: "generations" });
  view.append(holder);
  await generationsList(holder, {}, alive, true);
}

async function creditsView(view, alive) {
  const balance = el("strong", { id: "balance", text: "…" });
  const amount = el("input", { id: "amount", name: "amount", type: "number", step: "1", value: "10", required: true });
  const outcome = el("p", { id: "credits-outcome", role: "status" });
  view.append(
    el("h2", { text: "Credits" }),
    el("p", {}, "Balance: ", balance),
    el(
      "form",
      { id: "top-up", onsubmit: async (event) => {
        event.preventDefault();
        outcome.className = "note";
        try {
          const answer = await call("POST", LOCAL + "/credits", { body: { amount: Number(amount.value) } });
          balance.textContent = String(answer.creditBalance);
          outcome.textContent = `Added ${amount.value}: the balance is ${answer.creditBalance}.`;
        } catch (error) {
          outcome.className = "error";
          outcome.textContent = describe(error);
        }
      } },
      el("label", { for: "amount", text: "Top up (local only; negative takes credits away)" }),
      amount,
      el("button", { type: "submit", text: "Top up" }),
    ),
    outcome,
  );
  try {
    const answer = await call("GET", API + "/account/credits");
    if (alive()) balance.textContent = String(answer.creditBalance);
  } catch (error) {
    if (alive()) balance.textContent = describe(error);
  }
}

async function maintenanceView(view, alive) {
  const purged = el("p", { id: "purge-outcome", role: "status" });
  const customer = el("input", { id: "customer-id", name: "customer", placeholder: "customer id", required: true });
  const erased = el("p", { id: "erase-outcome", role: "status" });
  view.append(
    el("h2", { text: "Maintenance" }),
    el(
      "form",
      { id: "purge", onsubmit: async (event) => {
        event.preventDefault();
        try {
          await call("POST", LOCAL + "/purge");
          purged.className = "note";
          purged.textContent = "The purge ran: what had expired is deleted, in every account " +
            "(it was invisible already), with the images nothing names any more.";
        } catch (error) {
          purged.className = "error";
          purged.textContent = describe(error);
        }
      } },
      el("button", { type: "submit", text: "Run the purge" }),
    ),
    purged,
    el(
      "form",
      { id: "erase", onsubmit: async (event) => {
        event.preventDefault();
        try {
          await call("DELETE", API + "/customers/" + encodeURIComponent(customer.value));
          erased.className = "note";
          erased.textContent = `Erased customer ${customer.value}'s photos and results.`;
        } catch (error) {
          erased.className = "error";
          erased.textContent = describe(error);
        }
      } },
      customer,
      el("button", { type: "submit", text: "Erase this customer" }),
    ),
    erased,
  );
}

// -- routing and sign-in ----------------------------------------------------------------------

// Each visit of a view gets a number; a view's work that ends after another visit began (a late
// answer, a timer) finds it is no longer alive and touches nothing. Each visit also draws into
// a container of its own, which the next one replaces.
let visit = 0;

async function route() {
  const mine = ++visit;
  const alive = () => mine === visit && Boolean(key());
  while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
  const signedIn = Boolean(key());
  document.getElementById("welcome").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  const view = document.getElementById("view");
  view.hidden = !signedIn;
  const box = el("div", { class: "visit" });
  view.replaceChildren(box);
  if (!signedIn) return;
  const hash = location.hash.replace(/^#/, "") || "/products";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", hash.startsWith(link.getAttribute("href").slice(1)));
  }
  try {
    if (path.startsWith("/product/")) {
      let id;
      try {
        id = decodeURIComponent(path.slice("/product/".length));
      } catch (_) {
        box.append(message("This address names no product: its id is not percent-encoded UTF-8.", "error"));
        return;
      }
      await productView(box, id, alive);
    } else if (path === "/generations") {
      await generationsView(box, alive);
    } else if (path === "/credits") {
      await creditsView(box, alive);
    } else if (path === "/maintenance") {
      await maintenanceView(box, alive);
    } else {
      await productsView(box, params, alive);
    }
  } catch (error) {
    if (alive()) box.append(message(describe(error), "error"));
  }
}

function signOut(why) {
  sessionStorage.removeItem(KEY_NAME);
  document.getElementById("sign-in-error").textContent = why || "";
  route();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("key");
  const given = input.value.trim();
  const error = document.getElementById("sign-in-error");
  if (!given) return;
  let response;
  try {
    response = await fetch(API + "/account/credits", { headers: { "x-api-key": given }, cache: "no-store" });
  } catch (failure) {
    error.textContent = "The server could not be reached: " + failure;
    return;
  }
  if (response.status === 401) {
    error.textContent = "The server refused this key: " + (await errorText(response));
    return;
  }
  sessionStorage.setItem(KEY_NAME, given);
  input.value = "";
  error.textContent = "";
  if (!location.hash) location.hash = "#/products";
  else route();
}

document.getElementById("sign-in").addEventListener("submit", signIn);
document.getElementById("sign-out").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
route();
