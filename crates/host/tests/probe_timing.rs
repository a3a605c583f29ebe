//! Prints how long `probe()` takes cold (first call in a process: version commands run) and
//! warm. A measurement, not an assertion: run with `--nocapture` to see it.

use std::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn probe_timing() {
    let t = Instant::now();
    let caps = hostplane_host::probe().await;
    let cold = t.elapsed();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        std::hint::black_box(hostplane_host::probe().await);
        warm.push(t.elapsed());
    }
    warm.sort();
    let found = caps.tools.iter().filter(|t| t.found).count();
    println!(
        "probe(): cold {cold:?} ({found} tools found); warm min {:?} median {:?} max {:?}",
        warm[0],
        warm[warm.len() / 2],
        warm[warm.len() - 1]
    );
}

#[tokio::test]
#[ignore = "prints the probe as JSON"]
async fn print_probe() {
    let caps = hostplane_host::probe().await;
    println!("{}", serde_json::to_string_pretty(&caps).unwrap());
}
