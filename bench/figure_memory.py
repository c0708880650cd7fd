"""Figure 5: peak memory of the server process running a 96 MP chain ÷ a sequential Pillow script's peak.

Both are measured as working memory, the peak resident set above the process's resident set just
before the work: Pillow in a fresh subprocess (`baselines.py pillow`, VmHWM minus VmRSS after imports),
Tileflow in a freshly restarted server (VmHWM is a lifetime peak and glibc keeps freed arenas, so a
reused process would hide the run's growth) after a small warm-up run, minus VmRSS before the run.
A 5 ms VmRSS sampler runs alongside as a cross-check. Absolute peaks are reported next to the ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from measure import Figure, RssSampler, alternate, log, median, proc_status_kb
from session import BenchSession, standalone

BENCH = Path(__file__).resolve().parent


def pillow_peak(photo: Path) -> tuple[int, int]:
    """Return (working peak KiB, absolute peak KiB) of the Pillow chain in a fresh process."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "baselines.py"), "pillow", str(photo)], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout)
    return report["hwm_kb"] - report["rss_before_kb"], report["hwm_kb"]


def tileflow_peak(session: BenchSession, photo: Path) -> tuple[int, int, int]:
    """Return (working peak KiB by VmHWM, by the 5 ms sampler, absolute VmHWM KiB) of one run in a fresh server."""
    server = session.server
    server.restart()
    session.run("chain-jpeg", session.photo("2mp"), (866, 578))
    baseline = proc_status_kb(server.pid, "VmRSS")
    sampler = RssSampler(server.pid)
    with sampler.sampling():
        session.run("chain-jpeg", photo, (6000, 4000))
    peak = proc_status_kb(server.pid, "VmHWM")
    return peak - baseline, sampler.peak_kb - sampler.baseline_kb, peak


def measure(session: BenchSession) -> list[Figure]:
    """Return figure 5 (server working peak ÷ Pillow working peak, 96 MP)."""
    photo = session.photo("96mp")
    pillow: list[tuple[int, int]] = []
    tileflow: list[tuple[int, int, int]] = []
    log("figure 5: 96 MP runs, a fresh server process for each")
    alternate(
        session.runs, lambda: pillow.append(pillow_peak(photo)), lambda: tileflow.append(tileflow_peak(session, photo))
    )
    pillow_work = median([work for work, _ in pillow]) / 1024
    tileflow_work = median([work for work, _, _ in tileflow]) / 1024
    sampled = median([work for _, work, _ in tileflow]) / 1024
    pillow_abs = median([peak for _, peak in pillow]) / 1024
    tileflow_abs = median([peak for _, _, peak in tileflow]) / 1024
    log(
        f"figure 5: Pillow {pillow_work:.0f} MiB working ({pillow_abs:.0f} MiB peak), Tileflow "
        f"{tileflow_work:.0f} MiB working ({tileflow_abs:.0f} MiB peak, sampler {sampled:.0f} MiB)"
    )
    return [
        Figure(
            "5",
            "peak working memory of the server ÷ sequential Pillow's (96 MP, resize 0.5, watermark, JPEG q85)",
            tileflow_work / pillow_work,
            "<= 0.45",
            f"Tileflow +{tileflow_work:.0f} MiB (process peak {tileflow_abs:.0f} MiB); "
            f"Pillow +{pillow_work:.0f} MiB (process peak {pillow_abs:.0f} MiB)",
            session.runs,
            notes=[
                f"5 ms VmRSS sampler saw the server grow by {sampled:.0f} MiB (median); absolute process peaks: "
                f"Tileflow {tileflow_abs:.0f} MiB ÷ Pillow {pillow_abs:.0f} MiB = {tileflow_abs / pillow_abs:.2f}"
            ],
        )
    ]


if __name__ == "__main__":
    standalone(measure)
