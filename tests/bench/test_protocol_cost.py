"""bench/protocol_cost.py runs both protocols under real load and prints its table."""

from __future__ import annotations

from bench import protocol_cost


def test_both_protocols_answer_load_and_the_table_names_them(capsys):
    assert protocol_cost.main(["--rounds", "1", "--duration", "0.3", "--concurrency", "4"]) == 0
    table = capsys.readouterr().out.split("| protocol |", 1)[1]
    for name in protocol_cost.PROTOCOLS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert float(row.split("|")[3].replace(",", "")) > 0  # requests were answered
