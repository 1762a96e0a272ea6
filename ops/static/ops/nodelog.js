// The admin node page's agent log: the tail on request, then (when "Follow" is on) only what
// is new, by asking the staff endpoint again every FOLLOW_MS with the cursor of the last line.
const FOLLOW_MS = 2000;
const KEEP_LINES = 2000;

const panel = document.getElementById("agent-log");
if (panel) {
  const url = panel.dataset.url;
  const out = document.getElementById("log-lines");
  const status = document.getElementById("log-status");
  const follow = document.getElementById("log-follow");
  let cursor = "";
  let timer = null;

  const show = (lines) => {
    for (const entry of lines) {
      out.append(`${entry.source} ${entry.line}\n`);
    }
    while (out.childNodes.length > KEEP_LINES) out.firstChild.remove();
    if (lines.length) out.scrollTop = out.scrollHeight;
  };

  const fetchLines = async (after) => {
    const query = new URLSearchParams({ lines: "200" });
    if (after) query.set("after", after);
    const response = await fetch(`${url}?${query}`, { credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    return body;
  };

  const load = async (after) => {
    status.textContent = "asking the node…";
    try {
      const body = await fetchLines(after);
      if (!after) out.textContent = "";
      show(body.lines);
      cursor = body.cursor || cursor;
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = `could not read the log: ${error.message}`;
    }
  };

  document.getElementById("log-load").addEventListener("click", () => load(""));
  follow.addEventListener("change", () => {
    clearInterval(timer);
    timer = follow.checked ? setInterval(() => load(cursor), FOLLOW_MS) : null;
  });
  load("");
}
