// growsumo, stage 1: what every page view runs, served at `/v1/` (hand-written
// to stay near 1 KB minified and gzipped: every visitor of every merchant
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
  let state = 0; // 0 deciding, 1 nothing to do, 2 stage 2 loading or running
  let last = 0; // the place of the newest kept signup
  let wait = 2500; // before stage 2 is tried again, doubling
  // No stage 2 (nothing to do, or it could not load): the page's
  // growsumoInit runs now; `rest` has the other queued items.
  const idle = (rest) => {
    state = 1;
    for (const item of q.splice(0)) item[0] == "g" ? item[1]() : rest(item);
  };
  const work = () => {
    if (state < 2) {
      state = 2;
      const tag = d.createElement("script");
      tag.src = s.b + "__CORE_FILE__";
      // Stage 2 unreachable (the collector down, the network): the page's
      // growsumoInit runs, queued signups wait in the outbox (`keep`), and
      // stage 2 is tried again after 5 s, 10 s, 20 s…
      tag.onerror = () => {
        tag.remove();
        idle((item) => (item[0] == "s" ? keep(item[1], item[2]) : q.push(item)));
        setTimeout(work, (wait *= 2));
      };
      d.head.append(tag);
    }
  };
  // A signup kept for stage 2 to send, as it keeps them: an outbox entry
  // `growsumo_ev_<id>` = {pk, s (its place), e (the event)}, the 50 newest
  // kept, the others counted in `growsumo_dropped`; none without consent
  // (a consent refused later on this page: stage 2 discards the outbox).
  // The callback hears `queued` (or `consent_denied`), as from stage 2.
  const keep = (data, cb) => {
    const c = s.c || {};
    const e = { id: (Math.random() + "" + Date.now()).slice(2), type: "signup", ts: Date.now() };
    for (const k in data) if (data[k]) e[k] = data[k];
    let answer;
    try {
      // The referral an earlier landing stored, as stage 2 would fill it.
      for (const [name, field] of [["growSumoPartnerKey", "partner_key"], ["gsxid", "xid"]])
        e[field] ||= decodeURIComponent(d.cookie.match("(^|; )" + name + "=([^;]*)")?.[2] || "") || ls[name] || undefined;
      const refused =
        q.some((i) => i[0] == "c" && !i[1]) || (!ls.growsumo_consent && (c.require_consent || (c.honor_gpc != false && navigator.globalPrivacyControl)));
      if (!refused) {
        // Places strictly increase, as stage 2 makes them: signups kept in
        // one millisecond keep their order.
        last = Math.max(Date.now(), last + 1e-3);
        ls["growsumo_ev_" + e.id] = JSON.stringify({ pk: s.p, s: last, e });
        const all = Object.keys(ls)
          .filter((k) => k.startsWith("growsumo_ev_"))
          .map((k) => [JSON.parse(ls[k]).s, k])
          .sort((a, b) => a[0] - b[0]);
        while (all.length > 50) {
          delete ls[all.shift()[1]];
          ls.growsumo_dropped = +(ls.growsumo_dropped || 0) + 1;
        }
      }
      answer = [null, { id: e.id, status: refused ? "consent_denied" : "queued" }];
    } catch {
      answer = [Error("growsumo: the signup could not be kept")];
    }
    try {
      cb(...answer);
    } catch {}
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
          if (c.params) s.c = c;
          try {
            if (c.params && !c.referral) ss.setItem(name, JSON.stringify(c));
          } catch {}
          if (c.referral || linked(s.l)) work();
          else if (!state) idle((item) => q.push(item));
        };
        // A referral or unsent events an earlier page left in this browser:
        // the referral's cookie or its localStorage mirror, outbox entries
        // (`growsumo_ev_…`, `_outbox`), a kept landing, a drop count (the
        // cookies and the storage keys, in one string).
        if (/(^|[ ,])(growSumoPartnerKey|growsumo_[eold])/.test(d.cookie + "," + Object.keys(ls || {})) || linked(s.l)) work();
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
        idle((item) => q.push(item));
      }
    },
    createSignup: (cb) => push("s", snapshot(), cb),
    consent: (granted) => push("c", !!granted),
  };
  // The page goes away before stage 2 took the queue (a form that calls
  // createSignup and navigates at once): its signups wait in the outbox.
  w.addEventListener("pagehide", () => {
    if (q.push == [].push) for (const item of q.splice(0)) item[0] == "s" ? keep(item[1], item[2]) : q.push(item);
  });
  // A single-page app's navigation to a partner link is a landing too.
  const moved = () => s.p && linked(loc.href) && push("v", loc.href);
  for (const name of ["pushState", "replaceState"]) {
    const original = history[name];
    history[name] = function () {
      const result = original.apply(this, arguments);
      moved(); // cannot throw: parses the URL the browser holds
      return result;
    };
  }
  w.addEventListener("popstate", moved);
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
          data.email = value("Email", "input[type=email],input[name*=email i]");
          data.name = value("Name", "input[autocomplete=name],input[name=name]");
          data.customer_key = value("CustomerKey") || data.email;
          push("s", data);
        }
      } catch {}
    },
    true,
  );
})(window, document);
