// The keys page: make an Ed25519 key pair in this browser, keep it in IndexedDB, and register its
// public key with a key-proof signed by the key itself (POST keys/challenge, then POST keys).

import { postJson } from "./api.js";
import { hex, signStatement } from "./envelope.js";
import { allKeys, deleteKey, putKey } from "./keystore.js";

const KEY_PROOF_TYPE = "application/vnd.zos.key-proof.v1+json";
const status = document.getElementById("key-status");

function say(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// Mark the listed keys whose private half is in this browser.
async function markLocalKeys() {
  const local = new Set((await allKeys()).map((entry) => entry.publicKey));
  for (const cell of document.querySelectorAll("[data-public-key]")) {
    if (local.has(cell.dataset.publicKey)) cell.querySelector(".where").textContent = "this browser";
  }
}

export async function createBrowserKey(name) {
  // extractable: false: the private key can sign but can never be read out, not even by us.
  const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey("raw", keyPair.publicKey));
  const publicKey = hex(publicRaw);
  await putKey({ publicKey, name, keyPair, created: Date.now() });
  try {
    const challenge = await postJson("/api/v1/keys/challenge");
    const proof = await signStatement(keyPair, publicRaw, KEY_PROOF_TYPE, {
      user: challenge.user,
      public_key: publicKey,
      challenge: challenge.challenge,
      issued_at: Math.floor(Date.now() / 1000),
    });
    return await postJson("/api/v1/keys", { name, public_key: publicKey, proof });
  } catch (error) {
    await deleteKey(publicKey); // not registered: keep no orphan key
    throw error;
  }
}

const form = document.getElementById("new-key");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  say("Making the key and registering it…");
  try {
    const key = await createBrowserKey(form.elements.name.value.trim());
    say(`Key “${key.name}” is registered.`);
    window.location.reload();
  } catch (error) {
    say(`The key was not registered: ${error.message}`, true);
    button.disabled = false;
  }
});

if (!window.isSecureContext || !crypto.subtle) {
  say("This browser cannot make keys here: open the site over HTTPS (or on 127.0.0.1).", true);
  form.querySelector("button").disabled = true;
} else {
  // The button stays disabled until this module runs: before that a click would post the form
  // to the page instead of making a key (the name silently lost).
  form.querySelector("button").disabled = false;
  markLocalKeys().catch((error) => say(`Could not read this browser's keys: ${error.message}`, true));
}
