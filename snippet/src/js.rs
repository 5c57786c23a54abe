//! Small helpers over JS objects, shared by the snippet's modules.

use alloc::string::String;
use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

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
