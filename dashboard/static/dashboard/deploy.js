// The script editor: examples, the function catalog, *Check* (POST scripts/validate, the error
// marked at its line and column) and *Deploy*: the envelope `zos deploy` makes, signed here with a
// key of this browser, POSTed to /api/v1/deployments; then the deployment's page.

import { getJson, postJson } from "./api.js";
import { offerKeys, submitScript } from "./submit.js";

const form = document.getElementById("deploy-form");
const editor = document.getElementById("script");
const gutter = document.getElementById("gutter");
const checkStatus = document.getElementById("check-status");
const deployStatus = document.getElementById("deploy-status");
const examples = JSON.parse(document.getElementById("examples").textContent);
let errorLine = 0;

function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

function drawGutter() {
  const count = editor.value.split("\n").length;
  gutter.replaceChildren();
  for (let n = 1; n <= count; n++) {
    const line = document.createElement("span");
    line.textContent = String(n);
    line.className = n === errorLine ? "error-line" : "";
    gutter.append(line, "\n");
  }
  gutter.scrollTop = editor.scrollTop;
}

function clearMark() {
  errorLine = 0;
  editor.removeAttribute("aria-invalid");
  delete editor.dataset.errorLine;
  delete editor.dataset.errorColumn;
  drawGutter();
}

// Select from the error's column (1-based, as the compiler counts) to the end of its line.
export function markError(line, column) {
  const lines = editor.value.split("\n");
  const row = Math.min(Math.max(line, 1), lines.length);
  let start = 0;
  for (let i = 0; i < row - 1; i++) start += lines[i].length + 1;
  const col = Math.min(Math.max(column || 1, 1), lines[row - 1].length + 1);
  const end = start + lines[row - 1].length;
  errorLine = row;
  editor.setAttribute("aria-invalid", "true");
  editor.dataset.errorLine = String(row);
  editor.dataset.errorColumn = String(col);
  editor.focus();
  editor.setSelectionRange(start + col - 1, Math.max(end, start + col));
  // Bring the line into view: its share of the text's height.
  editor.scrollTop = Math.max(0, (editor.scrollHeight * (row - 3)) / lines.length);
  drawGutter();
}

function showScriptError(error, element) {
  const body = error.body || {};
  if (body.line) {
    const where = `line ${body.line}, column ${body.column || 1}`;
    const text = error.message.startsWith(where) ? error.message : `${where}: ${error.message}`;
    say(element, text, true);
    markError(body.line, body.column);
  } else {
    say(element, error.message, true);
  }
}

async function check() {
  clearMark();
  say(checkStatus, "Checking…");
  try {
    const answer = await postJson("/api/v1/scripts/validate", { script: editor.value });
    const calls = answer.functions.length ? ` It calls ${answer.functions.join(", ")}.` : "";
    say(checkStatus, `No errors.${calls}`);
    return true;
  } catch (error) {
    showScriptError(error, checkStatus);
    return false;
  }
}

function insertAtCursor(text) {
  const start = editor.selectionStart;
  editor.setRangeText(text, start, editor.selectionEnd, "end");
  editor.focus();
  clearMark();
}

async function loadCatalog() {
  const box = document.getElementById("catalog");
  try {
    const { functions } = await getJson("/api/v1/catalog");
    box.replaceChildren(
      ...functions.map((fn) => {
        const item = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = fn.signature;
        const doc = document.createElement("p");
        doc.textContent = fn.doc;
        const example = document.createElement("pre");
        example.textContent = fn.example;
        const insert = document.createElement("button");
        insert.type = "button";
        insert.className = "secondary-button";
        insert.textContent = "Insert example";
        insert.setAttribute("aria-label", `Insert the example of ${fn.name}`);
        insert.addEventListener("click", () => insertAtCursor(fn.example + "\n"));
        item.append(summary, doc, example, insert);
        return item;
      }),
    );
  } catch (error) {
    say(box, `The catalog could not be loaded: ${error.message}`, true);
  }
}

async function loadNodes() {
  const select = document.getElementById("node");
  try {
    const { results } = await getJson("/api/v1/nodes?limit=100");
    const nodes = results.filter((n) => n.status !== "decommissioned" && n.status !== "pending");
    nodes.sort((a, b) => (a.status === "online" ? 0 : 1) - (b.status === "online" ? 0 : 1) || a.id - b.id);
    select.replaceChildren(
      ...nodes.map((n) => new Option(`node ${n.id} · farm ${n.farm} · ${n.status}`, String(n.id))),
    );
    if (!nodes.length) select.append(new Option("no node is registered yet", ""));
  } catch (error) {
    select.replaceChildren(new Option(`nodes unavailable: ${error.message}`, ""));
  }
}

function target() {
  if (form.elements.target_kind.value === "farm") {
    const farm = Number(form.elements.farm.value);
    if (!Number.isSafeInteger(farm) || farm < 1) throw new Error("enter the farm's id (a number)");
    return { farm };
  }
  const node = Number(form.elements.node.value);
  if (!form.elements.node.value || !Number.isSafeInteger(node)) throw new Error("choose a node");
  return { node };
}

const GIB = 2 ** 30;

// The capacity asked for, as the payload counts it: cores, and bytes for the rest.
function resources() {
  const out = {};
  for (const [key, unit] of [["cru", 1], ["mru", GIB], ["sru", GIB], ["hru", GIB]]) {
    const text = form.elements[key].value.trim();
    if (!text) continue;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${key}: a whole number ≥ 0`);
    if (value) out[key] = value * unit;
  }
  return out;
}

async function deploy(event) {
  event.preventDefault();
  const button = document.getElementById("deploy");
  const name = form.elements.name.value.trim();
  try {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
      throw new Error("the name must be 1–63 lowercase letters, digits or “-”");
    }
    const chosen = target();
    resources(); // refuse a bad number before signing
    button.disabled = true;
    say(deployStatus, "Signing and submitting…");
    const deployment = await submitScript({
      publicKey: form.elements.key.value, script: editor.value, target: chosen, name,
      resources: resources(),
    });
    say(deployStatus, `Deployment ${deployment.id} submitted.`);
    window.location.assign(`/deployments/${deployment.id}`);
  } catch (error) {
    button.disabled = false;
    if (error.body && error.body.line) showScriptError(error, deployStatus);
    else say(deployStatus, `Not deployed: ${error.message}`, true);
  }
}

const exampleChoice = document.getElementById("example");

function startFrom(chosen) {
  editor.value = chosen.text;
  form.elements.name.value = chosen.name.toLowerCase().replace(/[^a-z0-9-]+/g, "-").slice(0, 63);
  clearMark();
}

exampleChoice.addEventListener("change", () => {
  const chosen = examples.find((e) => e.name === exampleChoice.value);
  if (chosen) startFrom(chosen);
});
document.getElementById("target-kind").addEventListener("change", (event) => {
  const farm = event.target.value === "farm";
  document.getElementById("farm-field").hidden = !farm;
  document.getElementById("node-field").hidden = farm;
});
document.getElementById("check").addEventListener("click", check);
editor.addEventListener("input", () => { if (errorLine) clearMark(); else drawGutter(); });
editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
form.addEventListener("submit", deploy);

// An example picked before this module ran (its change event found no listener) is the one
// to start from; otherwise an empty editor starts from the first.
const pickedEarly = examples.find((e) => e.name === exampleChoice.value);
if (pickedEarly) {
  startFrom(pickedEarly);
} else if (examples.length && !editor.value) {
  editor.value = examples[0].text;
  exampleChoice.value = examples[0].name;
}
document.getElementById("deploy").disabled = false;
drawGutter();
loadCatalog();
loadNodes();
offerKeys(document.getElementById("signing-key"), document.getElementById("no-key")).catch((error) => say(deployStatus, `Could not read this browser's keys: ${error.message}`, true));
