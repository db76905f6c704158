"""The printed table of figures (table.py) and the chart (chart.py); the targets are in
bench/targets.py."""
