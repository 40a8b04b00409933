"""Summary tables: paper layout, percent, failures counted, seed spread."""

from __future__ import annotations

from navsim_eval.evaluation.results import Variant, make_row
from navsim_eval.evaluation.summary import markdown_table, summarize


def test_v1_table_layout_and_means():
    rows = [
        make_row("a", Variant("dipole", 0.5, 0), "v1", metrics={"score": 0.8, "no_at_fault_collisions": 1.0,
                                                                 "comfort": 1.0}),
        make_row("b", Variant("dipole", 0.5, 0), "v1", metrics={"score": 0.6, "no_at_fault_collisions": 0.5,
                                                                 "comfort": 1.0}),
        make_row("a", Variant("dipole", 0.5, 1), "v1", metrics={"score": 1.0, "no_at_fault_collisions": 1.0}),
        make_row("c", Variant("dipole", 0.5, 1), "v1", error="planner failed"),
        make_row("a", Variant("constant_velocity"), "v1", metrics={"score": 0.2}),
        make_row("a", Variant("constant_velocity"), "v2", metrics={"score": 0.1}),
    ]
    lines = summarize(rows, "v1")
    assert [line.label for line in lines] == ["constant_velocity", "dipole (w=0.5)"]
    dipole = lines[1]
    assert abs(dipole.means["score"] - 0.8) < 1e-12 and dipole.num_tokens == 3 and dipole.num_failed == 1
    table = markdown_table(lines, "v1", title="navtest")
    header = table.splitlines()[2]
    assert header == "| Method | NC | DAC | TTC | C | EP | PDMS | scenes | failed |"
    assert "| dipole (w=0.5) | 83.3 | – | – | 100.0 | – | 80.0 ± 15.0 (2 seeds) | 3 | 1 |" in table
    v2 = markdown_table(summarize(rows, "v2"), "v2")
    assert "| Method | NC | DAC | DDC | TLC | EP | TTC | LK | HC | EC | EPDMS |" in v2
    assert "| constant_velocity |" in v2 and "10.0" in v2
