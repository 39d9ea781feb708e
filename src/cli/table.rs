//! Terminal tables, one style for every listing.

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};

pub fn new(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}
