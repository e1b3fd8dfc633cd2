"""Checks a lonc metrics file against Prometheus' naming rules.

Usage: python3 metrics_naming.py FILE PEER...

FILE is parsed with the text-format parser of Debian's
python3-prometheus-client (a line it cannot parse is an error). The rules:
counters end in _total and nothing else does; values are in base units
(seconds, bytes) and say so in their names; the peer's host id is the label
peer everywhere, with one of the PEERs as its value; process= is only the
kind of lonc process (supervisor or child) of lonc_process_* series; every
family has help text and is written once. Prints one line per problem and
exits 1, or prints "ok: <families> families, <samples> samples" and exits 0.
"""

import re
import sys

from prometheus_client.parser import text_string_to_metric_families

LABELS = {
    "peer": "the peer's host id",
    "process": "which kind of lonc process (lonc_process_* only)",
    "state": "the state of a peer's child (lonc_peers)",
    "version": "lonc's version (lonc_build_info)",
    "result": "the last reload's result (lonc_config_last_reload_info)",
    "le": "a histogram bucket's bound",
}
REQUIRED = {
    "lonc_status_generations": "counter",
    "lonc_requests": "counter",
    "lonc_child_restarts": "counter",
    "lonc_link_up": "gauge",
    "lonc_spool_oldest_age_seconds": "gauge",
    "lonc_process_cpu_seconds": "counter",
    "lonc_process_resident_memory_bytes": "gauge",
    "lonc_request_duration_seconds": "histogram",
}


def check(text, peers):
    problems = []
    declared = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    names = [name for name, _ in declared]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: TYPE written {names.count(name)} times")
    for name, kind in declared:
        if (kind == "counter") != name.endswith("_total"):
            problems.append(f"{name}: a {kind}, so it must "
                            f"{'' if kind == 'counter' else 'not '}end in _total")
        if not re.fullmatch(r"lonc_[a-z][a-z0-9_]*", name):
            problems.append(f"{name}: not a lonc_ snake_case name")
        if re.search(r"(milli|micro|kib|_ms$|_ms_|_kb|minutes|hours)", name):
            problems.append(f"{name}: not in base units")
        for word, unit in (("duration", "seconds"), ("age", "seconds"), ("time", "seconds"),
                           ("cpu", "seconds"), ("memory", "bytes"), ("size", "bytes")):
            if re.search(rf"(^|_){word}(_|$)", name) and not re.search(
                    rf"_{unit}(_total)?$", name):
                problems.append(f"{name}: a {word} must be in {unit} and say so")
        if re.search(r"_time(stamp)?_seconds$", name) and kind != "gauge":
            problems.append(f"{name}: a timestamp is a gauge")

    families = list(text_string_to_metric_families(text))
    found = {}
    samples = 0
    for fam in families:
        found[fam.name] = fam.type
        if not fam.documentation:
            problems.append(f"{fam.name}: no HELP")
        suffixes = {"counter": ["_total"], "gauge": [""],
                    "histogram": ["_bucket", "_count", "_sum"]}.get(fam.type)
        if suffixes is None:
            problems.append(f"{fam.name}: type {fam.type}")
            continue
        peer_label = None
        for s in fam.samples:
            samples += 1
            if s.name not in [fam.name + x for x in suffixes]:
                problems.append(f"{s.name}: sample of {fam.type} {fam.name}")
            for label in s.labels:
                if label not in LABELS:
                    problems.append(f"{s.name}{s.labels}: label {label} is not one of "
                                    f"{sorted(LABELS)}")
            if ("le" in s.labels) != s.name.endswith("_bucket"):
                problems.append(f"{s.name}{s.labels}: le only on histogram buckets")
            if "peer" in s.labels and s.labels["peer"] not in peers:
                problems.append(f"{s.name}{s.labels}: peer is not a host id")
            if "process" in s.labels:
                kind = s.labels["process"]
                if not fam.name.startswith("lonc_process_"):
                    problems.append(f"{s.name}{s.labels}: process= outside lonc_process_*")
                if kind not in ("supervisor", "child"):
                    problems.append(f"{s.name}{s.labels}: process is {kind!r}, not "
                                    "supervisor or child")
                if (kind == "child") != ("peer" in s.labels):
                    problems.append(f"{s.name}{s.labels}: a child's series (and only "
                                    "a child's) names its peer")
            elif fam.name.startswith("lonc_process_"):
                problems.append(f"{s.name}{s.labels}: no process label")
            if not fam.name.startswith("lonc_process_") and fam.name != "lonc_spool_undeliverable":
                has_peer = "peer" in s.labels
                if peer_label is not None and has_peer != peer_label:
                    problems.append(f"{s.name}: peer label on some samples only")
                peer_label = has_peer
            if fam.type == "counter" and not s.value >= 0:
                problems.append(f"{s.name}{s.labels}: counter value {s.value}")
    for name, kind in REQUIRED.items():
        if found.get(name) != kind:
            problems.append(f"{name}: expected a {kind}, found {found.get(name)}")
    return problems, len(families), samples


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    problems, families, samples = check(text, set(sys.argv[2:]))
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"ok: {families} families, {samples} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
