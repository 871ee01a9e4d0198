"""Review statistics: counts and areas by period, class, state and admin unit; false alarms; throughput."""

from __future__ import annotations

from pathlib import Path

from satcheck.atomic import atomic_path
from satcheck.review.ledger import Ledger


def stats(ledger: Ledger) -> dict:
    db = ledger.db
    base = "FROM patches p JOIN current c ON c.patch_id = p.patch_id"

    def group(col: str) -> list[dict]:
        rows = db.execute(f"SELECT {col} AS key, COUNT(*) AS n, ROUND(SUM(p.area_m2), 1) AS area_m2 {base} "
                          f"GROUP BY {col} ORDER BY {col}").fetchall()
        return [dict(r) for r in rows]

    false_alarms = db.execute(f"SELECT c.reason AS key, COUNT(*) AS n, ROUND(SUM(p.area_m2), 1) AS area_m2 {base} "
                              "WHERE c.state='rejected' GROUP BY c.reason ORDER BY n DESC").fetchall()
    throughput = db.execute(
        "SELECT reviewer, substr(at, 1, 10) AS day, COUNT(*) AS decisions FROM events "
        "WHERE from_state != 'new' GROUP BY reviewer, day ORDER BY day, reviewer").fetchall()
    reviewed, total = ledger.progress()
    return {
        "patches": total + db.execute(f"SELECT COUNT(*) {base} WHERE c.state='linked'").fetchone()[0],
        "in_review": total,
        "reviewed": reviewed,
        "by_period": group("p.period"),
        "by_class": group("p.class"),
        "by_state": group("c.state"),
        "by_admin": group("p.admin_code"),
        "false_alarms_by_reason": [dict(r) for r in false_alarms],
        "throughput": [dict(r) for r in throughput],
    }


def chart(s: dict, path: str | Path) -> Path:
    """A PNG with patches by state, false alarms by reason and decisions per reviewer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    from satcheck.errors import OutputError
    from satcheck.report.sheets import find_cjk_font

    try:  # reviewer names and reasons are often Chinese
        font = find_cjk_font()
        font_manager.fontManager.addfont(str(font))
        plt.rcParams["font.family"] = [font_manager.FontProperties(fname=str(font)).get_name(), "DejaVu Sans"]
    except OutputError:
        pass

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title in ((axes[0], "by_state", "patches by state"),
                           (axes[1], "false_alarms_by_reason", "false alarms by reason")):
        rows = s[key]
        ax.barh([str(r["key"]) for r in rows], [r["n"] for r in rows], color="#4a7bb7")
        ax.set_title(title)
        ax.invert_yaxis()
    per = {}
    for r in s["throughput"]:
        per[r["reviewer"]] = per.get(r["reviewer"], 0) + r["decisions"]
    axes[2].bar(list(per), list(per.values()), color="#c0504d")
    axes[2].set_title("decisions per reviewer")
    fig.suptitle(f"{s['reviewed']} / {s['in_review']} reviewed")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
