// One deployment's page, live: events arrive over /ws/deployments/ (the owner's feed); on every
// (re)connection the page first pages what it missed with GET …/events?after=<last seq>, so no
// event is lost, and it keeps each seq once, so none is shown twice.

import { getJson, postJson } from "./api.js";

const section = document.getElementById("deployment");
const id = Number(section.dataset.id);
const statusBox = document.getElementById("status");
const detailBox = document.getElementById("detail");
const failureBox = document.getElementById("failure");
const cancelButton = document.getElementById("cancel");
const feedStatus = document.getElementById("feed-status");
const list = document.getElementById("events");
const resultBox = document.getElementById("result");
const EVENTS_PAGE = 500; // coordinator/views.py: a full page means there may be more
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const LABELS = {
  queued: "Queued", dispatched: "Dispatched", accepted: "Accepted", running: "Running",
  retrying: "Retrying", cancelling: "Cancel requested", succeeded: "Succeeded", failed: "Failed",
  cancelled: "Cancelled",
};
const seen = new Set();
let lastSeq = 0;
let socket = null;
let retryDelay = 1000;

function setStatus(status, detail) {
  if (!status) return;
  statusBox.textContent = LABELS[status] || status;
  statusBox.dataset.status = status;
  statusBox.className = `state state-${status}`;
  if (detail !== undefined) detailBox.textContent = detail;
  else if (status !== "cancelling") detailBox.textContent = "";
  else detailBox.textContent = "cancel requested; the node will stop the job when it hears of it";
  cancelButton.hidden = FINAL.has(status);
}

function showResult(result) {
  if (result !== null && result !== undefined) resultBox.textContent = JSON.stringify(result, null, 2);
}

// Why it ended, in words: a failure as a failure; a cancel, or a reason given on the way, plainly.
function showFailure(error, status) {
  if (!error || status === "succeeded") return;
  const failed = status === "failed";
  failureBox.textContent = failed ? `It failed: ${error}` : status === "cancelled"
    ? `Cancelled: ${error}` : `Note: ${error}`;
  failureBox.classList.toggle("error", failed);
  failureBox.hidden = false;
}

function apply(event) {
  if (event.deployment !== undefined && event.deployment !== id) return;
  if (seen.has(event.seq)) return;
  seen.add(event.seq);
  lastSeq = Math.max(lastSeq, event.seq);
  const item = document.createElement("li");
  item.dataset.seq = String(event.seq);
  const when = document.createElement("time");
  when.dateTime = event.ts || event.created;
  when.textContent = new Date(event.ts || event.created).toLocaleTimeString();
  const status = document.createElement("span");
  status.className = "status";
  status.textContent = ` ${event.status}`;
  item.append(when, status);
  const text = event.log || (event.error ? `error: ${event.error}` : "");
  if (text) item.append(` ${text}`);
  const later = Array.from(list.children).find((li) => Number(li.dataset.seq) > event.seq);
  list.insertBefore(item, later || null);
  showResult(event.result);
  if (event.error) showFailure(event.error, event.state || event.status);
  if (event.state) setStatus(event.state);
}

async function refresh() {
  const deployment = await getJson(`/api/v1/deployments/${id}`);
  setStatus(deployment.status, deployment.detail);
  if (deployment.job) {
    showResult(deployment.job.result);
    showFailure(deployment.job.error, deployment.status);
  }
}

async function catchUp() {
  for (;;) {
    const page = await getJson(`/api/v1/deployments/${id}/events?after=${lastSeq}`);
    page.results.forEach(apply);
    if (page.results.length < EVENTS_PAGE) {
      if (FINAL.has(page.status) || page.status === "cancelling") await refresh();
      else setStatus(page.status);
      return;
    }
  }
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${window.location.host}/ws/deployments/`);
  const early = [];
  let ready = false;
  socket = ws;
  ws.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (!ready) early.push(event);
    else {
      apply(event);
      if (FINAL.has(event.state)) refresh().catch(() => {});
    }
  });
  ws.addEventListener("open", async () => {
    retryDelay = 1000;
    try {
      await catchUp();
      early.forEach(apply);
      ready = true;
      section.dataset.live = "true";
      feedStatus.textContent = "Live: new events appear as they happen.";
    } catch (error) {
      feedStatus.textContent = `Could not load the events: ${error.message}`;
      ws.close();
    }
  });
  ws.addEventListener("close", () => {
    section.dataset.live = "false";
    if (socket !== ws) return;
    feedStatus.textContent = "Connection lost; reconnecting…";
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  });
}

cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    const deployment = await postJson(`/api/v1/deployments/${id}/cancel`);
    setStatus(deployment.status, deployment.detail);
  } catch (error) {
    feedStatus.textContent = `Not cancelled: ${error.message}`;
  } finally {
    cancelButton.disabled = false;
  }
});

// For tests and debugging: drop the live connection as a network fault would.
window.zosDeploymentFeed = { drop: () => socket && socket.close() };
connect();
