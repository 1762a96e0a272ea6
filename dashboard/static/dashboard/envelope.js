// DSSE envelopes made in the browser, byte for byte what signing/dsse.py makes (ARCHITECTURE §4):
// canonical JSON (sorted keys, no spaces, UTF-8), PAE, base64 with padding, keyid = the first
// 16 hex characters of sha256(raw public key).

const encoder = new TextEncoder();

// Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False). Only integers
// are allowed as numbers: Python and JavaScript print other numbers differently (1.0 vs 1).
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`not a safe integer: ${value}`);
    return String(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (typeof value === "object") {
    // Python sorts keys by code point; JavaScript's default sort compares UTF-16 units, which
    // differs only above U+FFFF, so compare code points explicitly.
    const keys = Object.keys(value).sort((a, b) => {
      const x = Array.from(a, (c) => c.codePointAt(0));
      const y = Array.from(b, (c) => c.codePointAt(0));
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    });
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalJson(value[k])).join(",") + "}";
  }
  throw new Error(`cannot sign a ${typeof value}`);
}

export function pae(payloadType, payload) {
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.length} `);
  const middle = encoder.encode(` ${payload.length} `);
  const out = new Uint8Array(head.length + type.length + middle.length + payload.length);
  out.set(head, 0);
  out.set(type, head.length);
  out.set(middle, head.length + type.length);
  out.set(payload, head.length + type.length + middle.length);
  return out;
}

export function base64(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function keyId(publicRaw) {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", publicRaw))).slice(0, 16);
}

// Sign `statement` (a plain object) as an envelope of `payloadType` with a WebCrypto key pair.
export async function signStatement(keyPair, publicRaw, payloadType, statement) {
  const payload = encoder.encode(canonicalJson(statement));
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, keyPair.privateKey, pae(payloadType, payload));
  return {
    payloadType,
    payload: base64(payload),
    signatures: [{ keyid: await keyId(publicRaw), sig: base64(new Uint8Array(sig)) }],
  };
}

export const DEPLOYMENT_TYPE = "application/vnd.zos.deployment.v1+json";
export const DEFAULT_LIFETIME = 3600;

function randomNonce() {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

// The signed fields of a deployment, as zoscli.envelope.build_payload makes them
// (docs/deployments.md §1): `now` and `nonce` may be injected, as in the CLI, for tests.
export function deploymentPayload({ script, target, name, resources, timeout,
  lifetime = DEFAULT_LIFETIME, now, nonce }) {
  const issued = now ?? Math.floor(Date.now() / 1000);
  const payload = {
    script,
    target: { ...target },
    nonce: nonce || randomNonce(),
    issued_at: issued,
    expires_at: issued + lifetime,
    name,
  };
  if (resources && Object.keys(resources).length) payload.resources = { ...resources };
  if (timeout != null) payload.timeout = timeout;
  return payload;
}

// The DSSE envelope `zos deploy` submits, signed with a browser key pair.
export function signDeployment(keyPair, publicRaw, payload) {
  return signStatement(keyPair, publicRaw, DEPLOYMENT_TYPE, payload);
}
