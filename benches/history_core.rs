//! `cargo bench --bench history_core`: the reconstruction core without Python — windows,
//! targets and canvas_at on a synthetic history (generated and ingested into a temp folder).
//! `HISTORY_BENCH_ROWS` sets the size (default 2,000,000); `HISTORY_BENCH_DATASET` names an
//! ingested dataset to read instead (e.g. `bench-data/synth_10000000_1`, which
//! `benches/windows.py` makes), so that a change to the readers is timed without a new ingest.

use rplace_core::history::{ColorTarget, History};
use rplace_core::ingest::{ingest, IngestOptions};
use rplace_core::synth::{synthesize, SynthOptions};
use std::time::Instant;

fn main() {
    let dir = std::env::temp_dir().join(format!("rplace-history-bench-{}", std::process::id()));
    let dataset = match std::env::var_os("HISTORY_BENCH_DATASET") {
        Some(dataset) => std::path::PathBuf::from(dataset),
        None => {
            let rows = std::env::var("HISTORY_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
            std::fs::create_dir_all(&dir).expect("temp dir");
            let csv = dir.join("synth.csv.gz");
            synthesize(&SynthOptions { rows, seed: 1, year: 2022 }, &csv, &|| false, &|_| {}).expect("synth");
            let dataset = dir.join("dataset");
            ingest(&[csv], &dataset, &IngestOptions::default(), &|| false).expect("ingest");
            dataset
        }
    };

    let start = Instant::now();
    let history = History::open(&dataset).expect("open");
    println!("open: {:.2} ms", start.elapsed().as_secs_f64() * 1000.0);

    // Random events, drawn with a fixed LCG so runs compare.
    let mut state = 7u64;
    let mut batch = || -> Vec<i64> {
        (0..256)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) % history.len() as u64) as i64
            })
            .collect()
    };
    let batches: Vec<Vec<i64>> = (0..400).map(|_| batch()).collect();
    // `cargo bench --bench history_core -- ages` times only the calls whose names contain `ages`.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let time = |name: &str, work: &dyn Fn(&[i64])| {
        if !wanted(name) {
            return;
        }
        work(&batches[0]);
        let start = Instant::now();
        for b in &batches {
            work(b);
        }
        let per_second = (batches.len() * 256) as f64 / start.elapsed().as_secs_f64();
        println!("{name}: {per_second:.0}/s");
    };
    time("windows 64 + placed", &|b| {
        history.windows(b, 64).expect("windows");
        history.color_targets(b, ColorTarget::Placed, 60_000).expect("targets");
    });
    time("windows 64 alone", &|b| {
        history.windows(b, 64).expect("windows");
    });
    time("age_buckets 64", &|b| {
        history.age_buckets(b, 64).expect("ages");
    });
    time("last_placers 64", &|b| {
        history.last_placers(b, 64).expect("placers");
    });
    time("previous_colors 64", &|b| {
        history.previous_colors(b, 64).expect("previous");
    });
    time("next_minute_majority", &|b| {
        history.color_targets(b, ColorTarget::NextMinuteMajority, 60_000).expect("targets");
    });
    time("time_targets 16", &|b| {
        history.time_targets(b, 16, 3_600_000).expect("targets");
    });
    let (first, last) = history.time_range();
    if !wanted("canvas_at") {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let start = Instant::now();
    for k in 0..50 {
        std::hint::black_box(history.canvas_at(first + (last - first) * k / 50).expect("an intact dataset"));
    }
    println!("canvas_at 2000x2000: {:.2} ms", start.elapsed().as_secs_f64() * 1000.0 / 50.0);
    let _ = std::fs::remove_dir_all(&dir);
}
