//! What every figure of this project shares: the font its text is drawn with.
//!
//! plotters measures (SVG) and draws (PNG) text with fonts registered through its
//! `ab_glyph` feature. Cargo unifies features across the workspace, so once one crate
//! draws PNGs (`analysis`) every crate's plotters has that feature, and a crate that
//! registered no font (`training`'s `curves.svg`) would fail with "FontUnavailable".
//! Each crate that draws calls [`register_font`] first; the font is embedded, so figures
//! look the same on machines without fonts.

use std::sync::Once;

use plotters::style::FontStyle;

/// The font family name figures ask for.
pub const FONT: &str = "sans-serif";

/// DejaVu Sans (`assets/`, with its licence).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font as [`FONT`] (once per process; later calls do nothing).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a constant of the build and parses (the tests of both drawing crates
        // draw text with it), so the result carries no information at run time.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}
