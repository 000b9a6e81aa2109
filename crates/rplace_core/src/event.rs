//! One pixel placement, packed into 16 bytes: the ingest holds every event of the history in
//! memory while it sorts them, so the record size is the memory budget (160 M events of 2022).

/// A pixel placement. Coordinates are stored pixels (x 0..4096, y 0..2048), `color` a palette index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Event {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    pub user_id: u32,
    /// x: bits 0..12, y: bits 12..23, color: bits 23..28, moderation: bit 28.
    packed: u32,
}

impl Event {
    pub fn new(timestamp_ms: i64, user_id: u32, x: u16, y: u16, color: u8, moderation: bool) -> Self {
        debug_assert!(x < 4096 && y < 2048 && color < 32);
        let packed = x as u32 | (y as u32) << 12 | (color as u32) << 23 | (moderation as u32) << 28;
        Event { timestamp_ms, user_id, packed }
    }

    pub fn x(&self) -> u16 {
        (self.packed & 0xFFF) as u16
    }

    pub fn y(&self) -> u16 {
        (self.packed >> 12 & 0x7FF) as u16
    }

    pub fn color(&self) -> u8 {
        (self.packed >> 23 & 0x1F) as u8
    }

    /// Placed by a moderation rectangle rather than by a user's click.
    pub fn moderation(&self) -> bool {
        self.packed >> 28 & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_extremes() {
        for (x, y, color, moderation) in [(0, 0, 0, false), (1999, 1999, 31, true), (2999, 2047, 17, false), (4095, 5, 31, true)] {
            let event = Event::new(-5, u32::MAX, x, y, color, moderation);
            assert_eq!((event.x(), event.y(), event.color(), event.moderation()), (x, y, color, moderation));
            assert_eq!((event.timestamp_ms, event.user_id), (-5, u32::MAX));
        }
        assert_eq!(std::mem::size_of::<Event>(), 16);
    }
}
