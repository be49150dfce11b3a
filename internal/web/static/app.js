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

// The status page: while the confirmation email's state can still change,
// look again every 5 s and show the new state in place. The box is
// role=status, so a screen reader announces a change without focus moving;
// nothing is replaced while nothing changed. Without this script the page
// offers a link to look again.
(function () {
  var box = document.querySelector(".email-state[data-watch]");
  if (!box || !window.fetch || !window.DOMParser) {
    return;
  }
  var timer = setInterval(function () {
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status page answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").querySelector(".email-state");
        if (!next) {
          return;
        }
        if (box.innerHTML !== next.innerHTML) {
          box.className = next.className;
          box.innerHTML = next.innerHTML;
        }
        if (!next.hasAttribute("data-watch")) {
          box.removeAttribute("data-watch");
          clearInterval(timer);
        }
      })
      .catch(function () {
        // A failed look is tried again at the next tick.
      });
  }, 5000);
})();
