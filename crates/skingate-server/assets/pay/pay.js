// skingate payment page: optional enhancements. Everything works without this file.
(function () {
  "use strict";
  var form = document.getElementById("items-form");
  // The limits are decided on integers exactly as the server decides them: each item's value (USD ledger
  // units) is summed and compared with bounds the server computed in the same units. The total is that sum
  // credited once (fee, multiplier, currency, each rounded half away from zero as the server rounds
  // `user_amount`), in BigInt so no product loses a digit. Without BigInt the server-rendered figures stay.
  if (form && typeof BigInt === "function") {
    var d = form.dataset, scale = Number(d.scale), code = d.code, ONE = BigInt(1), PPM = BigInt(1000000);
    var bound = function (v) { return v === "" ? null : Number(v); };
    var min = bound(d.min), max = bound(d.max);
    var minShown = d.minShown === "" ? null : BigInt(d.minShown), maxShown = d.maxShown === "" ? null : BigInt(d.maxShown);
    // n / den rounded half away from zero (n, den >= 0).
    var div = function (n, den) { var q = n / den; return (n % den) * BigInt(2) >= den ? q + ONE : q; };
    var credited = function (gross) {
      var g = BigInt(gross), net = g - div(g * BigInt(d.fee), PPM);
      var user = div(net * BigInt(d.multiplier), PPM);
      return div(user * BigInt(d.rate), BigInt(d.divisor));
    };
    // Units at `scale` decimals, written as the server writes amounts (zeros past the second decimal dropped).
    var fmt = function (v) {
      var s = v.toString();
      while (s.length <= scale) s = "0" + s;
      var whole = s.slice(0, s.length - scale), frac = s.slice(s.length - scale);
      while (frac.length > Math.min(2, scale) && frac.charAt(frac.length - 1) === "0") frac = frac.slice(0, -1);
      return (frac === "" ? whole : whole + "." + frac) + " " + code;
    };
    var atLeastOne = function (v) { return v < ONE ? ONE : v; };
    var update = function () {
      var boxes = form.querySelectorAll("input[name=asset_id]:checked"), sum = 0;
      boxes.forEach(function (b) { sum += Number(b.dataset.value); });
      var total = credited(sum);
      var set = function (sel, f) { form.querySelectorAll(sel).forEach(f); };
      set(".js-count", function (e) { e.textContent = boxes.length; });
      set(".js-total", function (e) { e.textContent = fmt(total); });
      var hint = "";
      if (boxes.length === 0) hint = "Pick at least one item.";
      else if (min !== null && sum < min) hint = "Add " + fmt(atLeastOne(minShown - total)) + " more to reach the minimum.";
      else if (max !== null && sum > max) hint = "Remove " + fmt(atLeastOne(total - maxShown)) + " to stay within the maximum.";
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
    // While the gateway cannot be reached the page says so (and no longer that it updates by itself), and
    // says nothing once a poll answers again.
    var lost = function (on) {
      document.querySelectorAll(".js-offline").forEach(function (e) { e.hidden = !on; });
      document.querySelectorAll(".js-live").forEach(function (e) { e.hidden = on; });
    };
    var poll = function () {
      fetch(body.dataset.poll, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
        .then(function (s) {
          lost(false);
          if (s.stage !== body.dataset.stage) location.reload(); else setTimeout(poll, 2000);
        })
        .catch(function () { lost(true); setTimeout(poll, 5000); });
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
