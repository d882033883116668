"""Parse OpenMetrics text from stdin with prometheus_client's strict
parser and print the families as JSON: [{name, type, samples: [...]}]."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": f.name,
        "type": f.type,
        "help": f.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
    })
print(json.dumps(families))
