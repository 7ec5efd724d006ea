// The little the dashboard needs beyond htmx: copy buttons, and showing an
// error an htmx endpoint reported (HX-Trigger "herald:error").
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
