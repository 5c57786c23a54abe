// growsumo loader: defines the `growsumo` global at once, as PartnerStack's embed
// code expects (it calls growsumo._initialize right after this script loads), then
// fetches the wasm module and hands it every call queued meanwhile. The build wraps
// this file and wasm-bindgen's glue in one function, so nothing else leaks into the
// page. Nothing here may throw into the host page.
var w = window;
var gs = w.growsumo;
if (!gs || !gs._q) {
  var script = document.currentScript;
  var base = new URL(".", script ? script.src : location.href).href;
  var queue = [];
  var ready = 0; // 0 loading, 1 ready, 2 failed
  var busy = 0; // an async call (init, consent) runs: later calls wait for it
  var pk = "";
  var wasm = wasm_bindgen;
  // The wasm side's per-page state (see delivery.rs, consent.rs). `retry` is
  // its timer: one at a time, however many sends failed meanwhile.
  var st = {
    retry: function (ms) {
      if (st.t) return;
      st.t = setTimeout(function () {
        st.t = 0;
        run(function () { wasm.flush(base, st); });
      }, ms);
    },
  };
  // Queues `job`, and runs the queue in order once the module is ready. A job
  // that returns a promise holds the queue until it settles, so a signup
  // never overtakes the init that reads the referral. `cb`, if any, is told
  // of the failure when the module cannot load or the job throws.
  var run = function (job, cb) {
    queue.push([job, cb]);
    pump();
  };
  var pump = function () {
    while (ready && !busy && queue.length) {
      var item = queue.shift();
      try {
        if (ready == 1) {
          var p = item[0]();
          if (p && p.then) {
            busy = 1;
            p.then(resume, resume);
          }
          continue;
        }
      } catch (e) {}
      try {
        if (typeof item[1] == "function") item[1](new Error("growsumo could not load"));
      } catch (e) {}
    }
  };
  var resume = function () {
    busy = 0;
    pump();
  };
  // A copy of growsumo.data as strings: the page may change it before the
  // module is ready.
  var snapshot = function () {
    var data = {};
    for (var k in gs.data) {
      var v = gs.data[k];
      data[k] = v == null ? "" : String(v);
    }
    return data;
  };
  // Sends a signup. The callback runs once: with the collector's answer, or,
  // if none came within 1.5 s, with status "queued" (the signup is in the
  // outbox and will be delivered), so a page waiting on it can move on.
  var signup = function (data, cb) {
    var called = 0;
    var done = function (error, result) {
      if (!called++ && typeof cb == "function") cb(error, result);
    };
    run(function () {
      var id = wasm.signup(base, pk, data, done, st);
      setTimeout(function () {
        try { done(null, { id: id, status: "queued" }); } catch (e) {}
      }, 1500);
    }, done);
  };
  // The key's settings from the collector (see config.rs), or null when it
  // does not answer within 3 s: the page is never held up. The request
  // carries credentials, so the collector's server cookie travels with it.
  // Fetched here, not in the wasm: the JS costs fewer bytes.
  var config = function (query) {
    var late = new Promise(function (resolve) { setTimeout(resolve, 3000, null); });
    var answer = fetch(base + "config?pk=" + encodeURIComponent(pk) + query, { credentials: "include" })
      .then(function (r) { return r.ok ? r.json() : null; });
    return Promise.race([answer, late]).catch(function () { return null; });
  };
  // Reads the settings (asking for a restore when this browser stores no
  // referral), then starts the wasm side on this page.
  var start = function () {
    return config(wasm.stored() ? "" : "&restore=1").then(function (c) {
      wasm.init(base, pk, gs.data, st, c);
    });
  };
  gs = w.growsumo = {
    _q: queue,
    data: { name: "", email: "", customer_key: "", partner_key: "", provider_key: "", xid: "" },
    _initialize: function (key) {
      pk = String(key);
      // The embed code calls growsumoInit() right after this: defer it until
      // growsumo.data holds the referral, as it does with PartnerStack's script.
      var init = w.growsumoInit;
      if (typeof init == "function") {
        w.growsumoInit = function () {
          w.growsumoInit = init;
          // The page's own init runs whether or not the module loads, once.
          run(function () { try { init(); } catch (e) {} }, init);
        };
      }
      run(start);
    },
    createSignup: function (cb) {
      signup(snapshot(), cb);
    },
    // The visitor's consent: false deletes what is stored (also the
    // collector's server cookie) and stops storing and sending; true allows
    // it, and is remembered.
    consent: function (granted) {
      st.c = !!granted;
      if (!pk) return;
      run(start);
      if (!granted) config("&forget=1");
    },
  };
  // Form capture: a form marked `data-growsumo-signup` sends a signup when
  // submitted. One capture-phase listener on the document sees every submit
  // (forms added later, forms a single-page app renders) before the page's
  // own handlers; it never cancels nor re-submits the form. The fields are
  // read at once, while the form still holds them; `data-growsumo-email`,
  // `-name` and `-customer-key` name the fields when the defaults miss.
  document.addEventListener("submit", function (e) {
    try {
      var form = e.target;
      if (!form.hasAttribute("data-growsumo-signup")) return;
      var value = function (attr, fallback) {
        var name = form.getAttribute("data-growsumo-" + attr);
        var input = name ? form.elements[name] : fallback && form.querySelector(fallback);
        return input && input.value ? String(input.value) : "";
      };
      var data = snapshot();
      data.email = value("email", "input[type=email],input[name*=email i]");
      data.name = value("name", "input[autocomplete=name],input[name=name]");
      data.customer_key = value("customer-key") || data.email;
      signup(data);
    } catch (x) {}
  }, true);
  // Leaving or hiding the page: beacon what is still unsent, once per hiding
  // (a navigation fires both visibilitychange and pagehide). Back online: retry.
  var hidden = 0;
  var hide = function () {
    try {
      if (ready == 1 && !hidden++) wasm.beacon(base, st);
    } catch (e) {}
  };
  w.addEventListener("pagehide", hide);
  w.addEventListener("pageshow", function () { hidden = 0; });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState == "hidden") hide();
    else hidden = 0;
  });
  w.addEventListener("online", function () {
    run(function () { wasm.flush(base, st); });
  });
  var drain = function (state) {
    ready = state;
    pump();
  };
  wasm({ module_or_path: base + "__WASM_FILE__" }).then(
    function () { drain(1); },
    function () { drain(2); }
  );
}
