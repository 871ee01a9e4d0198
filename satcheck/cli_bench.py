"""`satcheck bench --stages`: the stage profile as a table."""

from __future__ import annotations

from rich.table import Table

from satcheck.batch.bench_stages import STAGE_LABELS
from satcheck.cli_common import out


def print_stage_profile(r: dict) -> None:
    e2e = r["end_to_end_s"]
    engine = f"{r['engine']} on {r['device']}" if r["engine"] else r["detector"]
    t = Table(title=f"satcheck bench --stages: {r['size']}×{r['size']} pair, {engine}, medians of "
                    f"{r['repeats']}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column(justify="right")
    t.add_row("read floor (both dates)", f"{r['read_floor_mpx_s']} Mpx/s",
              f"{r['read_floor_s']:.2f} s ({r['threads']} threads)")
    t.add_row("model alone", f"{r['model_mpx_s']} Mpx/s", f"{r['stages']['model']:.2f} s")
    t.add_row("end to end (run --rules)", f"{r['end_to_end_mpx_s']} Mpx/s", f"{e2e:.2f} s")
    t.add_row("  end to end / read floor", f"{r['end_to_end_over_read_floor']:.3f}", "")
    t.add_row("  end to end / model alone", f"{r['end_to_end_over_model']:.3f}", "")
    t.add_row("stages, one at a time", "seconds", "of end to end")
    for k, s in r["stages"].items():
        t.add_row(f"  {STAGE_LABELS.get(k, k)}", f"{s:.2f}", f"{s / e2e:.0%}" if e2e > 0 else "")
    t.add_row("  sum of stages", f"{r['stages_sum_s']:.2f}", f"{r['stages_sum_s'] / e2e:.0%}" if e2e > 0 else "")
    t.add_row("  end to end less stages", f"{r['other_s']:.2f}", "< 0: overlapped")
    out.print(t)
    if r["changes"] != r["changes_replay"]:
        out.print(f"note: the stage replay made {r['changes_replay']} change polygons where the run made "
                  f"{r['changes']}: it no longer mirrors the run (satcheck/batch/bench_stages.py)")
