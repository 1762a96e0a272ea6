// One workload's page: Delete (confirmed in a dialog, then a generated delete script signed with
// a key of this browser, deployed to the workload's node and followed on its deployment's page)
// and, for a VM, Refresh console (a generated vm_info script, signed and deployed the same way;
// the page waits for it and shows the `console` of its result). The server generates both
// scripts (coordinator/workloads.py); the page signs exactly the text it shows.

import { untilFinal } from "./follow.js";
import { offerKeys, submitScript } from "./submit.js";

const section = document.getElementById("workload");
const target = { node: Number(section.dataset.node) };
const keySelect = document.getElementById("signing-key");
const status = document.getElementById("action-status");
const deleteButton = document.getElementById("delete");
const dialog = document.getElementById("delete-dialog");
const deleteScript = document.getElementById("delete-script");
const consoleBox = document.getElementById("console");
const consoleButton = document.getElementById("refresh-console");
const stateBox = document.getElementById("state");

function say(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function deploymentLink(deployment, text) {
  const link = document.createElement("a");
  link.href = `/deployments/${deployment.id}`;
  link.textContent = text;
  return link;
}

deleteButton.addEventListener("click", () => {
  dialog.returnValue = "";
  dialog.showModal();
});

// "Keep it", Escape and the dialog's own close all leave returnValue other than "delete".
dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "delete") {
    deleteButton.focus();
    return;
  }
  deleteButton.disabled = true;
  say("Signing and submitting the delete script…");
  try {
    const deployment = await submitScript({
      publicKey: keySelect.value, script: deleteScript.textContent, target,
      name: deleteScript.dataset.name,
    });
    say(`Deployment ${deployment.id} submitted.`);
    window.location.assign(`/deployments/${deployment.id}`);
  } catch (error) {
    deleteButton.disabled = false;
    deleteButton.focus();
    say(`Not deleted: ${error.message}`, true);
  }
});

async function refreshConsole() {
  consoleButton.disabled = true;
  say("Signing and submitting vm_info…");
  try {
    const submitted = await submitScript({
      publicKey: keySelect.value, script: consoleBox.dataset.script, target,
      name: consoleBox.dataset.name,
    });
    status.replaceChildren("Reading the console: ", deploymentLink(submitted, `deployment ${submitted.id}`), " is running…");
    const deployment = await untilFinal(submitted.id);
    const result = deployment.job && deployment.job.result;
    if (deployment.status !== "succeeded" || !result) {
      const why = (deployment.job && deployment.job.error) || deployment.status;
      status.replaceChildren(`The console could not be read (${why}); see `, deploymentLink(deployment, `deployment ${deployment.id}`), ".");
      status.classList.add("error");
      return;
    }
    consoleBox.textContent = result.console || "(the console is empty so far)";
    consoleBox.scrollTop = consoleBox.scrollHeight; // the newest lines, at the end, in view
    if (result.state) {
      stateBox.textContent = result.state;
      stateBox.className = `state state-${result.state}`;
    }
    say(`Console read at ${new Date().toLocaleTimeString()}.`);
  } catch (error) {
    say(`The console could not be read: ${error.message}`, true);
  } finally {
    consoleButton.disabled = !keySelect.value;
  }
}

// The actions sign, so they wait for this browser's keys; with none they stay disabled.
async function enableActions() {
  const count = await offerKeys(keySelect, document.getElementById("no-key"));
  deleteButton.disabled = count === 0;
  if (consoleButton) consoleButton.disabled = count === 0;
}

if (consoleButton) consoleButton.addEventListener("click", refreshConsole);
enableActions().catch((error) => say(`Could not read this browser's keys: ${error.message}`, true));
