//! Scale-loop benchmark: N cron ScaledObjects on local-cluster, one `kedge run`.
//!
//! Prints kedge's RSS, CPU seconds per minute, and how late polls started (the lag behind
//! `keda_internal_scale_loop_latency_seconds`) as p50/p99/max over the measuring window.
//!
//!     cargo run --release -p kedge-e2e --example bench-scale-loop -- 1000 [window_secs] [polling_interval]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kedge::crd::ScaledObject;
use kedge_e2e::Cluster;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn scrape(addr: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (upper bound, cumulative count) of `kedge_scale_loop_lag_seconds`.
fn lag_buckets(metrics: &str) -> Vec<(f64, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("kedge_scale_loop_lag_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect()
}

fn max_gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, f64::max)
}

fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, c - b)
        })
        .collect();
    let total = deltas.last().map_or(0.0, |(_, c)| *c);
    let target = total * q;
    let le = deltas
        .iter()
        .find(|(_, c)| *c >= target)
        .map_or(f64::INFINITY, |(le, _)| *le);
    (le, total)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let window: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(60);
    let interval: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(30);

    // The HPA controller syncs at kube-controller-manager's default period, as on a real
    // cluster (the tests' 1 s would have the stand-in re-read 10,000 HPAs every second).
    let c = Cluster::start_with_hpa_sync("bench", 15).await;
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let sos: Api<ScaledObject> = Api::namespaced(c.client.clone(), "default");
    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (deployments, sos) = (deployments.clone(), sos.clone());
            async move {
                let name = format!("w{i}");
                let d: Deployment = serde_json::from_value(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": {"app": name}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
                }))
                .unwrap();
                deployments.create(&PostParams::default(), &d).await.unwrap();
                // Windows spread over the hour, so some open and close during the run.
                let m = i % 60;
                let so: ScaledObject = serde_json::from_value(json!({
                    "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                    "metadata": {"name": name},
                    "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": interval,
                             "cooldownPeriod": 60,
                             "triggers": [{"type": "cron", "metadata": {
                                 "timezone": "Etc/UTC", "start": format!("{m} * * * *"),
                                 "end": format!("{} * * * *", (m + 5) % 60), "desiredReplicas": "2"}}]}
                }))
                .unwrap();
                sos.create(&PostParams::default(), &so).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    eprintln!(
        "created {n} Deployments and ScaledObjects in {:?}",
        created.elapsed()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let kedge = c.run_kedge("kedge", &["--metrics-bind-address", &addr]);
    let started = Instant::now();
    // Listing every object is expensive for the API server at 10,000 objects, so look rarely.
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let ready = sos
            .list(&ListParams::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|so| {
                        so.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .iter()
                                .flatten()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready == n {
            break;
        }
        assert!(Instant::now() < deadline, "only {ready} of {n} ready");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!("all {n} ready {:?} after start", started.elapsed());
    // Let the first round of polls settle before measuring.
    tokio::time::sleep(Duration::from_secs(interval.min(30))).await;

    let pid = kedge.pid();
    let (cpu0, m0, t0) = (cpu_seconds(pid), scrape(&addr), Instant::now());
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (cpu1, m1, elapsed) = (cpu_seconds(pid), scrape(&addr), t0.elapsed());
    let (b0, b1) = (lag_buckets(&m0), lag_buckets(&m1));
    let (p50, polls) = quantile(&b0, &b1, 0.5);
    let (p99, _) = quantile(&b0, &b1, 0.99);
    let max = max_gauge(&m1, "keda_internal_scale_loop_latency_seconds{");
    let rss = proc_field(pid, "VmRSS:");
    let hwm = proc_field(pid, "VmHWM:");
    let cluster_rss = proc_field(c.process.pid(), "VmRSS:");
    let cpu_per_min = (cpu1 - cpu0) / elapsed.as_secs_f64() * 60.0;
    println!(
        "| {n} | {interval} s | {:.0} | {:.1} MiB (peak {:.1}) | {cpu_per_min:.2} | ≤{:.1} ms | ≤{:.1} ms | {:.1} ms | {:.1} MiB |",
        polls,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        p50 * 1000.0,
        p99 * 1000.0,
        max * 1000.0,
        cluster_rss as f64 / 1024.0,
    );
}
