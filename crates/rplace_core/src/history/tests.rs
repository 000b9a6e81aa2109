//! The reader against a plain replay oracle, on random histories and after a real ingest.

use super::ages::{age_bucket, AGE_BUCKETS, AGE_NEVER, AGE_OUTSIDE};
use super::*;
use crate::dataset::{Meta, SNAPSHOTS_FILE};
use crate::event::Event;
use crate::index::write_index;
use crate::npy;
use crate::palette::WHITE;
use crate::random::Rng;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::AtomicBool;

fn random_events(rng: &mut Rng, n: usize, width: usize, height: usize, hot: usize) -> Vec<Event> {
    random_events_from(rng, n, width, height, hot, 1_648_817_050_000)
}

fn random_events_from(rng: &mut Rng, n: usize, width: usize, height: usize, hot: usize, start_ms: i64) -> Vec<Event> {
    let hot_pixels = [(0, 0), (width - 1, height - 1), (width - 1, 0), (width / 2, height / 2), (TILE.min(width - 1), 3.min(height - 1))];
    let square = (rng.index(width - hot.min(width) + 1), rng.index(height - hot.min(height) + 1));
    let mut t = start_ms;
    (0..n)
        .map(|_| {
            t += [0, 0, 0, 1, 2, 7][rng.index(6)];
            let (x, y, color) = match rng.index(10) {
                0..=4 => {
                    let (x, y) = hot_pixels[rng.index(hot_pixels.len())];
                    (x, y, [2, 13, 27][rng.index(3)])
                }
                5..=7 => ((square.0 + rng.index(hot)).min(width - 1), (square.1 + rng.index(hot)).min(height - 1), rng.index(4) as u8),
                _ => (rng.index(width), rng.index(height), rng.index(32) as u8),
            };
            Event::new(t, rng.index(50) as u32, x as u16, y as u16, color, false)
        })
        .collect()
}

/// Writes what [`History::open`] reads: the info table, the snapshots and the index.
fn write_dataset(dir: &Path, events: &[Event], width: usize, height: usize, partition_size: usize) {
    let info = DatasetInfo {
        events: events.len() as u64,
        users: 50,
        partitions: events.len().div_ceil(partition_size) as u64,
        partition_size: partition_size as u64,
        first_timestamp_ms: events[0].timestamp_ms,
        last_timestamp_ms: events[events.len() - 1].timestamp_ms,
        canvas_width: width as u32,
        canvas_height: height as u32,
        year: 2022,
        origin_x: 0,
        origin_y: 0,
        moderation_events: 0,
        duplicates_dropped: 0,
        rows: events.len() as u64,
        rejected_rows: 0,
    };
    let stop = AtomicBool::new(false);
    dataset::write_meta(dir, &Meta { info: info.clone(), partitions: &[], sources: &[], users: &[], moderation: &[] }, &stop).unwrap();
    let mut out = std::io::BufWriter::new(File::create(dir.join(SNAPSHOTS_FILE)).unwrap());
    npy::write_u8_header(&mut out, &[events.len().div_ceil(partition_size) + 1, height, width]).unwrap();
    let mut canvas = vec![WHITE; width * height];
    for part in events.chunks(partition_size) {
        out.write_all(&canvas).unwrap();
        replay(&mut canvas, width, part);
    }
    out.write_all(&canvas).unwrap();
    out.flush().unwrap();
    write_index(dir, events, width, height, 50, WHITE, &stop).unwrap();
    dataset::finish(dir, &info, &stop).unwrap();
}

fn replay(canvas: &mut [u8], width: usize, events: &[Event]) {
    for e in events {
        canvas[e.y() as usize * width + e.x() as usize] = e.color();
    }
}

/// The oracle: replays the events one by one and reads everything off the plain canvas.
struct Oracle {
    events: Vec<Event>,
    width: usize,
    height: usize,
}

impl Oracle {
    fn new(events: Vec<Event>, width: usize, height: usize) -> Oracle {
        Oracle { events, width, height }
    }

    /// Whether pixel (`x`, `y`) is on the canvas open at event `id`'s time: the 2022 schedule,
    /// read plainly.
    fn open(&self, id: usize, x: i64, y: i64) -> bool {
        let t = self.events[id].timestamp_ms;
        let open = Format::Y2022.expansions().iter().rev().find(|e| e.from_ms <= t).unwrap();
        (0..self.width as i64).contains(&x)
            && (0..self.height as i64).contains(&y)
            && (open.x0 as i64..open.x1 as i64).contains(&x)
            && (open.y0 as i64..open.y1 as i64).contains(&y)
    }

    fn canvas_before(&self, id: usize) -> Vec<u8> {
        let mut canvas = vec![WHITE; self.width * self.height];
        replay(&mut canvas, self.width, &self.events[..id]);
        canvas
    }

    /// The windows of every id, read off one replay of the events in id order.
    fn windows(&self, ids: &[i64], size: usize) -> Vec<u8> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&k| ids[k]);
        let mut canvas = vec![WHITE; self.width * self.height];
        let mut replayed = 0;
        let mut out = vec![0; ids.len() * size * size];
        for k in order {
            let id = ids[k] as usize;
            replay(&mut canvas, self.width, &self.events[replayed..id]);
            replayed = id;
            let e = self.events[id];
            for r in 0..size {
                for c in 0..size {
                    let x = e.x() as i64 - (size / 2) as i64 + c as i64;
                    let y = e.y() as i64 - (size / 2) as i64 + r as i64;
                    let inside = self.open(id, x, y);
                    out[k * size * size + r * size + c] = if inside { canvas[y as usize * self.width + x as usize] } else { OUTSIDE };
                }
            }
        }
        out
    }

    fn majority(&self, id: usize, horizon: i64) -> i64 {
        let e = self.events[id];
        let mut counts = [0; 32];
        let mut latest = [0; 32];
        for (j, later) in self.events.iter().enumerate().skip(id + 1) {
            if later.timestamp_ms > e.timestamp_ms + horizon {
                break;
            }
            if later.timestamp_ms > e.timestamp_ms && (later.x(), later.y()) == (e.x(), e.y()) {
                counts[later.color() as usize] += 1;
                latest[later.color() as usize] = j;
            }
        }
        let best = (0..32).max_by_key(|&c| (counts[c], latest[c])).unwrap();
        if counts[best] == 0 {
            e.color() as i64
        } else {
            best as i64
        }
    }

    fn time_grid(&self, id: usize, size: usize, horizon: i64) -> Vec<f32> {
        let e = self.events[id];
        let (left, top) = (e.x() as i64 - (size / 2) as i64, e.y() as i64 - (size / 2) as i64);
        let mut grid = vec![1.0f32; size * size];
        let mut seen = vec![false; size * size];
        for later in &self.events[id + 1..] {
            if later.timestamp_ms > e.timestamp_ms + horizon {
                break;
            }
            let (c, r) = (later.x() as i64 - left, later.y() as i64 - top);
            if (0..size as i64).contains(&c) && (0..size as i64).contains(&r) && self.open(id, later.x() as i64, later.y() as i64) {
                let at = r as usize * size + c as usize;
                if !seen[at] {
                    seen[at] = true;
                    grid[at] = ((later.timestamp_ms - e.timestamp_ms) as f64 / horizon as f64).min(1.0) as f32;
                }
            }
        }
        grid
    }
}

impl Oracle {
    fn in_window(&self, id: usize, size: usize, other: &Event) -> Option<usize> {
        let e = self.events[id];
        let (c, r) = (other.x() as i64 - e.x() as i64 + (size / 2) as i64, other.y() as i64 - e.y() as i64 + (size / 2) as i64);
        let inside = (0..size as i64).contains(&c) && (0..size as i64).contains(&r) && self.open(id, other.x() as i64, other.y() as i64);
        inside.then(|| r as usize * size + c as usize)
    }

    fn recent(&self, id: usize, size: usize, duration: i64) -> Vec<i64> {
        let mut out = vec![0; 32];
        out.extend([-1; 32]);
        let t = self.events[id].timestamp_ms;
        for (j, earlier) in self.events[..id].iter().enumerate() {
            if earlier.timestamp_ms >= t - duration && self.in_window(id, size, earlier).is_some() {
                out[earlier.color() as usize] += 1;
                out[32 + earlier.color() as usize] = j as i64;
            }
        }
        out
    }

    fn ages(&self, id: usize, size: usize) -> Vec<u8> {
        let t = self.events[id].timestamp_ms;
        let e = self.events[id];
        let last = self.last_changes(id, size);
        (0..size * size)
            .map(|at| {
                let (x, y) = (e.x() as i64 - (size / 2) as i64 + (at % size) as i64, e.y() as i64 - (size / 2) as i64 + (at / size) as i64);
                if !self.open(id, x, y) {
                    return AGE_OUTSIDE;
                }
                match last[at] {
                    i64::MIN => AGE_NEVER,
                    last => age_bucket(t - last),
                }
            })
            .collect()
    }

    fn last_placers(&self, id: usize, size: usize) -> Vec<i64> {
        let mut grid = vec![-1; size * size];
        for earlier in &self.events[..id] {
            if let Some(at) = self.in_window(id, size, earlier) {
                grid[at] = earlier.user_id as i64;
            }
        }
        grid
    }

    /// What each window cell showed before its last event: the colors of its last two events
    /// followed plainly, from white.
    fn previous(&self, id: usize, size: usize) -> Vec<u8> {
        let (mut last, mut previous) = (vec![WHITE; size * size], vec![WHITE; size * size]);
        for earlier in &self.events[..id] {
            if let Some(at) = self.in_window(id, size, earlier) {
                previous[at] = last[at];
                last[at] = earlier.color();
            }
        }
        let e = self.events[id];
        for (at, cell) in previous.iter_mut().enumerate() {
            let (x, y) = (e.x() as i64 - (size / 2) as i64 + (at % size) as i64, e.y() as i64 - (size / 2) as i64 + (at / size) as i64);
            if !self.open(id, x, y) {
                *cell = OUTSIDE;
            }
        }
        previous
    }

    fn last_changes(&self, id: usize, size: usize) -> Vec<i64> {
        let mut grid = vec![i64::MIN; size * size];
        for earlier in &self.events[..id] {
            if let Some(at) = self.in_window(id, size, earlier) {
                grid[at] = earlier.timestamp_ms;
            }
        }
        grid
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

/// Runs `read` on a 1-thread and a 4-thread pool and checks that both agree.
fn same_on_any_pool<T: PartialEq + std::fmt::Debug + Send>(read: impl Fn() -> T + Sync + Send) -> T {
    let one = pool(1).install(&read);
    let four = pool(4).install(&read);
    assert!(one == four, "results differ between 1 and 4 threads");
    one
}

/// Every batch call against the oracle on one history.
fn check_against_oracle(history: &History, oracle: &Oracle, rng: &mut Rng, sizes: &[usize]) {
    let n = oracle.events.len();
    let mut ids: Vec<i64> = (0..n as i64).collect();
    ids.extend((0..500).map(|_| rng.index(n) as i64));
    for &size in sizes {
        let windows = same_on_any_pool(|| history.windows(&ids, size).unwrap());
        assert!(windows == oracle.windows(&ids, size), "windows of size {size}");
    }
    let placed = same_on_any_pool(|| history.color_targets(&ids, ColorTarget::Placed, 1).unwrap());
    assert!(placed.iter().zip(&ids).all(|(&c, &id)| c == oracle.events[id as usize].color() as i64));
    for horizon in [1, 40, 2_000] {
        let majority = same_on_any_pool(|| history.color_targets(&ids, ColorTarget::NextMinuteMajority, horizon).unwrap());
        for (k, &id) in ids.iter().enumerate() {
            assert_eq!(majority[k], oracle.majority(id as usize, horizon), "majority of event {id}, horizon {horizon}");
        }
    }
    let sample: Vec<i64> = ids.iter().step_by(7).copied().chain([0, n as i64 - 1]).collect();
    for (size, duration) in [(64, 600), (16, 3_000), (3, 5), (1, 1)] {
        let recent = same_on_any_pool(|| history.recent_colors(&sample, size, duration).unwrap());
        let last = same_on_any_pool(|| history.last_change_times(&sample, size).unwrap());
        for (k, &id) in sample.iter().enumerate() {
            assert_eq!(&recent[k * 64..(k + 1) * 64], &oracle.recent(id as usize, size, duration)[..], "recent colors of {id}");
            assert_eq!(&last[k * size * size..(k + 1) * size * size], &oracle.last_changes(id as usize, size)[..], "last changes of {id}");
        }
    }
    let few: Vec<i64> = sample.iter().step_by(5).copied().chain([0, n as i64 - 1]).collect();
    for size in [64, 17, 1] {
        let ages = same_on_any_pool(|| history.age_buckets(&few, size).unwrap());
        assert_eq!(ages, history.portable_age_buckets(&few, size).unwrap(), "ages on any CPU, size {size}");
        let placers = same_on_any_pool(|| history.last_placers(&few, size).unwrap());
        let previous = same_on_any_pool(|| history.previous_colors(&few, size).unwrap());
        for (k, &id) in few.iter().enumerate() {
            assert_eq!(&ages[k * size * size..(k + 1) * size * size], &oracle.ages(id as usize, size)[..], "ages of {id}, size {size}");
            assert_eq!(&placers[k * size * size..(k + 1) * size * size], &oracle.last_placers(id as usize, size)[..], "placers of {id}");
            assert_eq!(&previous[k * size * size..(k + 1) * size * size], &oracle.previous(id as usize, size)[..], "previous of {id}");
        }
    }
    for (size, horizon) in [(16, 3_000), (5, 30), (1, 1)] {
        let grids = same_on_any_pool(|| history.time_targets(&sample, size, horizon).unwrap());
        for (k, &id) in sample.iter().enumerate() {
            assert_eq!(
                &grids[k * size * size..(k + 1) * size * size],
                &oracle.time_grid(id as usize, size, horizon)[..],
                "time grid of {id}"
            );
        }
    }
}

fn check_canvases(history: &History, oracle: &Oracle, rng: &mut Rng, partition_size: usize) {
    let n = oracle.events.len();
    let mut counts = vec![0, 1, n - 1, n];
    for k in 1..n.div_ceil(partition_size) {
        counts.extend([k * partition_size - 1, k * partition_size, k * partition_size + 1]);
    }
    counts.extend((0..20).map(|_| rng.index(n + 1)));
    for count in counts {
        assert!(history.canvas_before(count as i64).unwrap() == oracle.canvas_before(count), "canvas before {count}");
    }
    let (first, last) = history.time_range();
    let mut times = vec![first - 1, first, last, last + 1, i64::MIN, i64::MAX];
    times.extend((0..20).map(|_| oracle.events[rng.index(n)].timestamp_ms + rng.index(3) as i64 - 1));
    for t in times {
        let count = oracle.events.iter().filter(|e| e.timestamp_ms <= t).count();
        let canvas = oracle.canvas_before(count);
        assert!(history.canvas_at(t).unwrap() == canvas, "canvas at {t}");
        check_regions(history, oracle, &canvas, t, rng);
    }
}

/// `region_at` against a crop of the oracle's canvas, `placement_times_at` and `event_counts`
/// (from `t` over a random span) against the oracle's events: the whole canvas, empty,
/// one-pixel and random rectangles (most of them not on tile boundaries); rectangles off the
/// canvas refused.
fn check_regions(history: &History, oracle: &Oracle, canvas: &[u8], t: i64, rng: &mut Rng) {
    let (width, height) = (oracle.width, oracle.height);
    let span = [0, 1, 1_000, 3_600_000, i64::MAX / 4][rng.index(5)];
    let (mut placed, mut counts) = (vec![i64::MIN; width * height], vec![0u32; width * height]);
    let (mut last, mut previous) = (vec![WHITE as i64; width * height], vec![WHITE as i64; width * height]);
    for e in &oracle.events {
        let pixel = e.y() as usize * width + e.x() as usize;
        if e.timestamp_ms <= t {
            placed[pixel] = e.timestamp_ms;
            previous[pixel] = last[pixel];
            last[pixel] = e.color() as i64;
        }
        if t <= e.timestamp_ms && e.timestamp_ms < t.saturating_add(span) {
            counts[pixel] += 1;
        }
    }
    let crop = |values: &[i64], (x0, y0, x1, y1): (usize, usize, usize, usize)| -> Vec<i64> {
        (y0..y1).flat_map(|y| values[y * width + x0..y * width + x1].iter().copied()).collect()
    };
    let mut rectangles = vec![(0, 0, width, height), (0, 0, 0, 0), (width, height, width, height), (width - 1, height - 1, width, height)];
    rectangles.extend((0..6).map(|_| {
        let (x0, y0) = (rng.index(width + 1), rng.index(height + 1));
        (x0, y0, x0 + rng.index(width - x0 + 1), y0 + rng.index(height - y0 + 1))
    }));
    for (x0, y0, x1, y1) in rectangles {
        let expected: Vec<u8> = (y0..y1).flat_map(|y| canvas[y * width + x0..y * width + x1].iter().copied()).collect();
        let region = same_on_any_pool(|| history.region_at(t, x0..x1, y0..y1).unwrap());
        assert!(region == expected, "region x {x0}..{x1} y {y0}..{y1} at {t}");
        let times = same_on_any_pool(|| history.placement_times_at(t, x0..x1, y0..y1).unwrap());
        assert!(times == crop(&placed, (x0, y0, x1, y1)), "placement times x {x0}..{x1} y {y0}..{y1} at {t}");
        let before = same_on_any_pool(|| history.previous_colors_at(t, x0..x1, y0..y1).unwrap());
        let before: Vec<i64> = before.iter().map(|&c| c as i64).collect();
        assert!(before == crop(&previous, (x0, y0, x1, y1)), "previous colors x {x0}..{x1} y {y0}..{y1} at {t}");
        let counted = same_on_any_pool(|| history.event_counts(t, t.saturating_add(span), x0..x1, y0..y1).unwrap());
        let widened: Vec<i64> = counts.iter().map(|&c| c as i64).collect();
        assert!(counted.iter().map(|&c| c as i64).collect::<Vec<_>>() == crop(&widened, (x0, y0, x1, y1)), "event counts at {t} + {span}");
    }
    for (xs, ys) in [(0..width + 1, 0..height), (0..width, 1..height + 1), (std::ops::Range { start: 2, end: 1 }, 0..1)] {
        assert!(matches!(history.region_at(t, xs.clone(), ys.clone()), Err(Error::Argument(_))), "{xs:?} {ys:?}");
        assert!(matches!(history.placement_times_at(t, xs.clone(), ys.clone()), Err(Error::Argument(_))), "{xs:?} {ys:?}");
        assert!(matches!(history.previous_colors_at(t, xs.clone(), ys.clone()), Err(Error::Argument(_))), "{xs:?} {ys:?}");
        assert!(matches!(history.event_counts(t, t.saturating_add(1), xs.clone(), ys.clone()), Err(Error::Argument(_))), "{xs:?} {ys:?}");
    }
}

fn check_select(history: &History, oracle: &Oracle, rng: &mut Rng) {
    let (first, last) = history.time_range();
    for combination in 0..64u32 {
        for _ in 0..4 {
            let mut pick =
                |bit: u32, low: i64, high: i64| (combination >> bit & 1 == 1).then(|| low + rng.index((high - low) as usize) as i64);
            let (w, h) = (oracle.width as i64, oracle.height as i64);
            let (x0, y0, x1, y1) = (pick(0, -3, w + 3), pick(1, -3, h + 3), pick(2, -3, w + 3), pick(3, -3, h + 3));
            let (t0, t1) = (pick(4, first - 5, last + 5), pick(5, first - 5, last + 5));
            let inside = |v: i64, low: Option<i64>, high: Option<i64>| low.is_none_or(|l| l <= v) && high.is_none_or(|h| v < h);
            let expected: Vec<i64> = (0..oracle.events.len() as i64)
                .filter(|&i| {
                    let e = oracle.events[i as usize];
                    inside(e.x() as i64, x0, x1) && inside(e.y() as i64, y0, y1) && inside(e.timestamp_ms, t0, t1)
                })
                .collect();
            let selected = same_on_any_pool(|| history.select(x0, y0, x1, y1, t0, t1).unwrap());
            assert!(selected == expected, "select {x0:?} {y0:?} {x1:?} {y1:?} {t0:?} {t1:?}");
        }
    }
}

#[test]
fn matches_the_oracle_on_a_canvas_that_is_not_a_multiple_of_the_tile() {
    let mut rng = Rng::new(7, 0, 0);
    let (width, height, partition_size) = (37, 23, 777);
    let events = random_events(&mut rng, 20_000, width, height, 6);
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &events, width, height, partition_size);
    let history = History::open(dir.path()).unwrap();
    assert_eq!((history.len(), history.width(), history.height()), (20_000, 37, 23));
    assert_eq!(history.timestamps()[5], events[5].timestamp_ms);
    let oracle = Oracle::new(events, width, height);
    check_against_oracle(&history, &oracle, &mut rng, &[1, 7, 16, 64]);
    check_canvases(&history, &oracle, &mut rng, partition_size);
    check_select(&history, &oracle, &mut rng);
}

#[test]
fn ages_match_the_oracle_from_milliseconds_to_months() {
    let mut rng = Rng::new(13, 0, 0);
    let (width, height, partition_size) = (40, 33, 1_000);
    let events = random_events(&mut rng, 8_000, width, height, 5);
    // Gaps from 0 ms to 80 days, so every bucket (and "49 days or more") is met.
    let events = retimed(events, |_| match rng.index(10) {
        0..=4 => rng.index(3_000) as i64,
        5 => 5_000 + rng.index(60_000) as i64,
        6..=8 => rng.index(4_000_000) as i64,
        _ => rng.index(7_000_000_000) as i64,
    });
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &events, width, height, partition_size);
    let history = History::open(dir.path()).unwrap();
    let oracle = Oracle::new(events, width, height);
    check_against_oracle(&history, &oracle, &mut rng, &[16]);
    let all: Vec<i64> = (0..oracle.events.len() as i64).step_by(3).collect();
    let buckets = history.age_buckets(&all, 9).unwrap();
    let missing: Vec<u8> = (0..=AGE_OUTSIDE).filter(|b| !buckets.contains(b)).collect();
    assert!(missing.is_empty(), "buckets never met: {missing:?}");
}

/// `events` at new times: each `gap(k)` ms after the one before (event `k`), from 2022-04-01.
fn retimed(events: Vec<Event>, mut gap: impl FnMut(usize) -> i64) -> Vec<Event> {
    let mut t = 1_648_817_050_000i64;
    let retime = |(k, event): (usize, Event)| {
        t += gap(k);
        Event::new(t, event.user_id, event.x(), event.y(), event.color(), false)
    };
    events.into_iter().enumerate().map(retime).collect()
}

/// The age windows of every event of `events` on a `width`×`height` canvas, one array per size
/// of `sizes`, each checked against the replay, and the build that ran against the portable one.
fn ages_of_every_event(events: Vec<Event>, width: usize, height: usize, sizes: &[usize]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &events, width, height, 1_000);
    let history = History::open(dir.path()).unwrap();
    let oracle = Oracle::new(events, width, height);
    let all: Vec<i64> = (0..oracle.events.len() as i64).collect();
    let check = |&size: &usize| {
        let ages = same_on_any_pool(|| history.age_buckets(&all, size).unwrap());
        assert_eq!(ages, history.portable_age_buckets(&all, size).unwrap(), "ages on any CPU, size {size}");
        for (k, &id) in all.iter().enumerate() {
            assert_eq!(&ages[k * size * size..(k + 1) * size * size], &oracle.ages(id as usize, size)[..], "ages of {id}, size {size}");
        }
        ages
    };
    sizes.iter().map(check).collect()
}

#[test]
fn ages_are_exact_where_the_last_millisecond_decides() {
    // A 20×18 canvas (partial tiles at the right and bottom) and events 0.1–1.5 s apart: ages of
    // seconds to a minute, where the bucket edges lie a few ticks apart, so many checkpoint pixels
    // sit within a tick of an edge and their rests decide. Every event, two window sizes.
    let mut rng = Rng::new(17, 0, 0);
    let (width, height) = (20, 18);
    let events = random_events(&mut rng, 3_000, width, height, 2);
    let events = retimed(events, |_| 100 + rng.index(1_400) as i64);
    ages_of_every_event(events, width, height, &[16, 33]);
}

#[test]
fn ages_are_exact_at_long_ago_and_where_the_times_run_out() {
    // Events 0.1–1.5 s apart for about a quarter of an hour, then 2²⁷ ms (37.3 h) later less a
    // minute another quarter of an hour of them: the first ones' ages cross the last bucket edge
    // while the second ones read them, so the rests decide at that edge too. Then, 50 days on
    // (past what the tile event times hold), events with equal timestamps: only the ids order them.
    let mut rng = Rng::new(19, 0, 0);
    let (width, height) = (20, 18);
    let events = random_events(&mut rng, 3_000, width, height, 2);
    let events = retimed(events, |k| match k {
        1_000 => (1 << 27) - 60_000,
        2_000 => 50 * 86_400_000,
        _ if k > 2_000 => [0, 0, 1_500][rng.index(3)],
        _ => 100 + rng.index(1_400) as i64,
    });
    for ages in ages_of_every_event(events, width, height, &[16, 33]) {
        assert!(ages.contains(&(AGE_BUCKETS - 2)) && ages.contains(&(AGE_BUCKETS - 1)), "both sides of the last edge");
    }
}

#[test]
fn matches_the_oracle_after_a_real_ingest() {
    let mut rng = Rng::new(11, 0, 0);
    // Starting 20 s before the canvas grew (2022-04-02 16:24:56): about half the events come
    // after, so windows meet cells not yet open and cells just opened.
    let grew = Format::Y2022.expansions()[1].from_ms;
    let events = random_events_from(&mut rng, 25_000, 2000, 2000, 40, grew - 20_000);
    assert!(events[0].timestamp_ms < grew && events[events.len() - 1].timestamp_ms > grew);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("history.csv");
    let mut text = String::from("timestamp,user_id,pixel_color,coordinate\n");
    for e in &events {
        let time = crate::timestamp::format_timestamp(e.timestamp_ms);
        text.push_str(&format!("{time},user{},{},\"{},{}\"\n", e.user_id, crate::palette::hex_string(e.color()), e.x(), e.y()));
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("dataset");
    let options = crate::ingest::IngestOptions { partition_size: crate::ingest::MIN_PARTITION_SIZE, ..Default::default() };
    crate::ingest::ingest(&[csv], &out, &options, &|| false).unwrap();
    let history = History::open(&out).unwrap();
    assert_eq!(history.colors(), events.iter().map(|e| e.color()).collect::<Vec<_>>());
    // The ingest numbers users by first appearance: the oracle takes the dataset's numbers.
    let events: Vec<Event> =
        events.iter().zip(history.user_ids()).map(|(e, &u)| Event::new(e.timestamp_ms, u, e.x(), e.y(), e.color(), false)).collect();
    let oracle = Oracle::new(events, 2000, 2000);
    check_against_oracle(&history, &oracle, &mut rng, &[64, 9]);
    check_canvases(&history, &oracle, &mut rng, 1_000);
}

#[test]
fn refuses_bad_ids_and_arguments() {
    let mut rng = Rng::new(3, 0, 0);
    let events = random_events(&mut rng, 300, 20, 20, 3);
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &events, 20, 20, 100);
    let history = History::open(dir.path()).unwrap();
    fn shareable<T: Send + Sync>(_: &T) {}
    shareable(&history);
    for bad in [-1, 300, i64::MAX, i64::MIN] {
        let index = |r: Result<Vec<u8>>| matches!(r, Err(Error::Index(m)) if m.contains(&bad.to_string()) && m.contains("300 events"));
        assert!(index(history.windows(&[0, bad], 64)));
        assert!(matches!(history.color_targets(&[bad], ColorTarget::Placed, 60_000), Err(Error::Index(_))));
        assert!(matches!(history.time_targets(&[bad], 16, 1_000), Err(Error::Index(_))));
        assert!(matches!(history.recent_colors(&[bad], 64, 1_000), Err(Error::Index(_))));
        assert!(matches!(history.last_change_times(&[bad], 16), Err(Error::Index(_))));
        assert!(matches!(history.previous_colors(&[bad], 16), Err(Error::Index(_))));
    }
    assert!(matches!(history.previous_colors(&[1], 0), Err(Error::Argument(_))));
    assert!(matches!(history.recent_colors(&[1], 0, 1_000), Err(Error::Argument(_))));
    assert!(matches!(history.recent_colors(&[1], 64, 0), Err(Error::Argument(_))));
    assert!(matches!(history.last_change_times(&[1], 0), Err(Error::Argument(_))));
    assert!(matches!(history.canvas_before(-1), Err(Error::Index(_))));
    assert!(matches!(history.canvas_before(301), Err(Error::Index(_))));
    assert!(matches!(history.windows(&[1], 0), Err(Error::Argument(_))));
    assert!(matches!(history.time_targets(&[1], 0, 1_000), Err(Error::Argument(_))));
    assert!(matches!(history.time_targets(&[1], 16, 0), Err(Error::Argument(_))));
    assert!(matches!(history.color_targets(&[1], ColorTarget::NextMinuteMajority, -5), Err(Error::Argument(_))));
    assert_eq!(history.windows(&[], 64).unwrap(), Vec::<u8>::new());
    assert_eq!(history.select(Some(5), None, Some(5), None, None, None).unwrap(), Vec::<i64>::new());
    assert_eq!(history.select(None, None, None, None, Some(i64::MAX), Some(i64::MIN)).unwrap(), Vec::<i64>::new());
}

#[test]
fn damaged_datasets_name_the_file() {
    let mut rng = Rng::new(5, 0, 0);
    let events = random_events(&mut rng, 500, 40, 30, 4);
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), &events, 40, 30, 100);
    assert!(History::open(dir.path()).is_ok());
    let damaged = |file: &str, says: &str| {
        let error = History::open(dir.path()).err().expect("a damaged dataset opened");
        let message = error.to_string();
        assert!(
            matches!(error, Error::Dataset { .. }) && message.contains(file) && message.contains(says) && message.contains("ingest"),
            "{message}"
        );
    };
    let cells = dir.path().join(crate::index::TILE_EVENT_CELLS_FILE);
    let bytes = std::fs::read(&cells).unwrap();
    std::fs::write(&cells, &bytes[..bytes.len() - 3]).unwrap();
    damaged("tile_event_cells.npy", "the manifest says");
    std::fs::write(&cells, &bytes).unwrap();

    let color = dir.path().join(COLOR_FILE);
    let bytes = std::fs::read(&color).unwrap();
    let mut wrong = Vec::new();
    npy::write_header(&mut wrong, "<u2", &[250]).unwrap();
    wrong.extend_from_slice(&bytes[npy::header_len("|u1", &[500])..]);
    std::fs::write(&color, wrong).unwrap();
    damaged("color.npy", "<u2");
    std::fs::write(&color, &bytes).unwrap();

    let offsets = dir.path().join(TILE_OFFSETS_FILE);
    let mut bytes = std::fs::read(&offsets).unwrap();
    let last = bytes.len() - 8;
    bytes[last] ^= 1;
    std::fs::write(&offsets, &bytes).unwrap();
    damaged("tile_offsets.npy", "tiles");
    bytes[last] ^= 1;
    std::fs::write(&offsets, &bytes).unwrap();

    for (file, says) in [(crate::index::AGE_TILE_OFFSETS_FILE, "tiles"), (crate::index::AGE_CHECKPOINT_OFFSETS_FILE, "event counts")] {
        let offsets = dir.path().join(file);
        let mut bytes = std::fs::read(&offsets).unwrap();
        let last = bytes.len() - 8;
        bytes[last] ^= 1;
        std::fs::write(&offsets, &bytes).unwrap();
        damaged(file.trim_start_matches("index/"), says);
        bytes[last] ^= 1;
        std::fs::write(&offsets, &bytes).unwrap();
    }

    // A pixel outside its age tile (same size, so it opens) fails the age windows that meet it
    // as a damaged dataset, never as a panic.
    let pixels = dir.path().join(crate::index::AGE_TILE_EVENT_PIXELS_FILE);
    let bytes = std::fs::read(&pixels).unwrap();
    let header = npy::header_len("<u2", &[500]);
    let mut wrong = bytes[..header].to_vec();
    wrong.extend((0..500).flat_map(|_| u16::MAX.to_le_bytes()));
    std::fs::write(&pixels, wrong).unwrap();
    let history = History::open(dir.path()).unwrap();
    let error = history.age_buckets(&[499], 64).unwrap_err();
    assert!(matches!(&error, Error::Dataset { .. }) && error.to_string().contains("ingest the dataset again"), "{error}");
    std::fs::write(&pixels, &bytes).unwrap();

    // Ids past the end in the tile lists open (checking them would read the whole index) but
    // fail the reads that meet them as a damaged dataset, never as a panic.
    let tile_ids = dir.path().join(TILE_EVENT_IDS_FILE);
    let bytes = std::fs::read(&tile_ids).unwrap();
    let header = npy::header_len("<u4", &[500]);
    let mut wrong = bytes[..header].to_vec();
    wrong.extend((0..500).flat_map(|_| 505u32.to_le_bytes()));
    std::fs::write(&tile_ids, wrong).unwrap();
    let history = History::open(dir.path()).unwrap();
    let error = history.last_change_times(&[499], 16).unwrap_err();
    assert!(matches!(&error, Error::Dataset { path, .. } if path.ends_with("index")), "{error}");
    assert!(error.to_string().contains("ingest the dataset again"));
    std::fs::write(&tile_ids, &bytes).unwrap();

    // A color outside the palette in the columns (same size, so it opens) never reaches
    // the caller: reads that would hand it on name the file.
    let color = dir.path().join(COLOR_FILE);
    let mut bytes = std::fs::read(&color).unwrap();
    let at = npy::header_len("|u1", &[500]) + 7;
    bytes[at] = 200;
    std::fs::write(&color, &bytes).unwrap();
    let history = History::open(dir.path()).unwrap();
    for error in [
        history.canvas_before(8).unwrap_err(),
        history.color_targets(&[7], ColorTarget::Placed, 1).unwrap_err(),
        history.check_columns().unwrap_err(),
    ] {
        assert!(matches!(&error, Error::Dataset { path, .. } if path.ends_with(COLOR_FILE)), "{error}");
        assert!(error.to_string().contains("color 200"), "{error}");
    }
    // The index (its checkpoints) holds the color too: windows name its file.
    let checkpoints = dir.path().join(TILE_CHECKPOINTS_FILE);
    let mut states = std::fs::read(&checkpoints).unwrap();
    let header = states.len() - history.tile_checkpoints.len;
    assert!(history.tile_checkpoints.len > 0, "the test needs a tile with a checkpoint");
    bytes[at] = events[7].color();
    std::fs::write(&color, &bytes).unwrap();
    let states_before = states.clone();
    states[header..].fill(99);
    std::fs::write(&checkpoints, &states).unwrap();
    let history = History::open(dir.path()).unwrap();
    let busy: Vec<i64> = (0..500).collect();
    let error = history.windows(&busy, 16).unwrap_err();
    assert!(matches!(&error, Error::Dataset { path, .. } if path.ends_with(TILE_CHECKPOINTS_FILE)), "{error}");
    std::fs::write(&checkpoints, &states_before).unwrap();
    // And its events' cells: the previous colors read them, and name the file.
    let cells_file = dir.path().join(TILE_EVENT_CELLS_FILE);
    let cells_before = std::fs::read(&cells_file).unwrap();
    let mut cells = cells_before.clone();
    let header = npy::header_len("<u2", &[500]);
    cells[header..].chunks_mut(2).for_each(|cell| cell[1] = 200);
    std::fs::write(&cells_file, &cells).unwrap();
    let history = History::open(dir.path()).unwrap();
    let (width, height) = (history.width, history.height);
    for error in [history.previous_colors(&busy, 16).unwrap_err(), history.previous_colors_at(i64::MAX, 0..width, 0..height).unwrap_err()] {
        assert!(matches!(&error, Error::Dataset { path, .. } if path.ends_with(TILE_EVENT_CELLS_FILE)), "{error}");
    }
    std::fs::write(&cells_file, &cells_before).unwrap();

    std::fs::remove_file(dir.path().join(X_FILE)).unwrap();
    damaged("x.npy", "missing");
    std::fs::remove_file(dir.path().join(dataset::MANIFEST_FILE)).unwrap();
    damaged(dir.path().to_str().unwrap(), "manifest.json is missing");
}
