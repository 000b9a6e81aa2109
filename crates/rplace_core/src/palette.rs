//! The official r/place 2022 palette: 32 colors, indexed as in the official data and the original
//! project; 2023 uses the same 32 colors (read by hex value), 2017 its own 16 (see
//! `csv_rows::Format`). Palette indices are what every other module stores and returns.

/// Number of palette colors.
pub const N_COLORS: usize = 32;

/// Index of white, the color of a fresh canvas.
pub const WHITE: u8 = 31;

/// Not a palette color: marks window cells that fall outside the canvas.
pub const OUTSIDE: u8 = 32;

/// The palette as `0xRRGGBB`, in palette order.
pub const PALETTE_HEX: [u32; N_COLORS] = [
    0x6D001A, 0xBE0039, 0xFF4500, 0xFFA800, 0xFFD635, 0xFFF8B8, 0x00A368, 0x00CC78, //
    0x7EED56, 0x00756F, 0x009EAA, 0x00CCC0, 0x2450A4, 0x3690EA, 0x51E9F4, 0x493AC1, //
    0x6A5CFF, 0x94B3FF, 0x811E9F, 0xB44AC0, 0xE4ABFF, 0xDE107F, 0xFF3881, 0xFF99AA, //
    0x6D482F, 0x9C6926, 0xFFB470, 0x000000, 0x515252, 0x898D90, 0xD4D7D9, 0xFFFFFF,
];

/// The stage of the 2022 event in which each color became available: 0 at the start (16 colors),
/// 1 after the first expansion (24 colors), 2 after the second (all 32).
pub const PALETTE_STAGE: [u8; N_COLORS] = [
    2, 1, 0, 0, 0, 2, 0, 1, //
    0, 1, 1, 2, 0, 0, 0, 1, //
    1, 2, 0, 0, 2, 2, 1, 0, //
    1, 0, 2, 0, 2, 0, 0, 0,
];

/// The official r/place 2017 palette: 16 colors, indexed as in the 2017 files (0 is white).
pub const PALETTE_2017_HEX: [u32; 16] = [
    0xFFFFFF, 0xE4E4E4, 0x888888, 0x222222, 0xFFA7D1, 0xE50000, 0xE59500, 0xA06A42, //
    0xE5D900, 0x94E044, 0x02BE01, 0x00E5F0, 0x0083C7, 0x0000EA, 0xE04AFF, 0x820080,
];

/// `#RRGGBB` (upper case) of a color value `0xRRGGBB`.
pub fn hex_of(value: u32) -> String {
    format!("#{value:06X}")
}

/// RGB triple of a palette index.
pub const fn rgb(index: u8) -> [u8; 3] {
    let hex = PALETTE_HEX[index as usize];
    [(hex >> 16) as u8, (hex >> 8) as u8, hex as u8]
}

/// The 32 RGB triples in palette order.
pub const PALETTE_RGB: [[u8; 3]; N_COLORS] = {
    let mut out = [[0u8; 3]; N_COLORS];
    let mut i = 0;
    while i < N_COLORS {
        out[i] = rgb(i as u8);
        i += 1;
    }
    out
};

/// Palette index of a `#RRGGBB` string (either case), or `None` when it is not a 2022 color.
pub fn parse_hex_color(text: &[u8]) -> Option<u8> {
    if text.len() != 7 || text[0] != b'#' {
        return None;
    }
    let mut value = 0u32;
    for &digit in &text[1..] {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        value = value << 4 | nibble as u32;
    }
    // Once per row: a binary search over the colors sorted by value.
    BY_VALUE.binary_search_by_key(&value, |&(hex, _)| hex).ok().map(|i| BY_VALUE[i].1)
}

/// (0xRRGGBB, palette index), sorted by color value.
const BY_VALUE: [(u32, u8); N_COLORS] = {
    let mut table = [(0u32, 0u8); N_COLORS];
    let mut i = 0;
    while i < N_COLORS {
        table[i] = (PALETTE_HEX[i], i as u8);
        i += 1;
    }
    // Insertion sort: const evaluation, 32 entries.
    let mut j = 1;
    while j < N_COLORS {
        let mut k = j;
        while k > 0 && table[k - 1].0 > table[k].0 {
            let swap = table[k - 1];
            table[k - 1] = table[k];
            table[k] = swap;
            k -= 1;
        }
        j += 1;
    }
    table
};

/// `#RRGGBB` (upper case, as in the official files) of a palette index.
pub fn hex_string(index: u8) -> String {
    hex_of(PALETTE_HEX[index as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_for_every_color() {
        for i in 0..N_COLORS as u8 {
            assert_eq!(parse_hex_color(hex_string(i).as_bytes()), Some(i));
            assert_eq!(parse_hex_color(hex_string(i).to_lowercase().as_bytes()), Some(i));
        }
    }

    #[test]
    fn rejects_colors_outside_the_palette() {
        assert_eq!(parse_hex_color(b"#FF4501"), None);
        assert_eq!(parse_hex_color(b"FF4500"), None);
        assert_eq!(parse_hex_color(b"#FF450"), None);
        assert_eq!(parse_hex_color(b"#GG4500"), None);
    }

    #[test]
    fn stages_grow_16_24_32() {
        let count = |stage| PALETTE_STAGE.iter().filter(|&&s| s <= stage).count();
        assert_eq!((count(0), count(1), count(2)), (16, 24, 32));
        assert_eq!(PALETTE_STAGE[WHITE as usize], 0);
        assert_eq!(PALETTE_RGB[2], [0xFF, 0x45, 0x00]);
    }
}
