// Signing keys kept in this browser profile: IndexedDB stores the WebCrypto key pair itself, so the
// private key stays a non-extractable CryptoKey and is never serialised, sent or shown.

const DB = "zos-keys";
const STORE = "keys";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "publicKey" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

// {publicKey: hex, name, keyPair: CryptoKeyPair, created: ms}
export const putKey = (entry) => run("readwrite", (store) => store.put(entry));
export const getKey = (publicKey) => run("readonly", (store) => store.get(publicKey));
export const allKeys = () => run("readonly", (store) => store.getAll());
export const deleteKey = (publicKey) => run("readwrite", (store) => store.delete(publicKey));
