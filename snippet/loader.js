// growsumo loader: defines the `growsumo` global at once, as PartnerStack's embed
// code expects (it calls growsumo._initialize right after this script loads),
// reads the landing URL before a single-page app's router can rewrite it, then
// fetches the wasm module and hands it every call queued meanwhile. The build
// wraps this file and wasm-bindgen's glue in one function, so nothing else
// leaks into the page. Nothing here may throw into the host page.
var w = window;
var doc = document;
var gs = w.growsumo;
if (!gs || !gs._q) {
  // Where the collector is: `growsumo._initialize(pk, {collector: url})`, a
  // `data-collector` attribute on any script tag, or this script's own URL.
  // A tag manager or a bundle may run this with no `currentScript`.
  var script = doc.currentScript;
  var tagged = doc.querySelector("script[data-collector]");
  // The snippet's base URL from the collector's (its root, or its /v1/);
  // `base` as it was when the URL is not one.
  var at = function (url) {
    try {
      return new URL(url.replace(/(\/v1)?\/*$/, "/v1/"), location.href).href;
    } catch (e) {
      return base;
    }
  };
  var base = new URL(".", (script && script.src) || location.href).href;
  if (tagged) base = at(tagged.getAttribute("data-collector"));
  var queue = [];
  var ready = 0; // 0 loading, 1 ready, 2 failed
  var loading = 0;
  var busy = 0; // an async call (init, consent) runs: later calls wait for it
  var pk = "";
  var cfg = null;
  var failure = ""; // why the wasm could not start (see fail)
  var wasm = wasm_bindgen;
  // The landing as the browser navigated to it: the navigation entry keeps
  // the URL even after a router's replaceState, which may run before this
  // script does. [origin and path, query, referrer]
  var perf = w.performance;
  var nav = (perf && perf.getEntriesByType && perf.getEntriesByType("navigation")[0]) || {};
  var split = function (href) {
    var u = new URL(href);
    return [u.origin + u.pathname, u.search, doc.referrer];
  };
  var landing = [location.href, "", ""];
  try {
    landing = split(nav.name || location.href);
  } catch (e) {}
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
  // of the failure when the module cannot start or the job throws.
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
        if (typeof item[1] == "function") item[1](new Error("growsumo could not start: " + (failure || "it failed")));
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
      // Called before the referral was read (right after _initialize): the
      // referral is known now.
      if (!data.partner_key) data.partner_key = gs.data.partner_key;
      if (!data.xid) data.xid = gs.data.xid;
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
  // A landing kept by an earlier page whose wasm could not start (see fail).
  var PENDING = "growsumo_landing";
  var store = function (value) {
    try {
      if (value) localStorage.setItem(PENDING, JSON.stringify(value));
      else localStorage.removeItem(PENDING);
    } catch (e) {}
  };
  var pending = function () {
    try {
      return JSON.parse(localStorage.getItem(PENDING));
    } catch (e) {}
  };
  var init = function (view) {
    wasm.init(base, pk, gs.data, st, cfg, view[0], view[1], view[2]);
  };
  // Reads the settings (asking for a restore when this browser stores no
  // referral), then starts the wasm side on this page: first with a landing
  // an earlier page could not record, then with this page's own (the later
  // link wins, as a later click does).
  var start = function () {
    return config(wasm.stored() ? "" : "&restore=1").then(function (c) {
      cfg = c;
      var kept = pending();
      store();
      if (kept && kept.v && Date.now() - kept.t < 864e5 * 90) init(kept.v);
      init(landing);
    });
  };
  // The wasm could not start: say why to the page's callbacks and, once per
  // tab, to the collector (the dashboard's Installation page shows it), and
  // keep a landing's partner link for a later page that can record it,
  // unless the visitor refused consent or must give it first.
  var fail = function (e) {
    var text = String(e && e.message);
    var reason = typeof WebAssembly != "object" ? "wasm_start"
      : /Content.Security.Policy|unsafe-eval|\bCSP\b/i.test(text) ? "csp_wasm"
      : e instanceof TypeError ? "wasm_fetch" : "wasm_start";
    failure = {
      csp_wasm: "the page's Content-Security-Policy blocks WebAssembly (add 'wasm-unsafe-eval' to script-src)",
      wasm_fetch: "the wasm file could not be fetched from " + base,
      wasm_start: "this browser cannot run WebAssembly",
    }[reason];
    drain(2);
    try {
      if (sessionStorage.getItem("growsumo_diag") != reason) {
        sessionStorage.setItem("growsumo_diag", reason);
        fetch(base + "diagnostics", { method: "POST", keepalive: true, body: JSON.stringify({ pk: pk, reason: reason }) }).catch(function () {});
      }
    } catch (x) {}
    if (landing[1] && st.c !== false) {
      config("").then(function (c) {
        var query = new URLSearchParams(landing[1]);
        var names = ["ps_partner_key", "gspk"].concat(((c && c.params) || []).map(function (p) { return p.name; }));
        var linked = names.some(function (name) { return query.get(name); });
        if (linked && c && !c.require_consent && !(c.honor_gpc && navigator.globalPrivacyControl) && st.c !== false) {
          store({ v: landing, t: Date.now() });
        }
      });
    }
  };
  var drain = function (state) {
    ready = state;
    pump();
  };
  // Loads the wasm once the key (and so, maybe, the collector's URL) is
  // known. An answer that is not the wasm (a 404 page, a proxy's error) is
  // a failed fetch, not a browser without WebAssembly.
  var load = function () {
    if (loading++) return;
    try {
      var answer = fetch(base + "__WASM_FILE__").then(function (r) {
        if (!r.ok) throw new TypeError("HTTP " + r.status);
        return r;
      });
      wasm({ module_or_path: answer }).then(function () { drain(1); }, fail);
    } catch (e) {
      fail(e);
    }
  };
  gs = w.growsumo = {
    _q: queue,
    data: { name: "", email: "", customer_key: "", partner_key: "", provider_key: "", xid: "" },
    _initialize: function (key, options) {
      pk = String(key);
      if (options && options.collector) base = at(String(options.collector));
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
      load();
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
      if (!granted) store();
      run(start);
      if (!granted) config("&forget=1");
    },
  };
  // A single-page app's navigation: a partner link reached by pushState or
  // the back button is a landing too (the wasm ignores one it already has).
  var moved = function () {
    if (pk && location.search) {
      var view = split(location.href);
      run(function () { init(view); });
    }
  };
  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      try { moved(); } catch (e) {}
      return result;
    };
  });
  w.addEventListener("popstate", moved);
  // Form capture: a form marked `data-growsumo-signup` sends a signup when
  // submitted. One capture-phase listener on the document sees every submit
  // (forms added later, forms a single-page app renders) before the page's
  // own handlers; it never cancels nor re-submits the form. The fields are
  // read at once, while the form still holds them; `data-growsumo-email`,
  // `-name` and `-customer-key` name the fields when the defaults miss.
  doc.addEventListener("submit", function (e) {
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
  doc.addEventListener("visibilitychange", function () {
    if (doc.visibilityState == "hidden") hide();
    else hidden = 0;
  });
  w.addEventListener("online", function () {
    run(function () { wasm.flush(base, st); });
  });
}
