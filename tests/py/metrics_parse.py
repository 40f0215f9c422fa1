"""Parses a Prometheus text exposition (stdin) with prometheus_client's own parser, an
independent reader of the format, and prints the families as JSON (stdout) for the Rust
test to check: [{name, type, documentation, samples: [{name, labels, value}]}].
A page the parser rejects exits non-zero with its error."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def value(v):
    # JSON has no infinities or NaN.
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return v


families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append(
        {
            "name": f.name,
            "type": f.type,
            "documentation": f.documentation,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": value(s.value)}
                for s in f.samples
            ],
        }
    )
json.dump(families, sys.stdout)
