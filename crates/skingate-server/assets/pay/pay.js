// skingate payment page: optional enhancements. Everything works without this file.
(function () {
  "use strict";
  var form = document.getElementById("items-form");
  if (form) {
    var scale = Number(form.dataset.scale), code = form.dataset.code;
    var min = form.dataset.min === "" ? null : Number(form.dataset.min);
    var max = form.dataset.max === "" ? null : Number(form.dataset.max);
    var fmt = function (minor) { return (minor / Math.pow(10, scale)).toFixed(scale) + " " + code; };
    var update = function () {
      var boxes = form.querySelectorAll("input[name=asset_id]:checked"), sum = 0;
      boxes.forEach(function (b) { sum += Number(b.dataset.minor); });
      var set = function (sel, f) { form.querySelectorAll(sel).forEach(f); };
      set(".js-count", function (e) { e.textContent = boxes.length; });
      set(".js-total", function (e) { e.textContent = fmt(sum); });
      var hint = "";
      if (boxes.length === 0) hint = "Pick at least one item.";
      else if (min !== null && sum < min) hint = "Add " + fmt(min - sum) + " more to reach the minimum.";
      else if (max !== null && sum > max) hint = "Remove " + fmt(sum - max) + " to stay within the maximum.";
      // Beside both send buttons (the phone's bottom bar too): a greyed button always says why.
      set(".js-hint", function (e) { e.textContent = hint; });
      set(".js-send", function (b) { b.disabled = hint !== ""; });
    };
    form.addEventListener("change", update);
    // Shown again (Back after a failed or interrupted send, from the browser's cache or with the ticks the
    // browser restores after this script ran): the total, the hint and the buttons follow the ticks again.
    window.addEventListener("pageshow", update);
    form.addEventListener("submit", function () {
      setTimeout(function () { form.querySelectorAll(".js-send").forEach(function (b) { b.disabled = true; }); }, 0);
    });
    update();
  }
  var body = document.body, next = body.dataset.next;
  var final = body.dataset.stage === "success" || body.dataset.stage === "fail";
  if (body.dataset.poll && !final) {
    var poll = function () {
      fetch(body.dataset.poll, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (s) { if (s.stage !== body.dataset.stage) location.reload(); else setTimeout(poll, 2000); })
        .catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 2000);
  }
  if (final) {
    // Inside a frame the merchant decides what comes next (with or without a success/fail URL).
    if (window.top !== window.self) {
      // No automatic return inside a frame: the page must not promise one.
      document.querySelectorAll(".js-autoreturn").forEach(function (e) { e.hidden = true; });
      window.parent.postMessage({ source: "skingate", stage: body.dataset.stage, transaction_id: body.dataset.transaction }, "*");
    } else if (next) {
      setTimeout(function () { location.assign(next); }, 5000);
    }
  }
})();
