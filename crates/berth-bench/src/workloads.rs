//! The work kubelet gives a node, measured on every runtime, interleaved: one runtime's sample,
//! then the other's, so that the node's weather falls on both alike.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::floor::FloorRig;
use crate::memory;
use crate::report::{Row, Section};
use crate::runtime::{Res, Runtime, timed};
use crate::samples::{Figure, Samples};

/// Rows of timed operations being filled in, in the order first seen.
#[derive(Debug, Default)]
struct Timings(Vec<(String, Vec<(String, Samples)>)>);

impl Timings {
    fn add(&mut self, op: &str, runtime: &str, d: Duration) {
        if !self.0.iter().any(|(o, _)| o == op) {
            self.0.push((op.to_owned(), Vec::new()));
        }
        let Some((_, row)) = self.0.iter_mut().find(|(o, _)| o == op) else {
            return;
        };
        match row.iter_mut().find(|(r, _)| r == runtime) {
            Some((_, s)) => s.push(d),
            None => {
                let mut s = Samples::default();
                s.push(d);
                row.push((runtime.to_owned(), s));
            }
        }
    }

    fn section(self, title: &str, floors: &[(&str, &Samples)]) -> Section {
        Section {
            title: title.to_owned(),
            rows: self
                .0
                .into_iter()
                .map(|(name, figures)| Row {
                    floor: floors
                        .iter()
                        .find(|(op, _)| *op == name)
                        .map(|(_, s)| Figure::Time((*s).clone())),
                    name,
                    figures: figures
                        .into_iter()
                        .map(|(r, s)| (r, Figure::Time(s)))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// 1. Sequential pod lifecycles, each step timed, then the shorter one crictl users and critest
///    drive (the pod stopped with its container running); a floor sample (the same work without
///    a runtime) with every cycle.
pub async fn lifecycle(
    rts: &[Arc<Runtime>],
    cycles: usize,
    image: &str,
    mut floor: Option<&mut FloorRig>,
) -> Res<Section> {
    let mut t = Timings::default();
    for _ in 0..cycles {
        if let Some(rig) = floor.as_deref_mut() {
            rig.sample().await?;
        }
        for rt in rts {
            let name = &rt.name;
            let (pod, run) = timed(rt.run_pod()).await?;
            let (id, create) = timed(rt.create_container(&pod, "c", image)).await?;
            let ((), start) = timed(rt.start_container(&id)).await?;
            tokio::time::sleep(crate::runtime::TRAP_SET).await;
            let ((), stop) = timed(rt.stop_container(&id)).await?;
            let ((), remove) = timed(rt.remove_container(&id)).await?;
            let ((), stop_pod) = timed(rt.stop_pod(&pod.id)).await?;
            let ((), remove_pod) = timed(rt.remove_pod(&pod.id)).await?;
            t.add("RunPodSandbox", name, run);
            t.add("CreateContainer", name, create);
            t.add("StartContainer", name, start);
            t.add("StopContainer (SIGTERM honoured)", name, stop);
            t.add("RemoveContainer", name, remove);
            t.add("StopPodSandbox", name, stop_pod);
            t.add("RemovePodSandbox", name, remove_pod);
            t.add("CreateContainer + StartContainer", name, create + start);
            t.add("StopContainer + RemoveContainer", name, stop + remove);
            t.add(
                "StopPodSandbox + RemovePodSandbox",
                name,
                stop_pod + remove_pod,
            );
            t.add(
                "whole lifecycle",
                name,
                run + create + start + stop + remove + stop_pod + remove_pod,
            );
        }
        for rt in rts {
            crictl_lifecycle(rt, image, &mut t).await?;
        }
    }
    let Some(f) = floor.map(|rig| &rig.floor) else {
        return Ok(t.section("1. lifecycle", &[]));
    };
    let whole = f
        .runc_create_start
        .plus(&f.runc_stop_delete)
        .plus(&f.cni_add)
        .plus(&f.cni_del);
    Ok(t.section(
        "1. lifecycle (floor: CNI ADD; runc create+start; runc kill TERM, wait, delete; CNI DEL; all)",
        &[
            ("RunPodSandbox", &f.cni_add),
            ("CreateContainer + StartContainer", &f.runc_create_start),
            ("StopContainer + RemoveContainer", &f.runc_stop_delete),
            ("StopPodSandbox + RemovePodSandbox", &f.cni_del),
            ("whole lifecycle", &whole),
        ],
    ))
}

/// `crictl runp`, `create`, `start`, `stopp`, `rmp`: StopPodSandbox ends the running container.
async fn crictl_lifecycle(rt: &Runtime, image: &str, t: &mut Timings) -> Res<()> {
    let name = &rt.name;
    let (pod, run) = timed(rt.run_pod()).await?;
    let (id, create) = timed(rt.create_container(&pod, "c", image)).await?;
    let ((), start) = timed(rt.start_container(&id)).await?;
    let ((), stop_pod) = timed(rt.stop_pod(&pod.id)).await?;
    let ((), remove_pod) = timed(rt.remove_pod(&pod.id)).await?;
    t.add("StopPodSandbox, its container running", name, stop_pod);
    t.add("RemovePodSandbox, its container stopped", name, remove_pod);
    t.add(
        "whole crictl lifecycle (runp, create, start, stopp, rmp)",
        name,
        run + create + start + stop_pod + remove_pod,
    );
    Ok(())
}

/// Starts `count` one-container pods at once; their IDs.
async fn start_pods(
    rt: &Arc<Runtime>,
    count: usize,
    containers: usize,
    image: &str,
) -> Res<Vec<String>> {
    let mut set = JoinSet::new();
    for _ in 0..count {
        let (rt, image) = (rt.clone(), image.to_owned());
        set.spawn(async move { rt.running_pod(containers, &image).await });
    }
    let mut ids = Vec::new();
    while let Some(joined) = set.join_next().await {
        ids.push(joined.map_err(|e| e.to_string())??);
    }
    Ok(ids)
}

async fn end_pods(rt: &Arc<Runtime>, ids: Vec<String>) -> Res<()> {
    let mut set = JoinSet::new();
    for id in ids {
        let rt = rt.clone();
        set.spawn(async move { rt.end_pod(&id).await });
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// 2. Pods created all at once: time to all running, time to all removed.
pub async fn burst(rts: &[Arc<Runtime>], pods: usize, rounds: usize, image: &str) -> Res<Section> {
    let mut t = Timings::default();
    for _ in 0..rounds {
        for rt in rts {
            let (ids, up) = timed(start_pods(rt, pods, 1, image)).await?;
            let ((), down) = timed(end_pods(rt, ids)).await?;
            t.add(&format!("{pods} pods to running"), &rt.name, up);
            t.add(&format!("{pods} pods removed"), &rt.name, down);
        }
    }
    Ok(t.section(
        &format!("2. burst of {pods} one-container pods ({rounds} rounds)"),
        &[],
    ))
}

/// 3. Memory of the daemon idle and with `pods` running pods, and of the per-pod helpers.
pub async fn density(rts: &[Arc<Runtime>], pods: usize, image: &str) -> Res<Section> {
    let mut rows: Vec<Row> = [
        "daemon RSS, idle",
        "daemon PSS, idle",
        "daemon RSS, with the pods",
        "daemon PSS, with the pods",
        "helper RSS per pod",
        "helper PSS per pod",
    ]
    .iter()
    .map(|n| Row::new(n))
    .collect();
    for rt in rts {
        let Some(p) = rt.processes.clone() else {
            continue;
        };
        let idle = memory::of_pid(p.daemon_pid).ok_or("the daemon is gone")?;
        let ids = start_pods(rt, pods, 1, image).await?;
        // Let start-up allocations settle before reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let busy = memory::of_pid(p.daemon_pid).ok_or("the daemon is gone")?;
        let (count, helpers) = memory::of_helpers(&p);
        end_pods(rt, ids).await?;
        if count < pods {
            return Err(format!("{}: {count} helpers for {pods} pods", rt.name));
        }
        let per_pod = |b: u64| b / pods as u64;
        for (row, bytes) in rows.iter_mut().zip([
            idle.rss,
            idle.pss,
            busy.rss,
            busy.pss,
            per_pod(helpers.rss),
            per_pod(helpers.pss),
        ]) {
            row.figures.push((rt.name.clone(), Figure::Bytes(bytes)));
        }
    }
    Ok(Section {
        title: format!("3. density: memory, idle and with {pods} running one-container pods"),
        rows,
    })
}

/// 4. ListPodSandbox and ListContainers with `pods` pods of two containers, then while a burst
///    of `burst` pods is being created.
pub async fn relist(
    rts: &[Arc<Runtime>],
    pods: usize,
    samples: usize,
    burst: usize,
    image: &str,
) -> Res<Section> {
    let mut t = Timings::default();
    for rt in rts {
        let mut ids = Vec::new();
        // Ten at a time: the set-up is not what is measured.
        for _ in 0..pods.div_ceil(10) {
            ids.extend(start_pods(rt, 10.min(pods - ids.len()), 2, image).await?);
        }
        for _ in 0..samples {
            let (_, d) = timed(rt.list_pods()).await?;
            t.add(&format!("ListPodSandbox, {pods} pods"), &rt.name, d);
            let (_, d) = timed(rt.list_containers()).await?;
            t.add(
                &format!("ListContainers, {} containers", pods * 2),
                &rt.name,
                d,
            );
        }
        let creating = {
            let (rt, image) = (rt.clone(), image.to_owned());
            tokio::spawn(async move { start_pods(&rt, burst, 1, &image).await })
        };
        while !creating.is_finished() {
            let (_, d) = timed(rt.list_pods()).await?;
            t.add("ListPodSandbox during the burst", &rt.name, d);
            let (_, d) = timed(rt.list_containers()).await?;
            t.add("ListContainers during the burst", &rt.name, d);
        }
        ids.extend(creating.await.map_err(|e| e.to_string())??);
        end_pods(rt, ids).await?;
    }
    Ok(t.section(
        &format!("4. relist with {pods} pods x 2 containers, and during a burst of {burst}"),
        &[],
    ))
}

/// 5. Pull and unpack, the image removed between samples.
pub async fn pull(rts: &[Arc<Runtime>], images: &[(&str, &str)], samples: usize) -> Res<Section> {
    let mut t = Timings::default();
    for (label, image) in images {
        for rt in rts {
            // A leftover from an earlier run would make the first sample a no-op.
            let _ = rt.remove_image(image).await;
        }
        for _ in 0..samples {
            for rt in rts {
                let ((), d) = timed(rt.pull(image)).await?;
                rt.remove_image(image).await?;
                t.add(&format!("PullImage, {label}"), &rt.name, d);
            }
        }
    }
    Ok(t.section("5. pull", &[]))
}

/// Calls per block of the exec workload: the machine's CPU time is read around each block.
const EXEC_BLOCK: usize = 10;

/// 6. ExecSync of `true` in a running container (what an exec probe does): the wall time of
///    each call, and the CPU time the whole machine spent per call, over blocks of calls to one
///    runtime at a time (the blocks interleaved).
pub async fn exec(rts: &[Arc<Runtime>], samples: usize, image: &str) -> Res<Section> {
    let mut t = Timings::default();
    let mut running = Vec::new();
    for rt in rts {
        let pod = rt.run_pod().await?;
        let id = rt.create_container(&pod, "c", image).await?;
        rt.start_container(&id).await?;
        // The first exec may set things up once (berth builds the container's exec plan).
        rt.exec_sync(&id, &["true"]).await?;
        running.push((pod.id, id));
    }
    for _ in 0..samples.div_ceil(EXEC_BLOCK) {
        for (rt, (_, id)) in rts.iter().zip(&running) {
            let cpu_before = crate::cpu::used();
            for _ in 0..EXEC_BLOCK {
                let (code, d) = timed(rt.exec_sync(id, &["true"])).await?;
                if code != 0 {
                    return Err(format!("{}: `true` exited {code}", rt.name));
                }
                t.add("ExecSync `true`", &rt.name, d);
            }
            if let (Some(before), Some(after)) = (cpu_before, crate::cpu::used()) {
                let per_call = after.saturating_sub(before) / EXEC_BLOCK as u32;
                t.add("ExecSync `true`, machine CPU per call", &rt.name, per_call);
            }
        }
    }
    for (rt, (pod, _)) in rts.iter().zip(running) {
        rt.end_pod(&pod).await?;
    }
    Ok(t.section("6. exec", &[]))
}
