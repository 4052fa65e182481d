"""JUnit XML: one testcase per criterion, so any CI shows which criterion failed and by how much.

FAIL criteria are <failure>, INCONCLUSIVE ones <error> (the evidence was not obtained),
advisory misses are <skipped> with the reason. Required and advisory criteria sit in classes
of their own (``robustgate.<standard>.required`` / ``.advisory``), and every testcase, a
passing one too, carries its figures as <properties> and a line of <system-out>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def render_junit(card: dict[str, Any]) -> str:
    criteria = card.get("criteria", [])
    std = card.get("standard", {})
    suite_name = f"robustgate.{std.get('name', 'standard')}"
    failures = sum(1 for c in criteria if c["result"] == "FAIL" and c["severity"] == "required")
    errors = sum(1 for c in criteria
                 if c["result"] == "INCONCLUSIVE" and c["severity"] == "required")
    skipped = sum(1 for c in criteria if c["severity"] != "required" and c["result"] != "PASS")
    total_time = card.get("timings", {}).get("total_seconds", 0.0)
    suites = ET.Element("testsuites", name="robustgate", tests=str(len(criteria)),
                        failures=str(failures), errors=str(errors), time=f"{total_time:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(criteria)),
                          failures=str(failures), errors=str(errors), skipped=str(skipped),
                          time=f"{total_time:.3f}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", card.get("verdict")),
                        ("model.sha256", card.get("model", {}).get("sha256")),
                        ("dataset.sha256", card.get("dataset", {}).get("sha256")),
                        ("standard.sha256", std.get("sha256")),
                        ("tool.version", card.get("tool", {}).get("version")),
                        ("seed", card.get("seed"))):
        ET.SubElement(props, "property", name=name, value=str(value))
    for c in criteria:
        severity = "required" if c["severity"] == "required" else "advisory"
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.{severity}",
                             name=f"{c['metric']} {c['op']} {c['threshold']:g}"
                             + ("" if severity == "required" else " (advisory)"))
        margin = "n/a" if c.get("margin") is None else f"{c['margin']:+.6g}"
        interval = f" interval={c['interval']}" if c.get("interval") else ""
        text = (f"value={c.get('value')}{interval} threshold={c['threshold']:g} "
                f"margin={margin}: {c['reason']}")
        values = ET.SubElement(case, "properties")
        for name, value in (("metric", c["metric"]), ("severity", severity),
                            ("result", c["result"]), ("value", c.get("value")),
                            ("op", c["op"]), ("threshold", c["threshold"]),
                            ("margin", c.get("margin")), ("interval", c.get("interval"))):
            if value is not None:
                ET.SubElement(values, "property", name=name, value=str(value))
        ET.SubElement(case, "system-out").text = f"{c['result']} ({severity}) {text}"
        if c["result"] == "PASS":
            continue
        if c["severity"] != "required":
            ET.SubElement(case, "skipped", message=f"advisory {c['result']}: {text}")
        elif c["result"] == "FAIL":
            ET.SubElement(case, "failure", message=f"margin {margin}", type="FAIL").text = text
        else:
            ET.SubElement(case, "error", message=c["reason"], type="INCONCLUSIVE").text = text
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
