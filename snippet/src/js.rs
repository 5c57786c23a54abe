//! The snippet's whole interface to the browser: a few hand-written imports.
//!
//! Most are helpers `core.js` defines in `H`, a variable of the function
//! the build wraps around it and wasm-bindgen's glue (so the glue's shims
//! find it, and the page cannot see or replace it). Each helper catches its
//! own errors (blocked storage, a sandboxed frame's cookies, a throwing
//! callback) and checks that what it answers as a string is one (a page may
//! wrap `document.cookie`, `Storage` or `JSON`), so no import throws and no
//! call needs wasm-bindgen's `catch` shims. This replaces js-sys and web-sys, which cost the wasm about 6 KB
//! (their global-object lookup, lazy statics, formatting reached through
//! `RefCell`, a JSPI export) and the glue a shim per method.

use alloc::string::String;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `obj[key]`, or `undefined` (also when `obj` is null or undefined).
    #[wasm_bindgen(js_namespace = H, js_name = g)]
    pub fn get(obj: &JsValue, key: &str) -> JsValue;
    /// `array[index]`.
    #[wasm_bindgen(js_namespace = H, js_name = i)]
    pub fn item(array: &JsValue, index: u32) -> JsValue;
    /// The number of items of `array`, 0 when it is not an `Array` (an
    /// answer's `{"length": 4294967295}` is not walked).
    #[wasm_bindgen(js_namespace = H, js_name = A)]
    pub fn len(array: &JsValue) -> u32;
    /// `obj[key] = value`, ignoring failure.
    #[wasm_bindgen(js_namespace = H, js_name = s)]
    pub fn set(obj: &JsValue, key: &str, value: &JsValue);
    /// `delete obj[key]`.
    #[wasm_bindgen(js_namespace = H, js_name = d)]
    pub fn delete(obj: &JsValue, key: &str);
    /// A new `{}`.
    #[wasm_bindgen(js_namespace = H, js_name = o)]
    pub fn object() -> JsValue;
    /// A new `[]`.
    #[wasm_bindgen(js_namespace = H, js_name = a)]
    pub fn new_array() -> JsValue;
    /// `array.push(value)`.
    #[wasm_bindgen(js_namespace = H, js_name = p)]
    pub fn push(array: &JsValue, value: &JsValue);
    /// `array.shift()`.
    #[wasm_bindgen(js_namespace = H, js_name = f)]
    pub fn shift(array: &JsValue) -> JsValue;
    /// `obj[key](a, b)`, or `undefined` when it is not a function or throws
    /// (a page's throwing callback is its own error).
    #[wasm_bindgen(js_namespace = H, js_name = c)]
    pub fn call(obj: &JsValue, key: &str, a: &JsValue, b: &JsValue) -> JsValue;
    /// `JSON.stringify(value)`, or "" (undefined, a cycle).
    #[wasm_bindgen(js_namespace = H, js_name = j)]
    pub fn stringify(value: &JsValue) -> String;
    /// `JSON.parse(text)`, or `undefined` when it is not JSON.
    #[wasm_bindgen(js_namespace = H, js_name = J)]
    pub fn parse(text: &str) -> JsValue;
    /// `decodeURIComponent(text)`, or "" when it is malformed.
    #[wasm_bindgen(js_namespace = H, js_name = u)]
    pub fn decode_uri(text: &str) -> String;
    /// `document.cookie`, "" when the page may not read it.
    #[wasm_bindgen(js_namespace = H, js_name = k)]
    pub fn cookies() -> String;
    /// `document.cookie = cookie`.
    #[wasm_bindgen(js_namespace = H, js_name = K)]
    pub fn set_cookie(cookie: &str);
    /// `localStorage.getItem(key)`; `None` also when storage is unavailable.
    #[wasm_bindgen(js_namespace = H, js_name = l)]
    pub fn storage_get(key: &str) -> Option<String>;
    /// `localStorage.setItem(key, value)`; false when refused (quota,
    /// blocked storage).
    #[wasm_bindgen(js_namespace = H, js_name = L)]
    pub fn storage_set(key: &str, value: &str) -> bool;
    /// `localStorage.removeItem(key)`.
    #[wasm_bindgen(js_namespace = H, js_name = r)]
    pub fn storage_remove(key: &str);
    /// localStorage's keys as an array, or `undefined` when the page may
    /// not use it.
    #[wasm_bindgen(js_namespace = H, js_name = n)]
    pub fn storage_keys() -> JsValue;
    /// `location.hostname`.
    #[wasm_bindgen(js_namespace = H, js_name = h)]
    pub fn hostname() -> String;
    /// Whether the page is served over https.
    #[wasm_bindgen(js_namespace = H, js_name = S)]
    pub fn https() -> bool;
    /// An `Error` with `message`, and a `field` property when not empty.
    #[wasm_bindgen(js_namespace = H, js_name = e)]
    pub fn error(message: &str, field: &str) -> JsValue;
    /// The fingerprint's signals, each as JSON followed by a NUL (see
    /// `fingerprint`).
    #[wasm_bindgen(js_namespace = H, js_name = F)]
    pub fn signals() -> String;

    /// `encodeURIComponent`: never throws on a Rust string (no lone surrogates).
    #[wasm_bindgen(js_namespace = H, js_name = U)]
    pub fn encode_uri(text: &str) -> String;
    /// The number as JS writes it: Rust's number formatting costs the wasm bytes.
    #[wasm_bindgen(js_namespace = H, js_name = N)]
    pub fn number(n: f64) -> String;
    /// `parseFloat`: Rust's float parsing costs the wasm kilobytes.
    #[wasm_bindgen(js_name = parseFloat)]
    pub fn parse_float(text: &str) -> f64;
    #[wasm_bindgen(js_namespace = Date)]
    pub fn now() -> f64;
}

/// `obj[key]` as a string, or "" when it is missing or not a string.
pub fn get_str(obj: &JsValue, key: &str) -> String {
    get(obj, key).as_string().unwrap_or_default()
}

/// `obj[key]` as a number, or 0.
pub fn get_num(obj: &JsValue, key: &str) -> f64 {
    get(obj, key).as_f64().unwrap_or(0.0)
}

/// `obj[key]`, creating it as `{}` when missing.
pub fn get_or_new(obj: &JsValue, key: &str) -> JsValue {
    let value = get(obj, key);
    if value.is_object() {
        value
    } else {
        let new = object();
        set(obj, key, &new);
        new
    }
}

/// The items of `array`, in order.
pub fn items(array: &JsValue) -> impl Iterator<Item = JsValue> + '_ {
    (0..len(array)).map(move |i| item(array, i))
}

/// Lowercase hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(HEX[(b >> 4) as usize] as char);
        hex.push(HEX[(b & 15) as usize] as char);
    }
    hex
}
