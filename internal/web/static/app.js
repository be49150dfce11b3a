// Progressive enhancement only: every page works without this file.
// While a form is posting, its submit button is disabled, so a double click
// sends one request (the server's idempotency key covers the rest).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.submitting) {
    event.preventDefault();
    return;
  }
  form.dataset.submitting = "true";
  var button = form.querySelector("button[type=submit]");
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = "Sending…";
  }
});

// A page restored from the back-forward cache must be usable again.
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-submitting]").forEach(function (form) {
    delete form.dataset.submitting;
    var button = form.querySelector("button[type=submit]");
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = "Send application";
    }
  });
});
