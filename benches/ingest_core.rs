//! `cargo bench --bench ingest_core`: events per second of the SQLite partition writer
//! and of the CSV chunk parser, on generated events (no input files needed).

use rplace_core::csv_rows::{parse_chunk, Format};
use rplace_core::dataset::{write_partition, PARTITIONS_DIR};
use rplace_core::event::Event;
use rplace_core::timestamp::format_timestamp;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn events(n: usize) -> Vec<Event> {
    // A cheap LCG: hot and cold pixels, increasing timestamps.
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    (0..n)
        .map(|i| {
            let (x, y) = if next() % 4 == 0 { (next() % 2000, next() % 2000) } else { (600 + next() % 64, 700 + next() % 64) };
            Event::new(1_648_817_050_000 + i as i64 * 3, next() % 100_000, x as u16, y as u16, (next() % 32) as u8, false)
        })
        .collect()
}

fn main() {
    let n = 1_000_000;
    let events = events(n);
    let dir = std::env::temp_dir().join(format!("rplace-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(PARTITIONS_DIR)).expect("temp dir");
    let stop = AtomicBool::new(false);
    for round in 0..3 {
        let start = Instant::now();
        write_partition(&dir, round, 0, &events, &stop).expect("write");
        let seconds = start.elapsed().as_secs_f64();
        println!("partition writer: {n} events in {seconds:.3} s = {:.0} events/s (one thread)", n as f64 / seconds);
    }

    let mut text = Vec::new();
    for e in &events {
        text.extend_from_slice(
            format!("{},{:088},#FF4500,\"{},{}\"\n", format_timestamp(e.timestamp_ms), e.user_id, e.x(), e.y()).as_bytes(),
        );
    }
    for _ in 0..3 {
        let start = Instant::now();
        let parsed = parse_chunk(&text, 2, Format::Y2022);
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(parsed.rows.len(), n);
        println!("csv parser: {n} rows ({} MB) in {seconds:.3} s = {:.0} rows/s (one thread)", text.len() >> 20, n as f64 / seconds);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
