//! Synthetic r/place histories in the official CSV formats (2022 by default; 2023 and 2017 with
//! their own canvas, palette and format, see `Year`): realistic enough to exercise every
//! reader, index and model of the project without the 12 GB official file, and byte for byte the
//! same for the same seed, whatever the number of threads.
//!
//! # What the synthetic history models
//!
//! - **Time**: 2022-04-01 12:44:10 to 2022-04-04 22:47:30 UTC, like the event. The event rate
//!   follows a daily rhythm (busiest at 19:00 UTC) and doubles from start to end. Event times are
//!   monotone in generation order, in milliseconds; about 3 % of events share the millisecond of
//!   the one before (bursts), and dense files have many more ties.
//! - **Growth**: as in the event, about the first third of the time is stage 0 (a 1000×1000
//!   canvas, 16 colors), the second stage 1 (2000×1000 from 2022-04-02 16:24:56 UTC, 24 colors),
//!   the last stage 2 (2000×2000 from 2022-04-03 19:03:53 UTC, 32 colors). No event leaves the
//!   canvas or the palette of its time.
//! - **Users**: about one per 15 rows, the ratio of the real data. A few tenths of a percent are
//!   dedicated players who place as often as the cooldown allows (about 650 pixels each); after
//!   them activity falls off as a power law, so the median user places 3 pixels and about 30 %
//!   place one. Every user keeps the five-minute cooldown between placements.
//! - **Artworks**: procedural templates (three-band flags, discs, checkerboards, blocky letters)
//!   in rectangles of 8 to about 160 pixels a side, one per 25 000 rows (16 to 4000), born over
//!   time: half in stage 0, the others mostly in the area an expansion has just opened. Most
//!   events maintain an artwork chosen by size and popularity: the player looks at a few random
//!   pixels and paints the first one that differs from the template (the synthesizer keeps the
//!   current canvas for that), so artworks fill up and damage gets repaired.
//! - **Campaigns**: attacks (two for every three artworks) paint another template or the black
//!   void over part of an artwork for ten minutes to three hours; the owners' restoration of the
//!   template starts during the attack and outlasts it; a few contested hotspots are fought over
//!   by two templates until the end. Together they take up to half of the crowd's events.
//! - **Bots**: one account per 50 000 rows places a pixel for 6 to 36 hours as soon as the cooldown
//!   and a second or two allow, always its artwork's template color, on a wrong pixel if there is
//!   one.
//! - **Noise**: 4 % of events are a random color on a random pixel.
//! - **Moderation**: about one rectangle row `"x1,y1,x2,y2"` per 2 million rows (at least one from
//!   1000 rows on), 3 to 40 pixels a side, mostly white, often over an artwork.
//! - **Order**: like the official files, rows are only roughly in time order. Events are cut into
//!   blocks of 8192 rows; rows are shuffled within a block and blocks within each window of 16
//!   consecutive blocks. In a `.gz` file every block is its own gzip member, compressed in
//!   parallel.
//!
//! Memory stays bounded: the canvas (4 MB), 4 bytes per user and one window of rows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::random::Rng;
use flate2::{write::GzEncoder, Compression};
use rayon::prelude::*;

use crate::csv_rows::{circle_rows, Format};
use crate::error::{Context, Error, Result};
use crate::palette::{self, PALETTE_STAGE};
use crate::publish::Output;
use crate::timestamp::format_timestamp;

/// What to synthesize.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Data rows to write (the header not counted); at least 1.
    pub rows: u64,
    /// The same seed, row count and year give the same bytes.
    pub seed: u64,
    /// The r/place year whose format, canvas, palette and growth the history has.
    pub year: u16,
}

/// What a synthesized file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// Data rows written, moderation rows included.
    pub rows: u64,
    /// Pixel changes: one per pixel row plus the area of every moderation rectangle.
    pub events: u64,
    /// Distinct user hashes in the file.
    pub users: u64,
    pub moderation_rows: u64,
    /// Earliest and latest timestamp in the file, milliseconds since the Unix epoch (UTC).
    pub first_timestamp_ms: i64,
    pub last_timestamp_ms: i64,
}

/// The 2022 event: 2022-04-01 12:44:10 to 2022-04-04 22:47:30 UTC, in ms since the epoch.
const START_2022_MS: i64 = 1_648_817_050_000;
const END_2022_MS: i64 = 1_649_112_450_000;
/// One pixel per user every five minutes.
const COOLDOWN_MS: i64 = 300_000;
/// Rows shuffled together and compressed as one gzip member (about 1 MB of text).
const BLOCK_ROWS: usize = 8192;
/// Blocks shuffled together, and the unit of parallel compression.
const WINDOW_BLOCKS: usize = 16;
/// Fast compression: synthetic files are for tests and benchmarks, not for archives.
const GZIP_LEVEL: u32 = 1;
const NOISE_SHARE: f64 = 0.04;
/// Campaigns take at most this share of the crowd's events, however many run at once.
const MAX_CAMPAIGN_SHARE: f64 = 0.5;
/// Pixels a player (or a bot) inspects looking for one that differs from the template.
const CROWD_TRIES: u32 = 3;
const BOT_TRIES: u32 = 64;
/// Bots and moderators get user numbers far above any crowd user, so no two share a hash.
const BOT_USERS: u64 = 1 << 40;
const MODERATOR_USERS: u64 = 1 << 41;
/// Independent random streams: the plan does not change when the event draws do, and blocks
/// are shuffled by their own generators, so parallel encoding cannot change the bytes.
const PLAN_STREAM: u64 = 1;
const EVENT_STREAM: u64 = 2;
const BLOCK_STREAM: u64 = 3;
const WINDOW_STREAM: u64 = 4;
const USER_STREAM: u64 = 5;

/// 2022's palette indices ordered by the stage that introduced them.
const COLORS_BY_STAGE: [u8; palette::N_COLORS] = {
    let (mut out, mut n, mut stage) = ([0u8; palette::N_COLORS], 0, 0);
    while stage < 3 {
        let mut color = 0;
        while color < palette::N_COLORS {
            if PALETTE_STAGE[color] == stage {
                out[n] = color as u8;
                n += 1;
            }
            color += 1;
        }
        stage += 1;
    }
    out
};

/// A year of r/place as the synthetic history plays it: its time span, and from each moment on
/// the canvas open and the colors allowed.
struct Year {
    format: Format,
    start_ms: i64,
    end_ms: i64,
    /// In time order, the first from `start_ms`.
    stages: Vec<Stage>,
    /// Palette indices in the order the palette grew: a stage allows the first `colors`.
    colors_by_stage: Vec<u8>,
    black: u8,
    white: u8,
}

struct Stage {
    from_ms: i64,
    /// The canvas open.
    open: Rect,
    /// What this stage's expansion opened (None: only the palette grew).
    fresh: Option<Rect>,
    colors: usize,
}

impl Year {
    /// The event of `year`: 2017 (1000×1000 and 16 colors for 72 hours), 2022 (the canvas and the
    /// palette grew twice, together) and 2023 (the canvas grew six times, the palette three, from
    /// 8 colors).
    fn of(year: u16) -> Result<Year> {
        let format = Format::of_year(year).map_err(Error::Argument)?;
        let (start_ms, end_ms, palette_growth, colors_by_stage): (i64, i64, &[(i64, usize)], Vec<u8>) = match format {
            Format::Y2017 => (1_490_979_600_000, 1_491_238_800_000, &[(i64::MIN, 16)], (0..16).collect()),
            Format::Y2022 => {
                let grew = format.expansions();
                (START_2022_MS, END_2022_MS, &[(i64::MIN, 16), (grew[1].from_ms, 24), (grew[2].from_ms, 32)], COLORS_BY_STAGE.to_vec())
            }
            // 2023-07-20 13:00:26 to 07-25 21:44:00 UTC; 16 colors from 07-21 21:30:25, 24 from
            // 07-23 18:00:18, 32 from 07-24 17:33:38 (in 2022's order of growth: the order 2023's
            // colors came in is not modelled).
            Format::Y2023 => (
                1_689_858_026_000,
                1_690_321_440_000,
                &[(i64::MIN, 8), (1_689_975_025_000, 16), (1_690_135_218_000, 24), (1_690_220_018_000, 32)],
                COLORS_BY_STAGE.to_vec(),
            ),
        };
        let mut changes: Vec<i64> = format.expansions().iter().chain(std::iter::empty()).map(|e| e.from_ms).collect();
        changes.extend(palette_growth.iter().map(|&(from, _)| from));
        changes.retain(|&t| t > start_ms);
        changes.sort_unstable();
        changes.dedup();
        let box_at = |t: i64| {
            let e = format.expansions().iter().rev().find(|e| e.from_ms <= t).expect("the first expansion starts at i64::MIN");
            Rect { x: e.x0, y: e.y0, w: e.x1 - e.x0, h: e.y1 - e.y0 }
        };
        let colors_at = |t: i64| palette_growth.iter().rev().find(|&&(from, _)| from <= t).expect("the first starts at i64::MIN").1;
        let mut stages: Vec<Stage> = Vec::new();
        for from_ms in std::iter::once(start_ms).chain(changes) {
            let open = box_at(from_ms);
            let fresh = stages.last().and_then(|before: &Stage| open.beyond(before.open));
            stages.push(Stage { from_ms, open, fresh, colors: colors_at(from_ms) });
        }
        // The attackers' "black void": the darkest color of the first stage, so allowed throughout.
        let palette = format.palette();
        let brightness = |index: &&u8| {
            let hex = palette[**index as usize];
            (hex >> 16) + (hex >> 8 & 0xFF) + (hex & 0xFF)
        };
        let black = *colors_by_stage[..stages[0].colors].iter().min_by_key(brightness).expect("a stage has colors");
        Ok(Year { format, start_ms, end_ms, stages, colors_by_stage, black, white: format.white() })
    }

    fn span_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    fn stage_at(&self, t: i64) -> usize {
        self.stages.iter().rposition(|stage| t >= stage.from_ms).unwrap_or(0)
    }

    /// The canvas open in a stage or, with `fresh`, only the part its expansion opened (the
    /// whole open canvas for a stage that opened none).
    fn canvas(&self, stage: usize, fresh: bool) -> Rect {
        let stage = &self.stages[stage];
        stage.fresh.filter(|_| fresh).unwrap_or(stage.open)
    }

    fn random_color(&self, rng: &mut Rng, stage: usize) -> u8 {
        self.colors_by_stage[rng.below(self.stages[stage].colors as u64) as usize]
    }

    /// `N` different colors of a stage.
    fn distinct_colors<const N: usize>(&self, rng: &mut Rng, stage: usize) -> [u8; N] {
        let mut pool = self.colors_by_stage.clone();
        let mut out = [0; N];
        for i in 0..N {
            pool.swap(i, i + rng.below((self.stages[stage].colors - i) as u64) as usize);
            out[i] = pool[i];
        }
        out
    }
}

/// The most rows a history may have: the index numbers events with 32 bits (and moderation
/// rectangles add events beside the rows).
pub const MAX_ROWS: u64 = u32::MAX as u64 / 2;

/// Writes `options.rows` data rows (plus header) to `out`: gzip (multi-member) when the name ends
/// in `.gz` or `.gzip`, plain CSV otherwise. Writes to a staging file beside `out`, under its
/// lock, and renames it at the end (see [`crate::publish`]), so a failed, interrupted or killed
/// run leaves no `out`, and the next run removes what a killed one left. `should_stop` is called from the
/// calling thread every 8192 rows; when it returns true the staging file is removed
/// and the result is `Err(Error::Interrupted)`. `progress(rows_written)` is called after every
/// window of rows. Zero rows (a history without events has no time span) or more than
/// [`MAX_ROWS`] is an [`Error::Argument`].
pub fn synthesize(options: &SynthOptions, out: &Path, should_stop: &dyn Fn() -> bool, progress: &dyn Fn(u64)) -> Result<SynthSummary> {
    if options.rows == 0 || options.rows > MAX_ROWS {
        return Err(Error::Argument(format!("rows must be between 1 and {MAX_ROWS}, not {}", options.rows)));
    }
    let gzip = matches!(out.extension().and_then(|e| e.to_str()), Some("gz" | "gzip"));
    if out.is_dir() {
        return Err(Error::Argument(format!("{}: is a folder, not a file to write", out.display())));
    }
    let year = Year::of(options.year)?;
    let output = Output::begin(out, "synth")?;
    let staging = output.staging().to_path_buf();
    let mut writer = BufWriter::new(File::create(&staging).at(&staging)?);
    let header = format!("{}\n", year.format.header()).into_bytes();
    writer.write_all(&encode(header, gzip).at(&staging)?).at(&staging)?;

    let format = year.format;
    let mut simulation = Simulation::new(options, year);
    let mut first_block = 0;
    loop {
        let window = simulation.next_window(should_stop)?;
        if window.is_empty() {
            break;
        }
        let blocks = window.len() as u64;
        for member in encode_window(window, first_block, options.seed, format, gzip).at(&staging)? {
            writer.write_all(&member).at(&staging)?;
        }
        first_block += blocks;
        progress(simulation.summary.rows);
    }
    let file = writer.into_inner().map_err(|e| e.into_error()).at(&staging)?;
    file.sync_all().at(&staging)?;
    // Like any writer, synth replaces a file at `out`, but never a folder.
    output.commit(|found| {
        if found.is_dir() {
            Err(Error::Argument(format!("{}: is a folder, not a file to replace", found.display())))
        } else {
            Ok(())
        }
    })?;
    Ok(simulation.summary)
}

/// Shuffles the blocks of a window, the rows of each block, and formats and compresses the blocks
/// in parallel; returns them in output order.
fn encode_window(window: Vec<Vec<Row>>, first_block: u64, seed: u64, format: Format, gzip: bool) -> io::Result<Vec<Vec<u8>>> {
    let mut blocks: Vec<(u64, Vec<Row>)> = (first_block..).zip(window).collect();
    shuffle(&mut blocks, &mut Rng::new(seed, WINDOW_STREAM, first_block));
    blocks
        .into_par_iter()
        .map(|(block, mut rows)| {
            shuffle(&mut rows, &mut Rng::new(seed, BLOCK_STREAM, block));
            let mut text = Vec::with_capacity(rows.len() * 140);
            for row in &rows {
                row.write_csv(seed, format, &mut text)?;
            }
            encode(text, gzip)
        })
        .collect()
}

fn encode(text: Vec<u8>, gzip: bool) -> io::Result<Vec<u8>> {
    if !gzip {
        return Ok(text);
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 2), Compression::new(GZIP_LEVEL));
    encoder.write_all(&text)?;
    encoder.finish()
}

/// One CSV row: a pixel placement, a moderation rectangle or (2023) a moderation circle.
#[derive(Clone, Copy)]
struct Row {
    time_ms: i64,
    user: u64,
    color: u8,
    place: Place,
}

#[derive(Clone, Copy)]
enum Place {
    Pixel(u16, u16),
    /// A moderation rectangle, written as its inclusive corners `x1,y1,x2,y2`.
    Rectangle(Rect),
    /// A moderation circle (2023): centre and radius, `{X: x, Y: y, R: r}`.
    Circle(u16, u16, u16),
}

impl Row {
    /// The row in `format`'s columns, coordinates official.
    fn write_csv(&self, seed: u64, format: Format, out: &mut Vec<u8>) -> io::Result<()> {
        let canvas = format.canvas();
        let (ox, oy) = (canvas.origin_x, canvas.origin_y);
        let hash = user_hash(seed, self.user);
        match format {
            Format::Y2017 => {
                let Place::Pixel(x, y) = self.place else { unreachable!("2017 has no moderation rows") };
                // Reddit's 2017 file: epoch milliseconds, 28-character hashes, palette indices.
                write!(out, "{},", self.time_ms)?;
                out.extend_from_slice(&hash[..27]);
                writeln!(out, "=,{x},{y},{}", self.color)?;
            }
            Format::Y2022 | Format::Y2023 => {
                out.extend_from_slice(format_timestamp(self.time_ms).as_bytes());
                out.push(b',');
                out.extend_from_slice(&hash);
                let color = palette::hex_string(self.color);
                if format == Format::Y2022 {
                    write!(out, ",{color},\"")?;
                } else {
                    out.extend_from_slice(b",\"");
                }
                match self.place {
                    Place::Pixel(px, py) => write!(out, "{},{}", px as i32 + ox, py as i32 + oy)?,
                    Place::Rectangle(r) => write!(
                        out,
                        "{},{},{},{}",
                        r.x as i32 + ox,
                        r.y as i32 + oy,
                        (r.x + r.w - 1) as i32 + ox,
                        (r.y + r.h - 1) as i32 + oy
                    )?,
                    Place::Circle(cx, cy, r) => write!(out, "{{X: {}, Y: {}, R: {r}}}", cx as i32 + ox, cy as i32 + oy)?,
                }
                out.push(b'"');
                if format == Format::Y2023 {
                    write!(out, ",{color}")?;
                }
                out.push(b'\n');
            }
        }
        Ok(())
    }
}

/// The official user id is 88 characters of standard base64: 64 bytes, here pseudo-random bytes
/// derived from the seed and the user number.
fn user_hash(seed: u64, user: u64) -> [u8; 88] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = Rng::new(seed, USER_STREAM, user);
    let bytes: Vec<u8> = (0..8).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    let mut out = [b'='; 88];
    for (i, chunk) in bytes.chunks(3).enumerate() {
        let value = chunk.iter().enumerate().fold(0u32, |v, (j, &b)| v | (b as u32) << (16 - 8 * j));
        for j in 0..=chunk.len() {
            out[i * 4 + j] = ALPHABET[(value >> (18 - 6 * j) & 63) as usize];
        }
    }
    out
}

fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// Running sums of `weights`.
fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

/// Index into a cumulative weight table, with probability proportional to the weights.
fn pick_weighted(cumulative: &[f64], rng: &mut Rng) -> usize {
    let x = rng.unit() * cumulative[cumulative.len() - 1];
    cumulative.partition_point(|&c| c <= x).min(cumulative.len() - 1)
}

#[derive(Clone, Copy)]
struct Rect {
    x: u16,
    y: u16,
    w: u16,
    h: u16,
}

impl Rect {
    /// The part of this rectangle outside `before`, which it contains and passes on one side;
    /// None when they are the same.
    fn beyond(self, before: Rect) -> Option<Rect> {
        let (x1, y1, bx1, by1) = (self.x + self.w, self.y + self.h, before.x + before.w, before.y + before.h);
        if x1 > bx1 {
            Some(Rect { x: bx1, y: self.y, w: x1 - bx1, h: self.h })
        } else if self.x < before.x {
            Some(Rect { x: self.x, y: self.y, w: before.x - self.x, h: self.h })
        } else if y1 > by1 {
            Some(Rect { x: self.x, y: by1, w: self.w, h: y1 - by1 })
        } else if self.y < before.y {
            Some(Rect { x: self.x, y: self.y, w: self.w, h: before.y - self.y })
        } else {
            None
        }
    }

    /// A `w`×`h` rectangle (cut to fit) at a random place inside this one.
    fn random_inside(&self, rng: &mut Rng, w: u16, h: u16) -> Rect {
        let (w, h) = (w.clamp(1, self.w), h.clamp(1, self.h));
        let x = self.x + rng.below((self.w - w + 1) as u64) as u16;
        let y = self.y + rng.below((self.h - h + 1) as u64) as u16;
        Rect { x, y, w, h }
    }

    fn pixel(&self, rng: &mut Rng) -> (u16, u16) {
        let r = self.random_inside(rng, 1, 1);
        (r.x, r.y)
    }
}

/// 3×5 bitmaps of the letters R, P, L, A, C, E, O, K; bit 14 is the top-left pixel.
const FONT: [u16; 8] = [
    0b110_101_110_101_101,
    0b110_101_110_100_100,
    0b100_100_100_100_111,
    0b010_101_111_101_101,
    0b011_100_100_100_011,
    0b111_100_110_100_111,
    0b010_101_101_101_010,
    0b101_101_110_101_101,
];

#[derive(Clone, Copy)]
enum Template {
    Solid(u8),
    /// A flag: three bands across the width or the height.
    Stripes {
        colors: [u8; 3],
        vertical: bool,
    },
    Disc {
        colors: [u8; 2],
    },
    Checker {
        colors: [u8; 2],
        cell: u16,
    },
    /// Rows of four scaled blocky letters, repeated over the artwork.
    Text {
        colors: [u8; 2],
        letters: [u8; 4],
        scale: u16,
    },
}

impl Template {
    fn random(rng: &mut Rng, year: &Year, stage: usize) -> Template {
        match rng.below(4) {
            0 => Template::Stripes { colors: year.distinct_colors(rng, stage), vertical: rng.chance(0.5) },
            1 => Template::Disc { colors: year.distinct_colors(rng, stage) },
            2 => Template::Checker { colors: year.distinct_colors(rng, stage), cell: 1 + rng.below(6) as u16 },
            _ => Template::Text {
                colors: year.distinct_colors(rng, stage),
                letters: [0; 4].map(|_| rng.below(FONT.len() as u64) as u8),
                scale: 1 + rng.below(3) as u16,
            },
        }
    }
}

/// A template placed in a rectangle: what a community wants the canvas to show there.
#[derive(Clone, Copy)]
struct Artwork {
    rect: Rect,
    template: Template,
}

impl Artwork {
    fn color_at(&self, x: u16, y: u16) -> u8 {
        let Rect { w, h, .. } = self.rect;
        let (dx, dy) = (x - self.rect.x, y - self.rect.y);
        match self.template {
            Template::Solid(color) => color,
            Template::Stripes { colors, vertical } => {
                let (along, length) = if vertical { (dx, w) } else { (dy, h) };
                colors[along as usize * 3 / length as usize]
            }
            Template::Disc { colors } => {
                let (cx, cy, r) = (2 * dx as i32 + 1 - w as i32, 2 * dy as i32 + 1 - h as i32, w.min(h) as i32);
                colors[(cx * cx + cy * cy > r * r) as usize]
            }
            Template::Checker { colors, cell } => colors[((dx / cell + dy / cell) % 2) as usize],
            Template::Text { colors, letters, scale } => {
                let (column, line) = (dx / scale, dy / scale);
                let (gx, gy) = (column % 4, line % 6);
                let glyph = FONT[letters[(column / 4 % 4) as usize] as usize];
                let ink = gx < 3 && gy < 5 && glyph >> (14 - gy * 3 - gx) & 1 == 1;
                colors[!ink as usize]
            }
        }
    }
}

/// A crowd painting `design` over `area` from `start` to `end`: an attack, a restoration or one
/// side of a hotspot. `weight` is its share of all crowd events.
struct Campaign {
    area: Rect,
    design: Artwork,
    start: i64,
    end: i64,
    weight: f64,
}

struct Bot {
    user: u64,
    artwork: usize,
    start: i64,
    end: i64,
    placed: bool,
}

/// Everything decided before the first event: artworks (sorted by birth), campaigns (sorted by
/// start) and bots.
struct Plan {
    artworks: Vec<Artwork>,
    births: Vec<i64>,
    /// Cumulative popularity of the artworks, for weighted picks among the born ones.
    popularity: Vec<f64>,
    campaigns: Vec<Campaign>,
    bots: Vec<Bot>,
}

impl Plan {
    fn new(rows: u64, rng: &mut Rng, year: &Year) -> Plan {
        let (start_ms, end_ms, stages) = (year.start_ms, year.end_ms, year.stages.len());
        let count = (rows / 25_000).clamp(16, 4000) as usize;
        let mut artworks: Vec<(i64, Artwork, f64)> = (0..count)
            .map(|_| {
                // Half the artworks start in stage 0; the rest rush into each expansion.
                let later = 1 + rng.below(2 * (stages as u64 - 1).max(1)) as usize;
                let stage = if later >= stages { 0 } else { later };
                let stage_start = year.stages[stage].from_ms;
                let stage_end = year.stages.get(stage + 1).map_or(end_ms, |next| next.from_ms);
                let birth = stage_start + ((stage_end - stage_start) as f64 * rng.unit().powi(2)) as i64;
                let (side, aspect) = (8.0 + 150.0 * rng.unit().powi(3), (0.5 + rng.unit()).sqrt());
                let (w, h) = ((side * aspect) as u16, (side / aspect) as u16);
                let rect = year.canvas(stage, rng.chance(0.75)).random_inside(rng, w, h);
                let popularity = (rect.w as f64 * rect.h as f64) * (0.2 + 4.0 * rng.unit().powi(4));
                (birth, Artwork { rect, template: Template::random(rng, year, stage) }, popularity)
            })
            .collect();
        artworks.sort_by_key(|a| a.0);
        let births: Vec<i64> = artworks.iter().map(|a| a.0).collect();
        let popularity = cumulative(artworks.iter().map(|a| a.2));
        let artworks: Vec<Artwork> = artworks.into_iter().map(|a| a.1).collect();

        let mut campaigns = Vec::new();
        for _ in 0..count * 2 / 3 {
            let target = rng.below(count as u64) as usize;
            let start = births[target] + ((end_ms - births[target]) as f64 * rng.unit()) as i64;
            let length = 600_000 + (3.0 * 3_600_000.0 * rng.unit().powi(2)) as i64;
            let Rect { w, h, .. } = artworks[target].rect;
            let (w, h) = ((w as f64 * (0.3 + 0.7 * rng.unit())) as u16, (h as f64 * (0.3 + 0.7 * rng.unit())) as u16);
            let area = artworks[target].rect.random_inside(rng, w, h);
            let attacker = if rng.chance(0.5) { Template::Solid(year.black) } else { Template::random(rng, year, year.stage_at(start)) };
            let restoration_end = start + length + 1_200_000 + (4_200_000.0 * rng.unit()) as i64;
            let weight = 0.01 + 0.03 * rng.unit();
            campaigns.push(Campaign { area, design: Artwork { rect: area, template: attacker }, start, end: start + length, weight });
            campaigns.push(Campaign { area, design: artworks[target], start: start + length / 3, end: restoration_end, weight: 0.03 });
        }
        for _ in 0..2 + count / 200 {
            let start = start_ms + (0.7 * year.span_ms() as f64 * rng.unit()) as i64;
            let stage = year.stage_at(start);
            let (w, h) = (6 + rng.below(19) as u16, 6 + rng.below(19) as u16);
            let area = year.canvas(stage, false).random_inside(rng, w, h);
            for _ in 0..2 {
                let design = Artwork { rect: area, template: Template::random(rng, year, stage) };
                campaigns.push(Campaign { area, design, start, end: end_ms, weight: 0.01 });
            }
        }
        campaigns.sort_by_key(|c| c.start);

        let bots = (0..rows / 50_000)
            .map(|b| {
                let artwork = rng.below(count as u64) as usize;
                let start = births[artwork] + ((end_ms - births[artwork]) as f64 * 0.5 * rng.unit()) as i64;
                let end = start + 6 * 3_600_000 + (30.0 * 3_600_000.0 * rng.unit()) as i64;
                Bot { user: BOT_USERS + b, artwork, start, end, placed: false }
            })
            .collect();
        Plan { artworks, births, popularity, campaigns, bots }
    }
}

/// Event times: the inverse of the cumulative event rate at `(i + jitter) / rows` for row `i`,
/// so times are monotone and spread like the rate.
struct Clock {
    /// Cumulative event rate at the edges of `BINS` equal time bins, from 0 to 1.
    cdf: Vec<f64>,
    bin: usize,
    rows: u64,
    last_ms: i64,
    start_ms: i64,
    end_ms: i64,
}

impl Clock {
    const BINS: usize = 4096;

    fn new(rows: u64, year: &Year) -> Clock {
        let (start_ms, span_ms) = (year.start_ms, year.span_ms());
        let bin_ms = span_ms as f64 / Self::BINS as f64;
        let rate = |bin: usize| {
            let t = start_ms + ((bin as f64 + 0.5) * bin_ms) as i64;
            let hour = t.rem_euclid(86_400_000) as f64 / 3_600_000.0;
            let daily = 1.0 + 0.5 * ((hour - 19.0) / 24.0 * std::f64::consts::TAU).cos();
            daily * (1.0 + (t - start_ms) as f64 / span_ms as f64)
        };
        let mut cdf = cumulative(std::iter::once(0.0).chain((0..Self::BINS).map(rate)));
        let total = cdf[Self::BINS];
        cdf.iter_mut().for_each(|c| *c /= total);
        Clock { cdf, bin: 0, rows, last_ms: start_ms, start_ms, end_ms: year.end_ms }
    }

    /// The time of row `index`; rows must come in order.
    fn time(&mut self, index: u64, rng: &mut Rng) -> i64 {
        let u = (index as f64 + rng.unit()) / self.rows as f64;
        while self.bin + 1 < Self::BINS && self.cdf[self.bin + 1] <= u {
            self.bin += 1;
        }
        let (lo, hi) = (self.cdf[self.bin], self.cdf[self.bin + 1]);
        let span_ms = (self.end_ms - self.start_ms) as f64;
        let offset = (self.bin as f64 + ((u - lo) / (hi - lo)).clamp(0.0, 1.0)) * span_ms / Self::BINS as f64;
        let t = (self.start_ms + offset as i64).min(self.end_ms);
        // A tie with the row before: several players clicking in the same millisecond.
        if index == 0 || !rng.chance(0.03) {
            self.last_ms = t.max(self.last_ms);
        }
        self.last_ms
    }
}

/// How often each crowd user places a pixel: user `k` is picked with weight 1 among the first
/// `head` users (dedicated players, who place as often as the cooldown allows all event long) and
/// `(k / head)^-EXPONENT` after them (the long tail, where most users place once or twice).
struct Activity {
    head: f64,
    total: f64,
    users: usize,
}

impl Activity {
    const EXPONENT: f64 = 1.4;
    const HEAD_SHARE: f64 = 0.003;

    fn new(users: usize) -> Activity {
        let head = (users as f64 * Self::HEAD_SHARE).max(1.0);
        let tail = head / (Self::EXPONENT - 1.0) * (1.0 - (users as f64 / head).powf(1.0 - Self::EXPONENT));
        Activity { head, total: head + tail, users }
    }

    /// A user number, by inverting the cumulative weight.
    fn pick(&self, rng: &mut Rng) -> usize {
        let (v, head, e) = (rng.unit() * self.total, self.head, Self::EXPONENT);
        let k = if v < head { v } else { head * (1.0 - (v - head) * (e - 1.0) / head).powf(1.0 / (1.0 - e)) };
        (k as usize).min(self.users - 1)
    }
}

/// The event generator: the plan plus everything that changes as time goes on.
struct Simulation {
    year: Year,
    /// The canvas's width.
    width: usize,
    plan: Plan,
    rng: Rng,
    clock: Clock,
    /// Current color of every pixel, so players and bots can see where a template is damaged.
    canvas: Vec<u8>,
    /// Per crowd user: milliseconds after the year's start plus 1 of the last placement, 0 for never.
    last_placed: Vec<u32>,
    activity: Activity,
    /// Artworks born so far: a prefix of `plan.artworks`.
    born: usize,
    next_campaign: usize,
    active: Vec<usize>,
    active_weights: Vec<f64>,
    /// The active campaigns stay the same until this time.
    active_until: i64,
    /// Bots by the time they may place next.
    bot_queue: BinaryHeap<Reverse<(i64, usize)>>,
    /// Indices of the moderation rows, evenly spaced, the next one last.
    moderation_rows: Vec<u64>,
    summary: SynthSummary,
}

impl Simulation {
    fn new(options: &SynthOptions, year: Year) -> Simulation {
        let plan = Plan::new(options.rows, &mut Rng::new(options.seed, PLAN_STREAM, 0), &year);
        // One user per 12 rows, of whom a fifth are never drawn: one active user per 15 rows.
        let crowd = (options.rows / 12 + 1) as usize;
        // 2017's files have no moderation rows.
        let moderated = year.format != Format::Y2017;
        let moderations = if options.rows >= 1000 && moderated { (options.rows / 2_000_000).max(1) } else { 0 };
        let canvas = year.format.canvas();
        let (width, height) = (canvas.width as usize, canvas.height as usize);
        let bot_queue = plan.bots.iter().enumerate().map(|(b, bot)| Reverse((bot.start, b))).collect();
        Simulation {
            clock: Clock::new(options.rows, &year),
            canvas: vec![year.white; width * height],
            width,
            plan,
            rng: Rng::new(options.seed, EVENT_STREAM, 0),
            last_placed: vec![0; crowd],
            activity: Activity::new(crowd),
            born: 0,
            next_campaign: 0,
            active: Vec::new(),
            active_weights: Vec::new(),
            active_until: i64::MIN,
            bot_queue,
            moderation_rows: (0..moderations).rev().map(|j| options.rows * (2 * j + 1) / (2 * moderations)).collect(),
            summary: SynthSummary {
                rows: 0,
                events: 0,
                users: 0,
                moderation_rows: 0,
                first_timestamp_ms: year.start_ms,
                last_timestamp_ms: year.start_ms,
            },
            year,
        }
    }

    /// Up to `WINDOW_BLOCKS` blocks of rows in time order; empty when all rows are out.
    fn next_window(&mut self, should_stop: &dyn Fn() -> bool) -> Result<Vec<Vec<Row>>> {
        let mut window = Vec::new();
        while window.len() < WINDOW_BLOCKS && self.summary.rows < self.clock.rows {
            if should_stop() {
                return Err(Error::Interrupted);
            }
            let rows = BLOCK_ROWS.min((self.clock.rows - self.summary.rows) as usize);
            window.push((0..rows).map(|_| self.next_row()).collect());
        }
        Ok(window)
    }

    fn next_row(&mut self) -> Row {
        let index = self.summary.rows;
        let t = self.clock.time(index, &mut self.rng);
        self.advance(t);
        let stage = self.year.stage_at(t);
        let row = if self.moderation_rows.last() == Some(&index) {
            self.moderation_rows.pop();
            self.moderation(t, stage)
        } else if let Some(b) = self.due_bot(t) {
            self.bot_event(t, b)
        } else {
            let user = self.crowd_user(t);
            self.crowd_event(t, user, stage)
        };
        if index == 0 {
            self.summary.first_timestamp_ms = t;
        }
        self.summary.last_timestamp_ms = t;
        self.summary.rows += 1;
        row
    }

    /// Brings the born artworks and the active campaigns up to time `t`.
    fn advance(&mut self, t: i64) {
        while self.born < self.plan.births.len() && self.plan.births[self.born] <= t {
            self.born += 1;
        }
        if t < self.active_until {
            return;
        }
        let campaigns = &self.plan.campaigns;
        while self.next_campaign < campaigns.len() && campaigns[self.next_campaign].start <= t {
            self.active.push(self.next_campaign);
            self.next_campaign += 1;
        }
        self.active.retain(|&c| campaigns[c].end > t);
        self.active_weights = cumulative(self.active.iter().map(|&c| campaigns[c].weight));
        let next_start = campaigns.get(self.next_campaign).map_or(i64::MAX, |c| c.start);
        self.active_until = self.active.iter().map(|&c| campaigns[c].end).fold(next_start, i64::min);
    }

    /// The next bot whose cooldown is over and which has not retired, if any.
    fn due_bot(&mut self, t: i64) -> Option<usize> {
        while let Some(&Reverse((due, b))) = self.bot_queue.peek() {
            if due > t {
                return None;
            }
            self.bot_queue.pop();
            if t < self.plan.bots[b].end {
                return Some(b);
            }
        }
        None
    }

    /// Bot `b` paints its artwork and goes back to sleep for the cooldown and a second or two.
    fn bot_event(&mut self, t: i64, b: usize) -> Row {
        let bot = &mut self.plan.bots[b];
        self.summary.users += !bot.placed as u64;
        bot.placed = true;
        let (user, artwork) = (bot.user, self.plan.artworks[bot.artwork]);
        self.bot_queue.push(Reverse((t + COOLDOWN_MS + self.rng.below(2000) as i64, b)));
        self.paint(t, user, artwork.rect, &artwork, BOT_TRIES)
    }

    /// A crowd user off cooldown at `t`, most often one of the most active.
    fn crowd_user(&mut self, t: i64) -> u64 {
        let now = (t - self.year.start_ms) as u32 + 1;
        let free = |last: u32| last == 0 || now - last >= COOLDOWN_MS as u32;
        let users = self.last_placed.len();
        let mut pick = (0..16).map(|_| self.activity.pick(&mut self.rng)).find(|&k| free(self.last_placed[k]));
        if pick.is_none() {
            let from = self.rng.below(users as u64) as usize;
            pick = (from..users).chain(0..from).find(|&k| free(self.last_placed[k]));
        }
        // Everyone on cooldown (only possible in tiny files): a newcomer joins.
        let user = pick.unwrap_or_else(|| {
            self.last_placed.push(0);
            users
        });
        self.summary.users += (self.last_placed[user] == 0) as u64;
        self.last_placed[user] = now;
        user as u64
    }

    fn crowd_event(&mut self, t: i64, user: u64, stage: usize) -> Row {
        let roll = self.rng.unit();
        if roll < NOISE_SHARE || self.born == 0 {
            let (x, y) = self.year.canvas(stage, false).pixel(&mut self.rng);
            let color = self.year.random_color(&mut self.rng, stage);
            return self.place(Row { time_ms: t, user, color, place: Place::Pixel(x, y) });
        }
        let campaign_share = self.active_weights.last().map_or(0.0, |&w| w.min(MAX_CAMPAIGN_SHARE));
        let (area, design) = if roll < NOISE_SHARE + campaign_share {
            let campaign = &self.plan.campaigns[self.active[pick_weighted(&self.active_weights, &mut self.rng)]];
            (campaign.area, campaign.design)
        } else {
            let artwork = self.plan.artworks[pick_weighted(&self.plan.popularity[..self.born], &mut self.rng)];
            (artwork.rect, artwork)
        };
        self.paint(t, user, area, &design, CROWD_TRIES)
    }

    /// Paints the first of up to `tries` random pixels of `area` that differs from `design`, as
    /// players scan an artwork for damage; when all match, the last one is painted anyway.
    fn paint(&mut self, t: i64, user: u64, area: Rect, design: &Artwork, tries: u32) -> Row {
        let mut pixel = area.pixel(&mut self.rng);
        for _ in 1..tries {
            if self.canvas[pixel.1 as usize * self.width + pixel.0 as usize] != design.color_at(pixel.0, pixel.1) {
                break;
            }
            pixel = area.pixel(&mut self.rng);
        }
        let color = design.color_at(pixel.0, pixel.1);
        self.place(Row { time_ms: t, user, color, place: Place::Pixel(pixel.0, pixel.1) })
    }

    /// A moderator's rectangle of 3 to 40 pixels a side (or in 2023, half the time, a circle of
    /// radius 1 to 20), mostly white, often over an artwork, inside the open canvas.
    fn moderation(&mut self, t: i64, stage: usize) -> Row {
        let canvas = self.year.canvas(stage, false);
        let over = match self.born {
            0 => canvas,
            born => self.plan.artworks[self.rng.below(born as u64) as usize].rect,
        };
        let (x, y) = if self.rng.chance(0.7) { over.pixel(&mut self.rng) } else { canvas.pixel(&mut self.rng) };
        let (w, h) = ((3 + self.rng.below(38) as u16).min(canvas.w), (3 + self.rng.below(38) as u16).min(canvas.h));
        let color = if self.rng.chance(0.7) { self.year.white } else { self.year.random_color(&mut self.rng, stage) };
        let place = if self.year.format == Format::Y2023 && self.rng.chance(0.5) {
            // Its cells stay on the open canvas: the radius stops at the nearest edge.
            let room = (x - canvas.x).min(y - canvas.y).min(canvas.x + canvas.w - 1 - x).min(canvas.y + canvas.h - 1 - y);
            Place::Circle(x, y, (1 + self.rng.below(20) as u16).min(room))
        } else {
            Place::Rectangle(Rect { x: x.min(canvas.x + canvas.w - w), y: y.min(canvas.y + canvas.h - h), w, h })
        };
        let user = MODERATOR_USERS + self.summary.moderation_rows;
        self.summary.moderation_rows += 1;
        self.summary.users += 1;
        self.place(Row { time_ms: t, user, color, place })
    }

    /// Applies a row to the canvas and counts its events.
    fn place(&mut self, row: Row) -> Row {
        let runs: Vec<(u16, u16, u16)> = match row.place {
            Place::Pixel(x, y) => vec![(y, x, x)],
            Place::Rectangle(r) => (r.y..r.y + r.h).map(|y| (y, r.x, r.x + r.w - 1)).collect(),
            Place::Circle(x, y, r) => {
                let canvas = self.year.format.canvas();
                circle_rows(x, y, r, canvas.width, canvas.height).collect()
            }
        };
        for (y, x1, x2) in runs {
            let line = y as usize * self.width;
            self.canvas[line + x1 as usize..=line + x2 as usize].fill(row.color);
            self.summary.events += (x2 - x1 + 1) as u64;
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::parse_hex_color;
    use crate::timestamp::parse_timestamp;
    use flate2::read::MultiGzDecoder;
    use std::collections::HashMap;
    use std::sync::OnceLock;

    /// One parsed data row, in file order.
    struct Record {
        text_time: String,
        time_ms: i64,
        user: String,
        color: u8,
        coordinate: Vec<u16>,
    }

    struct Sample {
        bytes: Vec<u8>,
        summary: SynthSummary,
        records: Vec<Record>,
    }

    const SAMPLE_ROWS: u64 = 200_000;

    fn synthesize_bytes(rows: u64, seed: u64, name: &str) -> (Vec<u8>, SynthSummary) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let summary = synthesize(&SynthOptions { rows, seed, year: 2022 }, &path, &|| false, &|_| {}).unwrap();
        (std::fs::read(&path).unwrap(), summary)
    }

    fn read_csv(bytes: &[u8]) -> (String, Vec<Record>) {
        let mut reader = csv::Reader::from_reader(MultiGzDecoder::new(bytes));
        let header = reader.headers().unwrap().iter().collect::<Vec<_>>().join(",");
        let records = reader
            .records()
            .map(|record| {
                let record = record.unwrap();
                Record {
                    text_time: record[0].to_string(),
                    time_ms: parse_timestamp(record[0].as_bytes()).unwrap(),
                    user: record[1].to_string(),
                    color: parse_hex_color(record[2].as_bytes()).unwrap(),
                    coordinate: record[3].split(',').map(|v| v.parse().unwrap()).collect(),
                }
            })
            .collect();
        (header, records)
    }

    /// One 200 000-row file shared by the tests that only read it.
    fn sample() -> &'static Sample {
        static SAMPLE: OnceLock<Sample> = OnceLock::new();
        SAMPLE.get_or_init(|| {
            let (bytes, summary) = synthesize_bytes(SAMPLE_ROWS, 42, "sample.csv.gz");
            let (header, records) = read_csv(&bytes);
            assert_eq!(header, "timestamp,user_id,pixel_color,coordinate");
            Sample { bytes, summary, records }
        })
    }

    fn placements_by_user(records: &[Record]) -> HashMap<&str, Vec<i64>> {
        let mut by_user: HashMap<&str, Vec<i64>> = HashMap::new();
        for record in records {
            by_user.entry(&record.user).or_default().push(record.time_ms);
        }
        by_user.values_mut().for_each(|times| times.sort_unstable());
        by_user
    }

    #[test]
    fn summary_matches_the_file() {
        let Sample { bytes, summary, records } = sample();
        assert!(bytes.starts_with(&encode(b"timestamp,user_id,pixel_color,coordinate\n".to_vec(), true).unwrap()));
        assert_eq!(records.len() as u64, SAMPLE_ROWS);
        assert_eq!(summary.rows, SAMPLE_ROWS);
        let area = |c: &[u16]| if c.len() == 4 { (c[2] - c[0] + 1) as u64 * (c[3] - c[1] + 1) as u64 } else { 1 };
        assert_eq!(summary.events, records.iter().map(|r| area(&r.coordinate)).sum::<u64>());
        assert_eq!(summary.moderation_rows, records.iter().filter(|r| r.coordinate.len() == 4).count() as u64);
        assert_eq!(summary.users, placements_by_user(records).len() as u64);
        assert_eq!(summary.first_timestamp_ms, records.iter().map(|r| r.time_ms).min().unwrap());
        assert_eq!(summary.last_timestamp_ms, records.iter().map(|r| r.time_ms).max().unwrap());
        // The whole 2022 time span, about 3.5 days.
        assert!(summary.first_timestamp_ms - START_2022_MS < 60_000 && END_2022_MS - summary.last_timestamp_ms < 60_000);
    }

    #[test]
    fn user_ids_are_88_characters_of_base64() {
        for record in &sample().records {
            assert_eq!(record.user.len(), 88);
            assert!(record.user.ends_with("=="));
            assert!(record.user[..86].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        }
    }

    #[test]
    fn same_seed_gives_the_same_bytes_whatever_the_threads() {
        let rows = 3 * BLOCK_ROWS as u64 * WINDOW_BLOCKS as u64 / 2;
        let (bytes, summary) = synthesize_bytes(rows, 1, "a.csv.gz");
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(one_thread.install(|| synthesize_bytes(rows, 1, "b.csv.gz")), (bytes.clone(), summary.clone()));
        let (plain, plain_summary) = synthesize_bytes(rows, 1, "c.csv");
        let mut decompressed = Vec::new();
        io::copy(&mut MultiGzDecoder::new(&bytes[..]), &mut decompressed).unwrap();
        assert_eq!((plain, plain_summary), (decompressed, summary));
        assert_ne!(synthesize_bytes(rows, 2, "d.csv.gz").0, bytes);
    }

    #[test]
    fn every_user_waits_the_cooldown() {
        for times in placements_by_user(&sample().records).values() {
            assert!(times.windows(2).all(|w| w[1] - w[0] >= COOLDOWN_MS), "{times:?}");
        }
    }

    #[test]
    fn each_year_has_its_stages() {
        let stages = |year: u16| Year::of(year).unwrap().stages.iter().map(|s| (s.open.w, s.open.h, s.colors)).collect::<Vec<_>>();
        assert_eq!(stages(2017), [(1000, 1000, 16)]);
        assert_eq!(stages(2022), [(1000, 1000, 16), (2000, 1000, 24), (2000, 2000, 32)]);
        let y2023 = Year::of(2023).unwrap();
        assert_eq!(y2023.stages.len(), 10); // 6 expansions and 3 palette steps, none at once
        assert_eq!((y2023.stages[0].open.x, y2023.stages[0].open.y, y2023.stages[0].colors), (1000, 500, 8));
        let last = y2023.stages.last().unwrap();
        assert_eq!((last.open.w, last.open.h, last.colors), (3000, 2000, 32));
        for pair in y2023.stages.windows(2) {
            // A fresh part is the new canvas minus the old, exactly.
            if let Some(fresh) = pair[1].fresh {
                assert_eq!(
                    fresh.w as u32 * fresh.h as u32 + pair[0].open.w as u32 * pair[0].open.h as u32,
                    pair[1].open.w as u32 * pair[1].open.h as u32
                );
            } else {
                assert_eq!((pair[0].open.w, pair[0].open.h), (pair[1].open.w, pair[1].open.h));
            }
        }
        assert!(Year::of(2019).is_err());
        for year in [2017, 2022, 2023] {
            let y = Year::of(year).unwrap();
            assert!(y.colors_by_stage[..y.stages[0].colors].contains(&y.black));
        }
    }

    #[test]
    fn canvas_and_palette_grow_with_time() {
        let year = Year::of(2022).unwrap();
        assert_eq!(year.stages.len(), 3);
        let mut widest = [(0, 0); 3];
        let mut colors = [0; 3];
        for record in &sample().records {
            let stage = year.stage_at(record.time_ms);
            let Rect { w, h, .. } = year.stages[stage].open;
            let c = &record.coordinate;
            assert!(c.iter().step_by(2).all(|&x| x < w) && c.iter().skip(1).step_by(2).all(|&y| y < h), "{c:?} at stage {stage}");
            assert!(PALETTE_STAGE[record.color as usize] as usize <= stage);
            widest[stage] = (widest[stage].0.max(c[0]), widest[stage].1.max(c[1]));
            colors[stage] = colors[stage].max(PALETTE_STAGE[record.color as usize]);
        }
        // Each expansion gets used: new area and new colors.
        assert!(widest[1].0 >= 1000 && widest[2].1 >= 1000, "{widest:?}");
        assert_eq!(colors, [0, 1, 2]);
    }

    #[test]
    fn timestamps_lack_the_fraction_exactly_at_whole_seconds_and_tie() {
        let records = &sample().records;
        let whole = records.iter().filter(|r| !r.text_time.contains('.')).count();
        assert!(whole > 0 && whole < records.len());
        assert!(records.iter().all(|r| r.text_time.contains('.') == (r.time_ms % 1000 != 0)));
        let mut times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
        times.sort_unstable();
        assert!(times.windows(2).any(|w| w[0] == w[1]));
    }

    #[test]
    fn moderation_rectangles_are_valid() {
        let rectangles: Vec<&Record> = sample().records.iter().filter(|r| r.coordinate.len() == 4).collect();
        assert!(!rectangles.is_empty());
        for record in rectangles {
            let c = &record.coordinate;
            assert!(c[0] <= c[2] && c[1] <= c[3], "{c:?}");
            assert!((3..=40).contains(&(c[2] - c[0] + 1)) && (3..=40).contains(&(c[3] - c[1] + 1)), "{c:?}");
        }
    }

    #[test]
    fn rows_are_shuffled_within_windows_only() {
        let records = &sample().records;
        let times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
        assert!(times.windows(2).any(|w| w[0] > w[1]));
        let mut sorted = times.clone();
        sorted.sort_unstable();
        let window = BLOCK_ROWS * WINDOW_BLOCKS;
        for (position, &t) in times.iter().enumerate() {
            let first = position / window * window;
            let last = (first + window).min(times.len()) - 1;
            assert!(sorted[first] <= t && t <= sorted[last], "row {position} is out of its window");
        }
    }

    #[test]
    fn each_block_is_a_gzip_member() {
        let mut rest = &sample().bytes[..];
        let mut members = 0;
        while !rest.is_empty() {
            let mut member = flate2::bufread::GzDecoder::new(rest);
            io::copy(&mut member, &mut io::sink()).unwrap();
            rest = member.into_inner();
            members += 1;
        }
        assert_eq!(members, 1 + SAMPLE_ROWS.div_ceil(BLOCK_ROWS as u64));
    }

    #[test]
    fn events_cluster_on_artworks() {
        let records = &sample().records;
        let mut per_pixel: HashMap<&[u16], u64> = HashMap::new();
        for record in records.iter().filter(|r| r.coordinate.len() == 2) {
            *per_pixel.entry(&record.coordinate).or_default() += 1;
        }
        let mut counts: Vec<u64> = per_pixel.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // The busiest 1 % of the canvas gets most events; uniform placement would give it about 20 %.
        let top: u64 = counts.iter().take(crate::CANVAS_SIZE as usize * crate::CANVAS_SIZE as usize / 100).sum();
        assert!(top as f64 > 0.6 * records.len() as f64, "{top}");
    }

    #[test]
    fn activity_is_heavy_tailed_with_bots() {
        let by_user = placements_by_user(&sample().records);
        let once = by_user.values().filter(|t| t.len() == 1).count();
        assert!(once as f64 > 0.15 * by_user.len() as f64, "{once} of {}", by_user.len());
        assert!(by_user.values().any(|t| t.len() > 200));
        // A bot: many placements, each right after the cooldown.
        assert!(by_user.values().any(|t| t.len() > 50 && t.windows(2).all(|w| w[1] - w[0] < COOLDOWN_MS + 10_000)));
    }

    #[test]
    fn interruption_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let calls = std::cell::Cell::new(0);
        let stop = || {
            calls.set(calls.get() + 1);
            calls.get() > 20
        };
        let result = synthesize(&SynthOptions { rows: 1_000_000, seed: 3, year: 2022 }, &dir.path().join("out.csv.gz"), &stop, &|_| {});
        assert!(matches!(result, Err(Error::Interrupted)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn zero_or_too_many_rows_is_an_argument_error() {
        let dir = tempfile::tempdir().unwrap();
        for rows in [0, MAX_ROWS + 1, 1 << 50] {
            let result = synthesize(&SynthOptions { rows, seed: 3, year: 2022 }, &dir.path().join("out.csv"), &|| false, &|_| {});
            assert!(matches!(result, Err(Error::Argument(m)) if m.contains("rows must be between 1 and")), "{rows}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
