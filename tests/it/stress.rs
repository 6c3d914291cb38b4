//! Stress: 16 pairs syncing every 0.05-0.2 s while the menu stops one pair
//! and adds one back, 200 times, and a thread keeps changing the sources.
//! Checks: no panic; no deadlock (every menu answer within 5 s); resident
//! memory (VmRSS) after the warm-up never more than `RSS_GROWTH_BOUND`
//! above its value at the end of the warm-up; every replica a mirror at
//! the end; "3. Quit safely" ends the process in under a second.
//!
//! Not part of `cargo test` (ignored): run `bench/stress.sh`.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

const SEED: u64 = 0x5787_e550;
const PAIRS: usize = 16;
const CYCLES: usize = 200;
const WARM_UP: usize = 50;
/// How far RSS may rise above its end-of-warm-up value.
const RSS_GROWTH_BOUND_KB: u64 = 16 * 1024;
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

fn vm_rss_kb(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn fill_source(dir: &Path, rng: &mut Rng) {
    for d in 0..3 {
        for f in 0..10 {
            let p = dir.join(format!("d{d}/f{f}.bin"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let len = rng.range(0, 64 * 1024) as usize;
            fs::write(p, rng.bytes(len)).unwrap();
        }
    }
}

#[test]
#[ignore = "stress run, a minute or so: bench/stress.sh"]
fn sixteen_pairs_and_200_stop_add_cycles() {
    let env = fast_env();
    let mut rng = Rng::new(SEED);
    env.mkdir("logs");
    let mut intervals = Vec::new();
    let mut pairs_file = String::new();
    for p in 0..PAIRS {
        fill_source(&env.path(format!("src{p}")), &mut rng);
        let interval = format!("{:.2}", 0.05 + rng.below(16) as f64 * 0.01);
        pairs_file += &format!("src{p} rep{p} {interval} logs/slot{p}.log\n");
        intervals.push(interval);
    }
    fs::write(env.path("pairs.txt"), pairs_file).unwrap();

    // Keeps the passes busy: rewrites a random source file every 2 ms.
    let stop_mutator = Arc::new(AtomicBool::new(false));
    let mutator = {
        let stop = Arc::clone(&stop_mutator);
        let root = env.root().to_owned();
        let mut rng = Rng::new(SEED ^ 1);
        thread::spawn(move || {
            let mut writes = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let p = root.join(format!(
                    "src{}/d{}/f{}.bin",
                    rng.below(PAIRS as u64),
                    rng.below(3),
                    rng.below(10)
                ));
                let len = rng.range(0, 64 * 1024) as usize;
                fs::write(p, rng.bytes(len)).unwrap();
                writes += 1;
                thread::sleep(Duration::from_millis(2));
            }
            writes
        })
    };

    let mut menu = MenuSession::start(env.root(), ["--pairs", "pairs.txt", "-q"]);
    let pid = menu.child.id();
    let mut ids: Vec<usize> = (1..=PAIRS).collect();
    let mut worst_answer = Duration::ZERO;
    let mut rss = Vec::new();
    let started = Instant::now();
    for cycle in 0..CYCLES {
        let slot = cycle % PAIRS;
        // Pairs are numbered in the order they were added.
        let next_id = PAIRS + 1 + cycle;
        let t = Instant::now();
        menu.send("4");
        menu.send(&ids[slot].to_string());
        menu.wait_stdout(&format!("Pair {} stopped.", ids[slot]), 1, ANSWER_LIMIT);
        worst_answer = worst_answer.max(t.elapsed());
        let t = Instant::now();
        menu.send("2");
        menu.send(&format!("src{slot}"));
        menu.send(&format!("rep{slot}"));
        menu.send(&intervals[slot]);
        menu.send(&format!("logs/slot{slot}.log"));
        menu.send("");
        menu.wait_stdout(&format!("Started pair {next_id}:"), 1, ANSWER_LIMIT);
        worst_answer = worst_answer.max(t.elapsed());
        ids[slot] = next_id;
        rss.push(vm_rss_kb(pid));
    }
    let cycles_took = started.elapsed();
    stop_mutator.store(true, Ordering::SeqCst);
    let writes = mutator.join().unwrap();

    // Let every pair run two full passes over the now quiet sources.
    let finished = |slot: usize| {
        fs::read_to_string(env.path(format!("logs/slot{slot}.log")))
            .unwrap_or_default()
            .matches("pass finished")
            .count()
    };
    let marks: Vec<usize> = (0..PAIRS).map(finished).collect();
    wait_for(
        Duration::from_secs(10),
        || (0..PAIRS).all(|s| finished(s) >= marks[s] + 2),
        || "pairs stopped passing after the cycles".into(),
    );

    let quit_started = Instant::now();
    menu.send("3");
    let status = menu.wait_exit(Duration::from_secs(10));
    let quit_took = quit_started.elapsed();
    let stderr = menu.stderr();
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(status.success(), "exit: {status}\n{stderr}");

    for slot in 0..PAIRS {
        assert_mirror(
            &env.path(format!("src{slot}")),
            &env.path(format!("rep{slot}")),
        );
    }
    let warm = rss[WARM_UP - 1];
    let peak_after = *rss[WARM_UP..].iter().max().unwrap();
    let last = *rss.last().unwrap();
    println!(
        "stress: {PAIRS} pairs, {CYCLES} stop+add cycles in {:.1} s, {writes} source rewrites; slowest menu answer {} ms; VmRSS after warm-up {warm} kB, peak after {peak_after} kB, last {last} kB (bound: warm-up + {RSS_GROWTH_BOUND_KB} kB); quit took {} ms",
        cycles_took.as_secs_f64(),
        worst_answer.as_millis(),
        quit_took.as_millis()
    );
    assert!(
        peak_after <= warm + RSS_GROWTH_BOUND_KB,
        "RSS grew from {warm} kB to {peak_after} kB"
    );
    assert!(
        quit_took < Duration::from_secs(1),
        "quit took {quit_took:?}"
    );
}
