// The little the dashboard needs beyond htmx: copy buttons, flash messages
// that come with an htmx response, and what inline handlers would do
// elsewhere: pages carry no inline script (their Content-Security-Policy
// forbids it), so these are data- attributes.

// [data-copy="#id"]: copies that element's text. Where the clipboard is out
// of reach (plain http other than on loopback), selects it to copy by hand.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  const source = button && document.querySelector(button.dataset.copy);
  if (!source) return;
  const says = (label) => {
    button.textContent = label;
    setTimeout(() => (button.textContent = "Copy"), 1500);
  };
  const byHand = () => {
    getSelection().selectAllChildren(source);
    says("Press Ctrl+C");
  };
  if (!navigator.clipboard) return byHand();
  navigator.clipboard.writeText(source.textContent.trim()).then(() => says("Copied"), byHand);
});

// Flash messages (#messages, base.html). An htmx action's come with its
// response (HX-Trigger "herald:messages", dashboard/flash.py), as does an
// error an endpoint reports ("herald:error"). Each can be dismissed; good
// news leaves by itself after #messages[data-hide-after] seconds.
// Deferred: the body exists by now.
document.body.addEventListener("herald:messages", (event) => {
  for (const message of event.detail.messages) showFlash(message.text, message.level);
});
document.body.addEventListener("herald:error", (event) => showFlash(event.detail.message, "error"));
document.querySelectorAll("#messages [data-flash]").forEach(hideLater);
document.addEventListener("click", (event) => {
  event.target.closest("[data-dismiss]")?.closest("[data-flash]")?.remove();
});

function showFlash(text, level) {
  const box = document.getElementById("messages");
  if (!box) return;
  for (const shown of box.querySelectorAll("[data-flash]")) {
    if (shown.querySelector(".flash-text")?.textContent === text) shown.remove();
  }
  const flash = document.createElement("div");
  flash.className = `flash flash-${level}`;
  flash.dataset.flash = "";
  flash.setAttribute("role", level === "error" ? "alert" : "status");
  const words = document.createElement("span");
  words.className = "flash-text";
  words.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "flash-close";
  close.dataset.dismiss = "";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  flash.append(words, close);
  box.append(flash);
  hideLater(flash);
}

function hideLater(flash) {
  if (!flash.matches(".flash-success, .flash-info")) return;
  const seconds = Number(document.getElementById("messages")?.dataset.hideAfter || 8);
  setTimeout(() => flash.remove(), seconds * 1000);
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

// [data-dialog-open="id"] opens that <dialog>; [data-dialog-close] closes its own.
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-dialog-open]");
  if (opener) document.getElementById(opener.dataset.dialogOpen)?.showModal();
  const closer = event.target.closest("[data-dialog-close]");
  if (closer) closer.closest("dialog")?.close();
});
