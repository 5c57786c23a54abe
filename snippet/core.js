// growsumo, stage 2: loaded by stage 1 (`stage1.js`) only when a page view has
// work. The build wraps this file and wasm-bindgen's glue in one function
// (served content-hashed and immutable), so nothing else leaks into the page.
// It fetches the wasm, then takes over stage 1's queue (`growsumo._q`: the
// key's initialisation, signups, consent calls, single-page-app landings and
// the page's growsumoInit) and runs it in order. Nothing here may throw into
// the host page.
var w = window;
var doc = document;
var gs = w.growsumo;
var s = gs._s; // from stage 1: b (base URL), p (public key), l (landing URL), c (settings)
// A landing URL as the wasm takes it: [the URL without the partner
// parameters (a click carries them as fields of its own), its parameters
// (the first value of each), the referrer].
var split = function (href) {
  var u = new URL(href);
  var query = {};
  u.searchParams.forEach(function (value, name) {
    if (!(name in query)) query[name] = value;
  });
  ["ps_partner_key", "gspk", "ps_xid", "gsxid"].forEach(function (name) { u.searchParams.delete(name); });
  return [u.origin + u.pathname + u.search, query, doc.referrer];
};
var landing = split(s.l);
// The wasm's imports (see js.rs): each catches its own errors, and each
// that answers a string checks it is one (a page may wrap `document.cookie`
// or `Storage`), so none throws into the wasm or the page.
var str = function (v) {
  return typeof v == "string" ? v : "";
};
var ls = function (f) {
  try {
    return f(localStorage);
  } catch (e) {}
};
var H = {
  g: function (o, k) { try { return o[k]; } catch (e) {} },
  i: function (a, i) { return a[i]; },
  A: function (a) { return Array.isArray(a) ? a.length : 0; },
  s: function (o, k, v) { try { o[k] = v; } catch (e) {} },
  d: function (o, k) { try { delete o[k]; } catch (e) {} },
  o: function () { return {}; },
  a: function () { return []; },
  p: function (a, v) { a.push(v); },
  f: function (a) { return a.shift(); },
  c: function (o, k, a, b) { try { return o[k](a, b); } catch (e) {} },
  j: function (v) { try { return str(JSON.stringify(v)); } catch (e) { return ""; } },
  J: function (t) { try { return JSON.parse(t); } catch (e) {} },
  u: function (t) { try { return str(decodeURIComponent(t)); } catch (e) { return ""; } },
  U: function (t) { return str(encodeURIComponent(t)); },
  N: function (n) { return "" + n; },
  k: function () { try { return str(doc.cookie); } catch (e) { return ""; } },
  K: function (c) { try { doc.cookie = c; } catch (e) {} },
  l: function (k) {
    return ls(function (l) {
      var v = l.getItem(k);
      return typeof v == "string" ? v : undefined;
    });
  },
  L: function (k, v) { return !!ls(function (l) { l.setItem(k, v); return 1; }); },
  r: function (k) { ls(function (l) { l.removeItem(k); }); },
  n: function () { return ls(Object.keys); },
  h: function () { return location.hostname; },
  S: function () { return location.protocol == "https:"; },
  e: function (m, f) {
    var e = Error(m);
    if (f) e.field = f;
    return e;
  },
  // The fingerprint's signals (see fingerprint.rs), each as JSON and a NUL.
  // Each browser call fails on its own (undefined), as the first version's
  // did, so a blocked probe changes only its own signal.
  F: function () {
    var out = "";
    var get = H.g;
    var add = function (v) { out += H.j(v) + "\0"; };
    var call = function (o, k, args) { try { return o[k].apply(o, args); } catch (e) {} };
    var from = function (o, names) {
      names.split(" ").forEach(function (k) { add(get(o, k)); });
    };
    var canvas = function () { return call(doc, "createElement", ["canvas"]); };
    var isObject = function (v) { return v && typeof v == "object"; };
    from(get(w, "navigator"), "userAgent languages hardwareConcurrency deviceMemory platform maxTouchPoints");
    from(get(w, "screen"), "width height availWidth availHeight colorDepth");
    from(w, "devicePixelRatio outerWidth outerHeight");
    add(get(call(call(get(w, "Intl"), "DateTimeFormat", []), "resolvedOptions", []), "timeZone"));
    add(new Date().getTimezoneOffset());
    var c = canvas(), x = call(c, "getContext", ["2d"]);
    if (isObject(x)) {
      H.s(x, "font", "15px Arial");
      H.s(x, "fillStyle", "#f60");
      call(x, "fillRect", [90, 2, 50, 20]);
      H.s(x, "fillStyle", "rgba(0,90,200,0.7)");
      call(x, "fillText", ["growsumo \u{1f91d} 3.14", 4, 17]);
    }
    add(call(c, "toDataURL", []));
    var g = call(canvas(), "getContext", ["webgl"]);
    var unmasked = get(call(g, "getExtension", ["WEBGL_debug_renderer_info"]), "UNMASKED_RENDERER_WEBGL");
    add(isObject(g) ? call(g, "getParameter", [typeof unmasked == "number" ? unmasked : 7937]) : null);
    return out;
  },
};
var queue = [];
var ready = 0; // 0 loading, 1 ready, 2 failed
var busy = 0; // an async call (init, consent) runs: later calls wait for it
var cfg = null;
var failure = ""; // why the wasm could not start (see fail)
var wasm = wasm_bindgen;
// Sends what the outbox holds, a batch at a time, each settled by the
// collector's answer (see delivery.rs). JSON as `text/plain`: a CORS simple
// request, no preflight; `keepalive` outlives a page that navigates away;
// credentials carry the server cookie, which a click's answer may set.
var sending = 0;
var flush = function () {
  var body = !sending && wasm.next(st);
  if (!body) return;
  sending = 1;
  fetch(s.b + "events", { method: "POST", body: body, keepalive: true, credentials: "include" })
    .then(function (r) {
      return r.json().catch(function () {}).then(function (json) { return [r.status, json]; });
    }, function () { return [0]; })
    .then(function (answer) {
      sending = 0;
      if (wasm.settle(st, answer[0], answer[1])) flush();
    });
};
// The wasm side's per-page state (see delivery.rs, consent.rs). `retry` is
// its timer: one at a time, however many sends failed meanwhile.
var st = {
  f: flush,
  gpc: navigator.globalPrivacyControl,
  // A new event's id: 128 random bits as 32 hex digits.
  id: function () {
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), function (b) { return (b + 256).toString(16).slice(1); }).join("");
  },
  retry: function (ms) {
    if (st.t) return;
    st.t = setTimeout(function () {
      st.t = 0;
      run(flush);
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
// Signups stage 1 wrote ahead (`growsumo_q<id>` = [pk, when, data, the
// stored referral's partner key and xid]), as [storage key, entry], oldest
// first: all of them, or (`all` false) those no page of this tab queued.
// An entry another tab removes meanwhile, or that does not parse, is skipped.
var mine = {};
var written = function (all) {
  var found = [];
  (H.n() || []).forEach(function (k) {
    if (k.indexOf("growsumo_q") || (!all && mine[k])) return;
    var text = H.l(k);
    if (text == null) return; // another tab took it meanwhile
    var entry = H.J(text);
    if (entry && entry[2]) found.push([k, entry]);
    else H.r(k); // unreadable: it would load stage 2 on every page
  });
  return found.sort(function (a, b) { return a[1][1] - b[1][1]; });
};
var unwrite = function (item) {
  H.r(item[0]);
};
// Sends a signup. The callback runs once: with the collector's answer, or,
// if none came within 1.5 s, with status "queued" (the signup is in the
// outbox and will be delivered), so a page waiting on it can move on. Its
// copy written ahead by stage 1 goes once the outbox holds it (the same id:
// sent twice, the collector answers the second `duplicate`).
var signup = function (data, cb) {
  var called = 0;
  var done = function (error, result) {
    if (!called++ && typeof cb == "function") cb(error, result);
  };
  var k = data._id && "growsumo_q" + data._id;
  if (k) mine[k] = 1;
  run(function () {
    // Called before the referral was read (right after _initialize): the
    // referral is known now.
    if (!data.partner_key) data.partner_key = gs.data.partner_key;
    if (!data.xid) data.xid = gs.data.xid;
    var id = wasm.signup(s.p, data, done, st);
    if (k) unwrite([k]);
    if (!id) return done(null, { status: "consent_denied" });
    setTimeout(function () {
      try { done(null, { id: id, status: "queued" }); } catch (e) {}
    }, 1500);
  }, done);
};
// Signups written ahead that no page sent (its stage 2 could not load, or
// it went away first): sent as they were made, with the referral stored
// then, once this page has decided consent.
var replay = function () {
  written().forEach(function (item) {
    var e = item[1];
    var data = e[2];
    data.partner_key = data.partner_key || e[3] || "";
    data.xid = data.xid || e[4] || "";
    data._ts = e[1];
    wasm.signup(e[0], data, null, st);
    unwrite(item);
  });
};
// The key's settings from the collector (see config.rs), or null when it
// does not answer within 3 s: the page is never held up. The request
// carries credentials, so the collector's server cookie travels with it.
var config = function (query) {
  var late = new Promise(function (resolve) { setTimeout(resolve, 3000, null); });
  var answer = fetch(s.b + "config?pk=" + encodeURIComponent(s.p) + query, { credentials: "include" })
    .then(function (r) { return r.ok ? r.json() : null; });
  return Promise.race([answer, late]).catch(function () { return null; });
};
// A landing kept by an earlier page whose wasm could not start (see fail).
var PENDING = "growsumo_landing";
var store = function (value) {
  value ? H.L(PENDING, JSON.stringify(value)) : H.r(PENDING);
};
var pending = function () {
  return H.J(H.l(PENDING));
};
var init = function (view) {
  wasm.init(s.p, gs.data, st, cfg, view[0], view[1], view[2]);
};
// The key's settings kept for this session (by stage 1 or here).
var sessionSettings = function () {
  try {
    return JSON.parse(sessionStorage.getItem("growsumo_cfg_" + s.p));
  } catch (e) {}
};
// Reads the settings (stage 1's answer, when it asked this page view; the
// session's, when this browser stores the referral; else the collector's,
// asking for a restore when nothing is stored), then starts the wasm side
// on this page: first with a landing an earlier page could not record,
// then with this page's own (the later link wins).
var start = function () {
  var stored = wasm.stored();
  var asked = s.c || (stored && sessionSettings());
  s.c = 0;
  return (asked ? Promise.resolve(asked) : config(stored ? "" : "&restore=1")).then(function (c) {
    cfg = c;
    var kept = pending();
    store();
    // (Kept as a URL; by earlier versions as [origin and path, query, referrer].)
    if (kept && kept.v && Date.now() - kept.t < 864e5 * 90) init(split(kept.v.join ? kept.v[0] + kept.v[1] : kept.v));
    init(landing);
    replay();
    // Kept for the session, with whether a referral is stored now: a later
    // page that finds none asks the collector again (storage wiped).
    try {
      if (c && c.params && !c.referral) sessionStorage.setItem("growsumo_cfg_" + s.p, JSON.stringify(Object.assign({ s: wasm.stored() }, c)));
    } catch (e) {}
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
    wasm_fetch: "the wasm file could not be fetched from " + s.b,
    wasm_start: "this browser cannot run WebAssembly",
  }[reason];
  ready = 2;
  pump();
  // This browser cannot run the wasm (CSP, no WebAssembly): the signups
  // written ahead could never be sent from it, and would load stage 2 on
  // every page (their callbacks heard the failure). A failed fetch may
  // pass: they wait.
  if (reason != "wasm_fetch") written(1).forEach(unwrite);
  try {
    if (sessionStorage.getItem("growsumo_diag") != reason) {
      sessionStorage.setItem("growsumo_diag", reason);
      fetch(s.b + "diagnostics", { method: "POST", keepalive: true, body: JSON.stringify({ pk: s.p, reason: reason }) }).catch(function () {});
    }
  } catch (x) {}
  if (new URL(s.l).search && st.c !== false) {
    config("").then(function (c) {
      var query = new URL(s.l).searchParams;
      var names = ["ps_partner_key", "gspk"].concat(((c && c.params) || []).map(function (p) { return p.name; }));
      var linked = names.some(function (name) { return query.get(name); });
      if (linked && c && !c.require_consent && !(c.honor_gpc && navigator.globalPrivacyControl) && st.c !== false) {
        store({ v: s.l, t: Date.now() });
      }
    });
  }
};
// Stage 1's queue, as it was and as it grows: the key's initialisation, a
// signup [data, callback], a consent call, a single-page-app landing, the
// page's own growsumoInit (run whether or not the module starts, once).
var handle = function (item) {
  var kind = item[0];
  if (kind == "i") run(start);
  if (kind == "s") signup(item[1], item[2]);
  if (kind == "v") run(function () { init(split(item[1])); });
  if (kind == "g") run(function () { try { item[1](); } catch (e) {} }, item[1]);
  if (kind == "c") {
    // false deletes what is stored (also the collector's server cookie) and
    // stops storing and sending; true allows it, and is remembered.
    st.c = item[1];
    if (!s.p) return;
    if (!st.c) {
      store();
      written(1).forEach(unwrite);
    }
    run(start);
    if (!st.c) config("&forget=1");
  }
};
// Taken over once the wasm has started (or could not): until then stage 1
// holds the queue, and keeps its signups if the page goes away meanwhile.
var takeOver = function () {
  var q = gs._q;
  q.push = handle;
  q.splice(0).forEach(handle);
};
// An answer that is not the wasm (a 404 page, a proxy's error) is a failed
// fetch, not a browser without WebAssembly.
try {
  var answer = fetch(s.b + "__WASM_FILE__").then(function (r) {
    if (!r.ok) throw new TypeError("HTTP " + r.status);
    return r;
  });
  wasm({ module_or_path: answer }).then(function () {
    ready = 1;
    takeOver();
  }, function (e) {
    takeOver();
    fail(e);
  });
} catch (e) {
  takeOver();
  fail(e);
}
// Leaving or hiding the page: beacon what is still unsent, once per hiding
// (a navigation fires both visibilitychange and pagehide). Back online: retry.
var hidden = 0;
var hide = function () {
  try {
    if (ready == 1 && !hidden++) wasm.beacons(st).forEach(function (body) { navigator.sendBeacon(s.b + "events", body); });
  } catch (e) {}
};
w.addEventListener("pagehide", hide);
w.addEventListener("pageshow", function () { hidden = 0; });
doc.addEventListener("visibilitychange", function () {
  if (doc.visibilityState == "hidden") hide();
  else hidden = 0;
});
w.addEventListener("online", function () {
  run(flush);
});
