// The little the dashboard needs beyond htmx: copy buttons, showing an error
// an htmx endpoint reported (HX-Trigger "herald:error"), and what inline
// handlers would do elsewhere: pages carry no inline script (their
// Content-Security-Policy forbids it), so these are data- attributes.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  navigator.clipboard?.writeText(source.textContent.trim()).then(() => {
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
});

// Deferred: the body exists by now.
document.body.addEventListener("herald:error", (event) => showFlash(event.detail.message, "error"));

function showFlash(text, tone) {
  const box = document.getElementById("messages");
  if (!box) return;
  const flash = document.createElement("div");
  flash.className = `flash flash-${tone}`;
  flash.setAttribute("role", "status");
  flash.textContent = text;
  box.replaceChildren(flash);
}

// <select data-autosubmit>: choosing submits its form.
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});

// <form data-confirm="…">: asks before it submits.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// [data-poll-visible]: an htmx poll that only asks while the tab is visible.
document.body.addEventListener("htmx:confirm", (event) => {
  const polling = event.detail.elt.closest?.("[data-poll-visible]") === event.detail.elt;
  if (polling && event.detail.triggerEvent?.type !== "herald:retried" && document.hidden) {
    event.preventDefault();
  }
});
