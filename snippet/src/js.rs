//! Small helpers over JS objects, shared by the snippet's modules.

use alloc::string::String;
use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// `obj[key] = value`, ignoring failure (a plain object never refuses).
pub fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

/// `obj[key]`, or `undefined`.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
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
pub fn get_or_new(obj: &JsValue, key: &str) -> Object {
    let value = get(obj, key);
    if value.is_object() {
        value.into()
    } else {
        let new = Object::new();
        set(obj, key, &new);
        new
    }
}

/// `obj.method(...args)`, or `undefined` when the method is missing or throws.
/// Used for browser APIs called once (canvas, WebGL): a web-sys binding per
/// method would add glue to the snippet for each.
pub fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> JsValue {
    let args: Array = args.iter().collect();
    get(obj, method)
        .dyn_into::<Function>()
        .ok()
        .and_then(|f| f.apply(obj, &args).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

/// Lowercase hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = alloc::vec::Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(HEX[(b >> 4) as usize]);
        hex.push(HEX[(b & 15) as usize]);
    }
    String::from_utf8(hex).unwrap_or_default()
}

/// `value` if it is an array, else an empty one (`Array.from` would throw
/// on `undefined`).
pub fn array(value: JsValue) -> Array {
    value.dyn_into().unwrap_or_default()
}
