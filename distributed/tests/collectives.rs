//! Two ranks of a Gloo process group, as two threads of this process over loopback: the
//! collectives give what c10d's definitions say, and a rank that leaves makes the other's
//! next collective fail within the timeout instead of hanging.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use distributed::{Backend, LaunchEnv, Launcher, ProcessGroup, DEFAULT_BUCKET_BYTES};
use tch::{Kind, Tensor};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn launch(rank: usize, world_size: usize, port: u16) -> LaunchEnv {
    LaunchEnv {
        launcher: Launcher::Environment,
        rank,
        world_size,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        agent_store: false,
        attempt: 0,
    }
}

/// Runs `body(group)` on ranks 0 and 1 at once; returns their results in rank order.
fn two_ranks<T: Send>(timeout: Duration, body: impl Fn(ProcessGroup) -> T + Sync) -> (T, T) {
    let port = free_port();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|rank| {
                let body = &body;
                s.spawn(move || {
                    let group = ProcessGroup::join(&launch(rank, 2, port), Backend::Gloo, timeout)
                        .expect("joining the job");
                    body(group)
                })
            })
            .collect();
        let mut results = handles.into_iter().map(|h| h.join().expect("rank thread"));
        (results.next().unwrap(), results.next().unwrap())
    })
}

#[test]
fn all_reduce_broadcast_and_barrier() {
    let (r0, r1) = two_ranks(Duration::from_secs(30), |group| {
        let rank = group.rank() as f64;
        // Tensors of two kinds and a bucket size that forces several buckets.
        let tensors = vec![
            Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (rank + 1.0),
            Tensor::ones([4, 5], (Kind::Float, tch::Device::Cpu)) * rank,
            Tensor::from_slice(&[10.0f64]) * (rank + 1.0),
            Tensor::arange(7, (Kind::Float, tch::Device::Cpu)),
        ];
        group.all_reduce_sum_bucketed(&tensors, 24).unwrap();
        let big = vec![Tensor::from_slice(&[0.5f32; 100]) * (rank + 1.0)];
        group
            .all_reduce_sum_bucketed(&big, DEFAULT_BUCKET_BYTES)
            .unwrap();
        let bytes = group
            .broadcast_bytes(format!("from rank {}", group.rank()).as_bytes(), 0)
            .unwrap();
        group.barrier().unwrap();
        let mut b = [Tensor::from_slice(&[rank as f32; 3])];
        group.broadcast(&mut b, 1).unwrap();
        (
            tensors
                .iter()
                .map(|t| Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap())
                .collect::<Vec<_>>(),
            Vec::<f32>::try_from(&big[0]).unwrap(),
            String::from_utf8(bytes).unwrap(),
            Vec::<f32>::try_from(&b[0]).unwrap(),
        )
    });
    for r in [&r0, &r1] {
        assert_eq!(r.0[0], vec![3.0, 6.0, 9.0]);
        assert_eq!(r.0[1], vec![1.0; 20]);
        assert_eq!(r.0[2], vec![30.0]);
        assert_eq!(r.0[3], (0..7).map(|i| 2.0 * i as f64).collect::<Vec<_>>());
        assert_eq!(r.1, vec![1.5f32; 100]);
        assert_eq!(r.2, "from rank 0");
        assert_eq!(r.3, vec![1.0f32; 3]);
    }
}

#[test]
fn a_rank_that_leaves_fails_the_other_within_the_timeout() {
    let timeout = Duration::from_secs(5);
    let (r0, _) = two_ranks(timeout, |group| {
        group.mark_progress(7).unwrap();
        group.barrier().unwrap();
        if group.rank() == 1 {
            // Leaves the job: its sockets close, as a killed process's would.
            drop(group);
            return None;
        }
        group.mark_progress(8).unwrap();
        let started = Instant::now();
        let mut t = [Tensor::from_slice(&[1.0f32])];
        let err = group.all_reduce_sum(&mut t).expect_err("the peer is gone");
        Some((err.to_string(), started.elapsed(), group.lagging_ranks()))
    });
    let (message, took, lagging) = r0.expect("rank 0's result");
    assert!(
        message.starts_with("rank 0: all-reduce failed"),
        "{message}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(lagging.contains("rank 1 (at step 7) stopped"), "{lagging}");
}

#[test]
fn nobody_at_the_store_is_an_error_naming_it() {
    let port = free_port();
    let started = Instant::now();
    let err = ProcessGroup::join(&launch(1, 2, port), Backend::Gloo, Duration::from_secs(2))
        .expect_err("no rank 0");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// NCCL where it can run (a build with it, a GPU); else the error a user gets. A one-rank
/// job: NCCL allows one rank per GPU, and the lent GPU machines have one.
#[test]
fn nccl_backend_runs_on_a_gpu_or_says_why_not() {
    let port = free_port();
    let joined = ProcessGroup::join(&launch(0, 1, port), Backend::Nccl, Duration::from_secs(20));
    if !Backend::nccl_available() {
        let Err(err) = joined else {
            panic!("joined with nccl, which is not built in")
        };
        assert!(err.to_string().contains("dist_backend=gloo"), "{err}");
        eprintln!("NOT RUN: the NCCL collectives (this build has no NCCL backend)");
        return;
    }
    if !tch::Cuda::is_available() {
        let Err(err) = joined else {
            panic!("joined with nccl without a GPU")
        };
        assert!(err.to_string().contains("needs CUDA GPUs"), "{err}");
        eprintln!("NOT RUN: the NCCL collectives (NCCL is built in, but there is no GPU here)");
        return;
    }
    let group = joined.expect("a one-rank NCCL job");
    let device = tch::Device::Cuda(0);
    let mut t = [
        Tensor::from_slice(&[1.5f32, -2.0, 3.25]).to_device(device),
        Tensor::from_slice(&[7i64]).to_device(device),
    ];
    group.all_reduce_sum(&mut t).expect("NCCL all-reduce");
    assert_eq!(
        Vec::<f32>::try_from(&t[0].to_device(tch::Device::Cpu)).unwrap(),
        [1.5, -2.0, 3.25]
    );
    assert_eq!(
        Vec::<i64>::try_from(&t[1].to_device(tch::Device::Cpu)).unwrap(),
        [7]
    );
    // Host bytes and the barrier go through the Gloo group beside it.
    assert_eq!(
        group.broadcast_bytes(b"state", 0).expect("broadcast"),
        b"state"
    );
    group.barrier().expect("barrier");
}
