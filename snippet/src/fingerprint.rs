//! The visitor fingerprint: a hash of signals that are stable for one browser
//! profile and differ between browsers. The collector uses it last, to credit
//! a signup to a recent click when every stored referral is gone (cleared
//! cookies and storage). It is computed only with consent, and only the hash
//! leaves the page, never the signals.
//!
//! Signals, and why each:
//! - `navigator.userAgent`: browser, version and OS.
//! - `navigator.languages`: the user's language preferences.
//! - the time zone (`Intl`) and the current UTC offset: where the device is set.
//! - `screen` width, height, available area and colour depth, and
//!   `devicePixelRatio`: the display.
//! - the browser window's outer size: the same in every tab and after a
//!   reload, and it tells apart identical machines (headless browsers report
//!   one fixed screen whatever their window). A visitor who resizes the
//!   window between click and signup loses only this last-resort match.
//! - `navigator.hardwareConcurrency`, `deviceMemory`, `platform`,
//!   `maxTouchPoints`: the device class.
//! - a canvas probe (text, an emoji and a shape drawn on a 2D canvas): fonts,
//!   anti-aliasing and the graphics stack render it slightly differently.
//! - the WebGL renderer string: the GPU, or the software renderer.
//!
//! Left out on purpose: the page's inner size (changes with toolbars, zoom
//! and developer tools), plugins and mime types (fixed lists in modern browsers), and the IP address
//! (changes between networks; the collector does not use it).
//!
//! The hash is FNV-1a over the signals' JSON with a 64-bit finaliser,
//! hand-written: a hashing crate would cost the snippet more than the signals.

use crate::js::{call, get, hex};
use alloc::string::String;
use js_sys::JSON;
use wasm_bindgen::JsValue;
use web_sys::Window;

struct Hash(u64);

impl Hash {
    fn add(&mut self, value: &JsValue) {
        let text = JSON::stringify(value)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default();
        // A separator after each signal, so ("ab", "c") and ("a", "bc") differ.
        for b in text.bytes().chain(core::iter::once(0)) {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// splitmix64's finaliser: every input bit moves every output bit.
    fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The fingerprint of this browser, as 16 hex digits.
pub fn compute(window: &Window) -> String {
    let mut hash = Hash(0xcbf2_9ce4_8422_2325);
    let navigator = get(window, "navigator");
    for name in [
        "userAgent",
        "languages",
        "hardwareConcurrency",
        "deviceMemory",
        "platform",
        "maxTouchPoints",
    ] {
        hash.add(&get(&navigator, name));
    }
    let screen = get(window, "screen");
    for name in ["width", "height", "availWidth", "availHeight", "colorDepth"] {
        hash.add(&get(&screen, name));
    }
    for name in ["devicePixelRatio", "outerWidth", "outerHeight"] {
        hash.add(&get(window, name));
    }
    // `Intl.DateTimeFormat().resolvedOptions()` through Reflect: js-sys's typed
    // Intl bindings cost the wasm about 5 KB of option conversions.
    let format = call(&get(window, "Intl"), "DateTimeFormat", &[]);
    hash.add(&get(&call(&format, "resolvedOptions", &[]), "timeZone"));
    hash.add(&js_sys::Date::new_0().get_timezone_offset().into());
    if let Some(document) = window.document() {
        hash.add(&canvas(&document));
        hash.add(&webgl_renderer(&document));
    }
    hex(&hash.finish().to_be_bytes())
}

fn new_canvas(document: &web_sys::Document) -> JsValue {
    call(document, "createElement", &["canvas".into()])
}

/// A 2D canvas drawing, as a data URL.
fn canvas(document: &web_sys::Document) -> JsValue {
    let canvas = new_canvas(document);
    let ctx = call(&canvas, "getContext", &["2d".into()]);
    if ctx.is_object() {
        crate::js::set(&ctx, "font", &"15px Arial".into());
        crate::js::set(&ctx, "fillStyle", &"#f60".into());
        call(&ctx, "fillRect", &[90.into(), 2.into(), 50.into(), 20.into()]);
        crate::js::set(&ctx, "fillStyle", &"rgba(0,90,200,0.7)".into());
        call(
            &ctx,
            "fillText",
            &["growsumo \u{1f91d} 3.14".into(), 4.into(), 17.into()],
        );
    }
    call(&canvas, "toDataURL", &[])
}

/// The WebGL renderer: the unmasked one where the browser exposes it.
fn webgl_renderer(document: &web_sys::Document) -> JsValue {
    const RENDERER: u32 = 0x1f01;
    let gl = call(&new_canvas(document), "getContext", &["webgl".into()]);
    if !gl.is_object() {
        return JsValue::NULL;
    }
    let info = call(&gl, "getExtension", &["WEBGL_debug_renderer_info".into()]);
    let name = match get(&info, "UNMASKED_RENDERER_WEBGL").as_f64() {
        Some(unmasked) => unmasked,
        None => RENDERER as f64,
    };
    call(&gl, "getParameter", &[name.into()])
}
