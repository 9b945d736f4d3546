//! Catalogue load time: building the simulator's item catalogue (34k CS2 names and prices plus the Dota 2 and
//! Rust lists, with classids, exteriors and the name index) from the shipped JSON, against only parsing that
//! JSON into a generic value, in the same run. The bound is absolute (≤ 100 ms); the parse beside it
//! shows how much of the time is the JSON itself.

use std::time::{Duration, Instant};

use skingate_steam::catalogue::{CS2_PRICES, Catalogue};

/// Options of the `catalogue` benchmark.
#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Loads timed (the median is reported).
    #[arg(long, default_value_t = 21)]
    runs: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times both, alternating, and prints the table and a JSON line.
pub fn run(opts: Opts) -> anyhow::Result<()> {
    let runs = opts.runs.max(1);
    let (mut load, mut parse) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let mut items = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let json: serde_json::Value = serde_json::from_str(CS2_PRICES)?;
        parse.push(t.elapsed());
        drop(json);
        let t = Instant::now();
        let catalogue = Catalogue::load(CS2_PRICES)?;
        load.push(t.elapsed());
        items = skingate_steam::catalogue::Game::ALL.iter().map(|g| catalogue.count(*g)).sum();
    }
    let (load, parse) = (median(load), median(parse));
    println!("{:<44} {:>10}", "scenario", "median ms");
    println!("{:<44} {:>10.2}", "parse the shipped JSON only (baseline)", parse.as_secs_f64() * 1e3);
    println!("{:<44} {:>10.2}", format!("build the catalogue ({items} items)"), load.as_secs_f64() * 1e3);
    println!(
        "{}",
        serde_json::json!({"bench": "catalogue", "runs": runs, "items": items,
            "load_ms": load.as_secs_f64() * 1e3, "parse_only_ms": parse.as_secs_f64() * 1e3})
    );
    Ok(())
}
