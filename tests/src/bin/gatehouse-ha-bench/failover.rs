//! SIGKILL the control plane a fleet is on; time until every data plane has applied a change
//! made on the other control plane.

use std::time::Instant;

use anyhow::ensure;
use gatehouse_tests::fleet::wait_acked;

use crate::installation::{Installation, Store};
use crate::usage::memory;
use crate::{ACK_WITHIN, put_changed};

pub async fn failover_figures(data_planes: usize, rounds: usize) -> anyhow::Result<()> {
    ensure!(data_planes > 0 && rounds > 0, "data planes and rounds must be positive");
    let installation = Installation::start(Store::Etcd { members: 3 }).await?;
    let mut cp1 = installation.control_plane(1).await?;
    let cp2 = installation.control_plane(2).await?;
    let mut m2 = cp2.management().await?;
    let (mut written, mut applied) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        if round > 1 {
            // The previous round killed it: a new process on the same etcd.
            cp1 = installation.control_plane(1).await?;
        }
        let mut m1 = cp1.management().await?;
        let urls = format!("{},{}", cp1.url(), cp2.url());
        // New names each round: the killed control plane's records linger for its lease's time.
        let names: Vec<String> = (0..data_planes).map(|i| format!("r{round}-dp-{i}")).collect();
        let fleet = installation.data_planes(&names, |_| urls.as_str()).await?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let revision = put_changed(&mut m1, "failover").await?;
        wait_acked(&mut m1, &names, revision, ACK_WITHIN).await?;
        for name in &names {
            ensure!(installation.connected_to(name, &cp1.url()), "{name} is not on the first control plane");
        }

        let killed = Instant::now();
        cp1.process.kill().await;
        let revision = put_changed(&mut m2, "failover").await?;
        let put_returned = killed.elapsed();
        wait_acked(&mut m2, &names, revision, ACK_WITHIN).await?;
        let all_applied = killed.elapsed();
        for name in &names {
            ensure!(installation.connected_to(name, &cp2.url()), "{name} applied a revision but never moved");
        }
        println!(
            "  round {round}: PutApi on cp2 returned {:>8.2?} after the kill, every data plane applied it {:>8.2?} after",
            put_returned, all_applied
        );
        written.push(put_returned);
        applied.push(all_applied);
        for mut dp in fleet {
            dp.process.kill().await;
        }
    }
    println!(
        "failover: {data_planes} data planes on cp1 (--control-plane cp1,cp2), two control planes on a 3-member etcd; \
         cp1 SIGKILLed, then PutApi on cp2; {rounds} round(s), time from the kill"
    );
    for (what, samples) in [("PutApi on cp2 returned", &mut written), ("every data plane applied it", &mut applied)] {
        samples.sort();
        println!(
            "  {what:<28} min {:>8.2?}  median {:>8.2?}  max {:>8.2?}",
            samples[0],
            samples[samples.len() / 2],
            samples[samples.len() - 1]
        );
    }
    println!("  cp2 memory at the end: RSS/peak {} MiB", memory(&cp2));
    installation.report_logs();
    Ok(())
}
