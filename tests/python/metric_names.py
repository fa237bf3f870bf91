"""Reads a Prometheus text exposition on stdin with prometheus_client's own parser and
prints, as JSON, every metric family name and every sample name it holds (so a counter
appears both as `x` and `x_total`, a histogram as `x`, `x_bucket`, `x_sum`, `x_count`).
A malformed exposition makes the parser raise, and this script exit non-zero."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

names = set()
for family in text_string_to_metric_families(sys.stdin.read()):
    names.add(family.name)
    for sample in family.samples:
        names.add(sample.name)
print(json.dumps(sorted(names)))
