// Drafts in the script editor: "Save draft" keeps the script under the deployment's name (a
// draft of that name is updated), "Open" loads one back, "Delete" removes it. All through
// /api/v1/drafts, so a draft is there in any browser the user signs in to.

import { getJson, postJson, sendJson } from "./api.js";

const editor = document.getElementById("script");
const nameField = document.getElementById("name");
const picker = document.getElementById("draft");
const openButton = document.getElementById("open-draft");
const deleteButton = document.getElementById("delete-draft");
const status = document.getElementById("draft-status");
let drafts = [];

function say(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function chosen() {
  return drafts.find((d) => String(d.id) === picker.value);
}

function showList(selectId) {
  const first = picker.options[0];
  picker.replaceChildren(first);
  for (const draft of drafts) {
    const option = document.createElement("option");
    option.value = String(draft.id);
    option.textContent = `${draft.name} (saved ${new Date(draft.updated).toLocaleString()})`;
    picker.append(option);
  }
  picker.value = selectId ? String(selectId) : "";
  updateButtons();
}

function updateButtons() {
  openButton.disabled = deleteButton.disabled = !chosen();
}

async function load(selectId) {
  const page = await getJson("/api/v1/drafts?limit=200");
  drafts = page.results;
  showList(selectId);
}

async function save() {
  const name = nameField.value.trim();
  const body = { name, script: editor.value };
  const existing = drafts.find((d) => d.name === name);
  try {
    const saved = existing
      ? await sendJson("PUT", `/api/v1/drafts/${existing.id}`, body)
      : await postJson("/api/v1/drafts", body);
    await load(saved.id);
    say(`Draft “${saved.name}” saved.`);
  } catch (error) {
    say(`Not saved: ${error.message}`, true);
  }
}

async function open() {
  const draft = chosen();
  if (!draft) return;
  try {
    const full = await getJson(`/api/v1/drafts/${draft.id}`);
    editor.value = full.script;
    nameField.value = full.name;
    editor.dispatchEvent(new Event("input"));
    say(`Draft “${full.name}” opened.`);
  } catch (error) {
    say(`Could not open it: ${error.message}`, true);
  }
}

async function remove() {
  const draft = chosen();
  if (!draft || !window.confirm(`Delete the draft “${draft.name}”?`)) return;
  try {
    await sendJson("DELETE", `/api/v1/drafts/${draft.id}`);
    await load();
    say(`Draft “${draft.name}” deleted.`);
  } catch (error) {
    say(`Not deleted: ${error.message}`, true);
  }
}

picker.addEventListener("change", updateButtons);
openButton.addEventListener("click", open);
deleteButton.addEventListener("click", remove);
document.getElementById("save-draft").addEventListener("click", save);
load().catch((error) => say(`Could not list your drafts: ${error.message}`, true));
