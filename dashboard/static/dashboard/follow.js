// Wait for a deployment to end without leaving the page: the owner's live feed
// (/ws/deployments/) says when its state becomes final; the API then gives its result. The state
// is also read once the feed is open (it may have ended before) and again whenever the feed
// drops, so a lost connection delays the answer but never loses it.

import { getJson } from "./api.js";

export const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const RETRY_MS = 2000;

// Resolves to the deployment (GET /api/v1/deployments/<id>) once it is final.
export function untilFinal(id) {
  return new Promise((resolve, reject) => {
    let done = false;
    let socket = null;

    async function check() {
      if (done) return;
      try {
        const deployment = await getJson(`/api/v1/deployments/${id}`);
        if (FINAL.has(deployment.status) && !done) {
          done = true;
          if (socket) socket.close();
          resolve(deployment);
        }
      } catch (error) {
        done = true;
        if (socket) socket.close();
        reject(error);
      }
    }

    function connect() {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${scheme}://${window.location.host}/ws/deployments/`);
      socket = ws;
      ws.addEventListener("open", check);
      ws.addEventListener("message", (message) => {
        const event = JSON.parse(message.data);
        if (event.deployment === id && FINAL.has(event.state)) check();
      });
      ws.addEventListener("close", () => {
        if (done) return;
        check().then(() => { if (!done) setTimeout(connect, RETRY_MS); });
      });
    }

    connect();
  });
}
