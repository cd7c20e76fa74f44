// The console's only script (served by authpi; the CSP allows no inline script).
(function () {
  "use strict";
  // Copy buttons: data-copy names the element whose text is copied.
  document.querySelectorAll(".js-copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      var text = source.textContent || "";
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () {});
      }
    });
  });
  // Branding: a live preview of the login page while the form is edited.
  var brandForm = document.querySelector(".js-branding");
  if (brandForm) {
    var update = function () {
      var title = brandForm.querySelector("[name='branding.title']");
      var color = brandForm.querySelector("[name='branding.primary_color']");
      var preview = document.querySelector(".js-preview");
      if (!preview) { return; }
      if (title) { preview.querySelector(".pv-title").textContent = title.value || "Sign in"; }
      if (color && /^#[0-9a-fA-F]{6}$/.test(color.value)) {
        preview.querySelector(".pv-button").style.backgroundColor = color.value;
      }
    };
    brandForm.addEventListener("input", update);
    update();
  }
  // Events: a live tail by polling the newest events.
  var tail = document.querySelector(".js-tail");
  if (tail) {
    var body = document.querySelector(".js-tail-body");
    var status = document.querySelector(".js-tail-status");
    var since = tail.getAttribute("data-since");
    var timer = null;
    var poll = function () {
      fetch("/console/events/tail?after=" + encodeURIComponent(since), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          data.events.forEach(function (e) {
            var tr = document.createElement("tr");
            [e.id, e.type, e.subject, e.time].forEach(function (value, i) {
              var td = document.createElement("td");
              if (i === 0) { var a = document.createElement("a"); a.href = "/console/events/" + e.id; a.textContent = value; td.appendChild(a); }
              else { td.textContent = value; }
              tr.appendChild(td);
            });
            body.insertBefore(tr, body.firstChild);
          });
          if (data.since) { since = data.since; }
          status.textContent = "Live: " + data.events.length + " new";
        })
        .catch(function () { status.textContent = "Live tail stopped"; clearInterval(timer); tail.checked = false; });
    };
    tail.addEventListener("change", function () {
      if (tail.checked) { poll(); timer = setInterval(poll, 3000); status.textContent = "Live"; }
      else { clearInterval(timer); status.textContent = "Paused"; }
    });
  }
})();
