"""End to end, in one run: `reconcile diff --json` against the plain-Python peer on the same
generated files, their summaries checked equal first.

Usage: python3 benches/peers/compare.py [TARGETS] [RUNS]   (defaults 150000 and 7)

Builds the release binary and the generator with cargo, writes the files to a temporary folder,
then times each side RUNS times, alternating, and prints min / median / max and the ratio of the
medians, with each side's peak resident memory.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(ROOT, "benches", "peers", "reconcile_peer.py")


def sh(*cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def timed(cmd, out_path):
    """Runs cmd with its output going to a file (as a user's redirect would), and times it."""
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.PIPE)
        took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{cmd[0]} failed: {done.stderr.decode()}")
    with open(out_path, "rb") as out:
        return took, out.read()


def main():
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 150_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    sh("cargo", "build", "--release", "-q", "-p", "reconcile-cli")
    binary = os.path.join(ROOT, "target", "release", "reconcile")
    with tempfile.TemporaryDirectory(prefix="reconcile-e2e-") as d:
        sh("cargo", "run", "--release", "-q", "-p", "reconcile-benches", "--example", "gen_files", "--", str(targets), d)
        local, broker = os.path.join(d, "local.json"), os.path.join(d, "broker.json")
        size = os.path.getsize(local) + os.path.getsize(broker)
        ours_cmd = [binary, "diff", "--local", local, "--broker", broker, "--json"]
        peer_cmd = [sys.executable, PEER, local, broker]
        out_path = os.path.join(d, "out.json")
        _, report = timed(ours_cmd, out_path)
        _, peer = timed(peer_cmd, out_path)
        ours_summary = json.loads(report)["summary"]
        peer_summary = json.loads(peer)
        if ours_summary != peer_summary:
            sys.exit(f"the summaries differ:\nreconcile {ours_summary}\npeer      {peer_summary}")
        print(f"{targets} targets, {size / 1e6:.0f} MB of input; summaries equal: {ours_summary}")
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(timed(ours_cmd, out_path)[0])
            theirs.append(timed(peer_cmd, out_path)[0])
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        for name, xs in (("reconcile", ours), ("python peer", theirs)):
            print(f"{name:12} min {min(xs):.3f} s  median {statistics.median(xs):.3f} s  max {max(xs):.3f} s")
        print(f"ratio of medians: {statistics.median(theirs) / statistics.median(ours):.1f}x")
        print(f"largest peak resident memory of a child: {rss:.0f} MB (the peer's, as a rule)")
        mem = subprocess.run(["/usr/bin/time", "-f", "%M"] + ours_cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = int(mem.stderr.decode().strip().splitlines()[-1]) / 1024
        print(f"reconcile's peak resident memory: {peak:.0f} MB, {peak / (size / 1e6 / 1.048576):.2f}x the input")


if __name__ == "__main__":
    main()
