// A small renderer for our own OpenAPI document: no third-party script, works offline.
"use strict";
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
};
// Text with `code` spans, as the descriptions write it.
function inline(text) {
  const span = el("span");
  String(text || "").split("`").forEach((part, i) => span.append(i % 2 ? el("code", {}, part) : part));
  return span;
}
let schemas = {};
const refName = (ref) => ref.split("/").pop();
// A compact, JSON-like sketch of a schema, following references a few levels deep.
function sketch(schema, depth = 0) {
  if (!schema) return "any";
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return depth > 2 ? name : sketch(schemas[name], depth + 1);
  }
  for (const key of ["allOf", "oneOf", "anyOf"]) {
    if (schema[key]) return schema[key].map((s) => sketch(s, depth)).join(key === "allOf" ? " & " : " | ");
  }
  const type = Array.isArray(schema.type) ? schema.type.filter((t) => t !== "null").join("|") : schema.type;
  if (type === "array") return "[" + sketch(schema.items, depth) + "]";
  if (type === "object" || schema.properties) {
    const pad = "  ".repeat(depth + 1);
    const required = new Set(schema.required || []);
    const lines = Object.entries(schema.properties || {}).map(([name, s]) =>
      pad + name + (required.has(name) ? "" : "?") + ": " + sketch(s, depth + 1));
    return "{\n" + lines.join(",\n") + "\n" + "  ".repeat(depth) + "}";
  }
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  return type || "any";
}
function bodySchema(content) {
  const media = content && (content["application/json"] || Object.values(content)[0]);
  return media && media.schema;
}
function operation(path, method, op) {
  const summary = el("summary", {},
    el("span", { class: "method " + method }, method.toUpperCase()),
    el("code", { class: op.security ? "lock" : "" }, path),
    el("span", { class: "muted" }, inline(op.summary)));
  const details = el("details", { class: "op" }, summary);
  // utoipa repeats the summary (the doc comment's first line) at the start of the description.
  let more = (op.description || "").trim();
  if (op.summary && more.startsWith(op.summary.trim())) more = more.slice(op.summary.trim().length).trim();
  if (more) details.append(el("p", {}, inline(more)));
  if (op.parameters && op.parameters.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "")));
    for (const p of op.parameters) {
      table.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))),
        el("td", {}, p.in), el("td", { class: "muted" }, inline(p.description))));
    }
    details.append(el("div", { class: "scroll" }, table));
  }
  const request = op.requestBody && bodySchema(op.requestBody.content);
  if (request) details.append(el("p", {}, "Request body:"), el("pre", {}, sketch(request)));
  for (const [status, response] of Object.entries(op.responses || {})) {
    const schema = bodySchema(response.content);
    details.append(el("p", {}, el("b", {}, status), " ", inline(response.description)));
    if (schema && !(schema.$ref && refName(schema.$ref) === "ErrorBody")) details.append(el("pre", {}, sketch(schema)));
  }
  return details;
}
fetch("openapi.json").then((r) => r.json()).then((doc) => {
  schemas = (doc.components && doc.components.schemas) || {};
  const root = document.getElementById("doc");
  root.textContent = "";
  root.append(el("p", {}, inline(doc.info.description)), el("p", { class: "muted" }, "Version " + doc.info.version));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op));
    }
  }
  for (const [tag, ops] of byTag) root.append(el("h2", {}, tag), ...ops);
}).catch((e) => { document.getElementById("doc").textContent = "Could not load openapi.json: " + e; });
