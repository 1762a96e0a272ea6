// Sign a script with a key of this browser and submit it as a deployment: the one place the
// pages do it (the editor, a workload's Delete and Refresh console). The envelope is the one
// `zos deploy` makes (envelope.js); the private key stays a non-extractable CryptoKey.

import { getJson, postJson } from "./api.js";
import { deploymentPayload, signDeployment } from "./envelope.js";
import { allKeys, getKey } from "./keystore.js";

// The keys of this browser that are registered to this user and not revoked: [{publicKey, name}].
export async function usableKeys() {
  const local = await allKeys();
  const { results } = await getJson("/api/v1/keys?limit=100");
  const active = new Map(results.filter((k) => !k.revoked).map((k) => [k.public_key, k]));
  return local
    .filter((entry) => active.has(entry.publicKey))
    .map((entry) => ({ publicKey: entry.publicKey, name: active.get(entry.publicKey).name }));
}

// Fill a <select> with the usable keys; show `noKey` (a hint to make one) when there are none.
export async function offerKeys(select, noKey) {
  const usable = await usableKeys();
  select.replaceChildren(
    ...usable.map((k) => new Option(`${k.name} (${k.publicKey.slice(0, 12)}…)`, k.publicKey)),
  );
  noKey.hidden = usable.length > 0;
  select.hidden = usable.length === 0;
  return usable.length;
}

// Sign `script` with the browser key `publicKey` and POST it; resolves to the new deployment.
export async function submitScript({ publicKey, script, target, name, resources }) {
  if (!publicKey) throw new Error("this browser holds no key of yours; make one on the keys page");
  const entry = await getKey(publicKey);
  if (!entry) throw new Error("that key is not in this browser any more; choose another");
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", entry.keyPair.publicKey));
  const payload = deploymentPayload({ script, target, name, resources });
  const envelope = await signDeployment(entry.keyPair, raw, payload);
  return postJson("/api/v1/deployments", { envelope });
}
