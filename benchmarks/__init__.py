"""`make bench`: longer measurements of quality and speed, written to _build/bench/results.json."""
