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
  var pk = "";
  var wasm = wasm_bindgen;
  // The wasm side's per-page state (see delivery.rs). `retry` is its timer:
  // one at a time, however many sends failed meanwhile.
  var st = {
    retry: function (ms) {
      if (st.t) return;
      st.t = setTimeout(function () {
        st.t = 0;
        run(function () { wasm.flush(base, st); });
      }, ms);
    },
  };
  // Runs `job` now if the module is ready, else queues it. `cb`, if any, is
  // told of the failure when the module cannot load or the job throws.
  var run = function (job, cb) {
    if (!ready) return queue.push([job, cb]);
    try {
      if (ready == 1) return job();
    } catch (e) {}
    try {
      if (typeof cb == "function") cb(new Error("growsumo could not load"));
    } catch (e) {}
  };
  gs = w.growsumo = {
    _q: queue,
    data: { name: "", email: "", customer_key: "", partner_key: "", provider_key: "", xid: "" },
    _initialize: function (key) {
      pk = String(key);
      // The embed code calls growsumoInit() right after this: defer it until
      // growsumo.data holds the referral, as it does with PartnerStack's script.
      var init = w.growsumoInit;
      if (!ready && typeof init == "function") {
        w.growsumoInit = function () {
          w.growsumoInit = init;
          // The page's own init runs whether or not the module loads, once.
          run(function () { try { init(); } catch (e) {} }, init);
        };
      }
      run(function () { wasm.init(base, pk, gs.data, st); });
    },
    createSignup: function (cb) {
      // Snapshot the data now: the page may change growsumo.data before the
      // module is ready.
      var data = {};
      for (var k in gs.data) {
        var v = gs.data[k];
        data[k] = v == null ? "" : String(v);
      }
      // The callback runs once: with the collector's answer, or, if none came
      // within 1.5 s, with status "queued" (the signup is in the outbox and
      // will be delivered), so a page waiting on it can move on.
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
    },
  };
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
    queue.splice(0).forEach(function (item) { run(item[0], item[1]); });
  };
  wasm({ module_or_path: base + "__WASM_FILE__" }).then(
    function () { drain(1); },
    function () { drain(2); }
  );
}
