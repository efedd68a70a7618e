//! The diff at 1k, 10k, 100k and 1M targets, against the bare `HashSet` difference of the same
//! order ids in the same run.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use reconcile_benches::{baseline, workload};
use reconcile_core::{DiffOptions, diff};
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("diff");
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let (local, broker) = workload(n);
        if n >= 100_000 {
            g.sample_size(10)
                .measurement_time(Duration::from_secs(if n >= 1_000_000 { 40 } else { 10 }));
        }
        g.bench_with_input(BenchmarkId::new("reconcile", n), &n, |b, _| {
            b.iter(|| {
                diff(
                    black_box(&local),
                    black_box(&broker),
                    &DiffOptions::default(),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("hashset_baseline", n), &n, |b, _| {
            b.iter(|| baseline(black_box(&local), black_box(&broker)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
