// growsumo, stage 1: what every page view runs, served at `/v1/` (hand-written
// to stay near 1.5 KB minified and gzipped: every visitor of every merchant
// page pays for it; ES2020, as the browsers that can run the wasm). It
// defines the `growsumo` global at once, as PartnerStack's embed code
// expects, reads the landing URL before a single-page app's router can
// rewrite it, captures signup forms, and queues every call in `_q`. Only
// when there is work does it load stage 2 (`core.js`, wasm-bindgen's glue
// and the wasm), which takes the queue over: a partner link in the URL (or a
// key's alias, from its settings, read once per session), a stored referral
// or unsent events, a signup, a consent call, or a referral the collector's
// server cookie keeps. A plain page view makes no other request. Nothing
// here may throw into the host page.
//
// Queue items: ["i"] the key's initialisation, ["s", data, callback] a
// signup, ["c", granted] consent, ["v", url] a single-page app's landing,
// ["g", growsumoInit] the page's own init, run once the referral is known.
((w, d) => {
  let gs = w.growsumo;
  if (gs?._q) return;
  const loc = location;
  let ls, ss;
  try {
    ls = localStorage;
    ss = sessionStorage;
  } catch {}
  // Where the collector is: `_initialize(pk, {collector: url})`, a
  // `data-collector` attribute on any script tag, or this script's own URL
  // (a tag manager or a bundle may run it with no `currentScript`).
  const at = (url) => {
    try {
      return new URL(url.replace(/(\/v1)?\/*$/, "/v1/"), loc.href).href;
    } catch {
      return s.b;
    }
  };
  // What stage 2 takes over: b (base URL), p (public key), l (the landing
  // URL as the browser navigated to it: the navigation entry keeps it after
  // a router's replaceState), c (the key's settings, when this page view
  // read them).
  const s = {
    b: new URL(".", d.currentScript?.src || loc.href).href,
    p: "",
    l: performance.getEntriesByType("navigation")[0]?.name || loc.href,
  };
  const tagged = d.querySelector("[data-collector]")?.dataset.collector;
  if (tagged) s.b = at(tagged);
  const q = [];
  let refused; // consent refused on this page
  let state = 0; // 0 deciding, 1 nothing to do, 2 stage 2 loading or running
  let wait = 2500; // before stage 2 is tried again, doubling
  // No stage 2 (nothing to do, or it could not load): the page's
  // growsumoInit runs now, the callbacks of signups written ahead (`keep`)
  // hear `queued`, of those consent refused `consent_denied`, of the others
  // an error; the rest stays queued.
  const idle = () => {
    state = 1;
    for (const [kind, arg, cb] of q.splice(0))
      try {
        if (kind == "g") arg();
        else if (kind != "s") q.push([kind, arg, cb]);
        else if (arg._id || arg._no) cb(null, { id: arg._id, status: arg._id ? "queued" : "consent_denied" });
        else cb(Error("growsumo: the signup could not be kept"));
      } catch {}
  };
  const work = () => {
    if (state < 2) {
      state = 2;
      const tag = d.createElement("script");
      tag.src = s.b + "__CORE_FILE__";
      // Stage 2 unreachable (the collector down, the network): idle, and
      // stage 2 is tried again after 5 s, 10 s, 20 s…
      tag.onerror = () => {
        tag.remove();
        idle();
        setTimeout(work, (wait *= 2));
      };
      d.head.append(tag);
    }
  };
  // Every signup is written ahead to localStorage, so that none is lost
  // when stage 2 cannot load or the page goes away before stage 2 took it:
  // `growsumo_q<id>` = [pk, when, data with its `_id`, the stored referral's
  // partner key and xid (the cookie, else its localStorage mirror)]. Stage 2
  // removes it once its outbox holds the signup (the same event id), and
  // sends those no page took (see core.js). None without consent (refused
  // on this page, GPC, or a key that requires it: `_no`), and at most 50
  // waiting (a page calling createSignup in a loop cannot fill the site's
  // storage). `data._id` says it was written.
  const stored = (name) => decodeURIComponent(d.cookie.match("(^|; )" + name + "=([^;]*)")?.[2] || "") || ls[name];
  const keep = (data) => {
    try {
      const c = s.c || {};
      const id = (Math.random() + "" + Date.now()).slice(2);
      data._no = refused || (!ls.growsumo_consent && (c.require_consent || (c.honor_gpc != false && navigator.globalPrivacyControl)));
      // (50 entries split the storage keys into 51 parts.)
      if (!data._no && !(Object.keys(ls) + "").split("growsumo_q")[50]) {
        ls["growsumo_q" + id] = JSON.stringify([s.p, Date.now(), { ...data, _id: id }, stored("growSumoPartnerKey"), stored("gsxid")]);
        data._id = id;
      }
    } catch {}
    return data;
  };
  const push = (...item) => {
    q.push(item);
    work();
  };
  // Whether a URL carries a partner link: PartnerStack's parameters, or one
  // of the key's aliases.
  const linked = (href) => {
    const query = new URL(href).searchParams;
    return ["ps_partner_key", "gspk", ...(s.c?.params || []).map((p) => p.name)].some((n) => query.get(n));
  };
  // A copy of growsumo.data as strings: the page may change it meanwhile.
  const snapshot = () => {
    const data = {};
    for (const k in gs.data) data[k] = (gs.data[k] ?? "") + "";
    return data;
  };
  gs = w.growsumo = {
    _q: q,
    _s: s,
    data: { name: "", email: "", customer_key: "", partner_key: "", provider_key: "", xid: "" },
    _initialize(key, options) {
      try {
        s.p = key + "";
        if (options?.collector) s.b = at(options.collector + "");
        q.push(["i"]);
        // The embed code calls growsumoInit() right after this: held until
        // growsumo.data holds the referral, as with PartnerStack's script.
        const init = w.growsumoInit;
        if (typeof init == "function")
          w.growsumoInit = () => {
            w.growsumoInit = init;
            state == 1 ? init() : q.push(["g", init]);
          };
        // The key's settings decide (a referral the server cookie keeps, an
        // alias in the URL), and are kept for the session.
        const name = "growsumo_cfg_" + s.p;
        const decide = (c) => {
          // Only a real answer is the key's settings: stage 2 asks again
          // (and applies its defaults) after a failure.
          if (c.params) {
            s.c = c;
            try {
              ss[name] = JSON.stringify(c);
            } catch {}
          }
          if (c.referral || linked(s.l)) work();
          else if (!state) idle();
        };
        // A referral or unsent events an earlier page left in this browser:
        // the referral's cookie or its localStorage mirror, outbox entries
        // (`growsumo_ev_…`, `_outbox`), a kept landing, a drop count, kept
        // signups (the cookies and the storage keys, in one string).
        if (/(^|[ ,])(growSumoPartnerKey|growsumo_[eoldq])/.test(d.cookie + "," + Object.keys(ls || {})) || linked(s.l)) work();
        else {
          // (Settings kept while a referral was stored, and none is now: this
        // browser's storage was wiped, so the collector is asked to restore.)
        const kept = JSON.parse(ss?.getItem(name) || 0);
          // The first page view of a session asks (and asks the collector
          // to restore a referral its server cookie keeps); none when it
          // does not answer within 3 s: the page is never held up.
          kept && !kept.s ? decide(kept) : fetch(s.b + "config?restore=1&pk=" + s.p, { credentials: "include", signal: AbortSignal.timeout?.(3e3) })
            .then((r) => r.json())
            .catch(() => ({}))
            .then(decide);
        }
      } catch {
        // (A sandboxed frame refuses `document.cookie`: nothing to do.)
        idle();
      }
    },
    createSignup(cb) {
      try {
        push("s", keep(snapshot()), cb);
      } catch {}
    },
    // A refusal is remembered for the page: no signup is written ahead
    // after it (stage 2 runs the queue in order).
    consent: (granted) => push("c", !(refused = !granted)),
  };
  // A single-page app's navigation to a partner link is a landing too:
  // pushState, replaceState, back and forward change the Navigation API's
  // current entry (Baseline 2026: Chromium 102, Safari 26.2, Firefox 147;
  // older browsers see only the landing a page loads with, which is where
  // partner links from other sites arrive).
  w.navigation?.addEventListener("currententrychange", () => s.p && linked(loc.href) && push("v", loc.href));
  // A signup form in use is work: stage 2 loads while the visitor types, so
  // it is ready when the form is sent (a submit that navigates at once
  // leaves no time to load it then).
  d.addEventListener("focusin", (e) => e.target.form?.dataset?.growsumoSignup != null && s.p && work());
  // A form marked `data-growsumo-signup` sends a signup when submitted: one
  // capture-phase listener sees every submit before the page's handlers; it
  // never cancels nor re-submits the form. `data-growsumo-email`, `-name`
  // and `-customer-key` name the fields when the defaults miss.
  d.addEventListener(
    "submit",
    (e) => {
      try {
        const form = e.target;
        const marks = form.dataset;
        const value = (mark, fallback) =>
          (form.elements[marks["growsumo" + mark]] || (fallback && form.querySelector(fallback)))?.value || "";
        if (marks.growsumoSignup != null) {
          const data = snapshot();
          data.email = value("Email", "[type=email],[name*=email i]");
          data.name = value("Name", "[autocomplete=name],[name=name]");
          data.customer_key = value("CustomerKey") || data.email;
          push("s", keep(data));
        }
      } catch {}
    },
    true,
  );
})(window, document);
