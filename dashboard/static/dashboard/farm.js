// Asks before a farm action that changes a node or a credential: each form names its question
// in data-confirm, and submitting goes ahead only if the farmer agrees.
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
