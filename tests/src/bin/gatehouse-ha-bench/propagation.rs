//! A change on one control plane until every data plane has ACKed it: half of them on another
//! control plane (etcd), beside all of them on one control plane (sled).

use std::time::Instant;

use anyhow::ensure;
use gatehouse_tests::fleet::wait_acked;
use gatehouse_tests::process::ControlPlane;

use crate::figures::percentile;
use crate::installation::{Installation, Store};
use crate::usage::memory;
use crate::{ACK_WITHIN, put_changed};

pub async fn propagation_figures(data_planes: usize, changes: usize) -> anyhow::Result<()> {
    ensure!(data_planes > 0 && changes > 0, "data planes and changes must be positive");
    println!(
        "propagation: {changes} one-API changes (PutApi) on cp1, each timed from the call returning until every one of \
         {data_planes} data planes ACKed it (cp1's ListGateways, polled every 2 ms)"
    );
    let mut medians = Vec::new();
    for (store, control_planes) in [(Store::Sled, 1), (Store::Etcd { members: 3 }, 2)] {
        let installation = Installation::start(store).await?;
        let mut cps = Vec::new();
        for n in 1..=control_planes {
            cps.push(installation.control_plane(n).await?);
        }
        let urls: Vec<String> = cps.iter().map(ControlPlane::url).collect();
        let names: Vec<String> = (0..data_planes).map(|i| format!("dp-{i}")).collect();
        // Data plane i on control plane i mod n: half on each of two.
        let _fleet = installation.data_planes(&names, |i| urls[i % urls.len()].as_str()).await?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut m1 = cps[0].management().await?;
        let revision = put_changed(&mut m1, "moving").await?;
        wait_acked(&mut m1, &names, revision, ACK_WITHIN).await?;

        let (mut puts, mut acked) = (Vec::new(), Vec::new());
        for _ in 0..changes {
            let sent = Instant::now();
            let revision = put_changed(&mut m1, "moving").await?;
            let returned = Instant::now();
            puts.push(returned - sent);
            wait_acked(&mut m1, &names, revision, ACK_WITHIN).await?;
            acked.push(returned.elapsed());
        }
        let label = match store {
            Store::Sled => format!("sled, 1 control plane, {data_planes} data planes"),
            Store::Etcd { members } => format!(
                "etcd ({members} members), {control_planes} control planes, {} + {} data planes",
                data_planes.div_ceil(2),
                data_planes / 2
            ),
        };
        println!(
            "  {label:<52} all ACKed p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}   (PutApi p50 {:.2?})",
            percentile(&mut acked, 0.5),
            percentile(&mut acked, 0.99),
            percentile(&mut acked, 1.0),
            percentile(&mut puts, 0.5)
        );
        let memories: Vec<String> =
            cps.iter().enumerate().map(|(n, cp)| format!("cp{} {} MiB", n + 1, memory(cp))).collect();
        println!("    control plane RSS/peak at the end: {}", memories.join(", "));
        medians.push(percentile(&mut acked, 0.5));
        installation.report_logs();
    }
    println!("  etcd / sled, p50 all ACKed: x{:.2}", medians[1].as_secs_f64() / medians[0].as_secs_f64());
    Ok(())
}
