//! The visitor fingerprint: a hash of signals that are stable for one browser
//! profile and differ between browsers. The collector uses it last, to credit
//! a signup to a recent click when every stored referral is gone (cleared
//! cookies and storage). It is computed only with consent, and only the hash
//! leaves the page, never the signals.
//!
//! Signals, and why each (gathered by `core.js`'s `H.F`, which returns
//! each one's JSON followed by a NUL, so ("ab", "c") and ("a", "bc") differ;
//! the order and encoding are the hash's, kept from the first version so a
//! click's fingerprint still matches a signup's across snippet versions):
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
//! The hash is FNV-1a over those bytes with a 64-bit finaliser, hand-written:
//! a hashing crate would cost the snippet more than the signals.

use crate::js::{hex, signals};
use alloc::string::String;

/// The fingerprint of this browser, as 16 hex digits.
pub fn compute() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in signals().bytes() {
        hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser: every input bit moves every output bit.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hex(&(hash ^ (hash >> 31)).to_be_bytes())
}
