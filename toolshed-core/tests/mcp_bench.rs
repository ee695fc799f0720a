//! Figures (ignored by default; prints, never asserts speed): probe latency against the
//! bridge-wrapped `mcp-server-time`, next to that server's own stdio start-up in the same run.
//!
//! `TOOLSHED_TEST_VENV_BIN=.venv/bin cargo test -p toolshed-core --features mcp-server --release
//! --test mcp_bench -- --ignored --nocapture`
#![cfg(feature = "mcp-server")]

mod mcp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use toolshed_core::adapters::mcp::{BridgeConfig, RmcpProbe, StdioBridge};
use toolshed_core::ports::McpProbe;

const ROUNDS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Spawn → initialized → tools listed, over stdio, with no bridge.
async fn stdio_start(server: &str) -> Duration {
    let started = Instant::now();
    let transport = TokioChildProcess::new(tokio::process::Command::new(server)).unwrap();
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bench", "0"),
    )
    .serve(transport)
    .await
    .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(tools.len(), 2);
    let _ = client.cancel().await;
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn bridge_probe_latency_vs_stdio_startup() {
    let Some(bin) = mcp_support::venv_bin() else {
        return;
    };
    let server = bin.join("mcp-server-time").to_string_lossy().into_owned();
    let probe = RmcpProbe::new().unwrap();
    let (mut stdio, mut bridged_total, mut probe_cold, mut probe_warm) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        stdio.push(ms(stdio_start(&server).await));

        let started = Instant::now();
        let mut bridge = StdioBridge::start(
            BridgeConfig::new(vec![server.clone()]).with_listen(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        )
        .await
        .unwrap();
        let ep = bridge.endpoint().unwrap();
        let listed = Instant::now();
        let report = probe
            .wait_ready(&ep, Duration::from_secs(30))
            .await
            .unwrap();
        let now = Instant::now();
        assert_eq!(report.tools().len(), 2);
        bridged_total.push(ms(now - started));
        probe_cold.push(ms(now - listed));
        let again = Instant::now();
        probe.probe(&ep, Duration::from_secs(10)).await.unwrap();
        probe_warm.push(ms(again.elapsed()));
        bridge.shutdown();
        bridge.wait().await.unwrap();
    }
    let (s, b) = (median(stdio.clone()), median(bridged_total.clone()));
    println!("mcp-server-time, {ROUNDS} rounds, medians:");
    println!("  stdio only: spawn -> initialized -> tools listed      {s:8.1} ms  {stdio:.0?}");
    println!(
        "  bridge: spawn -> port open -> probe tools listed    {b:8.1} ms  {bridged_total:.0?}"
    );
    println!(
        "  probe against the ready bridge (connect -> listed)  {:8.1} ms  {probe_cold:.0?}",
        median(probe_cold.clone())
    );
    println!(
        "  second probe (fresh session)                        {:8.1} ms  {probe_warm:.0?}",
        median(probe_warm.clone())
    );
    println!(
        "  bridge overhead (bridged total - stdio only)        {:8.1} ms",
        b - s
    );
}
